//! GiGPO as verl-agent's `gigpo/core_gigpo.py` (langfengQ/verl-agent@796ed310): one row per
//! environment step; discounted step returns per trajectory; an episode-level advantage from
//! the rows of each task group; anchor-state step groups (identical current observation within a
//! task group, or difflib-similar ones); a step-level advantage within each step group; and
//! `A = A_E + w * A_S`.

use super::outcome::grpo_outcome_advantage;
use super::stats::{group_members, normalise_group, Singleton};
use super::{check_len, AlgoError, Mat};
use crate::graph::Norm;
use std::collections::HashMap;
use std::hash::Hash;

/// verl-agent's `compute_step_discounted_returns`: for each trajectory (rows sharing a
/// `traj_ids` value, in batch order) `R_t = r_t + gamma * R_{t+1}`. Accumulated in f64 and
/// rounded to f32 when stored, as numpy 1.x does (verl pins numpy < 2; under numpy 2 the
/// accumulator is f32 and results differ by about one f32 ulp).
pub fn discounted_step_returns<T: Hash + Eq>(
    env_rewards: &[f32],
    traj_ids: &[T],
    gamma: f64,
) -> Result<Vec<f32>, AlgoError> {
    check_len("trajectory ids", traj_ids.len(), env_rewards.len())?;
    let mut out = vec![0.0f32; env_rewards.len()];
    for rows in group_members(traj_ids) {
        let mut running = 0.0f64;
        for &i in rows.iter().rev() {
            running = env_rewards[i] as f64 + gamma * running;
            out[i] = running as f32;
        }
    }
    Ok(out)
}

/// verl-agent's `build_step_group` with exact matching: within each task group (`index`), rows
/// with identical anchor observations share a step group. Each group is named by its smallest
/// row index (verl-agent draws uuid4 names; the partition is the same).
pub fn anchor_step_groups<G: Hash + Eq, A: Hash + Eq>(
    index: &[G],
    anchors: &[A],
) -> Result<Vec<usize>, AlgoError> {
    check_len("anchor observations", anchors.len(), index.len())?;
    let mut out = vec![0usize; index.len()];
    for rows in group_members(index) {
        let mut first: HashMap<&A, usize> = HashMap::new();
        for &i in &rows {
            out[i] = *first.entry(&anchors[i]).or_insert(i);
        }
    }
    Ok(out)
}

/// Similarity grouping: within each task group, rows are clustered greedily in batch order; a
/// row joins the first cluster whose first observation is similar
/// (`difflib_ratio >= threshold`), or starts a new one. Groups are named by their smallest row.
pub fn similar_step_groups<G: Hash + Eq>(
    index: &[G],
    anchors: &[String],
    threshold: f64,
) -> Result<Vec<usize>, AlgoError> {
    check_len("anchor observations", anchors.len(), index.len())?;
    let mut out = vec![0usize; index.len()];
    for rows in group_members(index) {
        let mut reps: Vec<usize> = Vec::new();
        for &i in &rows {
            let found = reps
                .iter()
                .copied()
                .find(|&r| difflib_ratio(&anchors[i], &anchors[r]) >= threshold);
            out[i] = match found {
                Some(r) => r,
                None => {
                    reps.push(i);
                    i
                }
            };
        }
    }
    Ok(out)
}

