//! `oprl report`: one self-contained HTML page (inline SVG plots, inline frames, no external
//! assets) plus a PNG and an SVG file per plot, from a set of runs grouped by method.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::plots::{self, Chart, Series};
use super::runs::{by_method, RunData};
use super::stats::{aggregate, BandPoint};
use super::{write_file, ExperimentError};
use crate::runtime::metrics::mean;
use crate::runtime::IterationMetrics;

/// The x axis of a metric chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Iterations,
    EnvSteps,
}

/// What a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub html: PathBuf,
    /// One entry per chart: the PNG file (its SVG sits beside it).
    pub plots: Vec<PathBuf>,
}

/// A method's curve of `value` (iterations where it is `None` are skipped) over its seeds.
pub fn metric_band(
    runs: &[&RunData],
    axis: Axis,
    value: &dyn Fn(&IterationMetrics) -> Option<f64>,
) -> Vec<BandPoint> {
    let curves: Vec<Vec<(usize, f64, f64)>> = runs
        .iter()
        .map(|r| {
            let steps = r.cumulative_env_steps();
            r.metrics
                .iter()
                .zip(steps)
                .filter_map(|(m, s)| {
                    let x = match axis {
                        Axis::Iterations => m.iteration as f64,
                        Axis::EnvSteps => s,
                    };
                    value(m).map(|y| (m.iteration, x, y))
                })
                .collect()
        })
        .collect();
    aggregate(&curves)
}

