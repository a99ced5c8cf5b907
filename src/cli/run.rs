//! `oprl run` (and its hidden alias `oprl sweep`): one run into a run directory, or many (several
//! recipes, `--seeds`, `--sweep`) into a sweep directory; `--resume` continues either. Prints
//! a short report and returns the exit code (0 ok, 1 failed, 2 bad arguments).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::board::Board;
use super::progress::{ProgressMode, Reporter};
use super::{fail, print_diagnostics, EXIT_ERRORS, EXIT_OK, EXIT_USAGE};
use crate::compile;
use crate::experiments::index::{RunStatus, SweepIndex};
use crate::experiments::launch::{resume_sweep, run_sweep};
use crate::experiments::sweep::{SweepSpec, SweptKey};
use crate::experiments::ExperimentError;
use crate::runtime::{self, RunOptions, RunSummary};

/// The arguments of `oprl run` (and of its alias `oprl sweep`, which always makes a sweep
/// directory).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Recipe files; several make a sweep (each one a method of the comparison).
    #[arg(required_unless_present = "resume", conflicts_with = "resume")]
    pub recipes: Vec<PathBuf>,
    /// Override a key, in recipe syntax: `--set train.iterations=50` (every run).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Run each configuration with N seeds: the recipe's `train.seed`, +1, ..., +N-1 (start
    /// elsewhere with `--set train.seed=S`). Makes a sweep directory.
    #[arg(long, value_name = "N", conflicts_with = "resume")]
    pub seeds: Option<usize>,
    /// Sweep a key over values in recipe syntax: `--sweep train.group=4,8`; repeat for a grid.
    /// Makes a sweep directory.
    #[arg(
        long = "sweep",
        value_name = "PATH=V1,V2,...",
        conflicts_with = "resume"
    )]
    pub sweeps: Vec<String>,
    /// With several runs: how many run at a time, as child processes sharing the cores
    /// (default 1; when resuming a sweep, the number it was started with).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// The run directory (default `<output.dir>/<recipe>-<timestamp>`); with several runs, the
    /// sweep directory that holds one run directory each (default `runs/sweep-<timestamp>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue a run directory from its last checkpoint, or every unfinished run of a sweep
    /// directory.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// No progress output (with several runs: failures only).
    #[arg(long)]
    pub quiet: bool,
    /// One JSON object of metrics per iteration on stdout (with several runs: with `run`,
    /// `method` and `seed` added, and one object with a `status` when a run ends).
    #[arg(long)]
    pub json_lines: bool,
}

/// Prints why an experiment command failed (a recipe's diagnostics first) and returns 1.
pub(super) fn experiment_failed(e: ExperimentError) -> i32 {
    if let ExperimentError::Recipe { compilation, .. } = &e {
        print_diagnostics(compilation);
    }
    fail(e, EXIT_ERRORS)
}

fn default_sweep_dir() -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Path::new("runs").join(format!("sweep-{}", runtime::rundir::timestamp(secs)))
}

impl RunArgs {
    /// Whether these arguments ask for a sweep directory rather than one run directory.
    pub fn is_sweep(&self) -> bool {
        self.recipes.len() > 1
            || self.seeds.is_some()
            || !self.sweeps.is_empty()
            || self
                .resume
                .as_ref()
                .is_some_and(|d| d.join("sweep.json").is_file())
    }

    fn progress(&self) -> ProgressMode {
        if self.json_lines {
            ProgressMode::JsonLines
        } else if self.quiet {
            ProgressMode::Quiet
        } else {
            ProgressMode::Bar
        }
    }
}

