//! The interpreter: executes an [`crate::graph::ExecGraph`] as the OPRL loop on candle
//! (rollout, outcome reward, PRM score and update, advantage, policy and critic updates), with
//! evaluation, run directories, checkpoints and resume.
//!
//! Entry points: [`run`] (a fresh run of a compiled graph), [`resume`] (continue a run
//! directory from its last checkpoint, reproducing an uninterrupted run's metrics exactly) and
//! [`eval_checkpoint`] (`oprl eval`).

pub mod advantage;
pub mod batch;
pub mod eval;
pub mod export;
pub mod judging;
pub mod metrics;
pub mod observer;
pub mod rngs;
pub mod rollout;
pub mod rundir;
pub mod scoring;
pub mod setup;
pub mod tokens;
pub mod trainer;
pub mod updates;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use metrics::EvalResult;
pub use metrics::IterationMetrics;
pub use observer::{Note, Observer, Silent};
use rundir::RunDir;
use trainer::Trainer;

/// Why a run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("model error: {0}")]
    Model(#[from] candle_core::Error),
    #[error("advantage/loss computation failed: {0}")]
    Algo(#[from] crate::algo::AlgoError),
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    #[error("environment {env} failed on `{call}` after {attempts} attempts: {source}")]
    EnvGaveUp {
        env: usize,
        call: String,
        attempts: usize,
        source: crate::env::EnvError,
    },
    #[error(
        "`{quantity}` is {value} at iteration {iteration}: training stopped, the last good \
         checkpoint is kept (try a lower learning rate or a larger clip)"
    )]
    NonFinite {
        quantity: String,
        value: f64,
        iteration: usize,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("JSON error: {0}")]
    Json(serde_json::Error),
    #[error("run directory {path} {message}")]
    RunDir { path: PathBuf, message: String },
    #[error("invalid graph: {0}")]
    Config(String),
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "the judge failed: {0}; training stopped, the last checkpoint is kept (fix the judge, \
         then `oprl run --resume RUN_DIR` continues from it)"
    )]
    Judge(#[from] crate::reward::judge::JudgeError),
}

/// Stops training when a quantity of iteration `iteration` is NaN or infinite.
pub(crate) fn check_finite(
    quantity: &str,
    values: impl IntoIterator<Item = f64>,
    iteration: usize,
) -> Result<(), RuntimeError> {
    for v in values {
        if !v.is_finite() {
            return Err(RuntimeError::NonFinite {
                quantity: quantity.to_string(),
                value: v,
                iteration,
            });
        }
    }
    Ok(())
}

/// How a run is driven.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// The run directory; `None` = `<output.dir>/<recipe>-<timestamp>`.
    pub out: Option<PathBuf>,
    /// Told what happens as the run trains (the command line's progress display); `None`:
    /// nobody.
    pub observer: Option<Arc<dyn Observer>>,
    /// The recipe's source text, copied into the run directory.
    pub recipe_source: Option<String>,
    /// Stop (with a checkpoint) once this many iterations are complete, as if interrupted.
    pub stop_after: Option<usize>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("out", &self.out)
            .field("observer", &self.observer.is_some())
            .field("recipe_source", &self.recipe_source.is_some())
            .field("stop_after", &self.stop_after)
            .finish()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Completed,
    Interrupted,
    Failed,
}

/// `summary.json`: the run at a glance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    pub recipe: String,
    pub run_dir: PathBuf,
    pub ending: Ending,
    pub error: Option<String>,
    pub iterations: usize,
    /// Held-out success of the untrained policy (iteration 0), when evaluated.
    pub initial_eval: Option<EvalResult>,
    pub final_eval: Option<EvalResult>,
    pub best_eval: Option<EvalResult>,
    /// `(iteration, held-out success)` at every evaluation.
    pub curve: Vec<(usize, f64)>,
    pub wall_seconds: f64,
}

