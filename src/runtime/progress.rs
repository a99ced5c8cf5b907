//! What the user sees while a run trains: a progress bar (iteration, success, PRM pair
//! accuracy, speed), nothing (`--quiet`), or one JSON object per iteration on stdout
//! (`--json-lines`) for scripts.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::metrics::IterationMetrics;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    #[default]
    Bar,
    Quiet,
    JsonLines,
}

/// Shows a run's progress in the chosen mode.
pub struct Reporter {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub fn new(mode: ProgressMode, iterations: usize, start: usize) -> Reporter {
        let bar = (mode == ProgressMode::Bar).then(|| {
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
            bar
        });
        Reporter { mode, bar }
    }

    /// One line of text for messages that should be seen (evaluations, warnings, checkpoints).
    pub fn note(&self, text: &str) {
        match (&self.bar, self.mode) {
            (Some(bar), _) => bar.println(text),
            (None, ProgressMode::Quiet) => {}
            (None, _) => eprintln!("{text}"),
        }
    }

    pub fn iteration(&self, m: &IterationMetrics) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
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

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// ` goal G overall O` for judged runs (SOTOPIA), empty otherwise.
pub fn judged_scores(goal: Option<f64>, overall: Option<f64>) -> String {
    match (goal, overall) {
        (Some(g), Some(o)) => format!(" goal {g:.2} overall {o:.2}"),
        _ => String::new(),
    }
}
