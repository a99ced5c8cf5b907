//! `oprl eval RUN_DIR [--checkpoint N]`: the held-out evaluation of a saved policy, as one JSON
//! line on stdout and a sentence on stderr.

use std::path::PathBuf;
use std::sync::Arc;

use super::progress::{ProgressMode, Reporter};
use super::{fail, EXIT_ERRORS, EXIT_OK};
use crate::runtime::eval_checkpoint;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    pub run_dir: PathBuf,
    /// The checkpoint's iteration (default: the last).
    #[arg(long)]
    pub checkpoint: Option<usize>,
}

pub fn run(args: &EvalArgs) -> i32 {
    // Environment retries are shown as warnings.
    let warnings = Arc::new(Reporter::new(ProgressMode::Quiet));
    match eval_checkpoint(&args.run_dir, args.checkpoint, Some(warnings)) {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            eprintln!(
                "iteration {}: held-out success {:.1}% on {} tasks (mean score {:.3}, {:.1} turns, {:.1}% invalid)",
                r.iteration,
                100.0 * r.success_rate,
                r.tasks,
                r.mean_score,
                r.mean_turns,
                100.0 * r.invalid_rate
            );
            EXIT_OK
        }
        Err(e) => fail(e, EXIT_ERRORS),
    }
}
