//! WebShop's pages as a state machine (the `SimServer`/`SimBrowser` of WebShop's text env):
//! search, results, item, item sub-pages and done; `search[...]`/`click[...]` actions; the simple
//! text observation (visible texts joined with ` [SEP] `) and the clickables of each page.

use super::catalogue::Catalogue;
use super::search::{SearchIndex, PRODUCT_WINDOW, SEARCH_RETURN_N};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub const END_BUTTON: &str = "Buy Now";
pub const NEXT_PAGE: &str = "Next >";
pub const PREV_PAGE: &str = "< Prev";
pub const BACK_TO_SEARCH: &str = "Back to Search";
pub const SEARCH_BUTTON: &str = "Search";
/// Product titles in the compact prompt are cut to this many characters.
pub const COMPACT_TITLE_CHARS: usize = 40;
/// Sub-page text in the compact prompt is cut to this many characters.
pub const COMPACT_TEXT_CHARS: usize = 200;
/// The separator of the simple text observation.
pub const SEP: &str = " [SEP] ";

/// An item's sub-page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubPage {
    Description,
    Features,
    Reviews,
    Attributes,
}

impl SubPage {
    pub const ALL: [SubPage; 4] = [
        SubPage::Description,
        SubPage::Features,
        SubPage::Reviews,
        SubPage::Attributes,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SubPage::Description => "Description",
            SubPage::Features => "Features",
            SubPage::Reviews => "Reviews",
            SubPage::Attributes => "Attributes",
        }
    }
}

/// Which page the browser shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Page {
    Search,
    Results,
    Item,
    Sub(SubPage),
    Done,
}

/// What a clickable text leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clickable {
    Button(&'static str),
    /// A product link on the results page (catalogue position).
    Product(usize),
    /// A radio button of an item option.
    OptionValue {
        name: String,
        value: String,
    },
}

/// An action as WebShop's `parse_action` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Search(String),
    Click(String),
    /// Anything else: a no-op.
    Other(String),
}

/// Python's `re.match(r'(.+)\[(.+)\]', text)`: the longest name before a `[`, then the longest
/// argument up to a later `]`, neither crossing a newline (the match need not reach the end).
pub fn parse_action(text: &str) -> Option<(String, String)> {
    let first_line_end = text.find('\n').unwrap_or(text.len());
    let bytes = text.as_bytes();
    for open in (1..first_line_end).rev() {
        if bytes[open] != b'[' {
            continue;
        }
        let rest_end = text[open + 1..]
            .find('\n')
            .map_or(text.len(), |e| open + 1 + e);
        if let Some(close) = text[open + 1..rest_end].rfind(']') {
            if close >= 1 {
                return Some((
                    text[..open].to_string(),
                    text[open + 1..open + 1 + close].to_string(),
                ));
            }
        }
    }
    None
}

/// Reads an action string as WebShop's text env does (argument lower-cased).
pub fn read_action(text: &str) -> Action {
    match parse_action(text) {
        Some((name, arg)) if name == "search" => Action::Search(arg.to_lowercase()),
        Some((name, arg)) if name == "click" => Action::Click(arg.to_lowercase()),
        _ => Action::Other(text.to_string()),
    }
}

/// One browsing session on one goal.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub instruction: String,
    pub page: Page,
    /// The last search's words (WebShop splits the query on spaces and joins them back).
    pub keywords: Option<String>,
    /// Catalogue positions of the last search's top results.
    pub results: Vec<usize>,
    /// Current results page, 1-based.
    pub results_page: usize,
    /// The product being viewed.
    pub product: Option<usize>,
    /// Products opened so far.
    pub visited: Vec<usize>,
    /// Chosen options (name -> value) in the order first chosen.
    pub options: IndexMap<String, String>,
    pub show_attributes: bool,
}

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The action changed nothing (unknown, not clickable here, or empty search).
    NoOp,
    Moved,
    /// `Buy Now` was clicked on an item page.
    Bought,
}

impl Session {
    pub fn new(instruction: &str, show_attributes: bool) -> Session {
        Session {
            instruction: instruction.to_string(),
            page: Page::Search,
            keywords: None,
            results: Vec::new(),
            results_page: 1,
            product: None,
            visited: Vec::new(),
            options: IndexMap::new(),
            show_attributes,
        }
    }

