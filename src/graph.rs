//! The typed execution graph: what the compiler lowers a checked recipe to, and the only thing
//! the runtime reads. Every default is already filled in here; nothing downstream looks up a
//! key by name.
//!
//! The graph has two parts: the resolved *specs* (environment, models, reward, PRM, advantage,
//! algorithm, training loop, evaluation, output) and the ordered *nodes* of one OPRL iteration,
//! each with a stable id, its inputs and the spec it runs.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A checked, lowered recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecGraph {
    /// Recipe name (file stem), used for run directories.
    pub recipe: String,
    pub env: EnvSpec,
    pub policy: PolicySpec,
    pub reward: RewardSpec,
    /// Absent when the advantage expression reads no PRM signal and the algorithm needs none.
    pub prm: Option<PrmSpec>,
    pub advantage: AdvExpr,
    pub algorithm: AlgorithmSpec,
    pub train: TrainSpec,
    pub eval: EvalSpec,
    pub output: OutputSpec,
    /// The nodes of one iteration, in execution order, keyed by stable id (`n0_rollout`, ...).
    pub nodes: IndexMap<String, Node>,
}

/// One step of an OPRL iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    /// Ids of the nodes whose outputs this one reads.
    pub inputs: Vec<String>,
}

/// What a node does. Parameters live in the graph's specs; the op says which part runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `train.tasks` x `train.group` trajectories with the sampling policy.
    Rollout,
    /// Outcome reward and success of every trajectory, from `reward`.
    OutcomeReward,
    /// Implicit step rewards from the PRM as it is before this iteration's update.
    PrmScore,
    /// One PRM optimiser step (DPO pairs, or PRIME's cross-entropy).
    PrmUpdate,
    /// Critic forward for PPO+GAE.
    ValueEstimate,
    /// The recipe's advantage expression, or GAE / PRIME's estimator.
    Advantage,
    /// PPO clipped-surrogate update in minibatches.
    PolicyUpdate,
    /// Critic update for PPO+GAE.
    CriticUpdate,
}

