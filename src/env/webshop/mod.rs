//! WebShop (princeton-nlp/WebShop as wrapped by verl-agent): an agent reads a shopping
//! instruction, searches a catalogue, opens products, picks options and buys; WebShop's reward
//! grades the purchase.
//!
//! `catalogue` loads WebShop's files, `generate` builds the offline catalogue, `search` is the
//! BM25 index, `pages` the page state machine, `goals` the synthetic goals, `reward` WebShop's
//! `get_reward` (with `fuzz` and `nouns`), `prompt` verl-agent's templates and action parsing.

pub mod catalogue;
pub mod fuzz;
pub mod generate;
pub mod goals;
pub mod nouns;
pub mod pages;
pub mod prompt;
pub mod reward;
pub mod search;

use crate::env::{
    EnvError, Environment, EpisodeOutcome, Observation, Split, StepResult, Task, Vocabulary,
};
use crate::graph::{PromptStyle, WebshopOutcome, WebshopSpec};
use catalogue::{Catalogue, CatalogueError};
use goals::Goal;
use pages::{Page, Session, Transition};
use prompt::Turn;
use reward::RewardInfo;
use search::SearchIndex;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// The seed of the embedded generated catalogue (and of prices and price bounds).
pub const DEFAULT_CATALOGUE_SEED: u64 = 2025;

/// verl-agent's invalid-action penalty, counted in the step reward.
pub const INVALID_ACTION_PENALTY: f64 = 0.1;

/// What setting up WebShop failed on.
#[derive(Debug, thiserror::Error)]
pub enum WebshopError {
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    #[error(transparent)]
    Search(#[from] search::SearchError),
    #[error("the catalogue yields no goals: no product has an instruction with attributes (is the attribute file given?)")]
    NoGoals,
    #[error("the {split} split is empty: {total} goals with test_goals = {test_goals}")]
    EmptySplit {
        split: &'static str,
        total: usize,
        test_goals: usize,
    },
}

impl From<WebshopError> for EnvError {
    fn from(e: WebshopError) -> EnvError {
        EnvError::Failed {
            env: "webshop".to_string(),
            message: e.to_string(),
        }
    }
}

/// Everything shared by all WebShop instances on one catalogue: products, index, prices, goals.
#[derive(Debug)]
pub struct WebshopWorld {
    pub catalogue: Catalogue,
    pub index: SearchIndex,
    /// Sale price per ASIN.
    pub prices: indexmap::IndexMap<String, f64>,
    /// Shuffled goals; the first `test_goals` are the test split.
    pub goals: Vec<Goal>,
    /// The catalogue's terms ([`catalogue_words`]): what a compact search may type.
    pub terms: Vec<String>,
    positions: HashMap<String, usize>,
}

impl WebshopWorld {
    /// Builds prices, goals and the (disk-cached) search index of a catalogue.
    pub fn new(
        catalogue: Catalogue,
        seed: u64,
        cache_root: Option<&Path>,
    ) -> Result<WebshopWorld, WebshopError> {
        let index = SearchIndex::cached(&catalogue, cache_root)?;
        let prices = goals::product_prices(&catalogue, seed);
        let goals = goals::synthetic_goals(&catalogue, &prices, seed);
        let positions = catalogue
            .products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.asin.clone(), i))
            .collect();
        let terms = catalogue_words(&catalogue);
        Ok(WebshopWorld {
            catalogue,
            index,
            prices,
            goals,
            terms,
            positions,
        })
    }

    /// The world a spec describes, built once per process and shared.
    pub fn for_spec(spec: &WebshopSpec) -> Result<Arc<WebshopWorld>, WebshopError> {
        static WORLDS: OnceLock<Mutex<HashMap<String, Arc<WebshopWorld>>>> = OnceLock::new();
        let key = format!(
            "{:?}|{:?}|{}",
            spec.products, spec.attributes, spec.catalogue_size
        );
        let worlds = WORLDS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut worlds = worlds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(world) = worlds.get(&key) {
            return Ok(world.clone());
        }
        let catalogue = match &spec.products {
            Some(path) => {
                Catalogue::load(Path::new(path), spec.attributes.as_deref().map(Path::new))?
            }
            None => generate::generate(spec.catalogue_size, DEFAULT_CATALOGUE_SEED)?,
        };
        let world = Arc::new(WebshopWorld::new(
            catalogue,
            DEFAULT_CATALOGUE_SEED,
            search::default_cache_root().as_deref(),
        )?);
        if world.goals.is_empty() {
            return Err(WebshopError::NoGoals);
        }
        worlds.insert(key, world.clone());
        Ok(world)
    }

    pub fn position(&self, asin: &str) -> Option<usize> {
        self.positions.get(asin).copied()
    }

    /// Goal indices of a split.
    pub fn split(&self, split: Split, test_goals: usize) -> std::ops::Range<usize> {
        goals::split_range(self.goals.len(), test_goals, split == Split::Eval)
    }
}

