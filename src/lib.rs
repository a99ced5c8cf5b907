//! oprl: Online Process Reward Learning for language-model agents, driven by recipe files.
//!
//! The pipeline is the module tree:
//! `syntax` (grammar, AST with spans) → `compile` (resolve, check, lower to [`graph::ExecGraph`])
//! → `runtime` (the interpreter), with `algo` (the maths), `model` (candle LMs), `env`
//! (environments) and `reward` (outcome reward sources) beside it. `diagnostics` holds the error
//! codes and renderers shared by every phase; `text` the character scanning that modules which
//! must not import each other share.

pub mod algo;
pub mod cli;
pub mod compile;
pub mod diagnostics;
pub mod env;
pub mod experiments;
pub mod graph;
pub mod image;
pub mod lsp;
pub mod model;
pub mod openai;
pub mod reward;
pub mod runtime;
pub mod syntax;
pub mod text;
