//! SOTOPIA: two characters with private social goals talk in turns; a judge scores how well
//! each achieved its goal. The policy plays one side, the partner (another model, an endpoint,
//! or the policy itself) plays the other inside `step`.
//!
//! Tasks: the split's combos in file order; `Eval` takes every fifth combo (indices 4, 9, ...),
//! `Train` the rest. With `side = both`, task `i` plays combo `i / 2` on side `i % 2`, so every
//! combo is played from both sides.

pub mod embedded;
pub mod episode;
pub mod partner;
pub mod profiles;
pub mod rubric;
pub mod scores;

use std::path::Path;
use std::sync::Arc;

use crate::graph::{PromptStyle, SotopiaSide, SotopiaSpec};

use super::{
    EnvError, Environment, EpisodeOutcome, Message, Observation, Split, StepResult, Task,
    Vocabulary,
};
pub use episode::{parse_action, ActionType, AgentAction, Episode, Termination};
pub use partner::{
    model_partner, CallbackPartner, EndpointPartner, LivePolicyPartner, Partner, PartnerError,
};
pub use profiles::{ScenarioSet, HARD_ENV_PKS};
pub use rubric::{Criterion, RubricJudge, RubricSet};
pub use scores::{Dimension, Judgement, SocialScores};

const ENV_NAME: &str = "sotopia";

/// Step reward for text that is not an admissible action (it is played as `none`).
pub const INVALID_ACTION_REWARD: f64 = -0.1;

/// Rubric file name next to a scenario directory's JSON files (optional).
pub const RUBRICS_FILE: &str = "goal_rubrics.json";

fn failed(message: impl Into<String>) -> EnvError {
    EnvError::Failed {
        env: ENV_NAME.into(),
        message: message.into(),
    }
}

/// The scenarios a spec names (the embedded set when `scenarios` is absent), restricted to
/// SOTOPIA-hard if asked, with rubrics when there are any (always for the embedded set; a
/// directory may carry its own `goal_rubrics.json`).
pub fn load_scenarios(spec: &SotopiaSpec) -> Result<(ScenarioSet, Option<RubricSet>), EnvError> {
    let (set, rubrics) = match &spec.scenarios {
        None => (embedded::embedded_scenarios(), Some(RubricSet::embedded())),
        Some(dir) => {
            let dir = Path::new(dir);
            let set = ScenarioSet::load_dir(dir).map_err(|e| failed(e.to_string()))?;
            let rubric_path = dir.join(RUBRICS_FILE);
            let rubrics = if rubric_path.exists() {
                let text = std::fs::read_to_string(&rubric_path)?;
                Some(
                    RubricSet::from_json(&text)
                        .map_err(|e| failed(format!("{}: {e}", rubric_path.display())))?,
                )
            } else {
                None
            };
            (set, rubrics)
        }
    };
    let set = if spec.hard_only {
        set.hard().map_err(|e| {
            failed(format!(
                "{e}: `hard` needs SOTOPIA's own scenario files (the embedded set has no hard subset)"
            ))
        })?
    } else {
        set
    };
    Ok((set, rubrics))
}

/// Whole-word tokens every SOTOPIA vocabulary starts with: the compact action tags.
const ACTION_WORDS: [&str; 4] = [
    "[leave]",
    "[none]",
    "[action]",
    "[non-verbal communication]",
];

