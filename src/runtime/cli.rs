//! The `oprl run` and `oprl eval` commands as library functions: compile (or reopen) a run,
//! drive it, print a short report, and return the process exit code.

use std::path::{Path, PathBuf};

use super::{eval_checkpoint, resume, run, ProgressMode, RunOptions, RunSummary};
use crate::compile;

/// What `oprl run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunArgs {
    /// The recipe (absent with `--resume`).
    pub recipe: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub out: Option<PathBuf>,
    pub resume: Option<PathBuf>,
    pub quiet: bool,
    pub json_lines: bool,
}

fn report(summary: &RunSummary, quiet: bool) {
    if quiet {
        return;
    }
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    eprintln!(
        "{} after {} iterations ({:?}, {:.0} s) in {}",
        summary.recipe,
        summary.iterations,
        summary.ending,
        summary.wall_seconds,
        summary.run_dir.display()
    );
    if let Some(e) = &summary.initial_eval {
        eprintln!("  held-out success, untrained: {}", pct(e.success_rate));
    }
    if let Some(e) = &summary.final_eval {
        eprintln!(
            "  held-out success, iteration {}: {}",
            e.iteration,
            pct(e.success_rate)
        );
    }
    if let Some(e) = &summary.best_eval {
        eprintln!(
            "  best: {} at iteration {}",
            pct(e.success_rate),
            e.iteration
        );
    }
}

/// `oprl run RECIPE [--set k=v]... [--out DIR]` or `oprl run --resume RUN_DIR`.
pub fn run_command(args: &RunArgs) -> i32 {
    let progress = if args.json_lines {
        ProgressMode::JsonLines
    } else if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Bar
    };
    let opts = RunOptions {
        out: args.out.clone(),
        progress,
        recipe_source: None,
        handle_ctrlc: true,
        stop_after: None,
    };
    let result = match (&args.resume, &args.recipe) {
        (Some(dir), None) => resume(dir, &opts),
        (None, Some(recipe)) => {
            let compilation = compile::compile_path(recipe, &args.overrides);
            crate::cli::print_diagnostics(&compilation);
            let has_errors = compilation.has_errors();
            let Some(graph) = compilation.graph.filter(|_| !has_errors) else {
                eprintln!("{}: not run, the recipe has errors", recipe.display());
                return 1;
            };
            let opts = RunOptions {
                recipe_source: std::fs::read_to_string(recipe).ok(),
                ..opts
            };
            run(graph, &opts)
        }
        _ => {
            eprintln!("error: give either a recipe or `--resume RUN_DIR`");
            return 2;
        }
    };
    match result {
        Ok(summary) => {
            report(&summary, args.quiet);
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `oprl eval RUN_DIR [--checkpoint N]`.
pub fn eval_command(run_dir: &Path, checkpoint: Option<usize>) -> i32 {
    match eval_checkpoint(run_dir, checkpoint) {
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
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