/// One WebShop episode runner.
pub struct WebshopEnv {
    world: Arc<WebshopWorld>,
    spec: WebshopSpec,
    goal: usize,
    session: Session,
    turns: Vec<Turn>,
    steps: usize,
    done: bool,
    reward: Option<RewardInfo>,
    env_return: f64,
}

impl WebshopEnv {
    /// An environment on the spec's catalogue (shared with every other instance of that spec).
    pub fn new(spec: &WebshopSpec) -> Result<WebshopEnv, WebshopError> {
        Ok(WebshopEnv::with_world(WebshopWorld::for_spec(spec)?, spec))
    }

    pub fn with_world(world: Arc<WebshopWorld>, spec: &WebshopSpec) -> WebshopEnv {
        let instruction = world
            .goals
            .first()
            .map(|g| g.instruction_text.clone())
            .unwrap_or_default();
        WebshopEnv {
            world,
            spec: spec.clone(),
            goal: 0,
            session: Session::new(&instruction, false),
            turns: Vec::new(),
            steps: 0,
            done: false,
            reward: None,
            env_return: 0.0,
        }
    }

    pub fn world(&self) -> &Arc<WebshopWorld> {
        &self.world
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The index of the current goal in the world's goal list.
    pub fn goal_index(&self) -> usize {
        self.goal
    }

    /// The current goal.
    pub fn goal(&self) -> &Goal {
        &self.world.goals[self.goal]
    }

    /// The reward of the purchase, once made.
    pub fn reward_info(&self) -> Option<&RewardInfo> {
        self.reward.as_ref()
    }

    /// Starts an episode on goal `index` of the full goal list.
    pub fn reset_to_goal(&mut self, index: usize) -> Observation {
        self.goal = index.min(self.world.goals.len().saturating_sub(1));
        self.session = Session::new(&self.world.goals[self.goal].instruction_text, false);
        self.turns.clear();
        self.steps = 0;
        self.done = false;
        self.reward = None;
        self.env_return = 0.0;
        self.observation()
    }

    /// The raw WebShop observation text.
    pub fn observation_text(&self) -> String {
        self.session
            .observation(&self.world.catalogue, self.reward.as_ref().map(|r| r.total))
    }

    /// verl-agent's reformatted observation (the parts after the instruction, quoted).
    pub fn formatted_observation(&self) -> String {
        prompt::format_observation(&self.observation_text(), &self.goal().instruction_text)
    }

    pub fn admissible_actions(&self) -> Vec<String> {
        self.session.admissible_actions(&self.world.catalogue)
    }

    /// Applies an already-parsed action string (`search[...]`/`click[...]`), as WebShop's
    /// `env.step(action)` does; returns the step reward before any invalid-format penalty.
    pub fn apply_action(&mut self, action: &str) -> (Transition, f64) {
        if self.done {
            return (Transition::NoOp, 0.0);
        }
        let parsed = pages::read_action(action);
        let transition = self
            .session
            .apply(&parsed, &self.world.catalogue, &self.world.index);
        let mut reward = 0.0;
        if transition == Transition::Bought {
            let product_index = self.session.product.expect("bought on an item page");
            let product = &self.world.catalogue.products[product_index];
            let price = self
                .world
                .prices
                .get(&product.asin)
                .copied()
                .unwrap_or(100.0);
            let info = reward::get_reward(product, self.goal(), price, &self.session.options);
            reward = match self.spec.outcome {
                WebshopOutcome::Score => info.total,
                WebshopOutcome::Binary10 => {
                    if info.total == 1.0 {
                        10.0
                    } else {
                        0.0
                    }
                }
            };
            self.reward = Some(info);
            self.done = true;
        }
        (transition, reward)
    }

    fn project(&self, text: &str) -> (String, bool) {
        match self.spec.prompt {
            PromptStyle::Verl => prompt::verl_projection(text),
            PromptStyle::Compact => prompt::compact_projection(text, &self.admissible_actions()),
        }
    }
}

impl Environment for WebshopEnv {
    fn reset(&mut self, task: Task) -> Result<Observation, EnvError> {
        let range = self.world.split(task.split, self.spec.test_goals);
        if range.is_empty() {
            return Err(WebshopError::EmptySplit {
                split: if task.split == Split::Eval {
                    "eval"
                } else {
                    "train"
                },
                total: self.world.goals.len(),
                test_goals: self.spec.test_goals,
            }
            .into());
        }
        let offset = (task.index % range.len() as u64) as usize;
        Ok(self.reset_to_goal(range.start + offset))
    }

