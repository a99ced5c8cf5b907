//! The experiment commands as library functions for `main.rs`: each prints and returns the
//! process exit code (0 ok, 1 failed, 2 bad arguments).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::compare::Comparison;
use super::sweep::{self, RunStatus, SweepSpec, SweptKey};
use super::{bench, report, runs, write_file, ExperimentError};
use crate::runtime::ProgressMode;

/// What `oprl sweep` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct SweepArgs {
    pub recipes: Vec<PathBuf>,
    pub overrides: Vec<String>,
    pub seeds: usize,
    /// `KEY=V1,V2,...` each.
    pub sweeps: Vec<String>,
    pub jobs: usize,
    pub out: Option<PathBuf>,
    pub quiet: bool,
    /// Run exactly one run of the one recipe into `out` (what parallel sweeps spawn).
    pub single: bool,
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

/// `oprl sweep RECIPE... [--seeds N] [--sweep KEY=V1,V2]... [--jobs N] [--out DIR]`.
pub fn sweep_command(args: &SweepArgs) -> i32 {
    let sweeps: Result<Vec<SweptKey>, _> = args.sweeps.iter().map(|s| SweptKey::parse(s)).collect();
    let sweeps = match sweeps {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let progress = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Bar
    };
    let spec = SweepSpec {
        recipes: args.recipes.clone(),
        overrides: args.overrides.clone(),
        seeds: if args.single { 1 } else { args.seeds.max(1) },
        sweeps,
        jobs: args.jobs.max(1),
        out: args.out.clone().unwrap_or_else(default_sweep_dir),
        progress,
        exe: None,
    };
    if args.single {
        return single(&spec);
    }
    match sweep::run_sweep(&spec) {
        Ok(index) => {
            let failed = index
                .runs
                .iter()
                .filter(|r| r.status != RunStatus::Completed)
                .count();
            let dir = spec.out.display();
            eprintln!(
                "{} runs in {dir} ({failed} not completed); `oprl report {dir}` and `oprl compare {dir}` read them",
                index.runs.len(),
            );
            if failed > 0 {
                1
            } else {
                0
            }
        }
        Err(e) => fail(e),
    }
}

/// One run of one recipe into `spec.out` (the overrides already hold the seed).
fn single(spec: &SweepSpec) -> i32 {
    let [recipe] = spec.recipes.as_slice() else {
        eprintln!("error: `--single` takes exactly one recipe");
        return 2;
    };
    let compiled = crate::compile::compile_path(recipe, &spec.overrides);
    crate::cli::print_diagnostics(&compiled);
    let has_errors = compiled.has_errors();
    let Some(graph) = compiled.graph.filter(|_| !has_errors) else {
        eprintln!("{}: not run, the recipe has errors", recipe.display());
        return 1;
    };
    match sweep::run_single(recipe, graph, &spec.out, spec.progress) {
        Ok(RunStatus::Completed) => 0,
        Ok(_) => 1,
        Err(e) => fail(e),
    }
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
