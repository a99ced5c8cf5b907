//! What the user sees while a run trains: a progress bar (iteration, success, PRM pair
//! accuracy, speed), nothing (`--quiet`), or one JSON object per iteration on stdout
//! (`--json-lines`) for scripts; and the Ctrl-C handler that asks a run to stop.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runtime::{IterationMetrics, Note, Observer};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    #[default]
    Bar,
    Quiet,
    JsonLines,
}

/// Shows a run's progress in the chosen mode: the command line's [`Observer`].
pub struct Reporter {
    mode: ProgressMode,
    /// The bar of the run under way (bar mode), made when it starts.
    bar: Mutex<Option<ProgressBar>>,
    /// Whether Ctrl-C stops the run (installing the handler when the run starts).
    ctrlc: bool,
    /// The Ctrl-C flag, once installed.
    interrupt: OnceLock<Arc<AtomicBool>>,
}

impl Reporter {
    pub fn new(mode: ProgressMode) -> Reporter {
        Reporter {
            mode,
            bar: Mutex::new(None),
            ctrlc: false,
            interrupt: OnceLock::new(),
        }
    }

    /// Ctrl-C (or SIGTERM) stops the run after the current iteration with a checkpoint.
    pub fn with_ctrlc(self) -> Reporter {
        Reporter {
            ctrlc: true,
            ..self
        }
    }

    fn bar(&self) -> Option<ProgressBar> {
        self.bar.lock().ok().and_then(|b| b.clone())
    }

    /// One line of text for messages that should be seen (evaluations, checkpoints).
    fn line(&self, text: &str) {
        match (self.bar(), self.mode) {
            (Some(bar), _) => bar.println(text),
            (None, ProgressMode::Quiet) => {}
            (None, _) => eprintln!("{text}"),
        }
    }

    /// A warning, shown in every mode (above the bar when there is one).
    fn warn(&self, text: &str) {
        match self.bar() {
            Some(bar) => bar.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }
}

impl Observer for Reporter {
    fn run_started(&self, run_dir: &Path, start: usize, iterations: usize) {
        if self.mode == ProgressMode::Bar {
            let bar = ProgressBar::with_draw_target(
                Some(iterations as u64),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{spinner} iter {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(start as u64);
            if let Ok(mut b) = self.bar.lock() {
                *b = Some(bar);
            }
        }
        if self.ctrlc {
            let _ = self.interrupt.set(interrupt_flag());
        }
        self.line(&format!("run directory: {}", run_dir.display()));
    }

    fn iteration(&self, m: &IterationMetrics) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = self.bar() {
                    let acc = m
                        .prm_pair_accuracy
                        .map(|a| format!(" prm-acc {a:.2}"))
                        .unwrap_or_default();
                    let eval = m
                        .eval_success
                        .map(|e| format!(" eval {:.1}%", 100.0 * e))
                        .unwrap_or_default();
                    let judged = judged_scores(m.judge_goal, m.judge_overall);
                    bar.set_message(format!(
                        "success {:.1}%{judged}{acc}{eval} | {:.0} tok/s {:.1} steps/s {:.1}s/it",
                        100.0 * m.success_rate,
                        m.tokens_per_s,
                        m.env_steps_per_s,
                        m.time_total
                    ));
                    bar.set_position(m.iteration as u64);
                }
            }
            ProgressMode::JsonLines => {
                if let Ok(line) = serde_json::to_string(m) {
                    println!("{line}");
                }
            }
            ProgressMode::Quiet => {}
        }
    }

    fn note(&self, note: Note<'_>) {
        match note {
            Note::InitialEval(e) => self.line(&format!(
                "iteration 0 (untrained): held-out success {:.1}% on {} tasks{}",
                100.0 * e.success_rate,
                e.tasks,
                judged_scores(e.goal, e.overall)
            )),
            Note::Eval {
                eval: e,
                train_success,
            } => self.line(&format!(
                "iteration {}: held-out success {:.1}% (train {:.1}%){}",
                e.iteration,
                100.0 * e.success_rate,
                100.0 * train_success,
                judged_scores(e.goal, e.overall)
            )),
            Note::EnvRetry { env, call, error } => self.warn(&format!(
                "warning: environment {env} {call} failed, retrying: {error}"
            )),
            Note::Stopped {
                iteration,
                checkpoint,
            } => self.line(&format!(
                "stopped at iteration {iteration}; checkpoint {}",
                checkpoint.display()
            )),
            Note::Failed(e) => self.line(&format!("error: {e}")),
        }
    }

    fn run_finished(&self) {
        if let Some(bar) = self.bar() {
            bar.finish();
        }
    }

    fn stop_requested(&self) -> bool {
        self.interrupt
            .get()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }
}

/// ` goal G overall O` for judged runs (SOTOPIA), empty otherwise.
pub fn judged_scores(goal: Option<f64>, overall: Option<f64>) -> String {
    match (goal, overall) {
        (Some(g), Some(o)) => format!(" goal {g:.2} overall {o:.2}"),
        _ => String::new(),
    }
}

/// The process-wide Ctrl-C (and SIGTERM) flag, installing its handler on first use (a handler
/// can be installed once per process): the first signal asks the run (or the sweep) to stop
/// after this iteration with a checkpoint, a second one exits at once.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        if let Err(e) = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: the user does not want to wait for the checkpoint.
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: stopping after this iteration and writing a checkpoint (Ctrl-C again to quit now)");
        }) {
            eprintln!("warning: cannot install the Ctrl-C handler: {e}");
        }
        flag
    })
    .clone()
}
