//! The embedded rubric judge: a deterministic stand-in for an LLM judge, for machines without
//! a chat server. It scores SOTOPIA's seven dimensions from the structured goals that ship
//! with oprl's own scenarios (`env/sotopia/data/goal_rubrics.json`), by reading the transcript
//! for phrases, agreements and prices. It is not an LLM and does not understand language; it
//! checks what each goal's rubric says counts as achieving it.
//!
//! The rules, per agent (`self`) with the other agent (`other`); phrase matching is
//! case-insensitive on whole words, apostrophes dropped (`don't` = `dont`):
//! - An *agreement turn* is a speak/non-verbal/action turn with an agreement marker (`yes`,
//!   `deal`, `sure`, `okay`, ...) and no refusal marker (`no`, `not`, `cant`, ...).
//! - **goal** (0..10) = 10 x the weighted mean of the goal's criteria, each in [0, 1]:
//!   `say`: a turn by `self`/`other`/`either` contains one of the phrases;
//!   `agree`: `self` mentions a proposal phrase and a later turn of `other` agrees;
//!   `price`: the last deal (an agreement turn, at the amount it names or else the last amount
//!   the other side named) is scored 1 at or beyond `target`, 0 at or beyond `walk_away`,
//!   linear in between (buyers want it low, sellers high). Amounts are `$N` or `N dollars`.
//! - **financial_and_material_benefits** (-5..5) = sum of each met criterion's `financial`
//!   points times its degree; a `price` criterion with a deal gives `financial x (2d - 1)`, so
//!   a bad deal is a loss; clamped.
//! - **believability** (0..10) = 10 x the share of `self`'s turns that parsed, were not
//!   `none`, did not repeat an earlier utterance word for word, and did not claim the other's
//!   name.
//! - **knowledge** (0..10) = 10 x the share of the goal's `learn` phrases `other` said; without
//!   `learn` phrases, 2.5 per question of `self` that `other` answered, at most 10.
//! - **relationship** (-5..5) = courteous turns (`please`, `thank`, `sorry`, ...; at most 3)
//!   plus 2 if the conversation reached an agreement, minus 2 per rude turn, minus 1 for leaving
//!   before turn 4; clamped.
//! - **secret** (-10..0) = -5 per distinct phrase of `self`'s secret it said, at least -10.
//! - **social_rules** (-10..0) = -3 per turn of `self` with a rude phrase or one the goal
//!   forbids, at least -10.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::episode::{ActionType, Episode, Turn};
use super::scores::{Judgement, SocialScores};

/// Who must say a `say` criterion's phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    #[serde(rename = "self")]
    Own,
    Other,
    Either,
}

/// Which side of a price the agent is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceRole {
    /// Wants the price low.
    Buy,
    /// Wants the price high.
    Sell,
}

/// One thing that counts towards a goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Criterion {
    Say {
        by: Speaker,
        any: Vec<String>,
        weight: f64,
        #[serde(default)]
        financial: f64,
        what: String,
    },
    Agree {
        proposal: Vec<String>,
        weight: f64,
        #[serde(default)]
        financial: f64,
        what: String,
    },
    Price {
        role: PriceRole,
        target: f64,
        walk_away: f64,
        weight: f64,
        #[serde(default)]
        financial: f64,
        what: String,
    },
}

impl Criterion {
    fn weight(&self) -> f64 {
        match self {
            Criterion::Say { weight, .. }
            | Criterion::Agree { weight, .. }
            | Criterion::Price { weight, .. } => *weight,
        }
    }
}

/// What achieving one agent's goal means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalRubric {
    pub criteria: Vec<Criterion>,
    /// Facts the other agent holds that this agent should find out.
    #[serde(default)]
    pub learn: Vec<String>,
    /// Phrases that break this scenario's social rules when this agent says them.
    #[serde(default)]
    pub forbidden: Vec<String>,
}

/// The two goals' rubrics of one environment profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRubric {
    pub goals: [GoalRubric; 2],
}

/// Rubrics for a scenario set: per environment pk, plus per agent pk the phrases that would
/// give the agent's secret away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RubricSet {
    pub secrets: IndexMap<String, Vec<String>>,
    pub envs: IndexMap<String, ScenarioRubric>,
}

const EMBEDDED_RUBRICS: &str = include_str!("data/goal_rubrics.json");

