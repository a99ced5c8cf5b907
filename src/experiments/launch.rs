//! Runs the planned runs of a sweep directory as child `oprl run` processes, `jobs` at a time:
//! candle reads its thread count once per process, so each child gets its share of the cores;
//! a child that crashes cannot take the others down. Each child's output goes to `run.log` in
//! its run directory; its `metrics.jsonl` is followed for progress; every ending is recorded
//! in `sweep.json`, and a failed run does not stop the others. Ctrl-C (which the terminal
//! also sends to the children, so each checkpoints) stops launching new runs. What happens is
//! told to a [`SweepObserver`] (the command line's board), which also says when the user asked
//! to stop.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::index::{PlannedRun, RunStatus, SweepIndex};
use super::sweep::{self, run_threads, threads_per_job, SweepSpec};
use super::{io_err, ExperimentError};
use crate::runtime::{Ending, RunSummary};

/// The name of a child's combined stdout and stderr in its run directory.
pub const LOG: &str = "run.log";

/// Where a run stands: the last iteration seen, its training success, and the held-out
/// success of the last evaluation seen.
pub type RunProgress = (usize, Option<f64>, Option<f64>);

/// A sweep starts (or resumes) running.
#[derive(Debug, Clone, Copy)]
pub struct SweepStart<'a> {
    /// The sweep directory.
    pub dir: &'a Path,
    /// Runs in the sweep.
    pub runs: usize,
    /// When resuming: how many of them are left to finish.
    pub left: Option<usize>,
    /// How many run at a time.
    pub at_once: usize,
}

/// How a finished run ended, as shown and recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub status: RunStatus,
    /// Iterations completed.
    pub iterations: usize,
    /// Training success of the last iteration.
    pub success: Option<f64>,
    /// Held-out success of the last evaluation after training started.
    pub held_out: Option<f64>,
    pub seconds: f64,
    pub error: Option<String>,
    /// The child's combined stdout and stderr.
    pub log: PathBuf,
}

/// Told what a multi-run does, in order; runs are numbered from 1 in the sweep's order. Every
/// method does nothing by default.
pub trait SweepObserver {
    fn sweep_started(&mut self, _start: &SweepStart<'_>) {}
    /// Run `n` starts as a child with `threads` threads.
    fn run_started(&mut self, _n: usize, _run: &PlannedRun, _threads: usize) {}
    /// Run `n` wrote a line of `metrics.jsonl`; `progress` includes it.
    fn run_iteration(
        &mut self,
        _n: usize,
        _run: &PlannedRun,
        _metrics: &Value,
        _progress: RunProgress,
    ) {
    }
    /// Run `n` ended.
    fn run_ended(&mut self, _n: usize, _run: &PlannedRun, _end: &RunEnd) {}
    /// Whether the person watching asked the sweep to stop (Ctrl-C): no new run starts, and
    /// runs that end without completing count as interrupted.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Reads the complete lines appended to a file since the last call.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// New complete lines (a line still being written waits for its newline).
    pub fn read_lines(&mut self) -> Vec<String> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        let mut text = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut text).is_err() {
            return Vec::new();
        }
        self.offset += text.len() as u64;
        self.partial.push_str(&text);
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_string).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines.retain(|l| !l.trim().is_empty());
        lines
    }
}

/// The last non-empty line of a child's log, without a leading `error: `.
fn last_log_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().trim_start_matches("error: ").to_string())
}

/// How a child ended: its exit, the run's `summary.json` (absent when it failed early), and
/// whether the user interrupted the sweep.
pub fn status_of(exit_ok: bool, summary: Option<&RunSummary>, interrupted: bool) -> RunStatus {
    match (exit_ok, summary.map(|s| s.ending)) {
        (true, Some(Ending::Completed)) => RunStatus::Completed,
        (_, Some(Ending::Interrupted)) => RunStatus::Interrupted,
        (false, _) if interrupted => RunStatus::Interrupted,
        _ => RunStatus::Failed,
    }
}

