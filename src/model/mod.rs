//! Causal language models on candle: the small transformer trained from scratch, the Hugging
//! Face Qwen2 loader, tokenizers, batched KV-cache sampling, scoring and checkpoints.
//!
//! One type, [`LanguageModel`], serves as policy, PRM, `theta_old` and frozen reference. It keeps
//! two views of the same weights: Var-backed tensors that record the autograd graph (updates) and
//! detached tensors sharing the same storage (rollouts and `logp_old`: no graph, and they see
//! every optimiser step because the optimiser writes into the Vars in place).
//!
//! Every call takes a [`Batch`] (prompts, and per row an optional image and optional admissible
//! answers) through a handful of entry points: [`LanguageModel::generate`],
//! [`LanguageModel::score`], [`LanguageModel::score_and_values`], [`LanguageModel::logits`], and
//! [`LanguageModel::generate_uncached`] (the reference for tests).
//!
//! Batches are left-padded: row `i` holds pad columns, then its prompt, then (when scoring) its
//! action, right-padded. Positions count from each row's first real token and attention never
//! sees pad keys, so batched results equal unbatched ones. Sampling runs on the host from a
//! seeded ChaCha RNG; decode steps use a preallocated KV cache and a fused attention kernel, and
//! finished rows are dropped from the batch. Fused CPU kernels (softmax, masked softmax,
//! RMSNorm, log-prob + entropy) each define their own backward (see [`ops`]).
//!
//! Layout (each file has one job): [`weights`] (building, copying, saving and loading the
//! weights), [`batch`] (the inputs of a call and how they enter the decoder), [`generate`]
//! (sampling), [`score`] (log-probs, entropies, values, logits), [`decoder`] and [`vision`]
//! (the networks), [`layers`] (their linear layer), [`params`] (named parameters and their seeded draw), [`export`] (a model as a
//! Hugging Face directory), [`error`].
//!
//! Beyond the contract in MODEL_API.md: [`LanguageModel::vars`] (stable order for the
//! optimiser), [`LanguageModel::add_value_head`], [`LanguageModel::score_and_values`],
//! [`LanguageModel::logits`], [`LanguageModel::generate_uncached`],
//! [`Optimizer::step_with_grads`], [`hf::tokenizer`] and [`bench::run`].

pub mod batch;
pub mod bench;
pub mod chat;
pub mod checkpoint;
pub mod choices;
pub mod decoder;
pub mod error;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod hf;
pub mod layers;
pub mod lora;
pub mod ops;
pub mod optim;
pub mod params;
pub mod sample;
pub mod score;
pub mod tokenizer;
pub mod vision;
pub mod weights;

pub use batch::Batch;
pub use choices::ChoiceSet;
pub use decoder::{DecoderConfig, KvCache, PositionKind};
pub use error::ModelError;
pub use generate::{Generation, RowSampling, SampleOptions, TokenEvent};
pub use optim::{GradSum, Optimizer};
pub use score::Scored;
pub use tokenizer::{CharVocab, Tokenizer};
pub use vision::VisionConfig;
pub use weights::{small_config, LanguageModel};

#[cfg(test)]
mod tests;