impl RubricSet {
    /// The rubrics of oprl's embedded scenarios.
    pub fn embedded() -> RubricSet {
        serde_json::from_str(EMBEDDED_RUBRICS)
            .expect("the embedded rubric file is valid (checked by tests)")
    }

    pub fn from_json(text: &str) -> Result<RubricSet, String> {
        let set: RubricSet = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (pk, r) in &set.envs {
            for g in &r.goals {
                let total: f64 = g.criteria.iter().map(Criterion::weight).sum();
                if g.criteria.iter().any(|c| c.weight() < 0.0) || total <= 0.0 {
                    return Err(format!("rubric `{pk}` needs positive criterion weights"));
                }
            }
        }
        Ok(set)
    }
}

/// Whole-word, case-insensitive matching without apostrophes: `" text words "`.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars() {
        if c == '\'' || c == '\u{2019}' {
            continue;
        }
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

fn has_phrase(normalised_text: &str, phrase: &str) -> bool {
    let p = normalise(phrase);
    !p.trim().is_empty() && normalised_text.contains(&p)
}

fn has_any(normalised_text: &str, phrases: &[impl AsRef<str>]) -> bool {
    phrases
        .iter()
        .any(|p| has_phrase(normalised_text, p.as_ref()))
}

const AGREEMENT: [&str; 16] = [
    "yes",
    "yeah",
    "deal",
    "agreed",
    "agree",
    "sure",
    "okay",
    "ok",
    "sounds good",
    "accept",
    "fine",
    "alright",
    "of course",
    "happy to",
    "works for me",
    "lets do it",
];
const REFUSAL: [&str; 13] = [
    "no", "not", "never", "cant", "cannot", "wont", "refuse", "decline", "nope", "dont",
    "too much", "too low", "too high",
];
const COURTESY: [&str; 8] = [
    "please",
    "thank",
    "thanks",
    "sorry",
    "appreciate",
    "glad",
    "kind",
    "grateful",
];
const RUDE: [&str; 10] = [
    "idiot",
    "stupid",
    "shut up",
    "hate you",
    "dumb",
    "loser",
    "moron",
    "or else",
    "get lost",
    "i will hurt",
];

/// The text a turn contributes (nothing for `none`/`leave`).
fn said(turn: &Turn) -> Option<String> {
    turn.action
        .action_type
        .takes_argument()
        .then(|| normalise(&turn.action.argument))
}

fn is_agreement(turn: &Turn) -> bool {
    said(turn).is_some_and(|t| has_any(&t, &AGREEMENT) && !has_any(&t, &REFUSAL))
}

/// Dollar amounts in a text: `$120`, `$1,200.50`, `120 dollars`/`bucks`.
pub fn dollar_amounts(text: &str) -> Vec<f64> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || (chars[i] == ',' || chars[i] == '.')
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()))
        {
            if chars[i] != ',' {
                digits.push(chars[i]);
            }
            i += 1;
        }
        let dollar_before = start > 0 && chars[start - 1] == '$';
        let after: String = chars[i..]
            .iter()
            .collect::<String>()
            .trim_start()
            .to_ascii_lowercase();
        let unit_after = ["dollar", "bucks", "usd"]
            .iter()
            .any(|u| after.starts_with(u));
        if dollar_before || unit_after {
            if let Ok(v) = digits.parse::<f64>() {
                out.push(v);
            }
        }
    }
    out
}

/// The price of the last deal in the conversation, if there was one.
fn deal_price(turns: &[Turn]) -> Option<f64> {
    let mut last_named: [Option<f64>; 2] = [None, None];
    let mut deal = None;
    for t in turns {
        if !t.action.action_type.takes_argument() {
            continue;
        }
        let here = dollar_amounts(&t.action.argument).last().copied();
        if is_agreement(t) {
            if let Some(p) = here.or(last_named[1 - t.agent]) {
                deal = Some(p);
            }
        }
        if here.is_some() {
            last_named[t.agent] = here;
        }
    }
    deal
}

/// Degree in [0, 1] of a price for one side.
pub fn price_degree(role: PriceRole, price: f64, target: f64, walk_away: f64) -> f64 {
    let span = (walk_away - target).abs().max(f64::EPSILON);
    let d = match role {
        PriceRole::Buy => (walk_away - price) / span,
        PriceRole::Sell => (price - walk_away) / span,
    };
    d.clamp(0.0, 1.0)
}