fn metric_chart(
    runs: &[RunData],
    name: &str,
    title: &str,
    y_label: &str,
    axis: Axis,
    value: &dyn Fn(&IterationMetrics) -> Option<f64>,
) -> Option<Chart> {
    let series: Vec<Series> = by_method(runs)
        .into_iter()
        .map(|(method, group)| Series {
            name: method,
            points: metric_band(&group, axis, value),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    (!series.is_empty()).then(|| Chart {
        name: name.to_string(),
        title: title.to_string(),
        x_label: match axis {
            Axis::Iterations => "iteration".into(),
            Axis::EnvSteps => "environment steps".into(),
        },
        y_label: y_label.to_string(),
        series,
    })
}

fn eval_chart(runs: &[RunData]) -> Option<Chart> {
    let series: Vec<Series> = by_method(runs)
        .into_iter()
        .map(|(method, group)| {
            let curves: Vec<Vec<(usize, f64, f64)>> = group
                .iter()
                .map(|r| {
                    r.evals
                        .iter()
                        .map(|e| (e.iteration, e.iteration as f64, e.success_rate))
                        .collect()
                })
                .collect();
            Series {
                name: method,
                points: aggregate(&curves),
            }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    (!series.is_empty()).then(|| Chart {
        name: "eval_success_vs_iterations".into(),
        title: "Held-out success rate".into(),
        x_label: "iteration".into(),
        y_label: "success rate".into(),
        series,
    })
}

/// Every chart the report draws (those with no data are left out).
pub fn charts(runs: &[RunData]) -> Vec<Chart> {
    type Metric = (
        &'static str,
        &'static str,
        &'static str,
        Axis,
        fn(&IterationMetrics) -> Option<f64>,
    );
    let metrics: [Metric; 9] = [
        (
            "success_vs_iterations",
            "Training success rate",
            "success rate",
            Axis::Iterations,
            |m| Some(m.success_rate),
        ),
        (
            "success_vs_env_steps",
            "Training success rate",
            "success rate",
            Axis::EnvSteps,
            |m| Some(m.success_rate),
        ),
        (
            "outcome_vs_iterations",
            "Mean outcome",
            "mean outcome",
            Axis::Iterations,
            |m| Some(m.mean_outcome),
        ),
        (
            "outcome_vs_env_steps",
            "Mean outcome",
            "mean outcome",
            Axis::EnvSteps,
            |m| Some(m.mean_outcome),
        ),
        ("prm_loss", "PRM loss", "loss", Axis::Iterations, |m| {
            m.prm_loss
        }),
        (
            "prm_pair_accuracy",
            "PRM pair accuracy (before update)",
            "accuracy",
            Axis::Iterations,
            |m| m.prm_pair_accuracy,
        ),
        (
            "adv_episode_std",
            "Std of the episode advantage A_E",
            "std",
            Axis::Iterations,
            |m| m.adv_episode_std,
        ),
        (
            "adv_step_std",
            "Std of the step advantage A_S",
            "std",
            Axis::Iterations,
            |m| m.adv_step_std,
        ),
        (
            "time_per_iteration",
            "Wall time per iteration",
            "seconds",
            Axis::Iterations,
            |m| Some(m.time_total),
        ),
    ];
    let mut out: Vec<Chart> = Vec::new();
    for (name, title, y, axis, f) in metrics {
        out.extend(metric_chart(runs, name, title, y, axis, &f));
        if name == "outcome_vs_env_steps" {
            out.extend(eval_chart(runs));
        }
    }
    out
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 (with padding), for frames inlined as data URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Mean seconds per iteration of each phase: rollout, reward, PRM, advantage, update, total.
pub fn phase_means(runs: &[&RunData]) -> [f64; 6] {
    let all: Vec<&IterationMetrics> = runs.iter().flat_map(|r| &r.metrics).collect();
    let col = |f: fn(&IterationMetrics) -> f64| mean(&all.iter().map(|m| f(m)).collect::<Vec<_>>());
    [
        col(|m| m.time_rollout),
        col(|m| m.time_reward),
        col(|m| m.time_prm),
        col(|m| m.time_advantage),
        col(|m| m.time_update),
        col(|m| m.time_total),
    ]
}

/// Lines of a transcript kept in the page.
const TRANSCRIPT_LINES: usize = 60;

fn html_page(runs: &[RunData], svgs: &[(Chart, String)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>oprl report</title>\n<style>\
body{{font-family:sans-serif;margin:2em;max-width:1500px}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}\
td:first-child{{text-align:left}}.plots{{display:flex;flex-wrap:wrap;gap:12px}}\
figure{{margin:0}}pre{{background:#f7f7f7;padding:8px;max-height:30em;overflow:auto}}\
</style></head><body>\n<h1>oprl report</h1>\n"
    );
    let _ = writeln!(
        h,
        "<p>{} runs. Curves: mean over seeds, band: min..max over seeds.</p>",
        runs.len()
    );
    h.push_str("<h2>Runs</h2>\n<table><tr><th>method</th><th>environment</th><th>seed</th><th>iterations</th><th>final success</th><th>final score</th><th>status</th><th>directory</th></tr>\n");
    for r in runs {
        let (s, sc) = r.final_success_and_score().unwrap_or((f64::NAN, f64::NAN));
        let status = r
            .summary
            .as_ref()
            .map_or("running".to_string(), |s| format!("{:?}", s.ending));
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.method),
            escape(&r.env),
            r.seed,
            r.metrics.len(),
            s,
            sc,
            status,
            escape(&r.dir.display().to_string())
        );
    }
    h.push_str("</table>\n<h2>Curves</h2>\n<div class=\"plots\">\n");
    for (chart, svg) in svgs {
        let _ = writeln!(
            h,
            "<figure id=\"{}\">{}<figcaption>{} against {} ({}.png)</figcaption></figure>",
            chart.name,
            svg,
            escape(&chart.title),
            escape(&chart.x_label),
            chart.name
        );
    }
    h.push_str("</div>\n<h2>Time per phase (mean seconds per iteration)</h2>\n<table><tr><th>method</th><th>rollout</th><th>reward</th><th>PRM</th><th>advantage</th><th>update</th><th>total</th></tr>\n");
    for (method, group) in by_method(runs) {
        let p = phase_means(&group);
        let _ = write!(h, "<tr><td>{}</td>", escape(&method));
        for v in p {
            let _ = write!(h, "<td>{v:.3}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>Sample episodes</h2>\n");
    for (method, group) in by_method(runs) {
        let Some(run) = group.first() else { continue };
        // The latest evaluation's transcripts show what training produced.
        if let Some((name, text)) = run.transcripts.last() {
            let excerpt: Vec<&str> = text.lines().take(TRANSCRIPT_LINES).collect();
            let _ = writeln!(
                h,
                "<h3>{} (seed {}): {}</h3>\n<pre>{}</pre>",
                escape(&method),
                run.seed,
                escape(name),
                escape(&excerpt.join("\n"))
            );
        }
        for frame in run.frames.iter().take(8) {
            if let Ok(bytes) = std::fs::read(frame) {
                let _ = writeln!(
                    h,
                    "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                    escape(&frame.display().to_string()),
                    base64(&bytes)
                );
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// Writes `<out>/report.html` and `<out>/plots/<chart>.{png,svg}`.
pub fn write_report(runs: &[RunData], out: &Path) -> Result<ReportFiles, ExperimentError> {
    let plot_dir = out.join("plots");
    let mut svgs = Vec::new();
    let mut plots = Vec::new();
    for chart in charts(runs) {
        let svg = plots::write_both(&chart, &plot_dir)?;
        plots.push(plot_dir.join(format!("{}.png", chart.name)));
        svgs.push((chart, svg));
    }
    let html = out.join("report.html");
    write_file(&html, html_page(runs, &svgs).as_bytes())?;
    Ok(ReportFiles { html, plots })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        // RFC 4648 section 10 test vectors.
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn escape_html() {
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
