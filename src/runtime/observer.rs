//! What a run tells the outside world while it trains, as typed events: the library never
//! prints; the command line ([`crate::cli`]) implements [`Observer`] with a progress bar, JSON
//! lines or nothing.

use std::path::Path;

use crate::env::EnvError;

use super::metrics::{EvalResult, IterationMetrics};
use super::RuntimeError;

/// Something worth a line for the person watching a run.
#[derive(Debug, Clone, Copy)]
pub enum Note<'a> {
    /// The held-out evaluation of the untrained policy (iteration 0).
    InitialEval(&'a EvalResult),
    /// A held-out evaluation during training, next to that iteration's training success.
    Eval {
        eval: &'a EvalResult,
        train_success: f64,
    },
    /// An environment call failed and is tried again (a warning: the run goes on).
    EnvRetry {
        env: usize,
        call: &'static str,
        error: &'a EnvError,
    },
    /// Training stopped early (interrupted, or `stop_after`) after writing a checkpoint.
    Stopped {
        iteration: usize,
        checkpoint: &'a Path,
    },
    /// The run failed with this error (which the run also returns).
    Failed(&'a RuntimeError),
}

/// Told what a run does, in order. Every method does nothing by default. Methods take `&self`
/// because an observer is shared with the rollouts (which report environment retries).
pub trait Observer: Send + Sync {
    /// The run starts (fresh or resumed) in `run_dir`, at iteration `start` of `iterations`.
    fn run_started(&self, _run_dir: &Path, _start: usize, _iterations: usize) {}
    /// An iteration is complete; `metrics` is the line written to `metrics.jsonl`.
    fn iteration(&self, _metrics: &IterationMetrics) {}
    fn note(&self, _note: Note<'_>) {}
    /// The training loop is over (completed, stopped or failed).
    fn run_finished(&self) {}
    /// Whether the person watching asked the run to stop (Ctrl-C), checked after every
    /// iteration: the run then writes a checkpoint and ends as interrupted.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// The observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}