/// `oprl run RECIPE...`: one run into a run directory, or (several recipes, `--seeds`,
/// `--sweep`, a sweep to resume, or `sweep_layout` for `oprl sweep`) several runs into a sweep
/// directory.
pub fn run(args: &RunArgs, sweep_layout: bool) -> i32 {
    if !(sweep_layout || args.is_sweep()) {
        return run_one(args);
    }
    let mut board = Board::new(args.progress());
    let result = match &args.resume {
        Some(dir) => resume_sweep(dir, args.jobs, None, &mut board),
        None => spec_of(args).and_then(|spec| run_sweep(&spec, &mut board)),
    };
    match result {
        Ok((dir, index)) => {
            if !args.quiet {
                eprintln!("{}", closing_note(&dir, &index));
            }
            let all_completed = index.runs.iter().all(|r| r.status == RunStatus::Completed);
            if all_completed {
                EXIT_OK
            } else {
                EXIT_ERRORS
            }
        }
        Err(e @ (ExperimentError::BadSweep(_) | ExperimentError::NoSeeds)) => fail(e, EXIT_USAGE),
        Err(e) => experiment_failed(e),
    }
}

/// `oprl run RECIPE [--set k=v]... [--out DIR]` or `oprl run --resume RUN_DIR`: one run
/// directory.
fn run_one(args: &RunArgs) -> i32 {
    let opts = RunOptions {
        out: args.out.clone(),
        observer: Some(Arc::new(Reporter::new(args.progress()).with_ctrlc())),
        recipe_source: None,
        stop_after: None,
    };
    let result = match (&args.resume, args.recipes.first()) {
        (Some(dir), None) => runtime::resume(dir, &opts),
        (None, Some(recipe)) => {
            let compilation = compile::compile_path(recipe, &args.overrides);
            print_diagnostics(&compilation);
            let has_errors = compilation.has_errors();
            let Some(graph) = compilation.graph.filter(|_| !has_errors) else {
                eprintln!("{}: not run, the recipe has errors", recipe.display());
                return EXIT_ERRORS;
            };
            let opts = RunOptions {
                recipe_source: std::fs::read_to_string(recipe).ok(),
                ..opts
            };
            runtime::run(graph, &opts)
        }
        _ => return fail("give either a recipe or `--resume RUN_DIR`", EXIT_USAGE),
    };
    match result {
        Ok(summary) => {
            if !args.quiet {
                report(&summary);
            }
            EXIT_OK
        }
        Err(e) => fail(e, EXIT_ERRORS),
    }
}

/// The few lines printed when one run ends.
fn report(summary: &RunSummary) {
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

fn spec_of(args: &RunArgs) -> Result<SweepSpec, ExperimentError> {
    let sweeps = args
        .sweeps
        .iter()
        .map(|s| SweptKey::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if args.seeds == Some(0) {
        return Err(ExperimentError::NoSeeds);
    }
    Ok(SweepSpec {
        recipes: args.recipes.clone(),
        overrides: args.overrides.clone(),
        seeds: args.seeds.unwrap_or(1),
        sweeps,
        jobs: args.jobs.unwrap_or(1).max(1),
        out: args.out.clone().unwrap_or_else(default_sweep_dir),
        exe: None,
    })
}

/// The line printed when a sweep ends: counts by status and what to do next.
fn closing_note(dir: &Path, index: &SweepIndex) -> String {
    let count = |s: RunStatus| index.runs.iter().filter(|r| r.status == s).count();
    let d = dir.display();
    let mut text = format!(
        "{} runs in {d}: {} completed",
        index.runs.len(),
        count(RunStatus::Completed)
    );
    let failed: Vec<&str> = index
        .runs
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .map(|r| r.dir.as_str())
        .collect();
    if !failed.is_empty() {
        text.push_str(&format!(
            ", {} failed ({})",
            failed.len(),
            failed.join(", ")
        ));
    }
    let unfinished =
        count(RunStatus::Interrupted) + count(RunStatus::Pending) + count(RunStatus::Running);
    if unfinished > 0 {
        text.push_str(&format!(", {unfinished} not finished"));
    }
    if unfinished + failed.len() > 0 {
        text.push_str(&format!("; `oprl run --resume {d}` runs the rest"));
    }
    text.push_str(&format!(
        "\n`oprl report {d}` and `oprl compare {d}` read them"
    ));
    text
}