/// The characters and whole-word tokens of the compact prompts and actions, for small models:
/// printable ASCII, newline and every character of the scenario texts; the action tags, each
/// character's `Name:` turn prefix, and the phrases the rubrics look for (so a small model can
/// say `please` or `deal` as one token). Falls back to the embedded set if `spec`'s files
/// cannot be read (the environment itself then reports the error).
pub fn vocabulary(spec: &SotopiaSpec) -> Vocabulary {
    let (set, rubrics) = load_scenarios(spec)
        .unwrap_or_else(|_| (embedded::embedded_scenarios(), Some(RubricSet::embedded())));
    let mut chars: std::collections::BTreeSet<char> = (' '..='~').collect();
    chars.insert('\n');
    let mut texts: Vec<&str> = Vec::new();
    for e in set.envs.values() {
        texts.push(&e.scenario);
        texts.extend(e.agent_goals.iter().map(String::as_str));
    }
    for a in set.agents.values() {
        texts.extend([
            a.first_name.as_str(),
            a.last_name.as_str(),
            a.occupation.as_str(),
            a.public_info.as_str(),
            a.personality_and_values.as_str(),
            a.secret.as_str(),
        ]);
    }
    chars.extend(
        texts
            .iter()
            .flat_map(|t| t.chars())
            .filter(|c| !c.is_control()),
    );
    let mut words: Vec<String> = ACTION_WORDS.iter().map(|w| w.to_string()).collect();
    let mut push = |w: String| {
        if !w.is_empty() && !words.contains(&w) {
            words.push(w);
        }
    };
    for a in set.agents.values() {
        push(format!("{}:", a.first_name));
    }
    if let Some(r) = &rubrics {
        for goal in r.envs.values().flat_map(|s| s.goals.iter()) {
            for c in &goal.criteria {
                if let Criterion::Say { any, .. } | Criterion::Agree { proposal: any, .. } = c {
                    any.iter()
                        .filter(|p| p.len() >= 3)
                        .for_each(|p| push(p.clone()));
                }
            }
        }
    }
    Vocabulary {
        alphabet: chars.into_iter().collect(),
        words,
    }
}

/// The combo indices of a split.
pub fn split_combos(set: &ScenarioSet, split: Split) -> Vec<usize> {
    let all = 0..set.combos.len();
    if set.combos.len() < 5 {
        return all.collect();
    }
    all.filter(|i| (i % 5 == 4) == (split == Split::Eval))
        .collect()
}

/// Everything a run's SOTOPIA instances share: the scenario set (loaded once), the rubric
/// judge when there are rubrics, the spec and the prompt style. The runtime makes one per run
/// and an instance per rollout slot with the partner the recipe names: an endpoint partner
/// from [`SotopiaFactory::endpoint_partner`], or a [`CallbackPartner`] around the current
/// policy (`self_play`) or a fixed checkpoint (`model`).
#[derive(Clone)]
pub struct SotopiaFactory {
    pub scenarios: Arc<ScenarioSet>,
    pub rubric: Option<Arc<RubricJudge>>,
    pub spec: SotopiaSpec,
    pub style: PromptStyle,
}

impl SotopiaFactory {
    pub fn new(spec: &SotopiaSpec, style: PromptStyle) -> Result<SotopiaFactory, EnvError> {
        let (set, rubrics) = load_scenarios(spec)?;
        Ok(SotopiaFactory {
            scenarios: Arc::new(set),
            rubric: rubrics.map(|r| Arc::new(RubricJudge::new(r))),
            spec: spec.clone(),
            style,
        })
    }

    /// The endpoint partner when the spec names one (`None` for `self_play` and `model`,
    /// which the runtime builds from its own models).
    pub fn endpoint_partner(&self) -> Option<Result<Box<dyn Partner>, EnvError>> {
        match &self.spec.partner {
            crate::graph::PartnerSpec::Endpoint(e) => Some(
                EndpointPartner::from_spec(e)
                    .map(|p| Box::new(p) as Box<dyn Partner>)
                    .map_err(|err| failed(err.to_string())),
            ),
            _ => None,
        }
    }

    pub fn instance(&self, partner: Box<dyn Partner>) -> SotopiaEnv {
        SotopiaEnv::new(
            self.scenarios.clone(),
            self.rubric.clone(),
            &self.spec,
            self.style,
            partner,
        )
    }

    /// Tasks available in `split`.
    pub fn task_count(&self, split: Split) -> usize {
        let combos = split_combos(&self.scenarios, split).len();
        match self.spec.side {
            SotopiaSide::Both => 2 * combos,
            _ => combos,
        }
    }
}

/// One SOTOPIA environment instance.
pub struct SotopiaEnv {
    scenarios: Arc<ScenarioSet>,
    rubric: Option<Arc<RubricJudge>>,
    side: SotopiaSide,
    max_turns: usize,
    style: PromptStyle,
    partner: Box<dyn Partner>,
    episode: Option<Episode>,
    env_return: f64,
}

