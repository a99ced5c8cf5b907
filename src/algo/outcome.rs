//! Outcome (episode-level) advantage estimators over per-trajectory scores with group ids, with
//! veRL's semantics (`core_algos.py` at volcengine/verl@b178a3cd): RLOO, GRPO (with or without
//! std normalisation) and the REINFORCE++ baseline. Each has a score form (one value per
//! trajectory) and veRL's token form (`[batch, response_length]` rewards and mask in, the
//! advantage broadcast over the row's tokens and multiplied by the mask out; returns equal the
//! advantages for all three).

use super::stats::{masked_whiten, normalise_by_group, Singleton};
use super::{check_len, AlgoError, Mat};
use crate::graph::Norm;
use std::hash::Hash;

/// RLOO on scores: `s_i - mean_{j != i} s_j` within each group (veRL computes it as
/// `s_i * n/(n-1) - mean * n/(n-1)`); a group of one keeps its own score.
pub fn rloo_scores<G: Hash + Eq>(scores: &[f32], ids: &[G]) -> Result<Vec<f32>, AlgoError> {
    by_group(scores, ids, Norm::Rloo, 0.0)
}

/// GRPO on scores: `(s - mean) / (std + eps)` with the unbiased std when `norm_by_std`, else
/// `s - mean`. A group of one uses mean 0 and std 1; identical scores (std 0) give 0.
pub fn grpo_scores<G: Hash + Eq>(
    scores: &[f32],
    ids: &[G],
    eps: f32,
    norm_by_std: bool,
) -> Result<Vec<f32>, AlgoError> {
    let norm = if norm_by_std {
        Norm::Zscore
    } else {
        Norm::Mean
    };
    by_group(scores, ids, norm, eps)
}

/// The first half of the REINFORCE++ baseline on scores: `s - group mean` (a group of one uses
/// mean 0). The batch whitening that follows is over tokens; see [`reinforce_pp_baseline_advantage`].
pub fn group_mean_baseline<G: Hash + Eq>(scores: &[f32], ids: &[G]) -> Result<Vec<f32>, AlgoError> {
    by_group(scores, ids, Norm::Mean, 0.0)
}

fn by_group<G: Hash + Eq>(
    scores: &[f32],
    ids: &[G],
    norm: Norm,
    eps: f32,
) -> Result<Vec<f32>, AlgoError> {
    let xs: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
    let out = normalise_by_group(&xs, ids, norm, eps as f64, Singleton::PassThrough)?;
    Ok(out.into_iter().map(|v| v as f32).collect())
}

/// Per-row score: the sum of the row's token rewards (veRL: `token_level_rewards.sum(-1)`,
/// unmasked, since rewards sit on valid tokens).
pub fn row_scores(token_rewards: &Mat) -> Vec<f32> {
    (0..token_rewards.rows)
        .map(|i| token_rewards.row(i).iter().map(|&r| r as f64).sum::<f64>() as f32)
        .collect()
}

/// Broadcasts one value per row over the row's tokens, times the mask.
pub fn broadcast_rows(values: &[f32], mask: &Mat) -> Result<Mat, AlgoError> {
    check_len("row values", values.len(), mask.rows)?;
    let mut out = mask.clone();
    for (i, &v) in values.iter().enumerate() {
        for m in out.row_mut(i) {
            *m *= v;
        }
    }
    Ok(out)
}

fn check_token_inputs(token_rewards: &Mat, mask: &Mat, n_ids: usize) -> Result<(), AlgoError> {
    token_rewards.check_same_shape(mask, "response_mask")?;
    check_len("index", n_ids, token_rewards.rows)
}

/// veRL's `compute_rloo_outcome_advantage`: RLOO of the row sums, broadcast times the mask.
pub fn rloo_outcome_advantage<G: Hash + Eq>(
    token_rewards: &Mat,
    mask: &Mat,
    index: &[G],
) -> Result<Mat, AlgoError> {
    check_token_inputs(token_rewards, mask, index.len())?;
    broadcast_rows(&rloo_scores(&row_scores(token_rewards), index)?, mask)
}

/// veRL's `compute_grpo_outcome_advantage` (`norm_adv_by_std_in_grpo` = `norm_by_std`).
pub fn grpo_outcome_advantage<G: Hash + Eq>(
    token_rewards: &Mat,
    mask: &Mat,
    index: &[G],
    eps: f32,
    norm_by_std: bool,
) -> Result<Mat, AlgoError> {
    check_token_inputs(token_rewards, mask, index.len())?;
    let adv = grpo_scores(&row_scores(token_rewards), index, eps, norm_by_std)?;
    broadcast_rows(&adv, mask)
}