/// Starts a fresh run of `graph`.
pub fn run(graph: crate::graph::ExecGraph, opts: &RunOptions) -> Result<RunSummary, RuntimeError> {
    let dir = match &opts.out {
        Some(out) => RunDir::create_at(out)?,
        None => RunDir::create_new(Path::new(&graph.output.dir), &graph.recipe)?,
    };
    dir.write_graph(&graph)?;
    if let Some(src) = &opts.recipe_source {
        rundir::write_atomic(&dir.path("recipe.oprl"), src.as_bytes())?;
    }
    let trainer = Trainer::new(graph)?;
    drive(trainer, dir, opts, true)
}

/// Continues the run in `run_dir` from its last checkpoint.
pub fn resume(run_dir: &Path, opts: &RunOptions) -> Result<RunSummary, RuntimeError> {
    let dir = RunDir::open(run_dir)?;
    let graph = dir.read_graph()?;
    let mut trainer = Trainer::new(graph)?;
    let fresh = match dir.latest_checkpoint()? {
        Some((iteration, path)) => {
            trainer.load(&path)?;
            dir.truncate_lines_after("metrics.jsonl", iteration)?;
            dir.truncate_lines_after("eval.jsonl", iteration)?;
            false
        }
        // Interrupted before the first checkpoint: start over in the same directory.
        None => {
            dir.truncate_lines_after("metrics.jsonl", 0)?;
            dir.truncate_lines_after("eval.jsonl", 0)?;
            true
        }
    };
    drive(trainer, dir, opts, fresh)
}

/// Evaluates a saved policy (the last checkpoint, or checkpoint `iteration`) on the run's
/// held-out tasks, and records the result in `eval.jsonl` under `checkpoint_evals`.
/// `observer` hears about environment retries.
pub fn eval_checkpoint(
    run_dir: &Path,
    iteration: Option<usize>,
    observer: Option<Arc<dyn Observer>>,
) -> Result<EvalResult, RuntimeError> {
    let dir = RunDir::open(run_dir)?;
    let graph = dir.read_graph()?;
    let (it, path) = dir.checkpoint(iteration)?;
    setup::set_threads(graph.train.threads);
    let device = setup::device_for(graph.train.device)?;
    let tokenizer = setup::make_tokenizer(&graph)?;
    let mut policy = setup::make_policy(&graph, &tokenizer, &device, graph.train.seed)?;
    policy.load(&path.join("policy.safetensors"))?;
    let opts = crate::model::SampleOptions {
        temperature: graph.eval.temperature,
        ..setup::sampling_of(&graph.policy)
    };
    let (result, trajs) = eval::evaluate(
        &graph,
        &policy,
        &tokenizer,
        &opts,
        it,
        rollout::RetryPolicy {
            observer,
            ..rollout::RetryPolicy::default()
        },
    )?;
    dir.append_line("checkpoint_evals.jsonl", &result)?;
    write_transcripts(
        &dir,
        &format!("checkpoint-{it:06}"),
        &trajs,
        graph.output.transcripts,
    )?;
    Ok(result)
}

fn write_transcripts(
    dir: &RunDir,
    name: &str,
    trajs: &[batch::Trajectory],
    count: usize,
) -> Result<(), RuntimeError> {
    if count == 0 {
        return Ok(());
    }
    let text: String = trajs.iter().take(count).map(eval::transcript).collect();
    let sub = dir.path("transcripts");
    std::fs::create_dir_all(&sub).map_err(|e| RuntimeError::Io {
        path: sub.clone(),
        source: e,
    })?;
    // Image observations: the frames each episode saw, captioned with its actions.
    for (k, traj) in trajs.iter().take(count).enumerate() {
        eval::write_episode_sheet(traj, &sub.join(format!("{name}-episode{k}.png")))?;
    }
    rundir::write_atomic(&sub.join(format!("{name}.txt")), text.as_bytes())
}

fn run_eval(trainer: &Trainer, dir: &RunDir) -> Result<EvalResult, RuntimeError> {
    let (result, trajs) = eval::evaluate(
        &trainer.graph,
        &trainer.policy.model,
        &trainer.tokenizer,
        &trainer.eval_options(),
        trainer.iteration,
        trainer.retry.clone(),
    )?;
    dir.append_line("eval.jsonl", &result)?;
    write_transcripts(
        dir,
        &format!("eval-{:06}", trainer.iteration),
        &trajs,
        trainer.graph.output.transcripts,
    )?;
    Ok(result)
}

