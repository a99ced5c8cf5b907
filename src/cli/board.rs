//! What the user sees while several runs train, in the modes of a single run: on a terminal,
//! one live line per running run (run directory, seed, iteration, training success, held-out
//! success) and one permanent line per finished run; plain lines when stderr is not a
//! terminal (start, evaluations, end); `--quiet`: failures only; `--json-lines`: each run's
//! metrics objects on stdout with `run`, `method` and `seed` added, plus one object per
//! finished run (it has a `status`), while the plain lines go to stderr.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::progress::{interrupt_flag, ProgressMode};
use crate::experiments::index::{PlannedRun, RunStatus};
use crate::experiments::launch::{RunEnd, RunProgress, SweepObserver, SweepStart};

/// The display of a multi-run: the command line's [`SweepObserver`].
pub struct Board {
    mode: ProgressMode,
    /// Live lines (a terminal in bar mode).
    multi: Option<MultiProgress>,
    /// Runs in the sweep.
    total: usize,
    /// The live line of each running run, by its number.
    bars: HashMap<usize, ProgressBar>,
    /// The Ctrl-C flag, installed when the sweep starts.
    interrupt: Option<Arc<AtomicBool>>,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// `[ 3/27] oprl-seed7 seed 7`: the run's position among `total`, its directory and seed.
pub fn run_label(n: usize, total: usize, run: &PlannedRun) -> String {
    let width = total.to_string().len();
    format!("[{n:>width$}/{total}] {} seed {}", run.dir, run.seed)
}

/// `iter 12/60, success 25.0%, held-out 31.2%`.
pub fn progress_text(run: &PlannedRun, last: RunProgress) -> String {
    let mut text = format!("iter {}/{}", last.0, run.iterations);
    if let Some(s) = last.1 {
        text.push_str(&format!(", success {}", pct(s)));
    }
    if let Some(h) = last.2 {
        text.push_str(&format!(", held-out {}", pct(h)));
    }
    text
}

/// The permanent line of a finished run.
pub fn end_line(n: usize, total: usize, run: &PlannedRun, end: &RunEnd) -> String {
    let last = (end.iterations, end.success, end.held_out);
    let head = run_label(n, total, run);
    match end.status {
        RunStatus::Completed => format!(
            "{head}: completed, {}, {:.0} s",
            progress_text(run, last),
            end.seconds
        ),
        RunStatus::Interrupted => format!(
            "{head}: interrupted at {} (checkpointed)",
            progress_text(run, last)
        ),
        _ => format!(
            "{head}: FAILED at {}: {} (log: {})",
            progress_text(run, last),
            end.error.as_deref().unwrap_or("no error message"),
            end.log.display()
        ),
    }
}

/// A run's metrics object with the run's directory, method and seed added.
pub fn json_iteration(mut metrics: Value, run: &PlannedRun) -> Value {
    if let Value::Object(map) = &mut metrics {
        map.insert("run".into(), json!(run.dir));
        map.insert("method".into(), json!(run.method));
        map.insert("seed".into(), json!(run.seed));
    }
    metrics
}

/// The object printed when a run ends.
pub fn json_end(run: &PlannedRun, end: &RunEnd) -> Value {
    json!({
        "run": run.dir,
        "method": run.method,
        "seed": run.seed,
        "status": end.status,
        "iterations": end.iterations,
        "success_rate": end.success,
        "eval_success": end.held_out,
        "seconds": end.seconds,
        "error": end.error,
    })
}

impl Board {
    pub fn new(mode: ProgressMode) -> Board {
        let multi = (mode == ProgressMode::Bar)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
            .filter(|m| !m.is_hidden());
        Board {
            mode,
            multi,
            total: 0,
            bars: HashMap::new(),
            interrupt: None,
        }
    }

    /// A line for the person watching (not in quiet mode).
    fn note(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None if self.mode != ProgressMode::Quiet => eprintln!("{text}"),
            None => {}
        }
    }

