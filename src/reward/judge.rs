//! Judging SOTOPIA episodes: the [`EpisodeJudge`] trait over the embedded rubric judge
//! (`env::sotopia::rubric`) and the LLM judge (the evaluation prompt, a tolerant parser for its
//! JSON, an OpenAI-compatible endpoint with bounded concurrency over a batch), and the
//! outcome/success a recipe reads from a judgement. The dimensions and scores themselves are
//! SOTOPIA's, in `env::sotopia::scores`.

use serde::{Deserialize, Serialize};

use crate::env::sotopia::episode::{strip_code_fence, Episode};
use crate::env::sotopia::rubric::{NoRubric, RubricJudge, RubricSet};
use crate::env::sotopia::scores::{Dimension, Judgement, SocialScores};
use crate::env::sotopia::{load_scenarios, RUBRICS_FILE};
use crate::graph::{JudgeBackend, JudgeOutcome, JudgeSpec, SotopiaSpec};
use crate::openai::{bounded_map, ChatClient, ChatError, ChatMessage};
use crate::text::QuoteScan;

/// What the recipe's `reward outcome = judge {...}` reads for the policy's side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JudgedOutcome {
    /// The policy agent's seven scores.
    pub scores: SocialScores,
    /// `goal` or `overall`, as the spec says.
    pub score: f64,
    /// `score > threshold`.
    pub success: bool,
}

/// The outcome of `judgement` for the agent the policy played.
pub fn judged_outcome(judgement: &Judgement, episode: &Episode, spec: &JudgeSpec) -> JudgedOutcome {
    let scores = judgement.agents[episode.policy_agent];
    let score = match spec.outcome {
        JudgeOutcome::Goal => scores.goal,
        JudgeOutcome::Overall => scores.overall(),
    };
    JudgedOutcome {
        scores,
        score,
        success: score > spec.threshold,
    }
}

/// What the judge is asked to assess (oprl's wording of SOTOPIA's rubric).
fn instruction(d: Dimension) -> &'static str {
    match d {
        Dimension::Believability => "Does the agent behave naturally and realistically (no confusion about its own identity, no pointless repetition, no excessive politeness) and consistently with its character's personality and values? Higher is more believable.",
        Dimension::Relationship => "How did the interaction change the agent's relationship with the other agent and its social standing, given the relationship before it? Positive if it improved, negative if it was harmed, zero if unchanged.",
        Dimension::Knowledge => "How much new and important information did the agent gain during the interaction? Higher means more new, important knowledge.",
        Dimension::Secret => "Which secrets or secret intentions did the agent need to keep, and did it keep them? 0 means nothing was revealed, -10 means critical secrets leaked.",
        Dimension::SocialRules => "Did the agent break moral rules or laws while interacting? 0 means no violation; more negative means more serious violations.",
        Dimension::FinancialAndMaterialBenefits => "What did the agent gain or lose in money or material goods, short-term or long-term? Positive for gains, negative for losses.",
        Dimension::Goal => "Restate the agent's social goals, then judge how far it achieved them. 0 means almost nothing achieved, 10 means every goal fully achieved.",
    }
}

/// SOTOPIA's evaluation prompt: the omniscient transcript, the instruction, and the format.
pub fn evaluation_prompt(episode: &Episode) -> String {
    let mut format = String::from(
        "Reply with one JSON object and nothing else, with two keys, \"agent_1_evaluation\" and \
\"agent_2_evaluation\", for ",
    );
    format.push_str(&format!(
        "{} (agent 1) and {} (agent 2). Each maps every dimension below to a two-element list \
[reasoning, score]: \"reasoning\" is a string explaining the judgement, \"score\" an integer in \
the dimension's range.\n",
        episode.name(0),
        episode.name(1)
    ));
    for d in Dimension::ALL {
        let (lo, hi) = d.range();
        format.push_str(&format!(
            "- \"{}\" (integer from {lo} to {hi}): {}\n",
            d.key(),
            instruction(d)
        ));
    }
    format.push_str(
        "Example shape: {\"agent_1_evaluation\": {\"believability\": [\"...\", 8], ...}, \
\"agent_2_evaluation\": {...}}\n",
    );
    format!(
        "{}\nBased on previous interactions, evaluate how well participants achieve their goals.\n\
Please follow the format:\n{format}",
        episode.judge_history()
    )
}