/// Python's `difflib.SequenceMatcher(None, a, b).ratio()` over Unicode scalar values:
/// `2 M / (len a + len b)` with `M` the total size of the matching blocks found by recursively
/// taking the longest common block, including the "autojunk" rule (for `len b >= 200`, elements
/// of `b` occurring more than `len b / 100 + 1` times are not used to seed matches).
pub fn difflib_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
    for (j, &c) in b.iter().enumerate() {
        b2j.entry(c).or_default().push(j);
    }
    if b.len() >= 200 {
        let ntest = b.len() / 100 + 1;
        b2j.retain(|_, js| js.len() <= ntest);
    }
    let mut matched = 0usize;
    let mut queue = vec![(0usize, a.len(), 0usize, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest_match(&a, &b, &b2j, alo, ahi, blo, bhi);
        if k > 0 {
            matched += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    2.0 * matched as f64 / total as f64
}

/// difflib's `find_longest_match` without a junk predicate: the earliest longest block seeded
/// from `b2j`, then extended over equal neighbours (autojunked elements may extend a block).
#[allow(clippy::too_many_arguments)]
fn longest_match(
    a: &[char],
    b: &[char],
    b2j: &HashMap<char, Vec<usize>>,
    alo: usize,
    ahi: usize,
    blo: usize,
    bhi: usize,
) -> (usize, usize, usize) {
    let (mut besti, mut bestj, mut best) = (alo, blo, 0usize);
    let mut j2len: HashMap<usize, usize> = HashMap::new();
    for (i, c) in a.iter().enumerate().take(ahi).skip(alo) {
        let mut next: HashMap<usize, usize> = HashMap::new();
        if let Some(js) = b2j.get(c) {
            for &j in js {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = if j > 0 {
                    j2len.get(&(j - 1)).copied().unwrap_or(0)
                } else {
                    0
                } + 1;
                next.insert(j, k);
                if k > best {
                    besti = i + 1 - k;
                    bestj = j + 1 - k;
                    best = k;
                }
            }
        }
        j2len = next;
    }
    while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
        besti -= 1;
        bestj -= 1;
        best += 1;
    }
    while besti + best < ahi && bestj + best < bhi && a[besti + best] == b[bestj + best] {
        best += 1;
    }
    (besti, bestj, best)
}

/// verl-agent's `step_norm_reward`: within each step group, `R - mean` (`remove_std`) or
/// `(R - mean) / (std + eps)` (unbiased std); a step group of one gets 0 (its mean is its own
/// value). Broadcast over the row's tokens times the mask.
pub fn step_norm_reward(
    step_returns: &[f32],
    step_groups: &[usize],
    mask: &Mat,
    eps: f32,
    remove_std: bool,
) -> Result<Mat, AlgoError> {
    check_len("step returns", step_returns.len(), mask.rows)?;
    check_len("step groups", step_groups.len(), mask.rows)?;
    let norm = if remove_std { Norm::Mean } else { Norm::Zscore };
    let mut adv = vec![0.0f32; step_returns.len()];
    for rows in group_members(step_groups) {
        let xs: Vec<f64> = rows.iter().map(|&i| step_returns[i] as f64).collect();
        for (&i, v) in rows
            .iter()
            .zip(normalise_group(&xs, norm, eps as f64, Singleton::Zero))
        {
            adv[i] = v as f32;
        }
    }
    super::outcome::broadcast_rows(&adv, mask)
}

/// The knobs of [`gigpo_advantage`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GigpoConfig {
    /// Discount of the step returns (0.95).
    pub gamma: f64,
    /// `step_advantage_w`, the weight of the step advantage (omega = 1).
    pub step_weight: f32,
    /// verl-agent's `mode`: `mean_norm` = true (no std), `mean_std_norm` = false.
    pub remove_std: bool,
    pub eps: f32,
    /// `Some(threshold)` enables similarity grouping of anchor observations.
    pub similarity: Option<f64>,
}

/// Everything [`gigpo_advantage`] computes, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct GigpoOutput {
    /// Discounted step returns.
    pub step_returns: Vec<f32>,
    /// The smallest row index of each row's step group.
    pub step_groups: Vec<usize>,
    pub episode_advantages: Mat,
    pub step_advantages: Mat,
    /// `episode + step_weight * step`; verl-agent's returns are equal to it.
    pub advantages: Mat,
}

/// The row inputs of [`gigpo_advantage`] (one row per environment step, in collation order).
pub struct GigpoRows<'a, G, T> {
    /// Task group of each row.
    pub index: &'a [G],
    /// Trajectory of each row.
    pub traj_index: &'a [T],
    /// Current observation of each row.
    pub anchor_obs: &'a [String],
    pub env_rewards: &'a [f32],
    /// `[rows, T]`: the episode reward at the last valid token of every row of the trajectory.
    pub token_rewards: &'a Mat,
    pub mask: &'a Mat,
}

