//! The experiment commands as library functions for `main.rs`: each prints and returns the
//! process exit code (0 ok, 1 failed, 2 bad arguments). `oprl run` lives here because one
//! command covers one run (handed to [`crate::runtime::cli`]) and many (a sweep directory).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::board::Board;
use super::compare::Comparison;
use super::sweep::{self, RunStatus, SweepIndex, SweepSpec, SweptKey};
use super::{bench, io_err, launch, report, runs, write_file, ExperimentError};
use crate::runtime::ProgressMode;

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

fn fail(e: ExperimentError) -> i32 {
    eprintln!("error: {e}");
    1
}

fn default_sweep_dir() -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Path::new("runs").join(format!("sweep-{}", crate::runtime::rundir::timestamp(secs)))
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
pub fn run_command(args: &RunArgs, sweep_layout: bool) -> i32 {
    if !(sweep_layout || args.is_sweep()) {
        return crate::runtime::cli::run_command(&crate::runtime::cli::RunArgs {
            recipe: args.recipes.first().cloned(),
            overrides: args.overrides.clone(),
            out: args.out.clone(),
            resume: args.resume.clone(),
            quiet: args.quiet,
            json_lines: args.json_lines,
        });
    }
    let result = match &args.resume {
        Some(dir) => resume_sweep(dir, args.jobs, args.progress(), None),
        None => spec_of(args).and_then(|spec| run_sweep(&spec)),
    };
    match result {
        Ok((dir, index)) => {
            if !args.quiet {
                eprintln!("{}", closing_note(&dir, &index));
            }
            let all_completed = index.runs.iter().all(|r| r.status == RunStatus::Completed);
            if all_completed {
                0
            } else {
                1
            }
        }
        Err(e @ (ExperimentError::BadSweep(_) | ExperimentError::NoSeeds)) => {
            eprintln!("error: {e}");
            2
        }
        Err(e) => fail(e),
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
        progress: args.progress(),
        exe: None,
    })
}

fn exe_or_current(exe: Option<&Path>) -> Result<PathBuf, ExperimentError> {
    match exe {
        Some(e) => Ok(e.to_path_buf()),
        None => std::env::current_exe().map_err(io_err(Path::new("oprl"))),
    }
}

/// Plans a sweep (compiling every configuration first), writes its `sweep.json` and runs it.
/// Returns the sweep directory and the final index.
pub fn run_sweep(spec: &SweepSpec) -> Result<(PathBuf, SweepIndex), ExperimentError> {
    let runs = sweep::plan(spec)?;
    if spec.out.join("sweep.json").exists() {
        return Err(ExperimentError::SweepExists(spec.out.clone()));
    }
    std::fs::create_dir_all(&spec.out).map_err(io_err(&spec.out))?;
    let jobs = spec.jobs.max(1);
    let mut index = SweepIndex {
        seeds: spec.seeds.max(1),
        jobs,
        runs,
    };
    index.write(&spec.out)?;
    let exe = exe_or_current(spec.exe.as_deref())?;
    let board = Board::new(spec.progress, index.runs.len());
    board.note(&format!(
        "{} runs into {} ({} at a time)",
        index.runs.len(),
        spec.out.display(),
        jobs.min(index.runs.len())
    ));
    launch::launch(&spec.out, &mut index, jobs, &exe, &board)?;
    Ok((spec.out.clone(), index))
}

/// Runs every run of the sweep in `dir` that has not completed: from its last checkpoint when
/// it has a run directory, else from the start.
pub fn resume_sweep(
    dir: &Path,
    jobs: Option<usize>,
    progress: ProgressMode,
    exe: Option<&Path>,
) -> Result<(PathBuf, SweepIndex), ExperimentError> {
    let mut index = SweepIndex::read(dir)?;
    let jobs = jobs.unwrap_or(index.jobs).max(1);
    let exe = exe_or_current(exe)?;
    let board = Board::new(progress, index.runs.len());
    let left = index
        .runs
        .iter()
        .filter(|r| r.status != RunStatus::Completed)
        .count();
    board.note(&format!(
        "{left} of {} runs of {} to finish ({} at a time)",
        index.runs.len(),
        dir.display(),
        jobs.min(left.max(1))
    ));
    launch::launch(dir, &mut index, jobs, &exe, &board)?;
    Ok((dir.to_path_buf(), index))
}

/// The line printed when a sweep ends: counts by status and what to do next.
pub fn closing_note(dir: &Path, index: &SweepIndex) -> String {
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

/// `oprl report RUN_DIR... [--out DIR]`: default out is `report/` inside the single sweep or
/// run directory given, else `./report`.
pub fn report_command(paths: &[PathBuf], out: Option<&Path>) -> i32 {
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| match paths {
        [one] => one.join("report"),
        _ => PathBuf::from("report"),
    });
    let loaded = match runs::load_all(paths) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match report::write_report(&loaded, &out) {
        Ok(files) => {
            println!("{}", files.html.display());
            eprintln!(
                "{} runs, {} plots (PNG and SVG) in {}",
                loaded.len(),
                files.plots.len(),
                out.join("plots").display()
            );
            0
        }
        Err(e) => fail(e),
    }
}

/// `oprl compare RUN_DIR... [--target 0.6] [--out DIR]`: prints the Markdown tables; with
/// `--out`, also writes `compare.md`, `compare.csv` and `iterations_to_target.csv` there.
pub fn compare_command(paths: &[PathBuf], target: f64, out: Option<&Path>) -> i32 {
    let loaded = match runs::load_all(paths) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let table = Comparison::new(&loaded, target);
    let md = table.markdown();
    print!("{md}");
    if let Some(dir) = out {
        let written = write_file(&dir.join("compare.md"), md.as_bytes())
            .and_then(|_| write_file(&dir.join("compare.csv"), table.csv().as_bytes()))
            .and_then(|_| {
                write_file(
                    &dir.join("iterations_to_target.csv"),
                    table.reach_csv().as_bytes(),
                )
            });
        if let Err(e) = written {
            return fail(e);
        }
    }
    0
}

/// `oprl bench RECIPE [--set k=v]... [--iterations N]`.
pub fn bench_command(recipe: &Path, overrides: &[String], iterations: usize) -> i32 {
    match bench::bench(recipe, overrides, iterations.max(1)) {
        Ok(metrics) => {
            print!("{}", bench::table(&metrics));
            0
        }
        Err(e) => fail(e),
    }
}