/// Best-effort repair of almost-JSON: smart quotes, trailing commas, Python literals outside
/// strings, and unclosed strings/brackets at the end (a reply cut off by a token limit).
pub fn repair_json(text: &str) -> String {
    let text = text.replace(['\u{201c}', '\u{201d}'], "\"");
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut stack: Vec<char> = Vec::new();
    let mut quotes = QuoteScan::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if quotes.feed(c) {
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '{' => {
                stack.push('}');
                out.push(c);
            }
            '[' => {
                stack.push(']');
                out.push(c);
            }
            '}' | ']' => {
                // Drop a trailing comma before a closer.
                let trimmed = out.trim_end().len();
                if out[..trimmed].ends_with(',') {
                    out.truncate(trimmed - 1);
                }
                if stack.last() == Some(&c) {
                    stack.pop();
                }
                out.push(c);
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 5)].iter().collect();
                let word_start = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
                let replaced = [("True", "true"), ("False", "false"), ("None", "null")]
                    .iter()
                    .find(|(py, _)| {
                        word_start
                            && rest.starts_with(py)
                            && chars
                                .get(i + py.len())
                                .is_none_or(|n| !n.is_ascii_alphanumeric())
                    });
                if let Some((py, js)) = replaced {
                    out.push_str(js);
                    i += py.len();
                    continue;
                }
                out.push(c);
            }
        }
        i += 1;
    }
    if quotes.inside() {
        out.push('"');
    }
    let trimmed = out.trim_end().len();
    if out[..trimmed].ends_with(',') {
        out.truncate(trimmed - 1);
    }
    while let Some(closer) = stack.pop() {
        out.push(closer);
    }
    out
}

/// The first JSON object in a reply: fences stripped, text around it ignored, repaired if it
/// does not parse as it is.
pub fn extract_json_object(reply: &str) -> Result<serde_json::Value, String> {
    let body = strip_code_fence(reply);
    let start = body
        .find('{')
        .ok_or_else(|| "the reply contains no JSON object".to_string())?;
    let candidate = match body.rfind('}') {
        Some(end) if end > start => &body[start..=end],
        _ => &body[start..],
    };
    if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(candidate) {
        return Ok(v);
    }
    // Cut-off replies: repair from the start of the object to the end of the text.
    for attempt in [&body[start..], candidate] {
        if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(&repair_json(attempt)) {
            return Ok(v);
        }
    }
    Err("the reply's JSON could not be parsed, even after repair".to_string())
}

/// A score as a judge may write it: `[reasoning, score]`, `{"reasoning", "score"}`, a number,
/// or a numeric string.
fn score_of(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Array(items) => items.iter().rev().find_map(|v| match v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }),
        serde_json::Value::Object(map) => map.get("score").and_then(score_of),
        _ => None,
    }
}

fn scores_of(value: &serde_json::Value, who: &str) -> Result<SocialScores, String> {
    let map = value
        .as_object()
        .ok_or_else(|| format!("{who}'s evaluation is not an object"))?;
    let mut found = [None; 7];
    for (key, v) in map {
        if let Some(d) = Dimension::from_key(key) {
            let idx = Dimension::ALL.iter().position(|&x| x == d).unwrap_or(0);
            found[idx] =
                Some(score_of(v).ok_or_else(|| format!("{who}'s `{key}` has no numeric score"))?);
        }
    }
    let mut scores = SocialScores {
        believability: 0.0,
        relationship: 0.0,
        knowledge: 0.0,
        secret: 0.0,
        social_rules: 0.0,
        financial_and_material_benefits: 0.0,
        goal: 0.0,
    };
    for (i, d) in Dimension::ALL.iter().enumerate() {
        *scores.get_mut(*d) =
            found[i].ok_or_else(|| format!("{who}'s `{}` is missing", d.key()))?;
    }
    scores.check_ranges().map_err(|e| format!("{who}: {e}"))?;
    Ok(scores)
}