/// veRL's `compute_reinforce_plus_plus_baseline_outcome_advantage`: `s - group mean`, broadcast
/// times the mask, then `masked_whiten` over every token of the batch, times the mask again.
/// Errors when the batch has fewer than two valid tokens (veRL raises there too).
pub fn reinforce_pp_baseline_advantage<G: Hash + Eq>(
    token_rewards: &Mat,
    mask: &Mat,
    index: &[G],
) -> Result<Mat, AlgoError> {
    check_token_inputs(token_rewards, mask, index.len())?;
    let centred = group_mean_baseline(&row_scores(token_rewards), index)?;
    let tokens = broadcast_rows(&centred, mask)?;
    let white = masked_whiten(&tokens.data, &mask.data)?;
    let data = white.iter().zip(&mask.data).map(|(w, m)| w * m).collect();
    Mat::new(mask.rows, mask.cols, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn rloo_by_hand_with_singleton() {
        // group a: 1, 0, 0 -> 1 - 0 = 1, 0 - 0.5, 0 - 0.5 ; group b (one member) keeps 5.
        let adv = rloo_scores(&[1.0, 0.0, 5.0, 0.0], &["a", "a", "b", "a"]).unwrap();
        assert_close(&adv, &[1.0, -0.5, 5.0, -0.5], 1e-6);
    }

    #[test]
    fn grpo_by_hand_with_singleton_and_identical() {
        // group a: 0, 1, 1 -> mean 2/3, std sqrt(1/3); group b: 3 alone -> 3/(1+eps);
        // group c: 2, 2 -> std 0 -> 0.
        let ids = ["a", "a", "a", "b", "c", "c"];
        let s = [0.0, 1.0, 1.0, 3.0, 2.0, 2.0];
        let adv = grpo_scores(&s, &ids, 1e-6, true).unwrap();
        let sd = (1.0f32 / 3.0).sqrt() + 1e-6;
        let want = [
            -2.0 / 3.0 / sd,
            1.0 / 3.0 / sd,
            1.0 / 3.0 / sd,
            3.0 / 1.000001,
            0.0,
            0.0,
        ];
        assert_close(&adv, &want, 1e-6);
        let no_std = grpo_scores(&s, &ids, 1e-6, false).unwrap();
        assert_close(
            &no_std,
            &[-2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 3.0, 0.0, 0.0],
            1e-6,
        );
    }

    #[test]
    fn token_forms_broadcast_times_mask() {
        let rewards = Mat::from_rows(&[vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 0.0]]).unwrap();
        let mask = Mat::from_rows(&[vec![1.0, 1.0, 0.0], vec![1.0, 1.0, 1.0]]).unwrap();
        let adv = rloo_outcome_advantage(&rewards, &mask, &[7, 7]).unwrap();
        assert_eq!(
            adv.to_rows(),
            vec![vec![1.0, 1.0, 0.0], vec![-1.0, -1.0, -1.0]]
        );
        assert!(rloo_outcome_advantage(&rewards, &mask, &[7]).is_err());
    }

    #[test]
    fn reinforce_pp_by_hand() {
        // scores 1 and 0 in one group: centred 0.5, -0.5. Tokens: [0.5, 0.5] and [-0.5]
        // (mask [1,1],[1,0]). Masked mean 1/6; deviations 1/3, 1/3, -2/3; unbiased var
        // (1/9 + 1/9 + 4/9) / 2 = 1/3.
        let rewards = Mat::from_rows(&[vec![1.0, 0.0], vec![0.0, 0.0]]).unwrap();
        let mask = Mat::from_rows(&[vec![1.0, 1.0], vec![1.0, 0.0]]).unwrap();
        let adv = reinforce_pp_baseline_advantage(&rewards, &mask, &[0, 0]).unwrap();
        let k = 1.0 / (1.0f32 / 3.0 + 1e-8).sqrt();
        assert_close(&adv.data, &[k / 3.0, k / 3.0, -2.0 * k / 3.0, 0.0], 1e-5);
        // a single valid token cannot be whitened
        let one = Mat::from_rows(&[vec![1.0, 0.0]]).unwrap();
        assert!(reinforce_pp_baseline_advantage(&one, &one, &[0]).is_err());
    }

    fn grouped_scores() -> impl Strategy<Value = (Vec<f32>, Vec<u8>)> {
        // Quarter steps keep every score and every shifted score exact in f32, so the invariance
        // is tested without rounding noise magnified by a tiny group std.
        prop::collection::vec((-40i32..40, 0u8..4), 2..24)
            .prop_map(|v| v.into_iter().map(|(s, g)| (s as f32 * 0.25, g)).unzip())
    }

    proptest! {
        #[test]
        fn rloo_and_grpo_sum_to_zero_in_groups((scores, ids) in grouped_scores()) {
            for adv in [
                rloo_scores(&scores, &ids).unwrap(),
                grpo_scores(&scores, &ids, 1e-6, true).unwrap(),
                grpo_scores(&scores, &ids, 1e-6, false).unwrap(),
            ] {
                for members in crate::algo::stats::group_members(&ids) {
                    if members.len() >= 2 {
                        let s: f32 = members.iter().map(|&i| adv[i]).sum();
                        prop_assert!(s.abs() < 1e-3, "group sum {s}");
                    }
                }
            }
        }

        #[test]
        fn invariant_to_a_constant_per_group(
            (scores, ids) in grouped_scores(),
            shift in prop::collection::vec(-20i32..20, 4),
        ) {
            let shifted: Vec<f32> = scores.iter().zip(&ids)
                .map(|(s, &g)| s + shift[g as usize] as f32 * 0.25).collect();
            // Groups of one pass their score through, so only groups of two or more are invariant.
            let multi: Vec<bool> = ids.iter()
                .map(|g| ids.iter().filter(|h| *h == g).count() >= 2).collect();
            let pairs = [
                (rloo_scores(&scores, &ids).unwrap(), rloo_scores(&shifted, &ids).unwrap()),
                (grpo_scores(&scores, &ids, 1e-6, true).unwrap(),
                 grpo_scores(&shifted, &ids, 1e-6, true).unwrap()),
                (group_mean_baseline(&scores, &ids).unwrap(),
                 group_mean_baseline(&shifted, &ids).unwrap()),
            ];
            for (a, b) in pairs {
                for i in 0..a.len() {
                    if multi[i] {
                        prop_assert!((a[i] - b[i]).abs() < 2e-3 * (1.0 + a[i].abs()),
                            "{} vs {}", a[i], b[i]);
                    }
                }
            }
        }
    }
}
