//! WebShop's synthetic instruction goals (`goal.get_synthetic_goals`): one goal per option
//! combination of every product that has an instruction, with the price upper-bound rule, the
//! attribute-rarity weight, a fixed shuffle, and verl-agent's split (the first `test_goals` goals
//! are the test set).

use super::catalogue::{Catalogue, Product};
use indexmap::IndexMap;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The goal's options. Synthetic goals hold a dict (compared as `(name, value)` pairs, WebShop's
/// quirk); human goals hold a list of plain values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GoalOptions {
    Pairs(IndexMap<String, String>),
    List(Vec<String>),
}

impl GoalOptions {
    pub fn len(&self) -> usize {
        match self {
            GoalOptions::Pairs(map) => map.len(),
            GoalOptions::List(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A shopping goal: the target product, instruction text and what the reward checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub asin: String,
    pub category: String,
    pub query: String,
    /// The target's title (WebShop's dict literal overwrites `name` with `Title`).
    pub name: String,
    pub product_category: String,
    pub instruction_text: String,
    pub attributes: Vec<String>,
    pub goal_options: GoalOptions,
    pub price_upper: f64,
    /// Mean inverse frequency of the goal's attributes (WebShop's sampling weight).
    pub weight: f64,
}

/// WebShop's candidate upper bounds: 10, 20, ..., 990 dollars.
pub fn price_range() -> Vec<f64> {
    (1..100).map(|i| 10.0 * f64::from(i)).collect()
}

/// No price bound (WebShop's 1000000 when fewer than two candidates exceed the price).
pub const NO_PRICE_BOUND: f64 = 1_000_000.0;

/// WebShop's rule: among the first four multiples of 10 above `price`, draw two distinct ones and
/// keep the larger; `None` (no bound, no price text) when fewer than two exist.
pub fn draw_price_upper(price: f64, rng: &mut impl Rng) -> Option<f64> {
    let candidates: Vec<f64> = price_range()
        .into_iter()
        .filter(|p| *p > price)
        .take(4)
        .collect();
    if candidates.len() < 2 {
        return None;
    }
    let picked: Vec<f64> = candidates.choose_multiple(rng, 2).copied().collect();
    Some(picked[0].max(picked[1]))
}

/// The price a product sells at: its single price, 100 when unknown, or a uniform draw within
/// its `[low, high]` range (WebShop's `generate_product_prices`).
pub fn draw_product_price(product: &Product, rng: &mut impl Rng) -> f64 {
    match product.pricing.as_slice() {
        [] => 100.0,
        [one] => *one,
        [low, high, ..] => {
            let (a, b) = (low.min(*high), low.max(*high));
            if a == b {
                a
            } else {
                rng.random_range(a..b)
            }
        }
    }
}

/// A stream of randomness for one product, stable across runs (seeded by the ASIN).
fn product_rng(seed: u64, asin: &str, stream: u64) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in asin.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ h);
    rng.set_stream(stream);
    rng
}

/// Sale prices of every product, keyed by ASIN.
pub fn product_prices(catalogue: &Catalogue, seed: u64) -> IndexMap<String, f64> {
    catalogue
        .products
        .iter()
        .map(|p| {
            (
                p.asin.clone(),
                draw_product_price(p, &mut product_rng(seed, &p.asin, 1)),
            )
        })
        .collect()
}

/// The seed of WebShop's goal shuffle (`random.seed(233)`).
pub const GOAL_SHUFFLE_SEED: u64 = 233;

/// Builds the shuffled synthetic goals of a catalogue.
pub fn synthetic_goals(
    catalogue: &Catalogue,
    prices: &IndexMap<String, f64>,
    seed: u64,
) -> Vec<Goal> {
    let mut goals = Vec::new();
    let mut attribute_counts: std::collections::HashMap<String, usize> =
        std::collections::HashMap::new();
    for product in &catalogue.products {
        let (Some(instruction), Some(attributes)) =
            (&product.instruction_text, &product.instruction_attributes)
        else {
            continue;
        };
        if attributes.is_empty() {
            continue;
        }
        let price = prices.get(&product.asin).copied().unwrap_or(100.0);
        let (price_upper, price_text) =
            match draw_price_upper(price, &mut product_rng(seed, &product.asin, 2)) {
                Some(upper) => (upper, format!(", and price lower than {upper:.2} dollars")),
                None => (NO_PRICE_BOUND, String::new()),
            };
        let mut names: Vec<&String> = product.options.keys().collect();
        names.sort();
        for combination in option_combinations(product, &names) {
            let option_text = combination
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", and ");
            let option_text = if option_text.is_empty() {
                String::new()
            } else {
                format!(" with {option_text}")
            };
            goals.push(Goal {
                asin: product.asin.clone(),
                category: product.category.clone(),
                query: product.query.clone(),
                name: product.title.clone(),
                product_category: product.product_category.clone(),
                instruction_text: format!("{instruction}{option_text}{price_text}"),
                attributes: attributes.clone(),
                goal_options: GoalOptions::Pairs(combination),
                price_upper,
                weight: 0.0,
            });
            for a in attributes {
                *attribute_counts.entry(a.clone()).or_default() += 1;
            }
        }
    }
    for goal in &mut goals {
        let sum: f64 = goal
            .attributes
            .iter()
            .map(|a| 1.0 / attribute_counts[a] as f64)
            .sum();
        goal.weight = sum / goal.attributes.len() as f64;
    }
    goals.shuffle(&mut ChaCha8Rng::seed_from_u64(GOAL_SHUFFLE_SEED ^ seed));
    goals
}

/// `itertools.product` over the option values in sorted option-name order.
fn option_combinations(product: &Product, names: &[&String]) -> Vec<IndexMap<String, String>> {
    let mut combos = vec![IndexMap::new()];
    for name in names {
        let values = &product.options[*name];
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for combo in &combos {
            for value in values {
                let mut extended = combo.clone();
                extended.insert((*name).clone(), value.clone());
                next.push(extended);
            }
        }
        combos = next;
    }
    combos
}

/// Goal indices of a split: verl-agent tests on `0..test_goals` and trains on the rest.
pub fn split_range(total: usize, test_goals: usize, eval: bool) -> std::ops::Range<usize> {
    let cut = test_goals.min(total);
    if eval {
        0..cut
    } else {
        cut..total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_upper_is_one_of_the_larger_first_four() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let upper = draw_price_upper(23.5, &mut rng).unwrap();
            // Candidates 30, 40, 50, 60; the max of two distinct draws is 40, 50 or 60.
            assert!([40.0, 50.0, 60.0].contains(&upper), "{upper}");
        }
        assert_eq!(draw_price_upper(985.0, &mut rng), None);
        // Exactly two candidates: always the larger.
        assert_eq!(draw_price_upper(975.0, &mut rng), Some(990.0));
    }

    #[test]
    fn split_follows_verl_agent() {
        assert_eq!(split_range(501, 500, true), 0..500);
        assert_eq!(split_range(501, 500, false), 500..501);
        assert_eq!(split_range(10, 500, false), 10..10);
    }
}