/// The command that runs `run` into `dir`: a fresh `oprl run` of its recipe, or
/// `oprl run --resume` when the run directory already holds a run.
fn child_command(exe: &Path, run: &PlannedRun, dir: &Path, threads: usize) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("run");
    if dir.join("graph.json").is_file() {
        cmd.arg("--resume").arg(dir);
    } else {
        cmd.arg(&run.recipe);
        for o in &run.overrides {
            cmd.arg("--set").arg(o);
        }
        cmd.arg("--set")
            .arg(format!("train.threads={threads}"))
            .arg("--out")
            .arg(dir);
    }
    cmd.arg("--quiet")
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null());
    cmd
}

struct Active {
    index: usize,
    child: Child,
    metrics: Tail,
    started: Instant,
    last: RunProgress,
}

/// Runs the runs of `index` whose status is not `completed`, `jobs` at a time, recording each
/// ending in `<sweep_dir>/sweep.json` as it happens. Returns when all have ended, or when the
/// observer says the user asked to stop and the running ones have stopped.
pub fn launch(
    sweep_dir: &Path,
    index: &mut SweepIndex,
    jobs: usize,
    exe: &Path,
    observer: &mut dyn SweepObserver,
) -> Result<(), ExperimentError> {
    let todo: Vec<usize> = (0..index.runs.len())
        .filter(|&i| index.runs[i].status != RunStatus::Completed)
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = threads_per_job(cores, jobs);
    let mut next = 0;
    let mut running: Vec<Active> = Vec::new();
    loop {
        let stopping = observer.stop_requested();
        while !stopping && running.len() < jobs.max(1) && next < todo.len() {
            let i = todo[next];
            next += 1;
            let run = &index.runs[i];
            let dir = sweep_dir.join(&run.dir);
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            let log_path = dir.join(LOG);
            let log = File::create(&log_path).map_err(io_err(&log_path))?;
            let log2 = log.try_clone().map_err(io_err(&log_path))?;
            let threads = run_threads(run.threads, share);
            let child = child_command(exe, run, &dir, threads)
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(io_err(exe))?;
            let started = Instant::now();
            observer.run_started(i + 1, run, threads);
            index.runs[i].status = RunStatus::Running;
            index.runs[i].error = None;
            index.write(sweep_dir)?;
            running.push(Active {
                index: i,
                child,
                metrics: Tail::new(dir.join("metrics.jsonl")),
                started,
                last: (0, None, None),
            });
        }
        if running.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut still = Vec::new();
        for mut a in running {
            let exit = a.child.try_wait().map_err(io_err(exe))?;
            // After an exit, this read catches the last lines too.
            for text in a.metrics.read_lines() {
                if let Ok(m) = serde_json::from_str::<Value>(&text) {
                    let it = m["iteration"].as_u64().unwrap_or(0) as usize;
                    a.last = (
                        it,
                        m["success_rate"].as_f64(),
                        m["eval_success"].as_f64().or(a.last.2),
                    );
                    observer.run_iteration(a.index + 1, &index.runs[a.index], &m, a.last);
                }
            }
            let Some(exit) = exit else {
                still.push(a);
                continue;
            };
            let run = &mut index.runs[a.index];
            let dir = sweep_dir.join(&run.dir);
            let summary: Option<RunSummary> = std::fs::read_to_string(dir.join("summary.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let status = status_of(exit.success(), summary.as_ref(), observer.stop_requested());
            let error = (status == RunStatus::Failed).then(|| {
                summary
                    .as_ref()
                    .and_then(|s| s.error.clone())
                    .or_else(|| last_log_line(&dir.join(LOG)))
                    .unwrap_or_else(|| format!("the child exited with {exit}"))
            });
            let end = RunEnd {
                status,
                iterations: summary.as_ref().map_or(a.last.0, |s| s.iterations),
                success: a.last.1,
                held_out: summary
                    .as_ref()
                    .and_then(|s| s.final_eval.as_ref())
                    .map(|e| e.success_rate)
                    .or(a.last.2),
                seconds: a.started.elapsed().as_secs_f64(),
                error: error.clone(),
                log: dir.join(LOG),
            };
            run.status = status;
            run.error = error;
            observer.run_ended(a.index + 1, run, &end);
            index.write(sweep_dir)?;
        }
        running = still;
    }
}

fn exe_or_current(exe: Option<&Path>) -> Result<PathBuf, ExperimentError> {
    match exe {
        Some(e) => Ok(e.to_path_buf()),
        None => std::env::current_exe().map_err(io_err(Path::new("oprl"))),
    }
}

/// Plans a sweep (compiling every configuration first), writes its `sweep.json` and runs it.
/// Returns the sweep directory and the final index.
pub fn run_sweep(
    spec: &SweepSpec,
    observer: &mut dyn SweepObserver,
) -> Result<(PathBuf, SweepIndex), ExperimentError> {
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
    observer.sweep_started(&SweepStart {
        dir: &spec.out,
        runs: index.runs.len(),
        left: None,
        at_once: jobs.min(index.runs.len()),
    });
    launch(&spec.out, &mut index, jobs, &exe, observer)?;
    Ok((spec.out.clone(), index))
}

/// Runs every run of the sweep in `dir` that has not completed: from its last checkpoint when
/// it has a run directory, else from the start.
pub fn resume_sweep(
    dir: &Path,
    jobs: Option<usize>,
    exe: Option<&Path>,
    observer: &mut dyn SweepObserver,
) -> Result<(PathBuf, SweepIndex), ExperimentError> {
    let mut index = SweepIndex::read(dir)?;
    let jobs = jobs.unwrap_or(index.jobs).max(1);
    let exe = exe_or_current(exe)?;
    let left = index
        .runs
        .iter()
        .filter(|r| r.status != RunStatus::Completed)
        .count();
    observer.sweep_started(&SweepStart {
        dir,
        runs: index.runs.len(),
        left: Some(left),
        at_once: jobs.min(left.max(1)),
    });
    launch(dir, &mut index, jobs, &exe, observer)?;
    Ok((dir.to_path_buf(), index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_returns_each_complete_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut tail = Tail::new(path.clone());
        assert!(tail.read_lines().is_empty(), "no file yet");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"{\"iteration\":1}\n{\"itera").unwrap();
        assert_eq!(tail.read_lines(), vec!["{\"iteration\":1}"]);
        assert!(tail.read_lines().is_empty(), "half a line waits");
        f.write_all(b"tion\":2}\n{\"iteration\":3}\n").unwrap();
        assert_eq!(
            tail.read_lines(),
            vec!["{\"iteration\":2}", "{\"iteration\":3}"]
        );
    }

    fn summary(ending: Ending) -> RunSummary {
        RunSummary {
            recipe: "oprl".into(),
            run_dir: "x".into(),
            ending,
            error: None,
            iterations: 3,
            initial_eval: None,
            final_eval: None,
            best_eval: None,
            curve: Vec::new(),
            wall_seconds: 1.0,
        }
    }

    #[test]
    fn a_run_completes_only_with_a_clean_exit_and_a_completed_summary() {
        let done = summary(Ending::Completed);
        let stopped = summary(Ending::Interrupted);
        let failed = summary(Ending::Failed);
        assert_eq!(status_of(true, Some(&done), false), RunStatus::Completed);
        assert_eq!(status_of(false, Some(&done), false), RunStatus::Failed);
        assert_eq!(
            status_of(true, Some(&stopped), true),
            RunStatus::Interrupted
        );
        assert_eq!(status_of(false, Some(&failed), false), RunStatus::Failed);
        assert_eq!(status_of(false, None, false), RunStatus::Failed);
        assert_eq!(status_of(false, None, true), RunStatus::Interrupted);
        assert_eq!(status_of(true, None, false), RunStatus::Failed);
    }
}