    fn step(&mut self, action_text: &str) -> Result<StepResult, EnvError> {
        let before = self.formatted_observation();
        let (action, mut valid) = self.project(action_text);
        let admissible = self.admissible_actions();
        let (transition, mut reward) = self.apply_action(&action);
        // Under the compact prompt a search that finds nothing counts as invalid too, so that
        // a small model learns that a query is a term of the catalogue.
        if self.spec.prompt == PromptStyle::Compact
            && action.starts_with("search[")
            && self.session.page == Page::Results
            && self.session.results.is_empty()
        {
            valid = false;
        }
        if !valid {
            reward -= INVALID_ACTION_PENALTY;
        }
        self.env_return += reward;
        self.turns.push(Turn {
            observation: before,
            action: action.clone(),
        });
        self.steps += 1;
        if self.steps >= self.spec.max_turns {
            self.done = true;
        }
        let won = self.reward.as_ref().is_some_and(|r| r.total == 1.0);
        let info = serde_json::json!({
            "action": action,
            "transition": format!("{transition:?}"),
            "admissible_before": admissible,
            "available_actions": self.admissible_actions(),
            "page": format!("{:?}", self.session.page),
            "task_score": self.reward.as_ref().map_or(0.0, |r| r.total),
            "reward_info": self.reward,
            "goal_asin": self.goal().asin,
        });
        Ok(StepResult {
            observation: self.observation(),
            reward,
            done: self.done,
            valid,
            won,
            info,
        })
    }

    fn prompt(&self) -> String {
        let task = &self.goal().instruction_text;
        match self.spec.prompt {
            PromptStyle::Verl => {
                let observation = self.formatted_observation();
                let actions = self.admissible_actions();
                prompt::verl_prompt(task, &observation, &actions, &self.turns, self.spec.history)
            }
            PromptStyle::Compact => {
                let lines = self.session.compact_lines(&self.world.catalogue);
                prompt::compact_prompt(task, &lines, &self.turns, self.spec.history)
            }
        }
    }

    /// Under the compact prompt: on a page with a search bar, the catalogue terms the goal
    /// names (a compact answer there is the query); elsewhere the labels of the page's clicks.
    fn action_choices(&self) -> Option<Vec<String>> {
        if self.spec.prompt != PromptStyle::Compact {
            return None;
        }
        if self.session.has_search_bar() {
            let goal = self.goal().instruction_text.to_lowercase();
            return Some(
                self.world
                    .terms
                    .iter()
                    .filter(|t| names_word(&goal, t))
                    .cloned()
                    .collect(),
            );
        }
        Some(
            self.session
                .clickables(&self.world.catalogue)
                .into_keys()
                .collect(),
        )
    }

    fn outcome(&self) -> EpisodeOutcome {
        let score = self.reward.as_ref().map_or(0.0, |r| r.total);
        EpisodeOutcome {
            won: score == 1.0,
            score,
            env_return: self.env_return,
        }
    }

    fn state_key(&self) -> String {
        let mut key = self.formatted_observation();
        if matches!(self.session.page, Page::Item | Page::Sub(_))
            && !self.session.options.is_empty()
        {
            let options: Vec<String> = self
                .session
                .options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            key.push_str(&format!(" [OPTIONS] {}", options.join(";")));
        }
        key
    }

