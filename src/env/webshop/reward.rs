//! WebShop's purchase reward (`goal.get_reward`): type, attribute, option and price parts,
//! `total = (attr_matches + option_matches + price_ok) / (n_attr + n_opt + 1) * r_type`.

use super::catalogue::Product;
use super::fuzz::{python_pair_repr, token_set_ratio};
use super::goals::{Goal, GoalOptions};
use super::nouns::title_nouns;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// WebShop's colour words, alphabetical; `normalize_color` returns the first one found.
pub const COLOR_SET: &[&str] = &[
    "alabaster",
    "apricot",
    "aqua",
    "ash",
    "asphalt",
    "azure",
    "banana",
    "beige",
    "black",
    "blue",
    "blush",
    "bordeaux",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cheetah",
    "chestnut",
    "chocolate",
    "christmas",
    "coffee",
    "cognac",
    "copper",
    "coral",
    "cranberry",
    "cream",
    "crystal",
    "dark",
    "denim",
    "eggplant",
    "elephant",
    "espresso",
    "fuchsia",
    "gold",
    "granite",
    "grape",
    "graphite",
    "grass",
    "gray",
    "green",
    "grey",
    "heather",
    "indigo",
    "ivory",
    "ivy",
    "khaki",
    "lavender",
    "lemon",
    "leopard",
    "light",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "merlot",
    "midnight",
    "mint",
    "mocha",
    "multicolor",
    "mushroom",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "rainbow",
    "red",
    "rose",
    "royal",
    "rust",
    "sand",
    "sapphire",
    "seashell",
    "silver",
    "skull",
    "slate",
    "steel",
    "stone",
    "stonewash",
    "sunflower",
    "tan",
    "taupe",
    "teal",
    "tiger",
    "turquoise",
    "violet",
    "walnut",
    "wheat",
    "white",
    "wine",
    "yellow",
];

/// The fuzzy-match threshold (`token_set_ratio > 85`).
pub const FUZZY_THRESHOLD: u32 = 85;

/// An option as `get_option_reward` sees it after `normalize_color`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionText {
    Plain(String),
    /// A synthetic goal's `(name, value)` tuple that is not a colour: thefuzz compares its repr.
    Pair(String, String),
}

impl OptionText {
    /// The string thefuzz scores.
    pub fn fuzz_text(&self) -> String {
        match self {
            OptionText::Plain(s) => s.clone(),
            OptionText::Pair(name, value) => python_pair_repr(name, value),
        }
    }
}

/// `normalize_color` on a string: the first colour word that is a (case-sensitive) substring.
pub fn normalize_color(text: &str) -> String {
    COLOR_SET
        .iter()
        .find(|c| text.contains(**c))
        .map_or_else(|| text.to_string(), |c| (*c).to_string())
}

/// `normalize_color` on a `(name, value)` tuple: `in` is tuple membership, so only a colour word
/// equal to the name or the value is found; otherwise the tuple is kept.
pub fn normalize_color_pair(name: &str, value: &str) -> OptionText {
    match COLOR_SET.iter().find(|c| **c == name || **c == value) {
        Some(c) => OptionText::Plain((*c).to_string()),
        None => OptionText::Pair(name.to_string(), value.to_string()),
    }
}

/// The normalised goal options, as `get_reward` passes them (`dict.items()` or the list).
pub fn normalized_goal_options(options: &GoalOptions) -> Vec<OptionText> {
    match options {
        GoalOptions::Pairs(map) => map
            .iter()
            .map(|(k, v)| normalize_color_pair(k, v))
            .collect(),
        GoalOptions::List(list) => list
            .iter()
            .map(|o| OptionText::Plain(normalize_color(o)))
            .collect(),
    }
}

/// The type reward's parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeReward {
    pub r_type: f64,
    pub query_match: bool,
    pub category_match: bool,
    pub title_score: f64,
}

/// Whether two `›` breadcrumbs share at least two stripped parts.
pub fn category_match(a: &str, b: &str) -> bool {
    let parts = |s: &str| {
        s.split('›')
            .map(|x| x.trim().to_string())
            .collect::<std::collections::HashSet<_>>()
    };
    parts(a).intersection(&parts(b)).count() >= 2
}

/// The type reward given the two noun lists (the part that needs a tagger is the lists).
pub fn type_reward_from_nouns(
    query_match: bool,
    category_match: bool,
    purchased_nouns: &[String],
    desired_nouns: &[String],
) -> TypeReward {
    let purchased: std::collections::HashSet<&String> = purchased_nouns.iter().collect();
    let desired: std::collections::HashSet<&String> = desired_nouns.iter().collect();
    // WebShop divides by the list length (duplicates included), not the set size.
    let title_score = if desired_nouns.is_empty() {
        0.2
    } else {
        purchased.intersection(&desired).count() as f64 / desired_nouns.len() as f64
    };
    let mut r_type = 1.0;
    if !(query_match || category_match || title_score > 0.2) {
        r_type = 0.5;
    }
    if title_score < 0.1 {
        r_type = 0.1;
    }
    if title_score == 0.0 {
        r_type = 0.0;
    }
    TypeReward {
        r_type,
        query_match,
        category_match,
        title_score,
    }
}

/// `get_type_reward` with the heuristic noun tagger.
pub fn type_reward(purchased: &Product, goal: &Goal) -> TypeReward {
    type_reward_from_nouns(
        purchased.query == goal.query,
        category_match(&purchased.product_category, &goal.product_category),
        &title_nouns(&purchased.name),
        &title_nouns(&goal.name),
    )
}

