//! Loads run directories back for reports and tables: metrics, evaluations, summary, the
//! method a run belongs to (from its sweep's `sweep.json`, else its recipe name), its
//! environment, transcripts and frames; expands sweep directories into their runs.

use std::path::{Path, PathBuf};

use super::index::SweepIndex;
use super::{io_err, ExperimentError};
use crate::graph::{EnvSpec, ExecGraph};
use crate::runtime::rundir::RunDir;
use crate::runtime::{EvalResult, IterationMetrics, RunSummary};

/// One run directory, read.
#[derive(Debug, Clone)]
pub struct RunData {
    pub dir: PathBuf,
    /// What runs are grouped by (one line of the comparison table).
    pub method: String,
    /// The environment (one column of the comparison table), e.g. `sokoban 6x6`.
    pub env: String,
    pub seed: u64,
    pub metrics: Vec<IterationMetrics>,
    pub evals: Vec<EvalResult>,
    pub summary: Option<RunSummary>,
    /// Trajectories per iteration (tasks x group): turns per iteration = this x mean turns.
    pub trajectories_per_iteration: usize,
    /// `(file name, text)` of the transcript files, in name order.
    pub transcripts: Vec<(String, String)>,
    /// PNG frames found in the run directory (image observations).
    pub frames: Vec<PathBuf>,
}

/// A short name of the environment a graph trains on.
pub fn env_label(env: &EnvSpec) -> String {
    match env {
        EnvSpec::Sokoban(s) => format!(
            "sokoban {}x{}{}",
            s.room[0],
            s.room[1],
            if s.boxes == 1 {
                String::new()
            } else {
                format!(" {} boxes", s.boxes)
            }
        ),
        EnvSpec::Webshop(_) => "webshop".into(),
        EnvSpec::Sotopia(_) => "sotopia".into(),
        EnvSpec::External(_) => "external".into(),
    }
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The method label a sweep gave this run directory, if it belongs to one.
fn method_from_sweep(dir: &Path) -> Option<String> {
    let parent = dir.parent()?;
    let name = dir.file_name()?.to_str()?;
    let index = SweepIndex::read(parent).ok()?;
    index
        .runs
        .into_iter()
        .find(|r| r.dir == name)
        .map(|r| r.method)
}

impl RunData {
    /// Reads the run directory `dir`.
    pub fn load(dir: &Path) -> Result<RunData, ExperimentError> {
        let rd = RunDir::open(dir)?;
        let graph: ExecGraph = rd.read_graph()?;
        let metrics = rd.read_metrics()?;
        let evals = read_jsonl(&rd.path("eval.jsonl"));
        let summary = std::fs::read_to_string(rd.path("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let transcripts = files_with(&rd.path("transcripts"), "txt")
            .into_iter()
            .filter_map(|p| {
                let text = std::fs::read_to_string(&p).ok()?;
                Some((p.file_name()?.to_string_lossy().into_owned(), text))
            })
            .collect();
        let mut frames = files_with(&rd.path("frames"), "png");
        frames.extend(files_with(&rd.path("transcripts"), "png"));
        Ok(RunData {
            dir: dir.to_path_buf(),
            method: method_from_sweep(dir).unwrap_or_else(|| graph.recipe.clone()),
            env: env_label(&graph.env),
            seed: graph.train.seed,
            metrics,
            evals,
            summary,
            trajectories_per_iteration: graph.train.tasks * graph.train.group,
            transcripts,
            frames,
        })
    }

    /// Environment steps taken by the end of each logged iteration (cumulative turns).
    pub fn cumulative_env_steps(&self) -> Vec<f64> {
        let per = self.trajectories_per_iteration as f64;
        self.metrics
            .iter()
            .scan(0.0, |acc, m| {
                *acc += per * m.mean_turns;
                Some(*acc)
            })
            .collect()
    }

    /// The run's final success and score: the last held-out evaluation when the run evaluated,
    /// else the last iteration's training success and mean outcome.
    pub fn final_success_and_score(&self) -> Option<(f64, f64)> {
        if let Some(e) = self.evals.iter().rev().find(|e| e.iteration > 0) {
            return Some((e.success_rate, e.mean_score));
        }
        self.metrics
            .last()
            .map(|m| (m.success_rate, m.mean_outcome))
    }

    /// The first iteration whose success reaches `target`: held-out success when the run
    /// evaluated, else training success. `None` if it never did.
    pub fn iterations_to(&self, target: f64) -> Option<usize> {
        let evaluated: Vec<&EvalResult> = self.evals.iter().filter(|e| e.iteration > 0).collect();
        if !evaluated.is_empty() {
            return evaluated
                .iter()
                .find(|e| e.success_rate >= target)
                .map(|e| e.iteration);
        }
        self.metrics
            .iter()
            .find(|m| m.success_rate >= target)
            .map(|m| m.iteration)
    }
}

/// The run directories named by `paths`: a run directory itself, every run of a sweep
/// directory, or every run directory directly inside a directory (e.g. `runs/`).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ExperimentError> {
    let mut out = Vec::new();
    for p in paths {
        if p.join("graph.json").is_file() {
            out.push(p.clone());
        } else if p.join("sweep.json").is_file() {
            let index = SweepIndex::read(p)?;
            out.extend(
                index
                    .runs
                    .iter()
                    .map(|r| p.join(&r.dir))
                    .filter(|d| d.join("graph.json").is_file()),
            );
        } else if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io_err(p))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|d| d.join("graph.json").is_file())
                .collect();
            if inner.is_empty() {
                return Err(ExperimentError::NotARun(p.clone()));
            }
            inner.sort();
            out.extend(inner);
        } else {
            return Err(ExperimentError::NotARun(p.clone()));
        }
    }
    if out.is_empty() {
        return Err(ExperimentError::NoRuns);
    }
    Ok(out)
}

/// Loads every run named by `paths` (see [`expand`]).
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<RunData>, ExperimentError> {
    expand(paths)?.iter().map(|d| RunData::load(d)).collect()
}

/// Runs grouped by method, groups in first-seen order.
pub fn by_method(runs: &[RunData]) -> Vec<(String, Vec<&RunData>)> {
    let mut groups: Vec<(String, Vec<&RunData>)> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|(m, _)| *m == r.method) {
            Some((_, g)) => g.push(r),
            None => groups.push((r.method.clone(), vec![r])),
        }
    }
    groups
}