/// The degree a criterion is met to, and its financial contribution.
fn criterion(c: &Criterion, turns: &[Turn], me: usize) -> (f64, f64) {
    let by = |who: usize, speaker: Speaker| match speaker {
        Speaker::Own => who == me,
        Speaker::Other => who != me,
        Speaker::Either => true,
    };
    match c {
        Criterion::Say {
            by: speaker,
            any,
            financial,
            ..
        } => {
            let met = turns
                .iter()
                .filter(|t| by(t.agent, *speaker))
                .filter_map(said)
                .any(|t| has_any(&t, any));
            let d = if met { 1.0 } else { 0.0 };
            (d, d * financial)
        }
        Criterion::Agree {
            proposal,
            financial,
            ..
        } => {
            let first_proposal = turns
                .iter()
                .position(|t| t.agent == me && said(t).is_some_and(|s| has_any(&s, proposal)));
            let met = first_proposal.is_some_and(|i| {
                turns[i + 1..]
                    .iter()
                    .any(|t| t.agent != me && is_agreement(t))
            });
            let d = if met { 1.0 } else { 0.0 };
            (d, d * financial)
        }
        Criterion::Price {
            role,
            target,
            walk_away,
            financial,
            ..
        } => match deal_price(turns) {
            Some(p) => {
                let d = price_degree(*role, p, *target, *walk_away);
                (d, financial * (2.0 * d - 1.0))
            }
            None => (0.0, 0.0),
        },
    }
}

/// Scores one agent (`me`) of `episode` under `goal`.
pub fn score_agent(
    episode: &Episode,
    goal: &GoalRubric,
    secret: &[String],
    me: usize,
) -> SocialScores {
    let turns = &episode.turns;
    let other_first = episode.agents[1 - me].first_name.to_lowercase();
    let mine: Vec<&Turn> = turns.iter().filter(|t| t.agent == me).collect();

    let (mut weighted, mut total, mut financial) = (0.0, 0.0, 0.0);
    for c in &goal.criteria {
        let (d, f) = criterion(c, turns, me);
        weighted += c.weight() * d;
        total += c.weight();
        financial += f;
    }
    let goal_score = if total > 0.0 {
        10.0 * weighted / total
    } else {
        0.0
    };

    let believable = mine
        .iter()
        .filter(|t| {
            let Some(text) = said(t) else {
                return t.valid && t.action.action_type == ActionType::Leave;
            };
            let repeated = turns
                .iter()
                .take(t.turn_number)
                .filter_map(said)
                .any(|earlier| earlier == text);
            let confused = has_any(
                &text,
                &[format!("i am {other_first}"), format!("im {other_first}")],
            );
            t.valid && !repeated && !confused
        })
        .count();
    let believability = if mine.is_empty() {
        0.0
    } else {
        10.0 * believable as f64 / mine.len() as f64
    };

    let knowledge = if goal.learn.is_empty() {
        let answered = turns
            .windows(2)
            .filter(|w| {
                w[0].agent == me
                    && w[0].action.action_type == ActionType::Speak
                    && w[0].action.argument.contains('?')
                    && w[1].action.action_type == ActionType::Speak
            })
            .count();
        (2.5 * answered as f64).min(10.0)
    } else {
        let heard: Vec<String> = turns
            .iter()
            .filter(|t| t.agent != me)
            .filter_map(said)
            .collect();
        let learned = goal
            .learn
            .iter()
            .filter(|p| heard.iter().any(|h| has_phrase(h, p)))
            .count();
        10.0 * learned as f64 / goal.learn.len() as f64
    };

    let my_texts: Vec<String> = mine.iter().filter_map(|t| said(t)).collect();
    let courteous = my_texts
        .iter()
        .filter(|t| has_any(t, &COURTESY))
        .count()
        .min(3);
    let rude = my_texts.iter().filter(|t| has_any(t, &RUDE)).count();
    let violations = my_texts
        .iter()
        .filter(|t| has_any(t, &RUDE) || has_any(t, &goal.forbidden))
        .count();
    let agreement = turns.iter().any(is_agreement);
    let left_early = mine
        .iter()
        .any(|t| t.action.action_type == ActionType::Leave && t.turn_number < 4);
    let relationship = (courteous as f64 + if agreement { 2.0 } else { 0.0 }
        - 2.0 * rude as f64
        - if left_early { 1.0 } else { 0.0 })
    .clamp(-5.0, 5.0);

    let leaked = secret
        .iter()
        .filter(|p| my_texts.iter().any(|t| has_phrase(t, p)))
        .count();

    SocialScores {
        believability,
        relationship,
        knowledge,
        secret: -(5.0 * leaked as f64).min(10.0),
        social_rules: -(3.0 * violations as f64).min(10.0),
        financial_and_material_benefits: financial.clamp(-5.0, 5.0),
        goal: goal_score,
    }
}