/// `get_attribute_reward`: (fraction, matches).
pub fn attribute_reward(purchased: &Product, goal_attributes: &[String]) -> (f64, usize) {
    let title = purchased.title.to_lowercase();
    let bullets = purchased.bullet_points.join(" ").to_lowercase();
    let description = purchased.description.to_lowercase();
    let matches = goal_attributes
        .iter()
        .filter(|g| {
            purchased
                .attributes
                .iter()
                .any(|p| token_set_ratio(p, g) > FUZZY_THRESHOLD)
                || title.contains(g.as_str())
                || bullets.contains(g.as_str())
                || description.contains(g.as_str())
        })
        .count();
    let fraction = if goal_attributes.is_empty() {
        0.0
    } else {
        matches as f64 / goal_attributes.len() as f64
    };
    (fraction, matches)
}

/// `get_option_reward`: (fraction or `None` without goal options, matches).
pub fn option_reward(
    purchased_values: &[String],
    goal_options: &GoalOptions,
) -> (Option<f64>, usize) {
    let purchased: Vec<String> = purchased_values
        .iter()
        .map(|o| normalize_color(o))
        .collect();
    let goals = normalized_goal_options(goal_options);
    let matches = goals
        .iter()
        .filter(|g| {
            let g = g.fuzz_text();
            purchased
                .iter()
                .any(|p| token_set_ratio(p, &g) > FUZZY_THRESHOLD)
        })
        .count();
    let fraction = if goals.is_empty() {
        None
    } else {
        Some(matches as f64 / goals.len() as f64)
    };
    (fraction, matches)
}

/// Everything `get_reward(..., verbose=True)` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardInfo {
    pub total: f64,
    pub r_type: f64,
    pub query_match: bool,
    pub category_match: bool,
    pub title_score: f64,
    pub r_att: f64,
    pub w_att: f64,
    pub num_attr_matches: usize,
    pub r_option: Option<f64>,
    pub w_option: Option<f64>,
    pub num_option_matches: usize,
    pub r_price: Option<bool>,
    pub w_price: Option<f64>,
}

/// WebShop's reward for buying `purchased` at `price` with the chosen `options` (name -> value,
/// in the order they were clicked) against `goal`.
pub fn get_reward(
    purchased: &Product,
    goal: &Goal,
    price: f64,
    options: &IndexMap<String, String>,
) -> RewardInfo {
    combine(
        type_reward(purchased, goal),
        purchased,
        goal,
        price,
        options,
    )
}

/// The reward with a given type reward (lets tests feed spaCy's noun lists).
pub fn combine(
    r_type: TypeReward,
    purchased: &Product,
    goal: &Goal,
    price: f64,
    options: &IndexMap<String, String>,
) -> RewardInfo {
    let r_price = (goal.price_upper > 0.0).then_some(price <= goal.price_upper);
    let (r_att, num_attr_matches) = attribute_reward(purchased, &goal.attributes);
    let values: Vec<String> = options.values().cloned().collect();
    let (r_option, num_option_matches) = option_reward(&values, &goal.goal_options);
    let denominator = (goal.attributes.len() + goal.goal_options.len() + 1) as f64;
    let numerator = (num_attr_matches + num_option_matches) as f64
        + f64::from(u8::from(r_price.unwrap_or(false)));
    let total = numerator / denominator * r_type.r_type;
    RewardInfo {
        total,
        r_type: r_type.r_type,
        query_match: r_type.query_match,
        category_match: r_type.category_match,
        title_score: r_type.title_score,
        r_att,
        w_att: goal.attributes.len() as f64 / denominator,
        num_attr_matches,
        r_option,
        w_option: r_option.map(|_| goal.goal_options.len() as f64 / denominator),
        num_option_matches,
        r_price,
        w_price: r_price.map(|_| 1.0 / denominator),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_normalisation() {
        assert_eq!(normalize_color("Black"), "Black"); // case-sensitive
        assert_eq!(normalize_color("light blue"), "blue"); // 'blue' precedes 'light'
        assert_eq!(normalize_color("dark chocolate brown"), "brown");
        assert_eq!(
            normalize_color_pair("color", "black"),
            OptionText::Plain("black".into())
        );
        assert_eq!(
            normalize_color_pair("color", "light blue"),
            OptionText::Pair("color".into(), "light blue".into())
        );
        assert_eq!(
            OptionText::Pair("size".into(), "10".into()).fuzz_text(),
            "('size', '10')"
        );
    }

    #[test]
    fn type_reward_rules() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t = type_reward_from_nouns(
            false,
            false,
            &n(&["a", "b"]),
            &n(&["a", "c", "d", "e", "f"]),
        );
        assert_eq!((t.title_score, t.r_type), (0.2, 0.5));
        let t = type_reward_from_nouns(
            true,
            false,
            &n(&["a"]),
            &n(&["a", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"]),
        );
        assert_eq!(t.r_type, 0.1);
        let t = type_reward_from_nouns(true, true, &n(&["z"]), &n(&["a"]));
        assert_eq!(t.r_type, 0.0);
        let t = type_reward_from_nouns(false, false, &n(&["z"]), &[]);
        assert_eq!((t.title_score, t.r_type), (0.2, 0.5));
    }
}