/// Parses a judge reply into both agents' scores. Accepts SOTOPIA's
/// `{"agent_1_evaluation": {...}, "agent_2_evaluation": {...}}` and the newer
/// `{"evaluations": {"agent_1": {...}, "agent_2": {...}}}`; rejects missing dimensions and
/// out-of-range scores.
pub fn parse_judgement(reply: &str) -> Result<Judgement, String> {
    let root = extract_json_object(reply)?;
    let holder = root.get("evaluations").unwrap_or(&root);
    let pick = |n: usize| -> Result<&serde_json::Value, String> {
        [
            format!("agent_{n}_evaluation"),
            format!("agent_{n}"),
            format!("agent {n}"),
        ]
        .iter()
        .find_map(|k| holder.get(k.as_str()))
        .ok_or_else(|| format!("no evaluation for agent {n}"))
    };
    Ok(Judgement {
        agents: [
            scores_of(pick(1)?, "agent 1")?,
            scores_of(pick(2)?, "agent 2")?,
        ],
    })
}

/// A judging failure.
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("the judge endpoint gave no usable evaluation: {0}")]
    Endpoint(#[from] ChatError),
    #[error("cannot set up the judge: {0}")]
    Scenarios(String),
    #[error(transparent)]
    NoRubric(#[from] NoRubric),
}

/// Something that scores whole episodes on SOTOPIA's seven dimensions.
pub trait EpisodeJudge: Send + Sync {
    fn judge(&self, episode: &Episode) -> Result<Judgement, JudgeError>;
    /// Judges a batch with at most `concurrency` episodes in flight; the first failure fails
    /// the batch.
    fn judge_batch(
        &self,
        episodes: &[Episode],
        concurrency: usize,
    ) -> Result<Vec<Judgement>, JudgeError> {
        bounded_map(episodes, concurrency, |e| self.judge(e))
            .into_iter()
            .collect()
    }
}

/// The embedded rubric judge scores with SOTOPIA's own structured goals.
impl EpisodeJudge for RubricJudge {
    fn judge(&self, episode: &Episode) -> Result<Judgement, JudgeError> {
        Ok(self.score(episode)?)
    }
}

/// An LLM judge behind an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct LlmJudge {
    pub client: ChatClient,
    pub concurrency: usize,
}

impl LlmJudge {
    pub fn new(client: ChatClient, concurrency: usize) -> LlmJudge {
        LlmJudge {
            client,
            concurrency,
        }
    }
}

impl EpisodeJudge for LlmJudge {
    fn judge(&self, episode: &Episode) -> Result<Judgement, JudgeError> {
        let messages = [ChatMessage::user(evaluation_prompt(episode))];
        Ok(self.client.complete_parsed(&messages, parse_judgement)?)
    }
}

/// Builds the judge a recipe asks for; the embedded one needs the rubric set of the scenarios.
pub fn build_judge(
    spec: &JudgeSpec,
    rubrics: Option<RubricSet>,
) -> Result<(Box<dyn EpisodeJudge>, usize), JudgeError> {
    match &spec.backend {
        JudgeBackend::Embedded => {
            let rubrics = rubrics.unwrap_or_else(RubricSet::embedded);
            Ok((Box::new(RubricJudge::new(rubrics)), 1))
        }
        JudgeBackend::Endpoint(endpoint) => {
            let client = ChatClient::from_spec(endpoint)?;
            let concurrency = endpoint.concurrency.max(1);
            Ok((Box::new(LlmJudge::new(client, concurrency)), concurrency))
        }
    }
}

/// The outcome-reward node of a SOTOPIA run: the recipe's judge, its concurrency, and how a
/// judgement becomes the policy's outcome.
pub struct OutcomeJudge {
    judge: Box<dyn EpisodeJudge>,
    concurrency: usize,
    spec: JudgeSpec,
}