impl SotopiaEnv {
    /// An environment over `scenarios`; `rubric` lets [`Environment::outcome`] report the
    /// embedded judge's goal score.
    pub fn new(
        scenarios: Arc<ScenarioSet>,
        rubric: Option<Arc<RubricJudge>>,
        spec: &SotopiaSpec,
        style: PromptStyle,
        partner: Box<dyn Partner>,
    ) -> SotopiaEnv {
        SotopiaEnv {
            scenarios,
            rubric,
            side: spec.side,
            max_turns: spec.max_turns.max(1),
            style,
            partner,
            episode: None,
            env_return: 0.0,
        }
    }

    /// The current episode (the full transcript the judge reads).
    pub fn episode(&self) -> Option<&Episode> {
        self.episode.as_ref()
    }

    pub fn partner(&self) -> &dyn Partner {
        self.partner.as_ref()
    }

    fn policy_prompt(&self, ep: &Episode) -> String {
        partner::partner_prompt(self.style, ep, ep.policy_agent)
    }

    /// Lets the partner act while it is its turn and the episode goes on (a deferred partner's
    /// turns wait for [`Environment::partner_step`]).
    fn partner_turns(&mut self) -> Result<(), EnvError> {
        let ep = self
            .episode
            .as_mut()
            .ok_or_else(|| failed("step before reset"))?;
        while !ep.done() && ep.next_agent() != ep.policy_agent && !self.partner.deferred() {
            let agent = ep.next_agent();
            let text = self
                .partner
                .act(ep, agent)
                .map_err(|e| failed(format!("partner ({}): {e}", self.partner.describe())))?;
            ep.push(agent, parse_action(&text)).map_err(failed)?;
        }
        Ok(())
    }

    fn info(&self) -> serde_json::Value {
        match &self.episode {
            None => serde_json::Value::Null,
            Some(ep) => {
                let mut info = serde_json::json!({
                    "combo": ep.combo,
                    "codename": ep.env.codename,
                    "turn": ep.turns.len(),
                    "policy_agent": ep.policy_agent,
                });
                if ep.done() {
                    info["termination"] = serde_json::to_value(ep.termination).unwrap_or_default();
                    info["episode"] = serde_json::to_value(ep).unwrap_or_default();
                }
                info
            }
        }
    }

    fn rubric_goal(&self) -> Option<f64> {
        let (ep, judge) = (self.episode.as_ref()?, self.rubric.as_ref()?);
        if !judge.covers(&ep.env.pk) {
            return None;
        }
        judge.score(ep).ok().map(|j| j.agents[ep.policy_agent].goal)
    }
}

impl Environment for SotopiaEnv {
    fn reset(&mut self, task: Task) -> Result<Observation, EnvError> {
        let combos = split_combos(&self.scenarios, task.split);
        let index = task.index as usize;
        let (slot, policy_agent) = match self.side {
            SotopiaSide::First => (index, 0),
            SotopiaSide::Second => (index, 1),
            SotopiaSide::Both => (index / 2, index % 2),
        };
        let combo = self.scenarios.combo(combos[slot % combos.len()]);
        self.episode = Some(Episode::new(&combo, policy_agent, self.max_turns));
        self.env_return = 0.0;
        self.partner_turns()?;
        Ok(self.observation())
    }

    fn step(&mut self, action_text: &str) -> Result<StepResult, EnvError> {
        let ep = self
            .episode
            .as_mut()
            .ok_or_else(|| failed("step before reset"))?;
        if ep.done() {
            return Err(failed("step after the episode ended; reset first"));
        }
        let parsed = parse_action(action_text);
        let valid = parsed.valid;
        ep.push(ep.policy_agent, parsed).map_err(failed)?;
        self.partner_turns()?;
        let reward = if valid { 0.0 } else { INVALID_ACTION_REWARD };
        self.env_return += reward;
        let outcome = self.outcome();
        Ok(StepResult {
            observation: self.observation(),
            reward,
            done: self.episode.as_ref().is_some_and(Episode::done),
            valid,
            won: outcome.won,
            info: self.info(),
        })
    }

    fn prompt(&self) -> String {
        self.episode
            .as_ref()
            .map(|ep| self.policy_prompt(ep))
            .unwrap_or_default()
    }

