//! Environments behind one interface: Sokoban (text and image observations), WebShop, SOTOPIA,
//! and external environments speaking the JSON-lines protocol.
//!
//! An environment owns its task set, its prompt template and its own history of
//! (observation, action) pairs, so the runtime only asks for the next prompt, hands back the
//! model's raw text, and reads the outcome at the end.

use serde::{Deserialize, Serialize};

pub mod image;
pub mod prompt;
pub mod protocol;
pub mod sokoban;
pub mod sotopia;
pub mod webshop;

/// The characters and whole-word tokens an environment's prompts and valid actions use, for
/// the char-level tokenizer of small models (`Tokenizer::chars_with_words`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// Every character that appears, sorted and deduplicated.
    pub alphabet: String,
    /// Action words and tags, in a fixed order, matched before single characters.
    pub words: Vec<String>,
}

pub use crate::image::RgbImage;
pub use crate::model::chat::Message;

/// What the agent sees after a reset or a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub text: String,
    /// Present for environments with pixels (VisualSokoban).
    pub image: Option<RgbImage>,
}

/// Which task set a task is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Eval,
}

/// A task: a Sokoban level seed, a WebShop goal index, a SOTOPIA combo index. Every member of
/// a group is reset with the same task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Task {
    pub split: Split,
    pub index: u64,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub observation: Observation,
    /// Environment step reward (an invalid action's -0.1 included).
    pub reward: f64,
    pub done: bool,
    /// Whether the model's text parsed into an admissible action.
    pub valid: bool,
    /// Whether the task is solved (so far).
    pub won: bool,
    /// Anything else useful (room state, page, scores), as JSON.
    pub info: serde_json::Value,
}

/// How an episode ended, as the environment itself judges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeOutcome {
    pub won: bool,
    /// The environment's own final score (Sokoban: won as 0/1; WebShop: its reward in [0, 1]).
    pub score: f64,
    /// Sum of step rewards.
    pub env_return: f64,
}

/// An environment error the runtime can report with what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("environment `{env}` failed: {message}")]
    Failed { env: String, message: String },
    #[error("environment `{env}` sent a malformed message: {message}")]
    Malformed { env: String, message: String },
    #[error("environment `{env}` did not answer within {seconds} s")]
    Timeout { env: String, seconds: f64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Whether the environment a spec describes lists the answers it accepts
/// ([`Environment::action_choices`] is `Some`): what `sampling.actions = admissible` needs.
/// Sokoban and WebShop list them under their compact prompts; verl prompts, SOTOPIA and
/// external environments take free text. The compiler's rule E0412 asks this.
pub fn lists_answers(spec: &crate::graph::EnvSpec) -> bool {
    use crate::graph::{EnvSpec, PromptStyle};
    match spec {
        EnvSpec::Sokoban(s) => s.prompt == PromptStyle::Compact,
        EnvSpec::Webshop(s) => s.prompt == PromptStyle::Compact,
        EnvSpec::Sotopia(_) | EnvSpec::External(_) => false,
    }
}

/// One environment instance. The runtime holds `tasks x group` of them.
pub trait Environment: Send {
    /// Starts an episode on `task`; deterministic for a given task.
    fn reset(&mut self, task: Task) -> Result<Observation, EnvError>;
    /// Applies the model's raw text for this turn.
    fn step(&mut self, action_text: &str) -> Result<StepResult, EnvError>;
    /// The full prompt for the current turn (template, task text, last `history` pairs, current
    /// observation).
    fn prompt(&self) -> String;
    /// The prompt for the current turn as chat messages, for a pretrained model that reads its
    /// chat template: the instructions as the system (or first user) message, the history as
    /// turns where the environment has one. The default is the whole [`Environment::prompt`]
    /// as one user message, which is how verl-agent sends its prompts.
    fn messages(&self) -> Vec<Message> {
        vec![Message::new("user", self.prompt())]
    }
    /// The outcome of the episode so far.
    fn outcome(&self) -> EpisodeOutcome;
    /// A key for the current state, identical exactly when two states are the same (GiGPO anchors).
    fn state_key(&self) -> String;
    /// The current observation.
    fn observation(&self) -> Observation;
    /// When the next turn belongs to another agent that the runtime plays with the policy's
    /// own live weights (SOTOPIA self-chat), that agent's prompt; `None` (the default) when the
    /// next turn is the trained agent's. The rollout engine generates such turns in the same
    /// batch as the policy's and hands them to [`Environment::partner_step`]; they are not
    /// trained on (no recorded step, no reward).
    fn partner_prompt(&self) -> Option<String> {
        None
    }
    /// [`Environment::partner_prompt`] as chat messages, as [`Environment::messages`] is to
    /// [`Environment::prompt`].
    fn partner_messages(&self) -> Option<Vec<Message>> {
        self.partner_prompt().map(|p| vec![Message::new("user", p)])
    }
    /// Plays the text generated for [`Environment::partner_prompt`]; `reward` is 0 and `valid`
    /// says whether the partner's text parsed.
    fn partner_step(&mut self, _text: &str) -> Result<StepResult, EnvError> {
        Err(EnvError::Failed {
            env: "environment".into(),
            message: "this environment has no partner turns for the runtime to play".into(),
        })
    }
    /// For environments that show pixels: the prompt of the current turn with the text
    /// rendering of the state in place of the image (what a text-only model reads). `None`
    /// when the prompt is already text.
    fn text_prompt(&self) -> Option<String> {
        None
    }
    /// The answers the environment accepts in the current state, each as the exact text to
    /// generate after the prompt (what `sampling.actions = admissible` restricts a turn to).
    /// `None` (the default) when its prompt takes free text.
    fn action_choices(&self) -> Option<Vec<String>> {
        None
    }
}
