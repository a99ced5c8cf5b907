//! Seeds and sweeps: expands recipes x swept values x seeds into a plan of runs, compiles every
//! one before any starts, and runs them (in this process one at a time, or N at a time as child
//! `oprl sweep --single` processes with candle's threads divided among them), each into its own
//! run directory of a sweep directory indexed by `sweep.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::{io_err, ExperimentError};
use crate::compile;
use crate::graph::ExecGraph;
use crate::runtime::{self, Ending, ProgressMode, RunOptions};

/// One `--sweep KEY=V1,V2,...`: the values are recipe syntax, each applied as `--set KEY=V`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptKey {
    pub key: String,
    pub values: Vec<String>,
}

/// Splits `text` at commas outside brackets, braces, parentheses and string quotes, so that
/// `room=[6,6],[8,8]` has two values.
pub fn split_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out
}

impl SweptKey {
    /// Parses `KEY=V1,V2,...`.
    pub fn parse(text: &str) -> Result<SweptKey, ExperimentError> {
        let bad = || ExperimentError::BadSweep(text.to_string());
        let (key, values) = text.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        let values = split_values(values);
        if key.is_empty() || values.iter().any(|v| v.is_empty()) {
            return Err(bad());
        }
        Ok(SweptKey {
            key: key.to_string(),
            values,
        })
    }
}

/// What `oprl sweep` was asked to do.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub recipes: Vec<PathBuf>,
    /// `--set` overrides applied to every run.
    pub overrides: Vec<String>,
    /// Seeds per configuration: the recipe's `train.seed`, +1, +2, ...
    pub seeds: usize,
    /// Swept keys; several give their cartesian product.
    pub sweeps: Vec<SweptKey>,
    /// Runs at a time (1 = in this process).
    pub jobs: usize,
    /// The sweep directory.
    pub out: PathBuf,
    pub progress: ProgressMode,
    /// The `oprl` executable that runs children when `jobs > 1` (default: this process's).
    pub exe: Option<PathBuf>,
}

/// Where a planned run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Completed,
    Interrupted,
    Failed,
}

/// One run of a sweep, as indexed in `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Run directory, relative to the sweep directory.
    pub dir: String,
    pub recipe: PathBuf,
    /// The method label runs are grouped by: recipe name plus swept `key=value`s.
    pub method: String,
    pub seed: u64,
    /// Every override the run was compiled with (the spec's, the swept values', the seed's).
    pub overrides: Vec<String>,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// `sweep.json`: the index of a sweep directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepIndex {
    pub seeds: usize,
    pub jobs: usize,
    pub runs: Vec<PlannedRun>,
}

impl SweepIndex {
    pub fn read(sweep_dir: &Path) -> Result<SweepIndex, ExperimentError> {
        let path = sweep_dir.join("sweep.json");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|source| ExperimentError::Json { path, source })
    }

    fn write(&self, sweep_dir: &Path) -> Result<(), ExperimentError> {
        let json = serde_json::to_string_pretty(self).expect("the index serialises");
        let path = sweep_dir.join("sweep.json");
        runtime::rundir::write_atomic(&path, json.as_bytes())?;
        Ok(())
    }
}