fn checkpoint(trainer: &Trainer, dir: &RunDir) -> Result<PathBuf, RuntimeError> {
    let staging = dir.checkpoint_staging(trainer.iteration)?;
    trainer.save(&staging)?;
    dir.commit_checkpoint(&staging, trainer.iteration)
}

fn read_evals(dir: &RunDir) -> Vec<EvalResult> {
    std::fs::read_to_string(dir.path("eval.jsonl"))
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The training loop shared by a fresh and a resumed run.
fn drive(
    mut trainer: Trainer,
    dir: RunDir,
    opts: &RunOptions,
    fresh: bool,
) -> Result<RunSummary, RuntimeError> {
    let started = Instant::now();
    let total = trainer.graph.train.iterations;
    let every = trainer.graph.eval.every;
    let ckpt_every = trainer.graph.output.checkpoint_every;
    let observer: Arc<dyn Observer> = opts.observer.clone().unwrap_or_else(|| Arc::new(Silent));
    trainer.retry.observer = Some(observer.clone());
    observer.run_started(&dir.root, trainer.iteration, total);

    if fresh && every > 0 && trainer.graph.eval.tasks > 0 {
        let e = run_eval(&trainer, &dir)?;
        observer.note(Note::InitialEval(&e));
    }

    let mut ending = Ending::Completed;
    let mut error = None;
    while trainer.iteration < total {
        let mut m = match trainer.step() {
            Ok(m) => m,
            Err(e) => {
                observer.note(Note::Failed(&e));
                ending = Ending::Failed;
                error = Some(e);
                break;
            }
        };
        let it = trainer.iteration;
        let last = it == total;
        if trainer.graph.eval.tasks > 0 && (last || (every > 0 && it.is_multiple_of(every))) {
            let e = match run_eval(&trainer, &dir) {
                Ok(e) => e,
                Err(e) => {
                    observer.note(Note::Failed(&e));
                    ending = Ending::Failed;
                    error = Some(e);
                    break;
                }
            };
            m.eval_success = Some(e.success_rate);
            m.eval_score = Some(e.mean_score);
            m.eval_goal = e.goal;
            m.eval_overall = e.overall;
            observer.note(Note::Eval {
                eval: &e,
                train_success: m.success_rate,
            });
        }
        dir.append_line("metrics.jsonl", &m)?;
        observer.iteration(&m);
        let stop_now = observer.stop_requested() || opts.stop_after.is_some_and(|n| it >= n);
        if last || stop_now || (ckpt_every > 0 && it.is_multiple_of(ckpt_every)) {
            let path = checkpoint(&trainer, &dir)?;
            if stop_now && !last {
                observer.note(Note::Stopped {
                    iteration: it,
                    checkpoint: &path,
                });
                ending = Ending::Interrupted;
                break;
            }
        }
    }
    observer.run_finished();

    let evals = read_evals(&dir);
    let initial_eval = evals.iter().find(|e| e.iteration == 0).cloned();
    let final_eval = evals.last().filter(|e| e.iteration > 0).cloned();
    let best_eval = evals
        .iter()
        .filter(|e| e.iteration > 0)
        .max_by(|a, b| a.success_rate.total_cmp(&b.success_rate))
        .cloned();
    let prior_wall = std::fs::read_to_string(dir.path("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<RunSummary>(&t).ok())
        .map_or(0.0, |s| s.wall_seconds);
    let summary = RunSummary {
        recipe: trainer.graph.recipe.clone(),
        run_dir: dir.root.clone(),
        ending,
        error: error.as_ref().map(|e| e.to_string()),
        iterations: trainer.iteration,
        initial_eval,
        final_eval,
        best_eval,
        curve: evals
            .iter()
            .map(|e| (e.iteration, e.success_rate))
            .collect(),
        wall_seconds: prior_wall + started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&summary).map_err(RuntimeError::Json)?;
    rundir::write_atomic(&dir.path("summary.json"), json.as_bytes())?;
    match error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}