// ---------------------------------------------------------------------------------------------
// Environments

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvSpec {
    Sokoban(SokobanSpec),
    Webshop(WebshopSpec),
    Sotopia(SotopiaSpec),
    External(ExternalSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservationKind {
    Text,
    Image,
}

/// Which prompt template an environment renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// verl-agent's template, word for word.
    Verl,
    /// A short template for small models trained from scratch.
    Compact,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SokobanSpec {
    /// `[rows, cols]`, walls included.
    pub room: [usize; 2],
    pub boxes: usize,
    /// Steps before the episode ends (gym-sokoban `max_steps`); also the turn limit.
    pub max_turns: usize,
    /// Reverse-play search depth of the level generator.
    pub search_depth: usize,
    pub observation: ObservationKind,
    pub prompt: PromptStyle,
    /// Past observation/action pairs shown in the step prompt.
    pub history: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebshopSpec {
    /// Product file (WebShop raw list or JSONL); `None` = the generated catalogue.
    pub products: Option<String>,
    /// Attribute/instruction file; `None` = generated with the catalogue.
    pub attributes: Option<String>,
    /// Products in the generated catalogue.
    pub catalogue_size: usize,
    pub max_turns: usize,
    pub history: usize,
    pub prompt: PromptStyle,
    /// Goals held out for evaluation (verl-agent: the first 500).
    pub test_goals: usize,
    pub outcome: WebshopOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebshopOutcome {
    /// WebShop's reward in [0, 1].
    Score,
    /// verl-agent's 10 on success, 0 otherwise.
    Binary10,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SotopiaSpec {
    /// Directory with `envs.json`, `agents.json`, `env_agent_combos.json`; `None` = embedded set.
    pub scenarios: Option<String>,
    /// Restrict to SOTOPIA-hard.
    pub hard_only: bool,
    pub partner: PartnerSpec,
    /// Which side the policy plays: agent 1, agent 2, or both alternately.
    pub side: SotopiaSide,
    pub max_turns: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SotopiaSide {
    First,
    Second,
    Both,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartnerSpec {
    /// Self-chat with the current policy.
    SelfPlay,
    /// A fixed copy of a checkpoint.
    Model { path: String },
    /// An OpenAI-compatible chat server.
    Endpoint(EndpointSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalSpec {
    /// Shell command that speaks the JSON-lines environment protocol on stdin/stdout.
    pub command: String,
    pub timeout_s: f64,
    pub max_turns: usize,
    pub history: usize,
}

// ---------------------------------------------------------------------------------------------
// Models

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicySpec {
    Transformer(TransformerSpec),
    Hf(HfSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    Rope,
    Learned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformerSpec {
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    /// MLP hidden width.
    pub mlp: usize,
    /// Longest sequence (prompt + action) in tokens.
    pub context: usize,
    pub positions: Positions,
    pub tie_embeddings: bool,
    /// Image patch size in pixels when the environment observes images.
    pub patch: usize,
    pub sampling: SamplingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfSpec {
    /// Directory with `config.json`, `*.safetensors`, `tokenizer.json`.
    pub path: String,
    pub sampling: SamplingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingSpec {
    /// Training rollout temperature.
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Generation stops after any of these strings (e.g. `</action>`).
    pub stop: Vec<String>,
    /// Which answers a turn may take (absent in graphs saved before it existed: free).
    #[serde(default)]
    pub actions: ActionSpace,
}

/// Which answers the policy may generate on a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpace {
    /// Any text.
    #[default]
    Free,
    /// Only the answers the environment lists for the current state (WebShop's page actions,
    /// Sokoban's moves, under the compact prompts); an environment that lists none samples
    /// freely.
    Admissible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    Cpu,
    Cuda,
}

// ---------------------------------------------------------------------------------------------
// Rewards

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RewardSpec {
    /// A rule-based verifier reading an environment signal.
    Verifier { signal: VerifierSignal },
    /// An LLM judge scoring the whole episode.
    Judge(JudgeSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifierSignal {
    /// `env.won`: 1 on success, 0 otherwise.
    Won,
    /// `env.score`: the environment's own final score (WebShop reward).
    Score,
    /// `env.return`: the sum of environment step rewards.
    Return,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeSpec {
    pub backend: JudgeBackend,
    pub rubric: Rubric,
    /// Which judged quantity is the outcome.
    pub outcome: JudgeOutcome,
    /// Success iff outcome > threshold.
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JudgeBackend {
    /// The deterministic rubric judge shipped with oprl (a stand-in for an LLM judge).
    Embedded,
    Endpoint(EndpointSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSpec {
    /// Base URL of an OpenAI-compatible server (`http://host:port/v1`).
    pub url: String,
    pub model: String,
    /// Name of the environment variable holding the API key; the key itself never enters a graph.
    pub api_key_env: Option<String>,
    pub temperature: f64,
    pub timeout_s: f64,
    pub retries: usize,
    pub concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rubric {
    Sotopia,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeOutcome {
    Goal,
    Overall,
}

// ---------------------------------------------------------------------------------------------
// PRM

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrmSpec {
    pub beta: f64,
    /// Trajectory score for the DPO loss.
    pub score: TrajScore,
    pub loss: PrmLoss,
    /// What `log pi_phi` is compared against.
    pub reference: PrmReference,
    pub lr: f64,
    pub grad_clip: f64,
    /// Optimiser steps per iteration.
    pub updates: usize,
    /// When the policy reads images: the PRM reads the text rendering instead (the paper's choice).
    pub text_view: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrajScore {
    Mean,
    Sum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrmLoss {
    /// Bradley-Terry over (success, failure) pairs per group.
    Dpo,
    /// PRIME: BCE(sigmoid(beta * sum log pi_phi/pi_ref), success).
    CrossEntropy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrmReference {
    /// The sampling policy snapshot (OPRL).
    OldPolicy,
    /// A frozen copy of the initial policy (PRIME).
    Frozen,
}

// ---------------------------------------------------------------------------------------------
// Advantage expressions

/// A typed advantage expression. Its granularity is the finest of its terms; coarser terms are
/// broadcast to every token of the action they belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdvExpr {
    /// One value per trajectory, normalised within its group.
    Episode {
        signal: Signal,
        norm: Norm,
    },
    /// One value per step, normalised within its step group.
    Step {
        signal: Signal,
        norm: Norm,
        group: StepGroup,
        /// Divide every step reward by the batch's max |value| first (released OPRL code).
        maxabs: bool,
        /// GiGPO: with `group = anchor_state`, observations whose difflib ratio is at least this
        /// share a step group (verl-agent's `similarity_thresh`); `None` groups identical
        /// observations only.
        #[serde(default)]
        similarity: Option<f64>,
    },
    /// One value per action token, normalised over all action tokens of the group.
    Token {
        signal: Signal,
        norm: Norm,
    },
    Scale {
        factor: f64,
        expr: Box<AdvExpr>,
    },
    Add {
        terms: Vec<AdvExpr>,
    },
    /// PPO+GAE: the algorithm computes advantages from its critic.
    Gae,
    /// PRIME's estimator: whitened leave-one-out returns of process and outcome rewards.
    Prime,
}

/// A reward signal an advantage term reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// `outcome`: the trajectory's outcome reward (episode-level).
    Outcome,
    /// `prm`: implicit step rewards (step-level; token-level under `token(...)`).
    Prm,
    /// `env.reward`: environment step rewards (step-level).
    EnvReward,
    /// `discounted(signal, gamma)`: per-step discounted return-to-go.
    Discounted { signal: Box<Signal>, gamma: f64 },
    /// `a + b` inside a step term (merged rewards): coarser signals broadcast to steps.
    Sum { terms: Vec<(f64, Signal)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    /// `(x - mean) / (std + 1e-6)` (GRPO; unbiased std).
    Zscore,
    /// Leave-one-out: `x - mean of the others`.
    Rloo,
    /// `x - mean`.
    Mean,
    /// REINFORCE++ baseline: `x - group mean`, then whitened over the batch.
    MeanWhiten,
    /// The raw signal.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepGroup {
    /// All steps of all trajectories of the task group.
    Pool,
    /// GiGPO: steps of the task group with an identical current observation.
    AnchorState,
}

// ---------------------------------------------------------------------------------------------
// Algorithm

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlgorithmSpec {
    pub kind: AlgorithmKind,
    pub ppo: PpoSpec,
    /// PPO+GAE only.
    pub critic: Option<CriticSpec>,
    /// PRIME only.
    pub prime: Option<PrimeSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmKind {
    Ppo,
    Prime,
    PpoGae,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoSpec {
    pub lr: f64,
    pub clip_low: f64,
    pub clip_high: f64,
    /// Dual-clip constant for negative advantages.
    pub dual_clip: f64,
    pub entropy: f64,
    pub kl: Option<KlSpec>,
    pub epochs: usize,
    /// Trajectories per minibatch.
    pub minibatch: usize,
    pub grad_clip: f64,
    pub loss_agg: LossAgg,
    pub weight_decay: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlSpec {
    pub kind: KlKind,
    pub coef: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlKind {
    K1,
    Abs,
    K2,
    K3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossAgg {
    TokenMean,
    SeqMeanTokenMean,
    SeqMeanTokenSum,
    SeqMeanTokenSumNorm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticSpec {
    pub lr: f64,
    pub value_clip: f64,
    pub gamma: f64,
    pub lambda: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimeSpec {
    /// Weight of the leave-one-out process-reward returns.
    pub process_coef: f64,
    /// Weight of the leave-one-out outcome.
    pub outcome_coef: f64,
}

// ---------------------------------------------------------------------------------------------
// Loop, evaluation, output

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub iterations: usize,
    /// Tasks per iteration (B).
    pub tasks: usize,
    /// Trajectories per task (N).
    pub group: usize,
    pub seed: u64,
    pub device: Device,
    /// Worker threads for candle (0 = let oprl choose).
    pub threads: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSpec {
    /// Evaluate every this many iterations (and at the end); 0 = only at the end.
    pub every: usize,
    /// Held-out tasks.
    pub tasks: usize,
    pub temperature: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Parent directory of run directories.
    pub dir: String,
    /// Write a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    /// Full episodes kept as text transcripts per evaluation.
    pub transcripts: usize,
}