impl OutcomeJudge {
    /// The judge `spec` names; an embedded judge reads the rubrics of `env`'s scenarios.
    pub fn new(spec: &JudgeSpec, env: &SotopiaSpec) -> Result<OutcomeJudge, JudgeError> {
        let rubrics = match &spec.backend {
            JudgeBackend::Embedded => {
                load_scenarios(env)
                    .map_err(|e| JudgeError::Scenarios(e.to_string()))?
                    .1
            }
            JudgeBackend::Endpoint(_) => None,
        };
        let rubrics = match (&spec.backend, rubrics, &env.scenarios) {
            (JudgeBackend::Embedded, None, Some(dir)) => {
                return Err(JudgeError::Scenarios(format!(
                    "the embedded judge needs `{}` in {dir} (structured goals); use an endpoint judge for these scenarios",
                    RUBRICS_FILE
                )))
            }
            (_, r, _) => r,
        };
        let (judge, concurrency) = build_judge(spec, rubrics)?;
        Ok(OutcomeJudge {
            judge,
            concurrency,
            spec: spec.clone(),
        })
    }

    /// The policy's judged outcome for every episode, judged `concurrency` at a time.
    pub fn outcomes(&self, episodes: &[Episode]) -> Result<Vec<JudgedOutcome>, JudgeError> {
        let judgements = self.judge.judge_batch(episodes, self.concurrency)?;
        Ok(judgements
            .iter()
            .zip(episodes)
            .map(|(j, e)| judged_outcome(j, e, &self.spec))
            .collect())
    }
}

