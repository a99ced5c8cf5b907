//! `oprl bench`: a few training iterations of a recipe in memory (no run directory, no
//! evaluation) and the per-phase breakdown: rollout tokens/s, environment steps/s, and the
//! time of rollout, reward, PRM update, advantage and policy update, as a table.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use super::ExperimentError;
use crate::runtime::metrics::mean;
use crate::runtime::trainer::Trainer;
use crate::runtime::{IterationMetrics, Observer};

/// Runs `iterations` iterations of `recipe` (with `overrides`) and returns their metrics;
/// `observer` hears about environment retries.
pub fn bench(
    recipe: &Path,
    overrides: &[String],
    iterations: usize,
    observer: Option<Arc<dyn Observer>>,
) -> Result<Vec<IterationMetrics>, ExperimentError> {
    let graph = super::sweep::compile_graph(recipe, overrides)?;
    let mut trainer = Trainer::new(graph)?;
    trainer.retry.observer = observer;
    let mut out = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        out.push(trainer.step()?);
    }
    Ok(out)
}

/// The table: one row per iteration and a mean row (over iterations after the first, which
/// pays one-off warm-up costs, when there are several).
pub fn table(metrics: &[IterationMetrics]) -> String {
    let mut t = String::from(
        "| iteration | rollout tok/s | env steps/s | rollout s | reward s | PRM s | advantage s | update s | total s |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let row = |t: &mut String, label: &str, v: [f64; 8]| {
        let _ = writeln!(
            t,
            "| {label} | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
        );
    };
    let values = |m: &IterationMetrics| {
        [
            m.tokens_per_s,
            m.env_steps_per_s,
            m.time_rollout,
            m.time_reward,
            m.time_prm,
            m.time_advantage,
            m.time_update,
            m.time_total,
        ]
    };
    for m in metrics {
        row(&mut t, &m.iteration.to_string(), values(m));
    }
    let steady = if metrics.len() > 1 {
        &metrics[1..]
    } else {
        metrics
    };
    if !steady.is_empty() {
        let cols: Vec<[f64; 8]> = steady.iter().map(values).collect();
        let mut means = [0.0; 8];
        for (i, m) in means.iter_mut().enumerate() {
            *m = mean(&cols.iter().map(|c| c[i]).collect::<Vec<_>>());
        }
        let label = if metrics.len() > 1 {
            "mean (2..)"
        } else {
            "mean"
        };
        row(&mut t, label, means);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_means_skip_the_warm_up_iteration() {
        let m = |i: usize, total: f64| IterationMetrics {
            iteration: i,
            time_total: total,
            tokens_per_s: 100.0 * total,
            ..Default::default()
        };
        let t = table(&[m(1, 9.0), m(2, 1.0), m(3, 2.0)]);
        assert_eq!(t.lines().count(), 2 + 3 + 1);
        let last = t.lines().last().unwrap();
        assert!(last.starts_with("| mean (2..) | 150 |"), "{last}");
        assert!(last.ends_with("| 1.500 |"), "{last}");
    }
}