/// verl-agent's `compute_gigpo_outcome_advantage`. The episode advantage is normalised over the
/// ROWS of each task group (so each trajectory weighs by its number of steps), with veRL's GRPO
/// rules (a group of one row: mean 0, std 1).
pub fn gigpo_advantage<G: Hash + Eq, T: Hash + Eq>(
    rows: &GigpoRows<'_, G, T>,
    cfg: &GigpoConfig,
) -> Result<GigpoOutput, AlgoError> {
    let n = rows.mask.rows;
    check_len("index", rows.index.len(), n)?;
    check_len("env rewards", rows.env_rewards.len(), n)?;
    let episode_advantages = grpo_outcome_advantage(
        rows.token_rewards,
        rows.mask,
        rows.index,
        cfg.eps,
        !cfg.remove_std,
    )?;
    let step_returns = discounted_step_returns(rows.env_rewards, rows.traj_index, cfg.gamma)?;
    let step_groups = match cfg.similarity {
        None => anchor_step_groups(rows.index, rows.anchor_obs)?,
        Some(t) => similar_step_groups(rows.index, rows.anchor_obs, t)?,
    };
    let step_advantages = step_norm_reward(
        &step_returns,
        &step_groups,
        rows.mask,
        cfg.eps,
        cfg.remove_std,
    )?;
    let data = episode_advantages
        .data
        .iter()
        .zip(&step_advantages.data)
        .map(|(e, s)| e + cfg.step_weight * s)
        .collect();
    let advantages = Mat::new(n, rows.mask.cols, data)?;
    Ok(GigpoOutput {
        step_returns,
        step_groups,
        episode_advantages,
        step_advantages,
        advantages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounted_returns_per_trajectory_in_batch_order() {
        // trajectories interleaved: t0 rows 0, 2; t1 rows 1, 3
        let r =
            discounted_step_returns(&[-0.1, 1.0, 10.0, 2.0], &["a", "b", "a", "b"], 0.5).unwrap();
        assert!((r[0] - (-0.1 + 5.0)).abs() < 1e-6 && r[2] == 10.0);
        assert!((r[1] - 2.0).abs() < 1e-6 && r[3] == 2.0);
    }

    #[test]
    fn exact_groups_stay_inside_task_groups() {
        let index = [0, 0, 1, 0, 1];
        let obs = ["x", "y", "x", "x", "x"];
        assert_eq!(
            anchor_step_groups(&index, &obs).unwrap(),
            vec![0, 1, 2, 0, 2]
        );
    }

    #[test]
    fn step_norm_singletons_are_zero() {
        let mask = Mat::filled(3, 2, 1.0);
        // group 0: rows 0, 1 (returns 1, 3 -> -1, 1); row 2 alone -> 0
        let adv = step_norm_reward(&[1.0, 3.0, 7.0], &[0, 0, 2], &mask, 1e-6, true).unwrap();
        assert_eq!(
            adv.to_rows(),
            vec![vec![-1.0, -1.0], vec![1.0, 1.0], vec![0.0, 0.0]]
        );
        let z = step_norm_reward(&[1.0, 3.0, 7.0], &[0, 0, 2], &mask, 1e-6, false).unwrap();
        let s = 2f32.sqrt() + 1e-6;
        assert!((z.row(0)[0] + 1.0 / s).abs() < 1e-6 && z.row(2)[0] == 0.0);
    }

    #[test]
    fn difflib_ratio_by_hand() {
        // "abcd" vs "bcde": longest block "bcd" (3): 2*3/8
        assert!((difflib_ratio("abcd", "bcde") - 0.75).abs() < 1e-12);
        assert_eq!(difflib_ratio("", ""), 1.0);
        assert_eq!(difflib_ratio("abc", "xyz"), 0.0);
        // blocks "a" then "c" after the longest "b"? "abxc" vs "abyc": "ab" + "c" = 3 -> 6/8
        assert!((difflib_ratio("abxc", "abyc") - 0.75).abs() < 1e-12);
    }

    /// A deterministic text grid (cells joined by " \t ", rows by newlines) with some cells
    /// replaced by `P`.
    fn grid(n: usize, changed: &[(usize, usize)]) -> String {
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if changed.contains(&(i, j)) {
                            "P".to_string()
                        } else {
                            "#_PXO"[(i * 7 + j * 3) % 5..][..1].to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" \t ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Ratios printed by CPython 3.11's difflib for the same strings; the long ones exercise
    /// the autojunk rule (b of 200+ elements), which makes near-identical grids look dissimilar.
    #[test]
    fn difflib_ratio_matches_cpython_including_autojunk() {
        let cases: [(String, String, f64); 4] = [
            (grid(6, &[]), grid(6, &[(2, 3)]), 0.9923664122137404),
            (
                grid(10, &[]),
                grid(10, &[(2, 3), (7, 7)]),
                0.23218997361477572,
            ),
            (
                "ab".repeat(150) + "xyz",
                "ab".repeat(140) + &"q".repeat(30) + "xyz",
                0.9188311688311688,
            ),
            ("é漢字".repeat(70), "漢字é".repeat(69) + "z", 0.0),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                difflib_ratio(&a, &b),
                want,
                "{} vs {} chars",
                a.len(),
                b.len()
            );
            assert_eq!(difflib_ratio(&b, &a), want);
        }
    }

    #[test]
    fn similar_groups_greedy() {
        let obs: Vec<String> = ["abcdefghij", "abcdefghiX", "zzzzzzzzzz", "abcdefghij"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // ratio of the first two = 18/20 = 0.9
        assert_eq!(
            similar_step_groups(&[0, 0, 0, 0], &obs, 0.9).unwrap(),
            vec![0, 0, 2, 0]
        );
        assert_eq!(
            similar_step_groups(&[0, 0, 0, 0], &obs, 0.95).unwrap(),
            vec![0, 1, 2, 0]
        );
    }
}