    /// SOTOPIA's own agent prompt as a chat, whatever the compact style (a chat model follows
    /// SOTOPIA's instructions; see [`Episode::sotopia_messages`]).
    fn messages(&self) -> Vec<Message> {
        self.episode
            .as_ref()
            .map(|ep| ep.sotopia_messages(ep.policy_agent))
            .unwrap_or_default()
    }

    /// `score` is the embedded rubric's goal score / 10 for scenarios with a rubric (0
    /// otherwise) and `won` is goal > 6 (SOTOPIA's usual success line); LLM judging of the
    /// transcript happens in `reward::judge`.
    fn outcome(&self) -> EpisodeOutcome {
        let goal = self.rubric_goal();
        EpisodeOutcome {
            won: goal.is_some_and(|g| g > 6.0),
            score: goal.map(|g| g / 10.0).unwrap_or(0.0),
            env_return: self.env_return,
        }
    }

    fn state_key(&self) -> String {
        match &self.episode {
            None => String::new(),
            Some(ep) => {
                let mut key = format!("{}|{}", ep.combo, ep.policy_agent);
                for t in &ep.turns {
                    key.push('|');
                    key.push_str(&t.action.to_json());
                }
                key
            }
        }
    }

    fn observation(&self) -> Observation {
        Observation {
            text: self.prompt(),
            image: None,
        }
    }

    /// The partner agent's prompt (in the environment's own style, as the policy plays it)
    /// when the partner is deferred and it is its turn.
    fn partner_prompt(&self) -> Option<String> {
        let ep = self.episode.as_ref()?;
        let waiting = !ep.done() && ep.next_agent() != ep.policy_agent;
        (waiting && self.partner.deferred())
            .then(|| partner::partner_prompt(self.style, ep, ep.next_agent()))
    }

    fn partner_messages(&self) -> Option<Vec<Message>> {
        self.partner_prompt()?;
        let ep = self.episode.as_ref()?;
        Some(ep.sotopia_messages(ep.next_agent()))
    }