/// The embedded rubric judge (a deterministic stand-in for an LLM judge).
#[derive(Debug, Clone)]
pub struct RubricJudge {
    rubrics: RubricSet,
}

impl RubricJudge {
    pub fn new(rubrics: RubricSet) -> RubricJudge {
        RubricJudge { rubrics }
    }

    pub fn embedded() -> RubricJudge {
        RubricJudge::new(RubricSet::embedded())
    }

    /// Whether this judge can score episodes of environment `env_pk`.
    pub fn covers(&self, env_pk: &str) -> bool {
        self.rubrics.envs.contains_key(env_pk)
    }
}

/// An episode of a scenario the rubric set does not cover.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the embedded judge has no rubric for scenario `{env}`; it only judges oprl's embedded scenarios (use an endpoint judge for others)")]
pub struct NoRubric {
    pub env: String,
}

impl RubricJudge {
    /// Both agents' scores for `episode`.
    pub fn score(&self, episode: &Episode) -> Result<Judgement, NoRubric> {
        let rubric = self
            .rubrics
            .envs
            .get(&episode.env.pk)
            .ok_or_else(|| NoRubric {
                env: episode.env.pk.clone(),
            })?;
        let secret = |i: usize| {
            self.rubrics
                .secrets
                .get(&episode.agents[i].pk)
                .cloned()
                .unwrap_or_default()
        };
        Ok(Judgement {
            agents: [
                score_agent(episode, &rubric.goals[0], &secret(0), 0),
                score_agent(episode, &rubric.goals[1], &secret(1), 1),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sotopia::embedded::embedded_scenarios;
    use crate::env::sotopia::episode::parse_action;

    /// An episode of the embedded `used_road_bike` scenario with the given lines, alternating.
    fn bike_episode(lines: &[&str]) -> Episode {
        let set = embedded_scenarios();
        let index = set
            .combos
            .iter()
            .position(|c| set.envs[&c.env_id].codename == "used_road_bike")
            .unwrap();
        let mut ep = Episode::new(&set.combo(index), 0, 20);
        for (i, line) in lines.iter().enumerate() {
            ep.push(i % 2, parse_action(line)).unwrap();
        }
        ep
    }

    #[test]
    fn finds_dollar_amounts() {
        assert_eq!(
            dollar_amounts("I can do $1,200.50 or 90 dollars, not 4 years"),
            vec![1200.5, 90.0]
        );
        assert_eq!(dollar_amounts("$150? 20 bucks"), vec![150.0, 20.0]);
        assert!(dollar_amounts("meet at 5pm on day 3").is_empty());
    }

    #[test]
    fn price_degree_is_linear_between_target_and_walk_away() {
        assert_eq!(price_degree(PriceRole::Buy, 120.0, 120.0, 170.0), 1.0);
        assert_eq!(price_degree(PriceRole::Buy, 145.0, 120.0, 170.0), 0.5);
        assert_eq!(price_degree(PriceRole::Buy, 200.0, 120.0, 170.0), 0.0);
        assert_eq!(price_degree(PriceRole::Sell, 165.0, 190.0, 140.0), 0.5);
        assert_eq!(price_degree(PriceRole::Sell, 250.0, 190.0, 140.0), 1.0);
    }

    #[test]
    fn scores_a_negotiation_by_hand() {
        // Buyer (agent 0): criteria say-price (2), say "bike" (1), price buy 120..170 (7).
        // Seller (agent 1): say-price (2), describe (1), price sell 190..140 (7).
        let ep = bike_episode(&[
            "Hi, I like the bike. Would you take $130?",
            "It is in great condition, serviced last month. The price is $160.",
            "How about $145, please?",
            "Okay, deal at $145.",
            "Thank you!",
        ]);
        let j = RubricJudge::embedded().score(&ep).unwrap();
        let (buyer, seller) = (j.agents[0], j.agents[1]);
        // Deal at $145: buyer degree (170-145)/50 = 0.5, seller degree (145-140)/50 = 0.1.
        // Buyer: "take" is not a price word; "price"/"offer"/"pay"/... absent -> say-price 0;
        // "bike" said -> 1. Goal = 10 * (0*2 + 1*1 + 0.5*7) / 10 = 4.5.
        assert!((buyer.goal - 4.5).abs() < 1e-9, "{buyer:?}");
        // Seller: "price" said (2), "condition" said (1), 0.1 * 7 -> 10 * 3.7 / 10 = 3.7.
        assert!((seller.goal - 3.7).abs() < 1e-9, "{seller:?}");
        // Financial: price criterion 4 x (2d - 1): buyer 0, seller 4 x (0.2 - 1) = -3.2.
        assert!(buyer.financial_and_material_benefits.abs() < 1e-9);
        assert!((seller.financial_and_material_benefits + 3.2).abs() < 1e-9);
        // Relationship: buyer courteous turns "please", "thank" = 2, agreement +2 -> 4.
        assert_eq!(buyer.relationship, 4.0);
        assert_eq!(seller.relationship, 2.0);
        // Every turn was valid and new.
        assert_eq!((buyer.believability, seller.believability), (10.0, 10.0));
        assert_eq!((buyer.secret, buyer.social_rules), (0.0, 0.0));
        j.agents.iter().for_each(|s| s.check_ranges().unwrap());
    }

    #[test]
    fn refusals_are_not_deals_and_rudeness_costs() {
        let ep = bike_episode(&[
            "I offer $100 for the bike.",
            "No deal, that is too low, you idiot.",
            "I offer $100 for the bike.",
            "[leave]",
        ]);
        let j = RubricJudge::embedded().score(&ep).unwrap();
        // No deal: the price criterion gives nothing; buyer said "offer" and "bike".
        assert!((j.agents[0].goal - 3.0).abs() < 1e-9);
        // Buyer repeated itself once: 1 of 2 turns believable.
        assert_eq!(j.agents[0].believability, 5.0);
        // Seller: one rude turn -> social rules -3, relationship -2 and -1 for leaving at turn 3.
        assert_eq!(j.agents[1].social_rules, -3.0);
        assert_eq!(j.agents[1].relationship, -3.0);
    }

    #[test]
    fn is_deterministic_and_in_range_on_random_talk() {
        use rand::{Rng, SeedableRng};
        let words = [
            "yes", "no", "$120", "bike", "price", "please", "idiot", "ok", "deal", "?", "[leave]",
            "[none]", "*nods*",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let judge = RubricJudge::embedded();
        let set = embedded_scenarios();
        for round in 0..200 {
            let mut ep = Episode::new(&set.combo(round), round % 2, 20);
            while !ep.done() {
                let n = rng.random_range(1..5);
                let text: Vec<&str> = (0..n)
                    .map(|_| words[rng.random_range(0..words.len())])
                    .collect();
                let agent = ep.next_agent();
                ep.push(agent, parse_action(&text.join(" "))).unwrap();
            }
            let a = judge.score(&ep).unwrap();
            assert_eq!(a, judge.score(&ep).unwrap());
            for s in a.agents {
                s.check_ranges().unwrap();
            }
        }
    }

    #[test]
    fn every_embedded_scenario_has_a_valid_rubric() {
        let rubrics = RubricSet::from_json(EMBEDDED_RUBRICS).unwrap();
        let set = embedded_scenarios();
        for (pk, env) in &set.envs {
            let r = rubrics
                .envs
                .get(pk)
                .unwrap_or_else(|| panic!("no rubric for {pk}"));
            for g in &r.goals {
                for c in &g.criteria {
                    if let Criterion::Price {
                        target, walk_away, ..
                    } = c
                    {
                        assert_ne!(target, walk_away, "{}", env.codename);
                    }
                }
            }
        }
        for pk in set.agents.keys() {
            assert!(!rubrics.secrets[pk].is_empty());
        }
        let err = RubricJudge::new(rubrics)
            .score(&Episode::new(
                &crate::env::sotopia::profiles::ScenarioSet::load_dir(
                    &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sotopia"),
                )
                .unwrap()
                .combo(0),
                0,
                20,
            ))
            .unwrap_err();
        assert!(err.to_string().contains("no rubric"));
    }
}