/// Every combination of one value per swept key, as `(key, value)` lists, in order.
pub fn combinations(sweeps: &[SweptKey]) -> Vec<Vec<(String, String)>> {
    let mut combos = vec![Vec::new()];
    for s in sweeps {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                s.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((s.key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// A name safe in a path: letters, digits, `-`, `_`, `.`, `=`, others become `_`.
pub fn path_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn compile_graph(recipe: &Path, overrides: &[String]) -> Result<ExecGraph, ExperimentError> {
    let compilation = compile::compile_path(recipe, overrides);
    if compilation.has_errors() || compilation.graph.is_none() {
        crate::cli::print_diagnostics(&compilation);
        return Err(ExperimentError::Recipe {
            recipe: recipe.to_path_buf(),
            overrides: overrides.to_vec(),
        });
    }
    Ok(compilation.graph.expect("checked above"))
}

/// Expands a spec into its runs (recipe, then swept values, then seed order), compiling each
/// so a bad value stops the sweep before anything runs. Returns the runs and their graphs.
pub fn plan(spec: &SweepSpec) -> Result<Vec<(PlannedRun, ExecGraph)>, ExperimentError> {
    let mut out = Vec::new();
    for recipe in &spec.recipes {
        for combo in combinations(&spec.sweeps) {
            let mut overrides = spec.overrides.clone();
            overrides.extend(combo.iter().map(|(k, v)| format!("{k}={v}")));
            let base = compile_graph(recipe, &overrides)?;
            let mut method = base.recipe.clone();
            for (k, v) in &combo {
                method.push_str(&format!(",{k}={v}"));
            }
            for i in 0..spec.seeds.max(1) {
                let seed = base.train.seed + i as u64;
                let mut run_overrides = overrides.clone();
                run_overrides.push(format!("train.seed={seed}"));
                let graph = compile_graph(recipe, &run_overrides)?;
                let planned = PlannedRun {
                    dir: path_safe(&format!("{method}-seed{seed}")),
                    recipe: recipe.clone(),
                    method: method.clone(),
                    seed,
                    overrides: run_overrides,
                    status: RunStatus::Pending,
                    error: None,
                };
                out.push((planned, graph));
            }
        }
    }
    Ok(out)
}

/// Candle threads for each of `jobs` concurrent runs on `cores` cores.
pub fn threads_per_job(cores: usize, jobs: usize) -> usize {
    (cores / jobs.max(1)).max(1)
}

fn status_of(ending: Ending) -> RunStatus {
    match ending {
        Ending::Completed => RunStatus::Completed,
        Ending::Interrupted => RunStatus::Interrupted,
        Ending::Failed => RunStatus::Failed,
    }
}

/// Runs one compiled graph into `dir` in this process.
pub fn run_single(
    recipe: &Path,
    graph: ExecGraph,
    dir: &Path,
    progress: ProgressMode,
) -> Result<RunStatus, ExperimentError> {
    let opts = RunOptions {
        out: Some(dir.to_path_buf()),
        progress,
        recipe_source: std::fs::read_to_string(recipe).ok(),
        handle_ctrlc: true,
        stop_after: None,
    };
    Ok(status_of(runtime::run(graph, &opts)?.ending))
}

/// Runs the whole sweep; returns the final index (also in `<out>/sweep.json`). A failed run is
/// recorded and the others go on; a Ctrl-C stops the sweep after the current runs.
pub fn run_sweep(spec: &SweepSpec) -> Result<SweepIndex, ExperimentError> {
    let planned = plan(spec)?;
    std::fs::create_dir_all(&spec.out).map_err(io_err(&spec.out))?;
    let jobs = spec.jobs.max(1);
    let mut index = SweepIndex {
        seeds: spec.seeds.max(1),
        jobs,
        runs: planned.iter().map(|(p, _)| p.clone()).collect(),
    };
    index.write(&spec.out)?;
    if jobs == 1 {
        for (i, (run, graph)) in planned.into_iter().enumerate() {
            eprintln!(
                "[{}/{}] {} -> {}",
                i + 1,
                index.runs.len(),
                run.method,
                spec.out.join(&run.dir).display()
            );
            let result = run_single(&run.recipe, graph, &spec.out.join(&run.dir), spec.progress);
            let stop = matches!(result, Ok(RunStatus::Interrupted));
            record(&mut index.runs[i], result);
            index.write(&spec.out)?;
            if stop {
                break;
            }
        }
    } else {
        run_children(spec, &mut index, jobs)?;
    }
    Ok(index)
}

fn record(run: &mut PlannedRun, result: Result<RunStatus, ExperimentError>) {
    match result {
        Ok(status) => run.status = status,
        Err(e) => {
            eprintln!("{}: failed: {e}", run.dir);
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
        }
    }
}

/// N at a time: each run is a child `oprl sweep --single` process, because candle reads its
/// thread count once per process.
fn run_children(
    spec: &SweepSpec,
    index: &mut SweepIndex,
    jobs: usize,
) -> Result<(), ExperimentError> {
    let exe = match &spec.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().map_err(io_err(Path::new("oprl")))?,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads_per_job(cores, jobs);
    let mut next = 0;
    let mut running: Vec<(usize, std::process::Child)> = Vec::new();
    while next < index.runs.len() || !running.is_empty() {
        while running.len() < jobs && next < index.runs.len() {
            let run = &index.runs[next];
            let mut cmd = Command::new(&exe);
            cmd.arg("sweep").arg(&run.recipe).arg("--single");
            for o in &run.overrides {
                cmd.arg("--set").arg(o);
            }
            cmd.arg("--set")
                .arg(format!("train.threads={threads}"))
                .arg("--out")
                .arg(spec.out.join(&run.dir))
                .arg("--quiet")
                .env("RAYON_NUM_THREADS", threads.to_string());
            eprintln!("[start {}/{}] {}", next + 1, index.runs.len(), run.dir);
            let child = cmd.spawn().map_err(io_err(&exe))?;
            running.push((next, child));
            next += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut still = Vec::new();
        for (i, mut child) in running {
            match child.try_wait().map_err(io_err(&exe))? {
                None => still.push((i, child)),
                Some(code) => {
                    let status = read_ending(&spec.out.join(&index.runs[i].dir));
                    let result = match (code.success(), status) {
                        (true, Some(s)) => Ok(s),
                        (_, s) => Err(ExperimentError::RunFailed {
                            run: index.runs[i].dir.clone(),
                            message: format!("child exited with {code} ({s:?})"),
                        }),
                    };
                    record(&mut index.runs[i], result);
                    eprintln!("[done] {} {:?}", index.runs[i].dir, index.runs[i].status);
                    index.write(&spec.out)?;
                }
            }
        }
        running = still;
    }
    Ok(())
}

fn read_ending(run_dir: &Path) -> Option<RunStatus> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    let summary: runtime::RunSummary = serde_json::from_str(&text).ok()?;
    Some(status_of(summary.ending))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_at_top_level_commas_only() {
        assert_eq!(split_values("4,8, 16"), vec!["4", "8", "16"]);
        assert_eq!(split_values("[6,6],[8,8]"), vec!["[6,6]", "[8,8]"]);
        assert_eq!(
            split_values(r#""a,b",rloo(x, y)"#),
            vec![r#""a,b""#, "rloo(x, y)"]
        );
    }

    #[test]
    fn sweep_keys_parse_and_reject_empty_values() {
        let s = SweptKey::parse("train.group=4,8").unwrap();
        assert_eq!(s.key, "train.group");
        assert_eq!(s.values, vec!["4", "8"]);
        assert!(SweptKey::parse("train.group").is_err());
        assert!(SweptKey::parse("train.group=4,").is_err());
        assert!(SweptKey::parse("=4").is_err());
    }

    #[test]
    fn combinations_are_the_cartesian_product_in_order() {
        let a = SweptKey::parse("a=1,2").unwrap();
        let b = SweptKey::parse("b=x,y,z").unwrap();
        let c = combinations(&[a, b]);
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[0],
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert_eq!(
            c[5],
            vec![("a".into(), "2".into()), ("b".into(), "z".into())]
        );
        assert_eq!(combinations(&[]), vec![Vec::new()]);
    }

    #[test]
    fn threads_are_divided_among_jobs() {
        assert_eq!(threads_per_job(16, 4), 4);
        assert_eq!(threads_per_job(2, 3), 1);
        assert_eq!(threads_per_job(8, 0), 8);
        assert_eq!(
            path_safe("rloo,train.group=[4]-seed7"),
            "rloo_train.group=_4_-seed7"
        );
    }
}