    fn partner_step(&mut self, text: &str) -> Result<StepResult, EnvError> {
        if self.partner_prompt().is_none() {
            return Err(failed(
                "a partner turn was played while it is not a deferred partner's turn",
            ));
        }
        let ep = self.episode.as_mut().expect("partner_prompt checked");
        let parsed = parse_action(text);
        let valid = parsed.valid;
        ep.push(ep.next_agent(), parsed).map_err(failed)?;
        let outcome = self.outcome();
        Ok(StepResult {
            observation: self.observation(),
            reward: 0.0,
            done: self.episode.as_ref().is_some_and(Episode::done),
            valid,
            won: outcome.won,
            info: self.info(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::PartnerSpec;
    use std::sync::Mutex;

    fn spec(side: SotopiaSide) -> SotopiaSpec {
        SotopiaSpec {
            scenarios: None,
            hard_only: false,
            partner: PartnerSpec::SelfPlay,
            side,
            max_turns: 20,
        }
    }

    /// A partner that replays fixed lines and records the prompts it was shown.
    fn scripted(lines: Vec<&'static str>, seen: Arc<Mutex<Vec<String>>>) -> Box<dyn Partner> {
        let mut i = 0;
        Box::new(CallbackPartner::new(
            "scripted",
            PromptStyle::Compact,
            Box::new(move |prompt: &str| {
                seen.lock().unwrap().push(prompt.to_string());
                let line = lines[i % lines.len()];
                i += 1;
                Ok(line.to_string())
            }),
        ))
    }

    fn make_env(
        side: SotopiaSide,
        lines: Vec<&'static str>,
    ) -> (SotopiaEnv, Arc<Mutex<Vec<String>>>) {
        let (set, rubrics) = load_scenarios(&spec(side)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let env = SotopiaEnv::new(
            Arc::new(set),
            rubrics.map(|r| Arc::new(RubricJudge::new(r))),
            &spec(side),
            PromptStyle::Compact,
            scripted(lines, seen.clone()),
        );
        (env, seen)
    }

    #[test]
    fn partner_acts_inside_step_and_the_policy_can_play_second() {
        let (mut env, seen) = make_env(SotopiaSide::Second, vec!["Hello there"]);
        let obs = env
            .reset(Task {
                split: Split::Train,
                index: 0,
            })
            .unwrap();
        // The partner (agent 0) opened; the policy (agent 1) sees it.
        let ep = env.episode().unwrap();
        assert_eq!(ep.policy_agent, 1);
        assert_eq!(ep.turns.len(), 1);
        assert!(obs.text.ends_with(&format!(
            "{}: Hello there\n{}:",
            ep.agents[0].first_name, ep.agents[1].first_name
        )));
        // The partner's prompt had its own goal, not the policy's.
        let goals = &ep.env.agent_goals;
        let partner_prompt = seen.lock().unwrap()[0].clone();
        let own = crate::env::sotopia::episode::render_goal(&goals[0]);
        let other = crate::env::sotopia::episode::render_goal(&goals[1]);
        assert!(partner_prompt.contains(&own) && !partner_prompt.contains(&other));
        let r = env.step("Hi! How are you?").unwrap();
        assert!(r.valid && !r.done && r.reward == 0.0);
        assert_eq!(env.episode().unwrap().turns.len(), 3);
    }

    #[test]
    fn episode_ends_at_twenty_turns_with_the_transcript_in_info() {
        let (mut env, _) = make_env(SotopiaSide::First, vec!["Sounds interesting"]);
        env.reset(Task {
            split: Split::Train,
            index: 3,
        })
        .unwrap();
        let mut steps = 0;
        loop {
            steps += 1;
            let r = env.step(&format!("line {steps}")).unwrap();
            if r.done {
                assert_eq!(r.info["termination"]["reason"], "max_turns");
                let ep: Episode = serde_json::from_value(r.info["episode"].clone()).unwrap();
                assert_eq!(ep.turns.len(), 20);
                break;
            }
        }
        assert_eq!(steps, 10);
        assert!(env.step("more").is_err());
    }

    #[test]
    fn leave_and_stale_end_the_episode_and_invalid_text_costs() {
        let (mut env, _) = make_env(SotopiaSide::First, vec!["[none]"]);
        env.reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap();
        let r = env.step("").unwrap();
        // Invalid (played as none), then the partner's none: two in a row.
        assert!(!r.valid && !r.done && r.reward == INVALID_ACTION_REWARD);
        let r = env.step("[none]").unwrap();
        assert!(r.done);
        assert_eq!(r.info["termination"]["reason"], "stale");
        assert_eq!(env.outcome().env_return, INVALID_ACTION_REWARD);

        let (mut env, _) = make_env(SotopiaSide::First, vec!["[leave]"]);
        env.reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap();
        let r = env.step("Hello").unwrap();
        assert!(r.done);
        assert_eq!(r.info["termination"]["reason"], "left");
    }

    #[test]
    fn tasks_are_deterministic_and_splits_disjoint() {
        let (mut a, _) = make_env(SotopiaSide::Both, vec!["ok"]);
        let (mut b, _) = make_env(SotopiaSide::Both, vec!["ok"]);
        for index in 0..6 {
            let t = Task {
                split: Split::Eval,
                index,
            };
            assert_eq!(a.reset(t).unwrap(), b.reset(t).unwrap());
            assert_eq!(a.state_key(), b.state_key());
            assert_eq!(a.episode().unwrap().policy_agent, (index % 2) as usize);
        }
        let set = embedded::embedded_scenarios();
        let train = split_combos(&set, Split::Train);
        let eval = split_combos(&set, Split::Eval);
        assert_eq!(train.len() + eval.len(), set.combos.len());
        assert!(eval.iter().all(|i| !train.contains(i)));
    }

    #[test]
    fn real_files_with_the_hard_subset_load_through_the_spec() {
        let mut s = spec(SotopiaSide::First);
        s.scenarios = Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/sotopia")
                .display()
                .to_string(),
        );
        s.hard_only = true;
        let (set, rubrics) = load_scenarios(&s).unwrap();
        assert_eq!(set.envs.len(), 14);
        assert!(rubrics.is_none());
        s.scenarios = None;
        assert!(load_scenarios(&s).unwrap_err().to_string().contains("hard"));
    }

    #[test]
    fn vocabulary_covers_every_prompt_and_action() {
        let spec = spec(SotopiaSide::Both);
        let vocab = vocabulary(&spec);
        let (mut env, _) = make_env(SotopiaSide::Both, vec!["[action] waves", "Sure, deal!"]);
        for index in 0..12 {
            env.reset(Task {
                split: Split::Train,
                index,
            })
            .unwrap();
            env.step("*smiles* please").unwrap();
            let prompt = env.prompt();
            assert!(
                prompt.chars().all(|c| vocab.alphabet.contains(c)),
                "{prompt}"
            );
        }
        assert_eq!(
            &vocab.words[..2],
            &["[leave]".to_string(), "[none]".to_string()]
        );
        assert!(vocab.words.contains(&"Maya:".to_string()));
        assert!(vocab.words.contains(&"please".to_string()));
        let mut sorted: Vec<char> = vocab.alphabet.chars().collect();
        sorted.dedup();
        assert_eq!(sorted.len(), vocab.alphabet.chars().count());
    }

    #[test]
    fn a_deferred_partner_hands_its_turns_to_the_runtime() {
        let f = SotopiaFactory::new(&spec(SotopiaSide::Second), PromptStyle::Compact).unwrap();
        let mut env = f.instance(Box::new(LivePolicyPartner));
        let task = Task {
            split: Split::Train,
            index: 0,
        };
        env.reset(task).unwrap();
        // The partner (agent 0) opens: nothing was played, its own prompt is offered.
        let ep = env.episode().unwrap().clone();
        assert!(ep.turns.is_empty());
        let prompt = env.partner_prompt().unwrap();
        assert_eq!(prompt, ep.compact_prompt(0));
        let r = env.partner_step("Hello there").unwrap();
        assert!(r.valid && !r.done && r.reward == 0.0);
        assert!(env.partner_prompt().is_none());
        assert!(env.prompt().ends_with(&format!(
            "{}: Hello there\n{}:",
            ep.agents[0].first_name, ep.agents[1].first_name
        )));
        // Out of turn: the policy's turn is not the partner's.
        assert!(env.partner_step("again").is_err());
        let r = env.step("Hi!").unwrap();
        assert!(!r.done && r.info.get("episode").is_none());
        assert!(env.partner_prompt().is_some());
        // The partner leaves: the finished transcript is in the info the judge reads.
        let r = env.partner_step("[leave]").unwrap();
        assert!(r.done);
        let ep: Episode = serde_json::from_value(r.info["episode"].clone()).unwrap();
        assert_eq!(ep.turns.len(), 3);
        assert_eq!(ep.termination, Some(Termination::Left { agent: 0 }));
        assert!(env.partner_prompt().is_none());
        // Driven without the runtime, the live-policy partner says what is missing.
        let err = LivePolicyPartner.act(&ep, 0).unwrap_err().to_string();
        assert!(err.contains("rollout engine"), "{err}");
    }

    #[test]
    fn factory_shares_scenarios_and_builds_endpoint_partners() {
        let mut s = spec(SotopiaSide::Both);
        let f = SotopiaFactory::new(&s, PromptStyle::Compact).unwrap();
        assert!(f.endpoint_partner().is_none());
        let set = embedded::embedded_scenarios();
        assert_eq!(
            f.task_count(Split::Eval),
            2 * split_combos(&set, Split::Eval).len()
        );
        let (_, seen) = make_env(SotopiaSide::Both, vec!["ok"]);
        let mut env = f.instance(scripted(vec!["Sure, deal."], seen));
        env.reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap();
        // Combo 0 is the bike sale; the policy (buyer) closes at its target price.
        let r = env.step("My offer for the bike is $120.").unwrap();
        assert!(
            !r.done && r.won,
            "the rubric goal is met: {:?}",
            env.outcome()
        );
        assert_eq!(env.outcome().score, 1.0);
        s.partner = PartnerSpec::Endpoint(crate::graph::EndpointSpec {
            url: "http://127.0.0.1:9/v1".into(),
            model: "m".into(),
            api_key_env: None,
            temperature: 0.7,
            timeout_s: 1.0,
            retries: 0,
            concurrency: 1,
        });
        let f = SotopiaFactory::new(&s, PromptStyle::Compact).unwrap();
        let p = f.endpoint_partner().unwrap().unwrap();
        assert!(p
            .describe()
            .contains("http://127.0.0.1:9/v1/chat/completions"));
    }
}
