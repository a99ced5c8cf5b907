//! Statistics over seeds: per-x mean, population std, min and max of several runs' curves.

use crate::runtime::metrics::{mean, std};

/// One x of an aggregated curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    pub x: f64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// How many runs had a value here.
    pub runs: usize,
}

/// Summary of `values` (at least one).
pub fn summarize(x: f64, values: &[f64]) -> BandPoint {
    BandPoint {
        x,
        mean: mean(values),
        std: std(values),
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        runs: values.len(),
    }
}

/// Aggregates curves given as `(key, x, y)` points per run: points with the same key (the
/// iteration) across runs are summarised together, at the mean of their x (so an env-steps
/// axis gets the seeds' mean step count). Keys come out in increasing order.
pub fn aggregate(curves: &[Vec<(usize, f64, f64)>]) -> Vec<BandPoint> {
    let mut keys: Vec<usize> = curves.iter().flatten().map(|p| p.0).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let here: Vec<(f64, f64)> = curves
                .iter()
                .filter_map(|c| c.iter().find(|p| p.0 == k).map(|p| (p.1, p.2)))
                .collect();
            let xs: Vec<f64> = here.iter().map(|p| p.0).collect();
            let ys: Vec<f64> = here.iter().map(|p| p.1).collect();
            summarize(mean(&xs), &ys)
        })
        .collect()
}

/// `mean ± std` with `digits` decimals.
pub fn mean_pm_std(values: &[f64], digits: usize) -> String {
    format!("{:.*} ± {:.*}", digits, mean(values), digits, std(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_pairs_points_by_iteration() {
        let a = vec![(1, 10.0, 0.0), (2, 20.0, 0.5)];
        let b = vec![(1, 12.0, 1.0), (2, 22.0, 0.5), (3, 30.0, 0.25)];
        let agg = aggregate(&[a, b]);
        assert_eq!(agg.len(), 3);
        assert_eq!(agg[0].x, 11.0);
        assert_eq!(agg[0].mean, 0.5);
        assert_eq!(agg[0].std, 0.5);
        assert_eq!((agg[0].min, agg[0].max), (0.0, 1.0));
        assert_eq!(agg[1].std, 0.0);
        assert_eq!(agg[2].runs, 1);
        assert_eq!(agg[2].x, 30.0);
    }

    #[test]
    fn mean_pm_std_formats() {
        // mean 0.5, deviations ±0.25: population std 0.25
        assert_eq!(mean_pm_std(&[0.25, 0.75], 2), "0.50 ± 0.25");
    }
}