    fn observation(&self) -> Observation {
        Observation {
            text: self.observation_text(),
            image: None,
        }
    }
}

/// Whether `text` contains `words` as whole words (not inside a longer word).
fn names_word(text: &str, words: &str) -> bool {
    let is_word_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    text.match_indices(words).any(|(at, _)| {
        !is_word_char(text[..at].chars().next_back())
            && !is_word_char(text[at + words.len()..].chars().next())
    })
}

/// Button and page words a policy types often; matched as whole tokens before single characters.
const VOCABULARY_WORDS: &[&str] = &[
    "search[",
    "click[",
    "buy now",
    "next >",
    "< prev",
    "back to search",
    "description",
    "features",
    "reviews",
];

/// The fixed phrases of compact prompts: the goal's template (WebShop's synthetic instruction)
/// and the page lines' labels.
const COMPACT_TEMPLATE_WORDS: &[&str] = &[
    "Goal: Find me ",
    " with ",
    ", and price lower than ",
    " dollars",
    "results page ",
    " (chosen: ",
];

/// At most this many catalogue words (see [`catalogue_words`]) join the vocabulary; a larger
/// catalogue is typed character by character beyond them.
pub const MAX_CATALOGUE_WORDS: usize = 4096;

/// The catalogue's own terms as whole words, in catalogue order, deduplicated, at most
/// [`MAX_CATALOGUE_WORDS`]: each product's lower-cased ASIN and option values (the labels of its
/// `click[...]` actions), its type query (`men's running shoes`, what a search types) and its
/// attributes (`non slip`, what instructions ask for). One token per term lets a small model
/// copy a term from the instruction into an action in one step instead of letter by letter.
pub fn catalogue_words(catalogue: &Catalogue) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut words = Vec::new();
    for p in &catalogue.products {
        let terms = std::iter::once(p.asin.to_lowercase())
            .chain(p.options.values().flatten().map(|v| v.to_lowercase()))
            .chain(std::iter::once(p.query.to_lowercase()))
            .chain(p.attributes.iter().map(|a| a.to_lowercase()));
        for term in terms {
            // One-character terms are characters already.
            if term.chars().count() < 2 || !seen.insert(term.clone()) {
                continue;
            }
            if words.len() == MAX_CATALOGUE_WORDS {
                return words;
            }
            words.push(term);
        }
    }
    words
}

/// The characters and whole-word tokens of a spec's prompts and actions: the templates, every
/// text of the catalogue and its goals (as shown and lower-cased, as typed in actions), page
/// labels, and lower-case ASCII for free-form queries; the words are the page's buttons and
/// tags, then [`catalogue_words`].
pub fn vocabulary(spec: &WebshopSpec) -> Result<Vocabulary, WebshopError> {
    let world = WebshopWorld::for_spec(spec)?;
    let mut words: Vec<String> = VOCABULARY_WORDS.iter().map(|w| w.to_string()).collect();
    let mut pieces: Vec<String> = vec![
        VOCABULARY_WORDS.concat(),
        "WebShop Instruction: Search Back to Search Page (Total results: ) < Prev Next > Price: Rating: \
         Description Features Reviews Attributes Buy Now Thank you for shopping with us! Your score (min 0.0, max 1.0) \
         [SEP] ' \" [] <your query> <action></action> 0123456789 .,;:!?-_/|&%$#@+*=()\n"
            .to_string(),
        "abcdefghijklmnopqrstuvwxyz".to_string(),
    ];
    match spec.prompt {
        PromptStyle::Verl => {
            words.extend(["<action>", "<think>", "</think>", "</action>"].map(String::from));
            pieces.push(prompt::WEBSHOP_TEMPLATE_NO_HIS.to_string());
            pieces.push(prompt::WEBSHOP_TEMPLATE.to_string());
            pieces.push("[Observation : '', Action : '']".to_string());
        }
        PromptStyle::Compact => {
            words.push("</action>".to_string());
            // The fixed parts of the goal and page lines, which a model reads but never types.
            words.extend(COMPACT_TEMPLATE_WORDS.iter().map(|w| w.to_string()));
            pieces.push(
                "Goal: > <action> search[<query>] results page of (chosen: ) done".to_string(),
            );
        }
    }
    for p in &world.catalogue.products {
        let mut texts = vec![
            p.asin.clone(),
            p.title.clone(),
            p.description.clone(),
            p.price_tag.clone(),
            p.rating.clone(),
        ];
        texts.extend(p.bullet_points.iter().cloned());
        texts.extend(p.options.keys().cloned());
        texts.extend(p.options.values().flatten().cloned());
        texts.extend(p.attributes.iter().cloned());
        texts.extend(
            p.reviews
                .iter()
                .flat_map(|r| [r.title.clone(), r.body.clone(), r.score.to_string()]),
        );
        texts.extend([
            p.category.clone(),
            p.query.clone(),
            p.product_category.clone(),
        ]);
        for t in texts {
            pieces.push(t.to_lowercase());
            pieces.push(t);
        }
    }
    for g in &world.goals {
        pieces.push(g.instruction_text.clone());
    }
    words.extend(world.terms.iter().cloned());
    let mut chars: Vec<char> = pieces.iter().flat_map(|p| p.chars()).collect();
    chars.sort_unstable();
    chars.dedup();
    Ok(Vocabulary {
        alphabet: chars.into_iter().collect(),
        words,
    })
}
