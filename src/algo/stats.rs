//! Shared statistics: grouping by id, group normalisation (z-score, leave-one-out, mean) with
//! the reference implementations' rules for groups of one, and veRL's masked mean / variance /
//! whitening. Accumulation is in f64; results are rounded to f32 once.

use super::AlgoError;
use crate::graph::Norm;
use std::collections::HashMap;
use std::hash::Hash;

/// The indices of each group, groups in order of first appearance, members in input order.
pub fn group_members<G: Hash + Eq>(ids: &[G]) -> Vec<Vec<usize>> {
    let mut slot: HashMap<&G, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let g = *slot.entry(id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// Arithmetic mean in f64 (0 for an empty slice).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Unbiased (N-1) standard deviation, as `torch.std`; 0 for fewer than two values (callers
/// handle groups of one before reaching here).
pub fn std_unbiased(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// What a group normaliser does with a group of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Singleton {
    /// veRL's outcome estimators: mean 0 and std 1, so the value passes through
    /// (`x / (1 + eps)` under z-score; `x` under leave-one-out and mean).
    PassThrough,
    /// verl-agent's GiGPO step groups: the mean is the value itself, so the advantage is 0.
    Zero,
}

/// Normalises one group's values.
///
/// - `Zscore`: `(x - mean) / (std + eps)`, unbiased std (std 0 gives 0 since `x - mean` is exactly
///   0 for identical values);
/// - `Rloo`: `x * n/(n-1) - mean * n/(n-1)`, i.e. `x` minus the mean of the other `n-1` (veRL's form);
/// - `Mean` and `MeanWhiten`: `x - mean` (the batch whitening of `MeanWhiten` is the caller's job);
/// - `None`: `x`.
///
/// A group of one follows `singleton`.
pub fn normalise_group(xs: &[f64], norm: Norm, eps: f64, singleton: Singleton) -> Vec<f64> {
    let n = xs.len();
    if n == 1 {
        return match (singleton, norm) {
            (_, Norm::None) => xs.to_vec(),
            (Singleton::Zero, _) => vec![0.0],
            (Singleton::PassThrough, Norm::Zscore) => vec![xs[0] / (1.0 + eps)],
            (Singleton::PassThrough, _) => xs.to_vec(),
        };
    }
    let m = mean(xs);
    match norm {
        Norm::Zscore => {
            let s = std_unbiased(xs);
            xs.iter().map(|x| (x - m) / (s + eps)).collect()
        }
        Norm::Rloo => {
            let k = n as f64 / (n as f64 - 1.0);
            xs.iter().map(|x| x * k - m * k).collect()
        }
        Norm::Mean | Norm::MeanWhiten => xs.iter().map(|x| x - m).collect(),
        Norm::None => xs.to_vec(),
    }
}

/// Normalises `values` within the groups given by `ids` (see [`normalise_group`]).
pub fn normalise_by_group<G: Hash + Eq>(
    values: &[f64],
    ids: &[G],
    norm: Norm,
    eps: f64,
    singleton: Singleton,
) -> Result<Vec<f64>, AlgoError> {
    super::check_len("group ids", ids.len(), values.len())?;
    let mut out = vec![0.0; values.len()];
    for members in group_members(ids) {
        let xs: Vec<f64> = members.iter().map(|&i| values[i]).collect();
        for (&i, v) in members
            .iter()
            .zip(normalise_group(&xs, norm, eps, singleton))
        {
            out[i] = v;
        }
    }
    Ok(out)
}

/// veRL's `masked_mean` over all entries: `sum(x * m) / (sum(m) + 1e-8)`.
pub fn masked_mean(values: &[f32], mask: &[f32]) -> f64 {
    let s: f64 = values
        .iter()
        .zip(mask)
        .map(|(&v, &m)| v as f64 * m as f64)
        .sum();
    s / (mask_sum(mask) + 1e-8)
}

/// The sum of a mask, in f64.
pub fn mask_sum(mask: &[f32]) -> f64 {
    mask.iter().map(|&m| m as f64).sum()
}

/// veRL's `masked_var(unbiased=True)`: the masked mean of squared deviations times
/// `sum(m) / (sum(m) - 1)`. Errors (as veRL raises) when fewer than two entries are unmasked.
pub fn masked_var(values: &[f32], mask: &[f32]) -> Result<f64, AlgoError> {
    super::check_len("mask", mask.len(), values.len())?;
    let total = mask_sum(mask);
    if total < 2.0 {
        return Err(AlgoError::TooFewForWhitening(total as usize));
    }
    let m = masked_mean(values, mask);
    let ss: f64 = values
        .iter()
        .zip(mask)
        .map(|(&v, &w)| (v as f64 - m) * (v as f64 - m) * w as f64)
        .sum();
    Ok(ss / (total + 1e-8) * (total / (total - 1.0)))
}

/// The affine map of [`masked_whiten`]: `(masked_mean, 1 / sqrt(masked_var + 1e-8))`.
pub fn whiten_affine(values: &[f32], mask: &[f32]) -> Result<(f64, f64), AlgoError> {
    let var = masked_var(values, mask)?;
    Ok((masked_mean(values, mask), 1.0 / (var + 1e-8).sqrt()))
}

/// veRL's `masked_whiten(shift_mean=True)`: `(x - masked_mean) * rsqrt(masked_var + 1e-8)` for
/// EVERY entry (masked entries are transformed too; callers that want zeros there multiply by the
/// mask, as veRL's callers do or do not).
pub fn masked_whiten(values: &[f32], mask: &[f32]) -> Result<Vec<f32>, AlgoError> {
    let (m, inv) = whiten_affine(values, mask)?;
    Ok(values
        .iter()
        .map(|&v| ((v as f64 - m) * inv) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn groups_keep_first_appearance_order() {
        let ids = ["b", "a", "b", "c", "a"];
        assert_eq!(group_members(&ids), vec![vec![0, 2], vec![1, 4], vec![3]]);
    }

    #[test]
    fn std_is_unbiased() {
        // values 1, 2, 3, 4: mean 2.5, squared deviations sum 5, / 3.
        assert!(close(
            std_unbiased(&[1.0, 2.0, 3.0, 4.0]),
            (5.0f64 / 3.0).sqrt()
        ));
        assert_eq!(std_unbiased(&[7.0]), 0.0);
    }

    #[test]
    fn zscore_by_hand_and_identical_values() {
        let z = normalise_group(&[1.0, 3.0], Norm::Zscore, 1e-6, Singleton::PassThrough);
        // mean 2, std sqrt(2)
        let s = 2f64.sqrt();
        assert!(close(z[0], -1.0 / (s + 1e-6)) && close(z[1], 1.0 / (s + 1e-6)));
        let same = normalise_group(&[0.3, 0.3, 0.3], Norm::Zscore, 1e-6, Singleton::PassThrough);
        assert_eq!(same, vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn rloo_is_minus_mean_of_others() {
        let a = normalise_group(
            &[1.0, 0.0, 0.0, 1.0],
            Norm::Rloo,
            1e-6,
            Singleton::PassThrough,
        );
        // 1 - (0 + 0 + 1)/3 = 2/3 ; 0 - 2/3 = -2/3
        for (x, want) in a.iter().zip([2.0 / 3.0, -2.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0]) {
            assert!(close(*x, want));
        }
    }

    #[test]
    fn singleton_rules() {
        let pass = Singleton::PassThrough;
        assert!(close(
            normalise_group(&[2.0], Norm::Zscore, 1e-6, pass)[0],
            2.0 / (1.0 + 1e-6)
        ));
        assert_eq!(normalise_group(&[2.0], Norm::Rloo, 1e-6, pass), vec![2.0]);
        assert_eq!(normalise_group(&[2.0], Norm::Mean, 1e-6, pass), vec![2.0]);
        assert_eq!(
            normalise_group(&[2.0], Norm::Zscore, 1e-6, Singleton::Zero),
            vec![0.0]
        );
        assert_eq!(
            normalise_group(&[2.0], Norm::Mean, 1e-6, Singleton::Zero),
            vec![0.0]
        );
        assert_eq!(
            normalise_group(&[2.0], Norm::None, 1e-6, Singleton::Zero),
            vec![2.0]
        );
    }

    #[test]
    fn by_group_scatters_back_in_place() {
        let v = [1.0, 10.0, 3.0, 20.0];
        let out = normalise_by_group(&v, &[0, 1, 0, 1], Norm::Mean, 1e-6, Singleton::PassThrough)
            .unwrap();
        assert_eq!(out, vec![-1.0, -5.0, 1.0, 5.0]);
        assert!(normalise_by_group(&v, &[0], Norm::Mean, 1e-6, Singleton::PassThrough).is_err());
    }

    #[test]
    fn whitening_by_hand() {
        // unmasked 1, 2, 3: mean 2, unbiased var 1 -> whitened -1, 0, 1; the masked 9 -> 7.
        let w = masked_whiten(&[1.0, 2.0, 3.0, 9.0], &[1.0, 1.0, 1.0, 0.0]).unwrap();
        let want = [-1.0, 0.0, 1.0, 7.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert_eq!(
            masked_whiten(&[1.0, 2.0], &[1.0, 0.0]),
            Err(AlgoError::TooFewForWhitening(1))
        );
        assert_eq!(
            masked_whiten(&[1.0, 2.0], &[0.0, 0.0]),
            Err(AlgoError::TooFewForWhitening(0))
        );
    }
}