    /// WebShop's `text_to_clickable`, in page order: buttons, then product links, then option
    /// radios (a repeated text keeps its first place and its last target, like a dict).
    pub fn clickables(&self, catalogue: &Catalogue) -> IndexMap<String, Clickable> {
        let mut map = IndexMap::new();
        let button = |map: &mut IndexMap<String, Clickable>, label: &'static str| {
            map.insert(label.to_lowercase(), Clickable::Button(label));
        };
        match self.page {
            Page::Search => button(&mut map, SEARCH_BUTTON),
            Page::Results => {
                button(&mut map, BACK_TO_SEARCH);
                if self.results_page > 1 {
                    button(&mut map, PREV_PAGE);
                }
                button(&mut map, NEXT_PAGE);
                for &p in self.page_products() {
                    map.insert(
                        catalogue.products[p].asin.to_lowercase(),
                        Clickable::Product(p),
                    );
                }
            }
            Page::Item => {
                button(&mut map, BACK_TO_SEARCH);
                button(&mut map, PREV_PAGE);
                for sub in SubPage::ALL {
                    if sub != SubPage::Attributes || self.show_attributes {
                        button(&mut map, sub.label());
                    }
                }
                button(&mut map, END_BUTTON);
                if let Some(p) = self.product {
                    for (name, values) in &catalogue.products[p].options {
                        for value in values {
                            map.insert(
                                value.clone(),
                                Clickable::OptionValue {
                                    name: name.clone(),
                                    value: value.clone(),
                                },
                            );
                        }
                    }
                }
            }
            Page::Sub(_) => {
                button(&mut map, BACK_TO_SEARCH);
                button(&mut map, PREV_PAGE);
            }
            Page::Done => {}
        }
        map
    }

    /// Whether the page has the search bar.
    pub fn has_search_bar(&self) -> bool {
        self.page == Page::Search
    }

    /// verl-agent's admissible action strings for this page.
    pub fn admissible_actions(&self, catalogue: &Catalogue) -> Vec<String> {
        let mut actions = Vec::new();
        if self.has_search_bar() {
            actions.push("search[<your query>]".to_string());
        }
        actions.extend(
            self.clickables(catalogue)
                .keys()
                .map(|k| format!("click[{k}]")),
        );
        actions
    }

    fn page_products(&self) -> &[usize] {
        let start = ((self.results_page.max(1) - 1) * PRODUCT_WINDOW).min(self.results.len());
        let end = (self.results_page * PRODUCT_WINDOW).min(self.results.len());
        &self.results[start..end]
    }

    fn show_results(&mut self, index: &SearchIndex, keywords: String, page: usize) {
        self.results = index.search(&keywords, SEARCH_RETURN_N);
        self.keywords = Some(keywords);
        self.results_page = page;
        self.product = None;
        self.options.clear();
        self.page = Page::Results;
    }

    fn go_home(&mut self) {
        self.page = Page::Search;
        self.keywords = None;
        self.results.clear();
        self.results_page = 1;
        self.product = None;
        self.visited.clear();
        self.options.clear();
    }

    /// Applies one action (WebShop's `step` + `SimServer.receive`). Invalid actions are no-ops.
    pub fn apply(
        &mut self,
        action: &Action,
        catalogue: &Catalogue,
        index: &SearchIndex,
    ) -> Transition {
        if self.page == Page::Done {
            return Transition::NoOp;
        }
        match action {
            Action::Search(query) if !query.is_empty() => {
                // SimBrowser splits on ' ' and the engine joins the words back with ' '.
                self.show_results(index, query.clone(), 1);
                Transition::Moved
            }
            Action::Click(name) if name != "search" => {
                let clickables = self.clickables(catalogue);
                let Some(target) = clickables.get(name) else {
                    return Transition::NoOp;
                };
                self.click(name, target.clone(), index)
            }
            _ => Transition::NoOp,
        }
    }

    fn click(&mut self, name: &str, target: Clickable, index: &SearchIndex) -> Transition {
        let current = self.page;
        if name == END_BUTTON.to_lowercase() {
            if self.product.is_none() {
                return Transition::NoOp;
            }
            self.page = Page::Done;
            return Transition::Bought;
        }
        if name == BACK_TO_SEARCH.to_lowercase() {
            self.go_home();
            return Transition::Moved;
        }
        let keywords = self.keywords.clone().unwrap_or_default();
        if name == NEXT_PAGE.to_lowercase() && current == Page::Results {
            self.show_results(index, keywords, self.results_page + 1);
            return Transition::Moved;
        }
        if name == PREV_PAGE.to_lowercase() {
            match current {
                Page::Results => {
                    self.show_results(index, keywords, self.results_page.saturating_sub(1))
                }
                Page::Sub(_) => self.page = Page::Item,
                Page::Item => self.show_results(index, keywords, self.results_page),
                _ => return Transition::NoOp,
            }
            return Transition::Moved;
        }
        if let Some(sub) = SubPage::ALL
            .into_iter()
            .find(|s| s.label().to_lowercase() == name)
        {
            if self.product.is_none() {
                return Transition::NoOp;
            }
            self.page = Page::Sub(sub);
            return Transition::Moved;
        }
        match target {
            Clickable::Product(p) => {
                self.product = Some(p);
                if !self.visited.contains(&p) {
                    self.visited.push(p);
                }
            }
            Clickable::OptionValue { name, value } => {
                self.options.insert(name, value);
            }
            Clickable::Button(_) => {}
        }
        if self.product.is_none() {
            return Transition::NoOp;
        }
        self.page = Page::Item;
        Transition::Moved
    }

    /// The visible texts of the page, in document order (empty texts dropped).
    pub fn texts(&self, catalogue: &Catalogue, done_reward: Option<f64>) -> Vec<String> {
        let mut t: Vec<String> = Vec::new();
        let instruction = |t: &mut Vec<String>| {
            t.push("Instruction:".to_string());
            t.push(self.instruction.clone());
        };
        match self.page {
            Page::Search => {
                t.push("WebShop".to_string());
                instruction(&mut t);
                t.push(SEARCH_BUTTON.to_string());
            }
            Page::Results => {
                instruction(&mut t);
                t.push(BACK_TO_SEARCH.to_string());
                t.push(format!(
                    "Page {} (Total results: {})",
                    self.results_page,
                    self.results.len()
                ));
                if self.results_page > 1 {
                    t.push(PREV_PAGE.to_string());
                }
                t.push(NEXT_PAGE.to_string());
                for &p in self.page_products() {
                    let product = &catalogue.products[p];
                    t.push(product.asin.clone());
                    t.push(product.title.clone());
                    t.push(product.price_tag.clone());
                }
            }
            Page::Item => {
                instruction(&mut t);
                t.push(BACK_TO_SEARCH.to_string());
                t.push(PREV_PAGE.to_string());
                if let Some(p) = self.product {
                    let product = &catalogue.products[p];
                    for (name, values) in &product.options {
                        t.push(name.clone());
                        t.extend(values.iter().cloned());
                    }
                    t.push(product.title.clone());
                    t.push(format!("Price: {}", product.price_tag));
                    t.push(format!("Rating: {}", product.rating));
                }
                for sub in SubPage::ALL {
                    if sub != SubPage::Attributes || self.show_attributes {
                        t.push(sub.label().to_string());
                    }
                }
                t.push(END_BUTTON.to_string());
            }
            Page::Sub(sub) => {
                instruction(&mut t);
                t.push(BACK_TO_SEARCH.to_string());
                t.push(PREV_PAGE.to_string());
                if let Some(p) = self.product {
                    let product = &catalogue.products[p];
                    match sub {
                        SubPage::Description => t.push(product.description.clone()),
                        SubPage::Features => t.extend(product.bullet_points.iter().cloned()),
                        SubPage::Reviews => {
                            for r in &product.reviews {
                                t.push(format!("\"{}\"", r.title));
                                t.push(r.score.to_string());
                                t.push(r.body.clone());
                            }
                        }
                        SubPage::Attributes => {
                            t.extend(product.attributes.iter().cloned());
                            t.push(product.category.clone());
                            t.push(product.query.clone());
                            t.push(product.product_category.clone());
                        }
                    }
                }
            }
            Page::Done => {
                t.push("Thank you for shopping with us!".to_string());
                t.push("Your score (min 0.0, max 1.0)".to_string());
                t.push(
                    done_reward
                        .map(super::catalogue::python_float)
                        .unwrap_or_default(),
                );
            }
        }
        t.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The page for the compact prompt: one line per group of actions, each action written out
    /// exactly as it is typed (`click[...]`), with short labels; product titles are lower-cased
    /// (as actions and catalogue tokens are) and cut to `COMPACT_TITLE_CHARS` characters, and
    /// sub-page text to `COMPACT_TEXT_CHARS`.
    pub fn compact_lines(&self, catalogue: &Catalogue) -> Vec<String> {
        let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>().trim_end().to_string();
        let click = |label: &str| format!("click[{}]", label.to_lowercase());
        let mut lines = Vec::new();
        match self.page {
            Page::Search => lines.push("search[<query>]".to_string()),
            Page::Results => {
                lines.push(format!(
                    "results page {} of {}",
                    self.results_page,
                    self.results.len().div_ceil(PRODUCT_WINDOW)
                ));
                for &p in self.page_products() {
                    let product = &catalogue.products[p];
                    lines.push(format!(
                        "{} {} {}",
                        click(&product.asin),
                        clip(&product.title.to_lowercase(), COMPACT_TITLE_CHARS),
                        product.price_tag
                    ));
                }
                let mut nav = vec![click(NEXT_PAGE)];
                if self.results_page > 1 {
                    nav.push(click(PREV_PAGE));
                }
                nav.push(click(BACK_TO_SEARCH));
                lines.push(nav.join(" "));
            }
            Page::Item => {
                if let Some(p) = self.product {
                    let product = &catalogue.products[p];
                    lines.push(format!(
                        "{} {}",
                        clip(&product.title.to_lowercase(), COMPACT_TITLE_CHARS),
                        product.price_tag
                    ));
                    for (name, values) in &product.options {
                        let chosen = self
                            .options
                            .get(name)
                            .map(|v| format!(" (chosen: {v})"))
                            .unwrap_or_default();
                        let values: Vec<String> = values.iter().map(|v| click(v)).collect();
                        lines.push(format!("{name}{chosen}: {}", values.join(" ")));
                    }
                }
                lines.push(
                    [
                        END_BUTTON,
                        "Description",
                        "Features",
                        "Reviews",
                        PREV_PAGE,
                        BACK_TO_SEARCH,
                    ]
                    .map(click)
                    .join(" "),
                );
            }
            Page::Sub(_) => {
                let body = self
                    .texts(catalogue, None)
                    .into_iter()
                    .skip(4)
                    .collect::<Vec<_>>()
                    .join("; ");
                lines.push(clip(&body, COMPACT_TEXT_CHARS));
                lines.push([PREV_PAGE, BACK_TO_SEARCH].map(click).join(" "));
            }
            Page::Done => lines.push("done".to_string()),
        }
        lines
    }

    /// WebShop's simple text observation.
    pub fn observation(&self, catalogue: &Catalogue, done_reward: Option<f64>) -> String {
        self.texts(catalogue, done_reward).join(SEP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_action_matches_python_regex() {
        let p = |s: &str| parse_action(s);
        assert_eq!(p("click[b0123]"), Some(("click".into(), "b0123".into())));
        assert_eq!(
            p("search[red shoes]"),
            Some(("search".into(), "red shoes".into()))
        );
        // Greedy name: the last '[' that still has a ']' after it.
        assert_eq!(
            p("search[a [b] c]"),
            Some(("search[a ".into(), "b] c".into()))
        );
        assert_eq!(p("click[< prev]"), Some(("click".into(), "< prev".into())));
        assert_eq!(p("click[]"), None);
        assert_eq!(p("[x]"), None);
        assert_eq!(p("click[x] trailing"), Some(("click".into(), "x".into())));
        assert_eq!(p("click[a\nb]"), None);
        assert_eq!(
            read_action("click[Buy Now]"),
            Action::Click("buy now".into())
        );
        assert_eq!(read_action("jump"), Action::Other("jump".into()));
    }
}
