//! The typed execution graph: what the compiler lowers a checked recipe to, and the only thing
//! the runtime reads. Every default is already filled in here; nothing downstream looks up a
//! key by name.
//!
//! The graph has two parts: the resolved *specs* (environment, models, reward, PRM, advantage,
//! algorithm, training loop, evaluation, output) and the ordered *nodes* of one OPRL iteration,
//! each with a stable id, its inputs and the spec it runs.

mod keys;

pub use keys::{default_json, defaults, from_name, Bound, DefaultValue, KeySchema, Range, Ty};

use indexmap::IndexMap;
use keys::{names, none_is_null, spec, DefaultValue as D};
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

names! {
    /// What a node does. Parameters live in the graph's specs; the op says which part runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Op {
        /// `train.tasks` x `train.group` trajectories with the sampling policy.
        Rollout = "rollout",
        /// Outcome reward and success of every trajectory, from `reward`.
        OutcomeReward = "outcome_reward",
        /// Implicit step rewards from the PRM as it is before this iteration's update.
        PrmScore = "prm_score",
        /// One PRM optimiser step (DPO pairs, or PRIME's cross-entropy).
        PrmUpdate = "prm_update",
        /// Critic forward for PPO+GAE.
        ValueEstimate = "value_estimate",
        /// The recipe's advantage expression, or GAE / PRIME's estimator.
        Advantage = "advantage",
        /// PPO clipped-surrogate update in minibatches.
        PolicyUpdate = "policy_update",
        /// Critic update for PPO+GAE.
        CriticUpdate = "critic_update",
    }
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

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ObservationKind {
        Text = "text",
        Image = "image",
    }
}