    /// A line shown in every mode (failures).
    fn warn(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

impl SweepObserver for Board {
    fn sweep_started(&mut self, start: &SweepStart<'_>) {
        self.total = start.runs;
        let text = match start.left {
            None => format!(
                "{} runs into {} ({} at a time)",
                start.runs,
                start.dir.display(),
                start.at_once
            ),
            Some(left) => format!(
                "{left} of {} runs of {} to finish ({} at a time)",
                start.runs,
                start.dir.display(),
                start.at_once
            ),
        };
        self.note(&text);
        self.interrupt = Some(interrupt_flag());
    }

    fn run_started(&mut self, n: usize, run: &PlannedRun, threads: usize) {
        let head = run_label(n, self.total, run);
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(run.iterations as u64));
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:20}] {pos}/{len} {elapsed_precise} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(head.clone());
            bar
        });
        match bar {
            Some(bar) => {
                self.bars.insert(n, bar);
            }
            None => self.note(&format!(
                "{head}: started ({threads} thread{})",
                if threads == 1 { "" } else { "s" }
            )),
        }
    }

    fn run_iteration(&mut self, n: usize, run: &PlannedRun, metrics: &Value, last: RunProgress) {
        let success = metrics["success_rate"].as_f64();
        let eval = metrics["eval_success"].as_f64();
        if self.mode == ProgressMode::JsonLines {
            println!("{}", json_iteration(metrics.clone(), run));
        }
        match self.bars.get(&n) {
            Some(bar) => {
                bar.set_position(last.0 as u64);
                let mut msg = success.map_or(String::new(), |s| format!("success {}", pct(s)));
                if let Some(h) = last.2 {
                    msg.push_str(&format!(" held-out {}", pct(h)));
                }
                bar.set_message(msg);
            }
            // Plain lines: one per evaluation, so a log shows the curve without flooding.
            None if eval.is_some() => self.note(&format!(
                "{}: {}",
                run_label(n, self.total, run),
                progress_text(run, last)
            )),
            None => {}
        }
    }

    fn run_ended(&mut self, n: usize, run: &PlannedRun, end: &RunEnd) {
        if let Some(bar) = self.bars.remove(&n) {
            bar.finish_and_clear();
            if let Some(m) = &self.multi {
                m.remove(&bar);
            }
        }
        if self.mode == ProgressMode::JsonLines {
            println!("{}", json_end(run, end));
        }
        let text = end_line(n, self.total, run, end);
        if end.status == RunStatus::Completed {
            self.note(&text);
        } else {
            self.warn(&text);
        }
    }

    fn stop_requested(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> PlannedRun {
        PlannedRun {
            dir: "oprl-seed7".into(),
            recipe: "recipes/experiments/oprl.oprl".into(),
            method: "oprl".into(),
            seed: 7,
            overrides: vec!["train.seed=7".into()],
            iterations: 60,
            threads: 1,
            status: RunStatus::Running,
            error: None,
        }
    }

    fn end(status: RunStatus) -> RunEnd {
        RunEnd {
            status,
            iterations: 12,
            success: Some(0.25),
            held_out: Some(0.3125),
            seconds: 41.6,
            error: Some("environment 0 failed".into()),
            log: "runs/x/oprl-seed7/run.log".into(),
        }
    }

    #[test]
    fn lines_name_the_run_its_seed_iteration_and_success() {
        let r = run();
        assert_eq!(run_label(3, 27, &r), "[ 3/27] oprl-seed7 seed 7");
        assert_eq!(
            end_line(3, 27, &r, &end(RunStatus::Completed)),
            "[ 3/27] oprl-seed7 seed 7: completed, iter 12/60, success 25.0%, held-out 31.2%, 42 s"
        );
        assert_eq!(
            end_line(3, 27, &r, &end(RunStatus::Failed)),
            "[ 3/27] oprl-seed7 seed 7: FAILED at iter 12/60, success 25.0%, held-out 31.2%: \
             environment 0 failed (log: runs/x/oprl-seed7/run.log)"
        );
        assert_eq!(progress_text(&r, (0, None, None)), "iter 0/60");
    }

    #[test]
    fn json_lines_add_the_run_to_the_metrics_and_end_with_a_status() {
        let r = run();
        let m = json_iteration(json!({"iteration": 4, "success_rate": 0.5}), &r);
        assert_eq!(
            m,
            json!({"iteration": 4, "success_rate": 0.5, "run": "oprl-seed7", "method": "oprl", "seed": 7})
        );
        let e = json_end(&r, &end(RunStatus::Interrupted));
        assert_eq!(e["status"], "interrupted");
        assert_eq!(e["iterations"], 12);
        assert_eq!(e["run"], "oprl-seed7");
    }
}