/// The finished episode a SOTOPIA environment puts in its last step's `info["episode"]`.
pub fn episode_from_info(info: &serde_json::Value) -> Option<Episode> {
    serde_json::from_value(info.get("episode")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(agent1_goal: &str) -> String {
        format!(
            r#"{{"agent_1_evaluation": {{"believability": ["natural", 8], "relationship": ["fine", 2],
            "knowledge": ["learned", 5], "secret": ["kept", 0], "social_rules": ["ok", -1],
            "financial_and_material_benefits": ["gain", 3], "goal": ["mostly", {agent1_goal}]}},
            "agent_2_evaluation": {{"believability": {{"reasoning": "ok", "score": 7}}, "relationship": 1,
            "knowledge": "4", "secret": -2, "social_rules": 0, "financial_and_material_benefits": -1,
            "goal": 3}}}}"#
        )
    }

    #[test]
    fn parses_both_formats_and_computes_overall() {
        let j = parse_judgement(&full("9")).unwrap();
        assert_eq!(j.agents[0].goal, 9.0);
        assert_eq!(j.agents[1].believability, 7.0);
        assert_eq!(j.agents[1].knowledge, 4.0);
        // (8 + 2 + 5 + 0 - 1 + 3 + 9) / 7 = 26 / 7
        assert!((j.agents[0].overall() - 26.0 / 7.0).abs() < 1e-12);
        let newer = r#"{"evaluations": {"agent_1": {"believability": {"reasoning": "", "score": 1},
            "relationship": {"reasoning": "", "score": 0}, "knowledge": {"reasoning": "", "score": 0},
            "secret": {"reasoning": "", "score": 0}, "social_rules": {"reasoning": "", "score": 0},
            "financial_and_material_benefits": {"reasoning": "", "score": 0}, "goal": {"reasoning": "", "score": 6}},
            "agent_2": {"believability": 1, "relationship": 0, "knowledge": 0, "secret": 0, "social_rules": 0,
            "financial_and_material_benefits": 0, "goal": 2}}}"#;
        let j = parse_judgement(newer).unwrap();
        assert_eq!((j.agents[0].goal, j.agents[1].goal), (6.0, 2.0));
    }

    #[test]
    fn tolerates_fences_chatter_and_broken_json() {
        let fenced = format!(
            "Here is my evaluation:\n```json\n{}\n```\nThanks!",
            full("7")
        );
        assert_eq!(parse_judgement(&fenced).unwrap().agents[0].goal, 7.0);
        // Trailing commas.
        let commas = full("7").replace("\"goal\": 3}", "\"goal\": 3,},");
        assert_eq!(parse_judgement(&commas).unwrap().agents[1].goal, 3.0);
        // Cut off after the last score: closers are added.
        let cut = full("7");
        let cut = &cut[..cut.rfind('}').unwrap() - 1];
        assert_eq!(parse_judgement(cut).unwrap().agents[1].goal, 3.0);
        // Smart quotes.
        let smart = full("7").replace("\"goal\": 3", "\u{201c}goal\u{201d}: 3");
        assert_eq!(parse_judgement(&smart).unwrap().agents[1].goal, 3.0);
        assert_eq!(
            repair_json("{\"a\": True, \"b\": [None, False,], \"c\": \"True\""),
            "{\"a\": true, \"b\": [null, false], \"c\": \"True\"}"
        );
    }

    #[test]
    fn rejects_out_of_range_and_missing_scores() {
        let err = parse_judgement(&full("11")).unwrap_err();
        assert!(err.contains("agent 1: goal = 11 is outside 0..10"), "{err}");
        let err =
            parse_judgement(&full("7").replace("\"secret\": -2", "\"secret\": 2")).unwrap_err();
        assert!(err.contains("secret = 2 is outside -10..0"), "{err}");
        let err =
            parse_judgement(&full("7").replace("\"relationship\": 1,", "\"relationship\": -6,"))
                .unwrap_err();
        assert!(err.contains("relationship = -6 is outside -5..5"), "{err}");
        let err = parse_judgement(&full("7").replace("\"goal\": 3", "\"mood\": 3")).unwrap_err();
        assert!(err.contains("agent 2's `goal` is missing"), "{err}");
        assert!(parse_judgement("I think agent 1 did well.").is_err());
        assert!(parse_judgement(&full("\"lots\""))
            .unwrap_err()
            .contains("no numeric score"));
    }

    #[test]
    fn ranges_match_sotopia() {
        use Dimension::*;
        assert_eq!(Goal.range(), (0.0, 10.0));
        assert_eq!(Believability.range(), (0.0, 10.0));
        assert_eq!(Knowledge.range(), (0.0, 10.0));
        assert_eq!(Relationship.range(), (-5.0, 5.0));
        assert_eq!(FinancialAndMaterialBenefits.range(), (-5.0, 5.0));
        assert_eq!(Secret.range(), (-10.0, 0.0));
        assert_eq!(SocialRules.range(), (-10.0, 0.0));
    }

    #[test]
    fn outcome_judge_reads_the_transcript_from_step_info() {
        use crate::env::sotopia::episode::parse_action;
        let env = SotopiaSpec::default();
        let spec = JudgeSpec {
            backend: JudgeBackend::Embedded,
            rubric: crate::graph::Rubric::Sotopia,
            outcome: JudgeOutcome::Goal,
            threshold: 6.0,
        };
        let set = crate::env::sotopia::embedded::embedded_scenarios();
        // Combo 0 is `used_road_bike`; the policy is the buyer.
        let mut ep = Episode::new(&set.combo(0), 0, 20);
        for (i, line) in [
            "My offer for the bike is $120.",
            "Deal, $120 it is.",
            "[leave]",
        ]
        .iter()
        .enumerate()
        {
            ep.push(i % 2, parse_action(line)).unwrap();
        }
        let info = serde_json::json!({"episode": ep});
        let back = episode_from_info(&info).unwrap();
        assert_eq!(back, ep);
        let out = OutcomeJudge::new(&spec, &env)
            .unwrap()
            .outcomes(&[back])
            .unwrap();
        // offer (2) + bike (1) + price at target (7) = all criteria: goal 10.
        assert_eq!(out[0].score, 10.0);
        assert!(out[0].success);
        let mut real = env.clone();
        real.scenarios = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/sotopia")
                .display()
                .to_string(),
        );
        let err = OutcomeJudge::new(&spec, &real).err().unwrap().to_string();
        assert!(err.contains("goal_rubrics.json"), "{err}");
    }
}