names! {
    /// Which prompt template an environment renders.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PromptStyle {
        /// verl-agent's template, word for word.
        Verl = "verl",
        /// A short template for small models trained from scratch.
        Compact = "compact",
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SokobanSpec {
        /// `[rows, cols]` of the room, walls included.
        pub room: [usize; 2] = Ty::IntList(2), D::IntList(&[6, 6]), Range::between(3.0, 64.0);
        /// Boxes (and targets) per level.
        pub boxes: usize = Ty::Int, D::Int(1), Range::between(1.0, 16.0);
        /// Steps before the episode ends; also the turn limit.
        pub max_turns: usize = Ty::Int, D::Int(15), Range::between(1.0, 1000.0);
        /// Reverse-play search depth of the level generator.
        pub search_depth: usize = Ty::Int, D::Int(30), Range::between(1.0, 10000.0);
        /// `text` (a character grid) or `image` (VisualSokoban frames).
        pub observation: ObservationKind = Ty::Name(ObservationKind::NAMES), D::Name("text");
        /// Prompt template: verl-agent's, or a short one for small models.
        pub prompt: PromptStyle = Ty::Name(PromptStyle::NAMES), D::Name("verl");
        /// Past observation/action pairs shown in the step prompt.
        pub history: usize = Ty::Int, D::Int(2), Range::between(0.0, 100.0);
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct WebshopSpec {
        /// Product file (WebShop raw list or JSONL).
        pub products: Option<String> = Ty::File, D::Optional("the generated catalogue");
        /// Attribute and instruction file.
        pub attributes: Option<String> = Ty::File, D::Optional("generated with the catalogue");
        /// Products in the generated catalogue.
        pub catalogue_size: usize = Ty::Int, D::Int(1000), Range::between(1.0, 10_000_000.0);
        /// Turns before the episode ends.
        pub max_turns: usize = Ty::Int, D::Int(10), Range::between(1.0, 1000.0);
        /// Past observation/action pairs shown in the step prompt.
        pub history: usize = Ty::Int, D::Int(2), Range::between(0.0, 100.0);
        /// Prompt template.
        pub prompt: PromptStyle = Ty::Name(PromptStyle::NAMES), D::Name("verl");
        /// Goals held out for evaluation (verl-agent: the first 500).
        pub test_goals: usize = Ty::Int, D::Int(500), Range::NON_NEGATIVE;
        /// `score`: WebShop's reward in [0, 1]; `binary10`: 10 on success, else 0.
        pub outcome: WebshopOutcome = Ty::Name(WebshopOutcome::NAMES), D::Name("score");
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum WebshopOutcome {
        /// WebShop's reward in [0, 1].
        Score = "score",
        /// verl-agent's 10 on success, 0 otherwise.
        Binary10 = "binary10",
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SotopiaSpec {
        /// Directory with `envs.json`, `agents.json`, `env_agent_combos.json`.
        pub scenarios: Option<String> = Ty::Dir, D::Optional("the embedded scenario set");
        /// Restrict to SOTOPIA-hard.
        pub hard_only: bool = Ty::Bool, D::Bool(false);
        /// The other agent: `self_play`, `model { path }` or `endpoint { url, model }`.
        pub partner: PartnerSpec = Ty::Block("partner"), D::Name("self_play");
        /// Which agent the policy plays.
        pub side: SotopiaSide = Ty::Name(SotopiaSide::NAMES), D::Name("first");
        /// Turns before the episode ends.
        pub max_turns: usize = Ty::Int, D::Int(20), Range::between(1.0, 1000.0);
    }
}

names! {
    /// Which side the policy plays: agent 1, agent 2, or both alternately.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum SotopiaSide {
        First = "first",
        Second = "second",
        Both = "both",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PartnerSpec {
    /// Self-chat with the current policy.
    SelfPlay,
    /// A fixed copy of a checkpoint.
    Model(PartnerModelSpec),
    /// An OpenAI-compatible chat server.
    Endpoint(EndpointSpec),
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PartnerModelSpec {
        /// The fixed partner: a run directory, a Hugging Face model directory or a `.gguf` file.
        pub path: String = Ty::Model, D::Required;
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ExternalSpec {
        /// Shell command speaking the JSON-lines environment protocol on stdin/stdout.
        pub command: String = Ty::Str, D::Required;
        /// Seconds to wait for each reply.
        pub timeout_s: f64 = Ty::Float, D::Float(30.0), Range::POSITIVE;
        /// Turns before the episode ends.
        pub max_turns: usize = Ty::Int, D::Int(20), Range::between(1.0, 1000.0);
        /// Past observation/action pairs shown in the step prompt.
        pub history: usize = Ty::Int, D::Int(2), Range::between(0.0, 100.0);
    }
}

impl Default for SokobanSpec {
    fn default() -> Self {
        defaults(Self::KEYS)
    }
}

impl Default for WebshopSpec {
    fn default() -> Self {
        defaults(Self::KEYS)
    }
}

impl Default for SotopiaSpec {
    fn default() -> Self {
        defaults(Self::KEYS)
    }
}

// ---------------------------------------------------------------------------------------------
// Models

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicySpec {
    Transformer(TransformerSpec),
    Hf(HfSpec),
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Positions {
        Rope = "rope",
        Learned = "learned",
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct TransformerSpec {
        /// Transformer blocks.
        pub layers: usize = Ty::Int, D::Int(2), Range::between(1.0, 256.0);
        /// Model width (embedding size).
        pub width: usize = Ty::Int, D::Int(128), Range::between(8.0, 65536.0);
        /// Attention heads; must divide `width`.
        pub heads: usize = Ty::Int, D::Int(4), Range::between(1.0, 256.0);
        /// MLP hidden width.
        pub mlp: usize = Ty::Int, D::Derived("4 x width"), Range::AT_LEAST_ONE;
        /// Longest sequence (prompt + action) in tokens.
        pub context: usize = Ty::Int, D::Int(512), Range::between(16.0, 1_048_576.0);
        /// Position encoding.
        pub positions: Positions = Ty::Name(Positions::NAMES), D::Name("rope");
        /// Share the input embedding and the output projection.
        pub tie_embeddings: bool = Ty::Bool, D::Bool(true);
        /// Image patch size in pixels (image observations only).
        pub patch: usize = Ty::Int, D::Int(8), Range::between(1.0, 256.0);
        /// Rollout sampling options.
        pub sampling: SamplingSpec = Ty::Block("sampling"), D::Block;
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct HfSpec {
        /// The pretrained model: a directory with `config.json`, `*.safetensors` and
        /// `tokenizer.json`, or a `.gguf` file.
        pub path: String = Ty::Model, D::Required;
        /// Rollout sampling options.
        pub sampling: SamplingSpec = Ty::Block("sampling"), D::Block;
        /// Precision of the frozen weights (a LoRA base, the frozen reference); trained weights
        /// and optimiser state stay in f32.
        #[serde(default)]
        pub dtype: WeightDtype = Ty::Name(WeightDtype::NAMES), D::Name("f32");
        /// Low-rank adapters: only they train, over one frozen base that the PRM, the
        /// reference and the critic share.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub lora: Option<LoraSpec> = Ty::Block("lora"), D::Optional("every weight trains");
    }
}

names! {
    /// The precision a pretrained model's frozen weights are held in (absent in graphs saved
    /// before it existed: f32).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub enum WeightDtype {
        #[default]
        F32 = "f32",
        Bf16 = "bf16",
        F16 = "f16",
    }
}

spec! {
    /// LoRA (Hu et al., 2021): each target projection `W` computes
    /// `x W^T + alpha / rank * dropout(x) A^T B^T` with `W` frozen, `A` drawn and `B` zero.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct LoraSpec {
        /// Rank of each adapter (the inner width of `B A`).
        pub rank: usize = Ty::Int, D::Int(8), Range::between(1.0, 65536.0);
        /// The adapter's update is scaled by `alpha / rank`.
        pub alpha: f64 = Ty::Float, D::Float(16.0), Range::POSITIVE;
        /// Dropout on the adapters' input in training passes (seeded; off when scoring).
        pub dropout: f64 = Ty::Float, D::Float(0.0),
            Range { min: Bound::Incl(0.0), max: Bound::Excl(1.0) };
        /// The projections of every layer that get an adapter.
        pub targets: Vec<Projection> = Ty::NameList(Projection::NAMES), D::NameList(Projection::NAMES);
    }
}

names! {
    /// The weight matrices of a decoder layer (Hugging Face names).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Projection {
        Q = "q_proj",
        K = "k_proj",
        V = "v_proj",
        O = "o_proj",
        Gate = "gate_proj",
        Up = "up_proj",
        Down = "down_proj",
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SamplingSpec {
        /// Training rollout temperature.
        pub temperature: f64 = Ty::Float, D::Float(1.0),
            Range { min: Bound::Excl(0.0), max: Bound::Incl(10.0) };
        /// Nucleus sampling mass.
        pub top_p: f64 = Ty::Float, D::Float(1.0), Range::HALF_OPEN_UNIT;
        /// Most tokens generated per turn.
        pub max_new_tokens: usize = Ty::Int, D::Int(64), Range::between(1.0, 65536.0);
        /// Generation stops after any of these strings (e.g. `</action>`).
        pub stop: Vec<String> = Ty::StrList, D::StrList(&[]);
        /// `admissible`: sample only the answers the environment lists for the state (WebShop's
        /// page actions, Sokoban's moves, with `prompt = compact`), and score actions under the
        /// same restriction.
        #[serde(default)]
        pub actions: ActionSpace = Ty::Name(ActionSpace::NAMES), D::Name("free");
    }
}

names! {
    /// Which answers the policy may generate on a turn (absent in graphs saved before it
    /// existed: free).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ActionSpace {
        /// Any text.
        #[default]
        Free = "free",
        /// Only the answers the environment lists for the current state (WebShop's page actions,
        /// Sokoban's moves, under the compact prompts); an environment that lists none samples
        /// freely.
        Admissible = "admissible",
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Device {
        Cpu = "cpu",
        Cuda = "cuda",
    }
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

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum VerifierSignal {
        /// `env.won`: 1 on success, 0 otherwise.
        Won = "won",
        /// `env.score`: the environment's own final score (WebShop reward).
        Score = "score",
        /// `env.return`: the sum of environment step rewards.
        Return = "return",
    }
}

spec! {
    /// The judge's recipe keys; its endpoint keys, flat in the same block, become the backend.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct JudgeSpec {
        /// What the judge scores.
        pub rubric: Rubric = Ty::Name(Rubric::NAMES), D::Name("sotopia");
        /// Which judged quantity is the outcome reward.
        pub outcome: JudgeOutcome = Ty::Name(JudgeOutcome::NAMES), D::Name("goal");
        /// Success iff the outcome is above this.
        pub threshold: f64 = Ty::Float, D::Float(6.0);
        /// Base URL of an OpenAI-compatible judge server.
        #[key = "endpoint"]
        pub backend: JudgeBackend = Ty::Url, D::Optional("the embedded rubric judge");
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JudgeBackend {
    /// The deterministic rubric judge shipped with oprl (a stand-in for an LLM judge).
    Embedded,
    Endpoint(EndpointSpec),
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct EndpointSpec {
        /// Base URL of an OpenAI-compatible server (`http://host:port/v1`).
        pub url: String = Ty::Url, D::Required;
        /// Model name sent to the server.
        pub model: String = Ty::Str, D::Required;
        /// Environment variable holding the API key (the key never enters a graph).
        pub api_key_env: Option<String> = Ty::Str, D::Optional("no API key");
        /// Sampling temperature of the served model.
        pub temperature: f64 = Ty::Float, D::Float(0.0), Range::between(0.0, 10.0);
        /// Seconds to wait for each request.
        pub timeout_s: f64 = Ty::Float, D::Float(60.0), Range::POSITIVE;
        /// Retries after a failed request.
        pub retries: usize = Ty::Int, D::Int(3), Range::between(0.0, 100.0);
        /// Requests in flight at once.
        pub concurrency: usize = Ty::Int, D::Int(4), Range::between(1.0, 1024.0);
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Rubric {
        Sotopia = "sotopia",
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum JudgeOutcome {
        Goal = "goal",
        Overall = "overall",
    }
}

// ---------------------------------------------------------------------------------------------
// PRM

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PrmSpec {
        /// The PRM starts as a copy of the initial policy.
        #[serde(default)]
        pub init: PrmInit = Ty::Name(PrmInit::NAMES), D::Name("policy");
        /// Scale of the implicit reward `beta * (log pi_phi - log pi_ref)`.
        pub beta: f64 = Ty::Float, D::Float(0.05), Range::POSITIVE;
        /// Trajectory score for the pairwise loss: mean or sum over steps.
        pub score: TrajScore = Ty::Name(TrajScore::NAMES), D::Name("mean");
        /// PRM training loss.
        pub loss: PrmLoss = Ty::Name(PrmLoss::NAMES),
            D::Derived("`dpo`; `cross_entropy` under `algorithm prime`");
        /// What `log pi_phi` is compared against.
        pub reference: PrmReference = Ty::Name(PrmReference::NAMES),
            D::Derived("`old_policy`; `frozen` under `algorithm prime`");
        /// PRM learning rate (AdamW).
        pub lr: f64 = Ty::Float, D::Float(1e-6), Range { min: Bound::Excl(0.0), max: Bound::Incl(1.0) };
        /// Gradient-norm clip of the PRM update.
        pub grad_clip: f64 = Ty::Float, D::Float(10.0), Range::POSITIVE;
        /// PRM optimiser steps per iteration.
        pub updates: usize = Ty::Int, D::Int(1), Range::between(1.0, 100.0);
        /// With image observations: the PRM reads the text rendering of each state (true, the
        /// paper's choice) or is a copy of the image-reading policy (false).
        pub text_view: bool = Ty::Bool, D::Bool(true);
    }
}

names! {
    /// Where the PRM's weights start.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PrmInit {
        /// A copy of the initial policy.
        #[default]
        Policy = "policy",
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum TrajScore {
        Mean = "mean",
        Sum = "sum",
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PrmLoss {
        /// Bradley-Terry over (success, failure) pairs per group.
        Dpo = "dpo",
        /// PRIME: BCE(sigmoid(beta * sum log pi_phi/pi_ref), success).
        CrossEntropy = "cross_entropy",
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PrmReference {
        /// The sampling policy snapshot (OPRL).
        OldPolicy = "old_policy",
        /// A frozen copy of the initial policy (PRIME).
        Frozen = "frozen",
    }
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
        /// With `group = anchor_state`: steps whose observations have a difflib similarity
        /// ratio of at least this share a step group (verl-agent's `similarity_thresh`);
        /// `None` groups identical observations only.
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

impl AdvExpr {
    /// The reward signal of a single `episode`, `step` or `token` term (None for the others),
    /// so passes that rewrite only the signal leave the term's other settings untouched.
    pub fn signal_mut(&mut self) -> Option<&mut Signal> {
        match self {
            AdvExpr::Episode { signal, .. }
            | AdvExpr::Step { signal, .. }
            | AdvExpr::Token { signal, .. } => Some(signal),
            _ => None,
        }
    }
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

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Norm {
        /// `(x - mean) / (std + 1e-6)` (GRPO; unbiased std).
        Zscore = "zscore",
        /// Leave-one-out: `x - mean of the others`.
        Rloo = "rloo",
        /// `x - mean`.
        Mean = "mean",
        /// REINFORCE++ baseline: `x - group mean`, then whitened over the batch.
        MeanWhiten = "mean_whiten",
        /// The raw signal.
        None = "none",
    }
}

names! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum StepGroup {
        /// All steps of all trajectories of the task group.
        Pool = "pool",
        /// GiGPO: steps of the task group with an identical current observation.
        AnchorState = "anchor_state",
    }
}

// ---------------------------------------------------------------------------------------------
// Algorithm

/// The policy update, with what each algorithm needs and nothing it does not. (Graphs saved
/// when this was a struct with optional `critic` and `prime` read the same.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlgorithmSpec {
    /// PPO with the recipe's advantage expression.
    Ppo { ppo: PpoSpec },
    /// PRIME: cross-entropy PRM with a frozen reference, leave-one-out returns.
    Prime { ppo: PpoSpec, prime: PrimeSpec },
    /// PPO with a critic and GAE.
    PpoGae { ppo: PpoSpec, critic: CriticSpec },
}

impl AlgorithmSpec {
    /// `ppo`, `prime` or `ppo_gae`, as recipes write it.
    pub fn name(&self) -> &'static str {
        match self {
            AlgorithmSpec::Ppo { .. } => "ppo",
            AlgorithmSpec::Prime { .. } => "prime",
            AlgorithmSpec::PpoGae { .. } => "ppo_gae",
        }
    }

    /// The PPO update every algorithm runs.
    pub fn ppo(&self) -> &PpoSpec {
        match self {
            AlgorithmSpec::Ppo { ppo }
            | AlgorithmSpec::Prime { ppo, .. }
            | AlgorithmSpec::PpoGae { ppo, .. } => ppo,
        }
    }

    /// PPO+GAE's critic.
    pub fn critic(&self) -> Option<&CriticSpec> {
        match self {
            AlgorithmSpec::PpoGae { critic, .. } => Some(critic),
            _ => None,
        }
    }

    /// PRIME's estimator coefficients.
    pub fn prime(&self) -> Option<&PrimeSpec> {
        match self {
            AlgorithmSpec::Prime { prime, .. } => Some(prime),
            _ => None,
        }
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PpoSpec {
        /// Policy learning rate (AdamW).
        pub lr: f64 = Ty::Float, D::Float(5e-7), Range { min: Bound::Excl(0.0), max: Bound::Incl(1.0) };
        /// PPO clip range: the ratio is clipped to [1 - clip, 1 + clip_high].
        #[key = "clip"]
        pub clip_low: f64 = Ty::Float, D::Float(0.2), Range::OPEN_UNIT;
        /// Upper clip range (DAPO's clip-higher).
        pub clip_high: f64 = Ty::Float, D::Derived("`clip`"), Range::OPEN_UNIT;
        /// Dual-clip constant for negative advantages.
        pub dual_clip: f64 = Ty::Float, D::Float(3.0), Range { min: Bound::Excl(1.0), max: Bound::Unbounded };
        /// Entropy bonus coefficient.
        pub entropy: f64 = Ty::Float, D::Float(0.001), Range::NON_NEGATIVE;
        /// KL penalty estimator against the old policy (`k3` is low_var_kl).
        #[serde(default, deserialize_with = "none_is_null")]
        pub kl: Option<KlKind> = Ty::Name(KlKind::NAMES_OR_NONE), D::Name("none");
        /// KL penalty coefficient.
        #[serde(default)]
        pub kl_coef: f64 = Ty::Float, D::Float(0.001), Range::NON_NEGATIVE;
        /// Passes over the batch per iteration.
        pub epochs: usize = Ty::Int, D::Int(1), Range::between(1.0, 100.0);
        /// Trajectories per minibatch.
        pub minibatch: usize = Ty::Int, D::Derived("the whole batch, `tasks x group`"), Range::AT_LEAST_ONE;
        /// Gradient-norm clip of the policy update.
        pub grad_clip: f64 = Ty::Float, D::Float(1.0), Range::POSITIVE;
        /// How token losses are averaged.
        pub loss_agg: LossAgg = Ty::Name(LossAgg::NAMES), D::Name("token_mean");
        /// AdamW weight decay.
        pub weight_decay: f64 = Ty::Float, D::Float(0.0), Range::NON_NEGATIVE;
    }
}

names! {
    /// veRL's `kl_penalty` estimators, under their veRL names too.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum KlKind {
        K1 = "k1" | "kl",
        Abs = "abs",
        K2 = "k2" | "mse",
        K3 = "k3" | "low_var_kl",
    }
}

names! {
    /// Graphs saved before the names were snake_case wrote them in kebab-case.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum LossAgg {
        TokenMean = "token_mean" | "token-mean",
        SeqMeanTokenMean = "seq_mean_token_mean" | "seq-mean-token-mean",
        SeqMeanTokenSum = "seq_mean_token_sum" | "seq-mean-token-sum",
        SeqMeanTokenSumNorm = "seq_mean_token_sum_norm" | "seq-mean-token-sum-norm",
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct CriticSpec {
        /// Critic learning rate.
        #[key = "critic_lr"]
        pub lr: f64 = Ty::Float, D::Float(1e-5), Range { min: Bound::Excl(0.0), max: Bound::Incl(1.0) };
        /// Value-function clip range.
        pub value_clip: f64 = Ty::Float, D::Float(0.5), Range::POSITIVE;
        /// Discount inside a step row.
        pub gamma: f64 = Ty::Float, D::Float(1.0), Range::UNIT;
        /// GAE lambda.
        pub lambda: f64 = Ty::Float, D::Float(1.0), Range::UNIT;
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct PrimeSpec {
        /// Weight of the leave-one-out process-reward returns.
        pub process_coef: f64 = Ty::Float, D::Float(5.0), Range::NON_NEGATIVE;
        /// Weight of the leave-one-out outcome.
        pub outcome_coef: f64 = Ty::Float, D::Float(5.0), Range::NON_NEGATIVE;
    }
}

// ---------------------------------------------------------------------------------------------
// Loop, evaluation, output

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct TrainSpec {
        /// OPRL iterations.
        pub iterations: usize = Ty::Int, D::Int(200), Range::between(1.0, 10_000_000.0);
        /// Tasks per iteration (B).
        pub tasks: usize = Ty::Int, D::Int(32), Range::between(1.0, 100_000.0);
        /// Trajectories per task (N).
        pub group: usize = Ty::Int, D::Int(8), Range::between(1.0, 1024.0);
        /// Seed of every random stream.
        pub seed: u64 = Ty::Int, D::Int(0), Range::NON_NEGATIVE;
        /// Where models run.
        pub device: Device = Ty::Name(Device::NAMES), D::Name("cpu");
        /// Worker threads for candle (0 = let oprl choose).
        pub threads: usize = Ty::Int, D::Int(0), Range::between(0.0, 1024.0);
        /// Padded tokens (rows x longest prompt + action) one forward/backward with gradients
        /// may hold: every update (policy, critic, PRM) sums its gradients over micro-batches
        /// of this size and then takes one optimiser step, the same step as one pass over the
        /// whole minibatch or pair set. Bounds training memory; 0 = one pass (no limit).
        pub micro_batch_tokens: usize = Ty::Int, D::Int(0), Range::NON_NEGATIVE;
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct EvalSpec {
        /// Evaluate every this many iterations and at the end (0 = only at the end).
        pub every: usize = Ty::Int, D::Int(10), Range::NON_NEGATIVE;
        /// Held-out evaluation tasks.
        pub tasks: usize = Ty::Int, D::Int(64), Range::between(1.0, 100_000.0);
        /// Evaluation sampling temperature.
        pub temperature: f64 = Ty::Float, D::Float(0.4), Range::between(0.0, 10.0);
    }
}

spec! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct OutputSpec {
        /// Parent directory of run directories.
        pub dir: String = Ty::Str, D::Str("runs");
        /// Checkpoint every this many iterations and at the end (0 = only at the end). Small
        /// models iterate in seconds, so frequent checkpoints cost little and lose little.
        pub checkpoint_every: usize = Ty::Int, D::Int(5), Range::NON_NEGATIVE;
        /// Full episodes kept as text transcripts per evaluation.
        pub transcripts: usize = Ty::Int, D::Int(4), Range::NON_NEGATIVE;
    }
}
