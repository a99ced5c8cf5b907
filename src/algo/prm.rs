//! PRM losses and PRIME's advantage:
//! - OPRL's DPO / Bradley-Terry loss over every (success, failure) pair of each group, on
//!   trajectory scores `S = mean` (or `sum`) of the implicit step rewards (METHOD.md step 4);
//! - PRIME's cross-entropy loss `BCE(sigmoid(beta * sum_t log pi_phi/pi_ref), success)`;
//! - PRIME's advantage: leave-one-out process rewards and outcome, summed with coefficients,
//!   return-to-go with gamma 1, whitened over the batch (PRIME-RL's `compute_rloo_advantage_return`).
//!
//! The losses have a slice form and a tensor form that share the pair and score definitions.

use super::stats::{group_members, masked_whiten};
use super::{check_len, AlgoError, Mat};
use crate::graph::TrajScore;
use candle_core::{DType, Tensor};
use std::hash::Hash;

/// Every (success, failure) pair within each group, as (winner, loser) trajectory indices:
/// groups in order of first appearance, winners in input order, then losers in input order.
/// All-success and all-failure groups give no pair.
pub fn preference_pairs<G: Hash + Eq>(
    groups: &[G],
    success: &[bool],
) -> Result<Vec<(usize, usize)>, AlgoError> {
    check_len("success flags", success.len(), groups.len())?;
    let mut pairs = Vec::new();
    for members in group_members(groups) {
        for &w in members.iter().filter(|&&i| success[i]) {
            for &l in members.iter().filter(|&&i| !success[i]) {
                pairs.push((w, l));
            }
        }
    }
    Ok(pairs)
}

/// Trajectory score from its step rewards: their mean (0 for no steps) or sum.
pub fn trajectory_score(step_rewards: &[f32], score: TrajScore) -> f32 {
    let sum: f64 = step_rewards.iter().map(|&r| r as f64).sum();
    match score {
        TrajScore::Sum => sum as f32,
        TrajScore::Mean if step_rewards.is_empty() => 0.0,
        TrajScore::Mean => (sum / step_rewards.len() as f64) as f32,
    }
}

/// `-log sigmoid(x)` computed stably as `max(-x, 0) + ln(1 + exp(-|x|))`.
pub fn neg_log_sigmoid(x: f64) -> f64 {
    (-x).max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The DPO loss value and what a run logs about it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpoStats {
    /// `mean over pairs of -log sigmoid(S+ - S-)`.
    pub loss: f32,
    pub pairs: usize,
    /// Fraction of pairs with `S+ > S-` (strictly).
    pub accuracy: f32,
}

/// The Bradley-Terry loss on trajectory scores; `None` when no group has both a success and a
/// failure (the PRM is then not updated, and the caller logs that).
pub fn dpo_loss<G: Hash + Eq>(
    scores: &[f32],
    groups: &[G],
    success: &[bool],
) -> Result<Option<DpoStats>, AlgoError> {
    check_len("group ids", groups.len(), scores.len())?;
    let pairs = preference_pairs(groups, success)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut loss = 0.0;
    let mut correct = 0usize;
    for &(w, l) in &pairs {
        let d = scores[w] as f64 - scores[l] as f64;
        loss += neg_log_sigmoid(d);
        correct += (d > 0.0) as usize;
    }
    let n = pairs.len() as f64;
    Ok(Some(DpoStats {
        loss: (loss / n) as f32,
        pairs: pairs.len(),
        accuracy: (correct as f64 / n) as f32,
    }))
}

/// Trajectory scores on tensors: `step_values` is `[steps]`, `step_traj[s]` the trajectory of
/// step `s`; returns `[n_traj]` (mean or sum per trajectory, 0 for a trajectory without steps).
/// Differentiable (a matrix product with constant weights).
pub fn trajectory_scores_tensor(
    step_values: &Tensor,
    step_traj: &[usize],
    n_traj: usize,
    score: TrajScore,
) -> Result<Tensor, AlgoError> {
    let steps = step_values.dims1()?;
    check_len("step trajectory ids", step_traj.len(), steps)?;
    let mut counts = vec![0usize; n_traj];
    for &t in step_traj {
        if t >= n_traj {
            return Err(AlgoError::Invalid(format!(
                "step belongs to trajectory {t}, but there are {n_traj}"
            )));
        }
        counts[t] += 1;
    }
    let mut weights = vec![0f32; n_traj * steps];
    for (s, &t) in step_traj.iter().enumerate() {
        weights[t * steps + s] = match score {
            TrajScore::Sum => 1.0,
            TrajScore::Mean => 1.0 / counts[t] as f32,
        };
    }
    let w = Tensor::from_vec(weights, (n_traj, steps), step_values.device())?;
    let v = step_values.to_dtype(DType::F32)?.unsqueeze(1)?;
    Ok(w.matmul(&v)?.squeeze(1)?)
}

/// Below this margin `-log sigmoid(x)` is `-x` to f32 precision, and `exp(-x)` would overflow.
const NLS_LINEAR_BELOW: f64 = -80.0;

/// `-log sigmoid(x)` on a tensor: `ln(1 + exp(-x))`, switching to `-x` below -80 so `exp` never
/// overflows. Deliberately not `relu(-x) + ln(1 + exp(-|x|))`: `relu` and `abs` have a zero
/// subgradient at 0, and at iteration 1 every margin is exactly 0 (PRM = old policy), so that
/// form would give the PRM no gradient at all. This one has derivative `-sigmoid(-x)` everywhere.
pub fn neg_log_sigmoid_tensor(x: &Tensor) -> Result<Tensor, AlgoError> {
    let x = x.to_dtype(DType::F32)?;
    let safe = x.maximum(NLS_LINEAR_BELOW)?;
    let smooth = ((safe.neg()?.exp()? + 1.0)?).log()?;
    let linear = x.lt(NLS_LINEAR_BELOW)?;
    Ok(linear.where_cond(&x.neg()?, &smooth)?)
}

/// The DPO loss as a differentiable scalar plus its statistics.
#[derive(Debug, Clone)]
pub struct DpoLoss {
    pub loss: Tensor,
    pub stats: DpoStats,
}

/// The Bradley-Terry loss on tensors. `step_rewards` is `[steps]` (`r_phi`, carrying the PRM's
/// graph), `step_traj` maps steps to trajectories `0..groups.len()`. `None` without pairs.
pub fn dpo_loss_tensor<G: Hash + Eq>(
    step_rewards: &Tensor,
    step_traj: &[usize],
    groups: &[G],
    success: &[bool],
    score: TrajScore,
) -> Result<Option<DpoLoss>, AlgoError> {
    let pairs = preference_pairs(groups, success)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let scores = trajectory_scores_tensor(step_rewards, step_traj, groups.len(), score)?;
    let dev = scores.device();
    let win: Vec<u32> = pairs.iter().map(|p| p.0 as u32).collect();
    let lose: Vec<u32> = pairs.iter().map(|p| p.1 as u32).collect();
    let win = Tensor::from_vec(win, pairs.len(), dev)?;
    let lose = Tensor::from_vec(lose, pairs.len(), dev)?;
    let margin = (scores.index_select(&win, 0)? - scores.index_select(&lose, 0)?)?;
    let loss = neg_log_sigmoid_tensor(&margin)?.mean_all()?;
    let margins = margin.to_vec1::<f32>()?;
    let correct = margins.iter().filter(|&&d| d > 0.0).count();
    let stats = DpoStats {
        loss: loss.to_scalar::<f32>()?,
        pairs: pairs.len(),
        accuracy: correct as f32 / pairs.len() as f32,
    };
    Ok(Some(DpoLoss { loss, stats }))
}

/// PRIME's cross-entropy PRM loss on slices: `log_ratio_sums[i] = sum_t (log pi_phi - log pi_ref)`
/// over trajectory `i`'s action tokens, `z = beta * that`; the loss is the mean over trajectories
/// of `BCE(sigmoid(z), y) = -y ln sigmoid(z) - (1-y) ln(1 - sigmoid(z))`, computed from the logit
/// (torch's `binary_cross_entropy` on the sigmoid caps each log at -100; this form is exact).
pub fn prime_ce_loss(
    log_ratio_sums: &[f32],
    success: &[bool],
    beta: f32,
) -> Result<f32, AlgoError> {
    check_len("success flags", success.len(), log_ratio_sums.len())?;
    if log_ratio_sums.is_empty() {
        return Ok(0.0);
    }
    let total: f64 = log_ratio_sums
        .iter()
        .zip(success)
        .map(|(&q, &y)| {
            let z = beta as f64 * q as f64;
            if y {
                neg_log_sigmoid(z)
            } else {
                neg_log_sigmoid(-z)
            }
        })
        .sum();
    Ok((total / log_ratio_sums.len() as f64) as f32)
}

/// [`prime_ce_loss`] on a `[n_traj]` tensor of log-ratio sums (differentiable).
pub fn prime_ce_loss_tensor(
    log_ratio_sums: &Tensor,
    success: &[bool],
    beta: f32,
) -> Result<Tensor, AlgoError> {
    let n = log_ratio_sums.dims1()?;
    check_len("success flags", success.len(), n)?;
    // -y ln s(z) - (1-y) ln s(-z) = nls(sign * z) with sign +1 for y = 1, -1 for y = 0
    let sign: Vec<f32> = success
        .iter()
        .map(|&y| if y { 1.0 } else { -1.0 })
        .collect();
    let sign = Tensor::from_vec(sign, n, log_ratio_sums.device())?;
    let z = (log_ratio_sums.to_dtype(DType::F32)? * beta as f64)?;
    Ok(neg_log_sigmoid_tensor(&(z * sign)?)?.mean_all()?)
}

/// PRIME's `masked_rloo` on a `[B, T]` reward matrix: per group of `n` rows, every valid entry
/// becomes `r * n/(n-1) - (sum over the group's rows of their mean valid reward) / (n-1)`, and
/// invalid entries are 0. A row without valid entries has mean 0 (PRIME would produce NaN). A
/// group of one keeps its rewards (PRIME divides by zero there).
pub fn prime_masked_rloo<G: Hash + Eq>(
    rewards: &Mat,
    valid: &Mat,
    groups: &[G],
) -> Result<Mat, AlgoError> {
    rewards.check_same_shape(valid, "reward mask")?;
    check_len("group ids", groups.len(), rewards.rows)?;
    let mut out = Mat::filled(rewards.rows, rewards.cols, 0.0);
    for members in group_members(groups) {
        let n = members.len() as f64;
        let row_means: f64 = members
            .iter()
            .map(|&i| {
                let (mut s, mut c) = (0.0f64, 0.0f64);
                for (&r, &v) in rewards.row(i).iter().zip(valid.row(i)) {
                    if v != 0.0 {
                        s += r as f64;
                        c += 1.0;
                    }
                }
                if c > 0.0 {
                    s / c
                } else {
                    0.0
                }
            })
            .sum();
        for &i in &members {
            for t in 0..rewards.cols {
                if valid.row(i)[t] == 0.0 {
                    continue;
                }
                let r = rewards.row(i)[t] as f64;
                out.row_mut(i)[t] = if members.len() == 1 {
                    r as f32
                } else {
                    (r * n / (n - 1.0) - row_means / (n - 1.0)) as f32
                };
            }
        }
    }
    Ok(out)
}

/// PRIME's advantage and returns (`compute_rloo_advantage_return`, gamma 1):
/// `final = process_coef * masked_rloo(process, mask) + outcome_coef * masked_rloo(outcome at the
/// last valid token)`; `returns` = reverse cumulative sum of `final * mask` along each row;
/// `advantages = masked_whiten(returns, mask)` (masked entries are whitened too, as in PRIME).
/// A coefficient of 0 drops that term. Returns (advantages, returns).
pub fn prime_advantage<G: Hash + Eq>(
    process_rewards: &Mat,
    mask: &Mat,
    outcomes: &[f32],
    groups: &[G],
    process_coef: f32,
    outcome_coef: f32,
) -> Result<(Mat, Mat), AlgoError> {
    process_rewards.check_same_shape(mask, "response_mask")?;
    check_len("outcomes", outcomes.len(), mask.rows)?;
    let mut total = Mat::filled(mask.rows, mask.cols, 0.0);
    if process_coef != 0.0 {
        let p = prime_masked_rloo(process_rewards, mask, groups)?;
        for (t, v) in total.data.iter_mut().zip(&p.data) {
            *t += process_coef * v;
        }
    }
    if outcome_coef != 0.0 {
        let mut placed = Mat::filled(mask.rows, mask.cols, 0.0);
        let mut at = Mat::filled(mask.rows, mask.cols, 0.0);
        for (i, &o) in outcomes.iter().enumerate() {
            if let Some(last) = mask.row(i).iter().rposition(|&m| m != 0.0) {
                placed.row_mut(i)[last] = o;
                at.row_mut(i)[last] = 1.0;
            }
        }
        let o = prime_masked_rloo(&placed, &at, groups)?;
        for (t, v) in total.data.iter_mut().zip(&o.data) {
            *t += outcome_coef * v;
        }
    }
    let mut returns = Mat::filled(mask.rows, mask.cols, 0.0);
    for i in 0..mask.rows {
        let mut acc = 0.0f64;
        for t in (0..mask.cols).rev() {
            acc += total.row(i)[t] as f64 * mask.row(i)[t] as f64;
            returns.row_mut(i)[t] = acc as f32;
        }
    }
    let adv = Mat::new(
        mask.rows,
        mask.cols,
        masked_whiten(&returns.data, &mask.data)?,
    )?;
    Ok((adv, returns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn pairs_within_groups_only() {
        let groups = [0, 0, 1, 0, 1, 2, 2];
        let success = [true, false, true, false, true, true, true];
        // group 0: winner 0, losers 1 and 3; group 1 all success; group 2 all success.
        assert_eq!(
            preference_pairs(&groups, &success).unwrap(),
            vec![(0, 1), (0, 3)]
        );
        assert!(preference_pairs(&groups, &success[..3]).is_err());
    }

    #[test]
    fn scores_mean_and_sum() {
        assert_eq!(trajectory_score(&[1.0, 2.0, 6.0], TrajScore::Mean), 3.0);
        assert_eq!(trajectory_score(&[1.0, 2.0, 6.0], TrajScore::Sum), 9.0);
        assert_eq!(trajectory_score(&[], TrajScore::Mean), 0.0);
    }

    #[test]
    fn dpo_by_hand_and_no_pairs() {
        // pairs (0,1): margin 1; (0,2): margin -1 -> loss (ln(1+e^-1) + ln(1+e^1)) / 2
        let s = [1.0, 0.0, 2.0];
        let out = dpo_loss(&s, &[0, 0, 0], &[true, false, false])
            .unwrap()
            .unwrap();
        let want = ((1.0 + (-1.0f64).exp()).ln() + (1.0 + 1.0f64.exp()).ln()) / 2.0;
        assert!((out.loss as f64 - want).abs() < 1e-6);
        assert_eq!(out.pairs, 2);
        assert_eq!(out.accuracy, 0.5);
        // zero scores (iteration 1): loss ln 2 and accuracy 0 (ties are not correct)
        let z = dpo_loss(&[0.0, 0.0], &[0, 0], &[true, false])
            .unwrap()
            .unwrap();
        assert!((z.loss as f64 - 2f64.ln()).abs() < 1e-6 && z.accuracy == 0.0);
        assert_eq!(
            dpo_loss(&s, &[0, 1, 2], &[true, false, true]).unwrap(),
            None
        );
    }

    #[test]
    fn stable_neg_log_sigmoid() {
        assert!((neg_log_sigmoid(0.0) - 2f64.ln()).abs() < 1e-12);
        assert!((neg_log_sigmoid(-1000.0) - 1000.0).abs() < 1e-9);
        assert!(neg_log_sigmoid(1000.0) < 1e-300);
        let t = Tensor::new(&[-1000.0f32, 0.0, 3.0], &Device::Cpu).unwrap();
        let v = neg_log_sigmoid_tensor(&t)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((v[0] - 1000.0).abs() < 1e-3 && (v[1] - 2f32.ln()).abs() < 1e-6);
        assert!((v[2] as f64 - neg_log_sigmoid(3.0)).abs() < 1e-6);
        // the gradient at a zero margin is -1/2 (iteration 1: every margin is exactly 0)
        let var = Var::from_slice(&[0.0f32, -1000.0, 5.0], 3, &Device::Cpu).unwrap();
        let g = neg_log_sigmoid_tensor(var.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = g.backward().unwrap();
        let g = g.get(var.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert!(
            (g[0] + 0.5).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6,
            "{g:?}"
        );
        assert!((g[2] + 1.0 / (1.0 + 5f32.exp())).abs() < 1e-6);
    }

    #[test]
    fn dpo_tensor_agrees_and_has_gradients() {
        let dev = Device::Cpu;
        // 4 trajectories in 2 groups; steps per trajectory 2, 1, 3, 2
        let step_traj = [0, 0, 1, 2, 2, 2, 3, 3];
        let r = [0.1f32, 0.3, -0.2, 0.5, 0.0, 0.1, -0.4, 0.2];
        let groups = ["a", "a", "b", "b"];
        let success = [true, false, false, true];
        for score in [TrajScore::Mean, TrajScore::Sum] {
            let per_traj: Vec<f32> = (0..4)
                .map(|t| {
                    let v: Vec<f32> = step_traj
                        .iter()
                        .zip(&r)
                        .filter(|(&s, _)| s == t)
                        .map(|(_, &x)| x)
                        .collect();
                    trajectory_score(&v, score)
                })
                .collect();
            let want = dpo_loss(&per_traj, &groups, &success).unwrap().unwrap();
            let var = Var::from_slice(&r, 8, &dev).unwrap();
            let out = dpo_loss_tensor(var.as_tensor(), &step_traj, &groups, &success, score)
                .unwrap()
                .unwrap();
            assert!((out.stats.loss - want.loss).abs() < 1e-6);
            assert_eq!(out.stats.pairs, 2);
            assert_eq!(out.stats.accuracy, want.accuracy);
            let g = out.loss.backward().unwrap();
            let g = g.get(var.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
            // d/dS+ of mean_pairs nls(S+ - S-) = -sigmoid(-(S+ - S-)) / pairs
            let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
            let d0 = -sig(-(per_traj[0] - per_traj[1])) / 2.0;
            let k = if score == TrajScore::Mean { 0.5 } else { 1.0 };
            assert!((g[0] - d0 * k).abs() < 1e-6 && (g[1] - d0 * k).abs() < 1e-6);
            assert!((g[2] + d0 * k).abs() < 1e-6 || score == TrajScore::Mean);
            assert!(g.iter().all(|x| *x != 0.0));
        }
        let var = Var::from_slice(&r, 8, &dev).unwrap();
        let none = dpo_loss_tensor(
            var.as_tensor(),
            &step_traj,
            &groups,
            &[true; 4],
            TrajScore::Mean,
        )
        .unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn prime_ce_by_hand_and_tensor() {
        let q = [2.0f32, -4.0, 0.0];
        let y = [true, true, false];
        // z = 0.5 q = 1, -2, 0: -ln s(1) - ln s(-2) - ln(1 - s(0))
        let want = (neg_log_sigmoid(1.0) + neg_log_sigmoid(-2.0) + 2f64.ln()) / 3.0;
        let got = prime_ce_loss(&q, &y, 0.5).unwrap();
        assert!((got as f64 - want).abs() < 1e-6);
        let var = Var::from_slice(&q, 3, &Device::Cpu).unwrap();
        let t = prime_ce_loss_tensor(var.as_tensor(), &y, 0.5).unwrap();
        assert!((t.to_scalar::<f32>().unwrap() - got).abs() < 1e-6);
        let g = t.backward().unwrap();
        let g = g.get(var.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        // d/dq of BCE-with-logits = beta * (sigmoid(z) - y) / n
        let sig = |x: f32| 1.0 / (1.0 + (-x).exp());
        assert!((g[0] - 0.5 * (sig(1.0) - 1.0) / 3.0).abs() < 1e-6);
        assert!((g[2] - 0.5 * (sig(0.0) - 0.0) / 3.0).abs() < 1e-6);
    }

    #[test]
    fn prime_rloo_and_advantage_by_hand() {
        // one group of two rows, three token columns; row 1 has two valid tokens.
        let r = Mat::from_rows(&[vec![1.0, 2.0, 3.0], vec![4.0, 6.0, 0.0]]).unwrap();
        let m = Mat::from_rows(&[vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 0.0]]).unwrap();
        let l = prime_masked_rloo(&r, &m, &[0, 0]).unwrap();
        // row means 2 and 5: baseline (2 + 5)/1 = 7; r * 2 - 7
        assert_eq!(
            l.to_rows(),
            vec![vec![-5.0, -3.0, -1.0], vec![1.0, 5.0, 0.0]]
        );
        // a group of one keeps its rewards
        let one = prime_masked_rloo(&r, &m, &[0, 1]).unwrap();
        assert_eq!(one.row(1), &[4.0, 6.0, 0.0]);

        // outcome only (process coef 0): outcomes 1, 0 -> leave-one-out 1, -1 at the last valid
        // token, times 5: returns row 0 = [5, 5, 5], row 1 = [-5, -5, 0 (masked)].
        let (adv, ret) = prime_advantage(&r, &m, &[1.0, 0.0], &[0, 0], 0.0, 5.0).unwrap();
        assert_eq!(
            ret.to_rows(),
            vec![vec![5.0, 5.0, 5.0], vec![-5.0, -5.0, 0.0]]
        );
        // whitening of [5,5,5,-5,-5]: mean 1, unbiased var (3*16 + 2*36)/4 = 30
        let k = 1.0 / (30.0f32 + 1e-8).sqrt();
        assert!((adv.row(0)[0] - 4.0 * k).abs() < 1e-5);
        assert!((adv.row(1)[0] + 6.0 * k).abs() < 1e-5);
        // masked entry is whitened too: (0 - 1) * k
        assert!((adv.row(1)[2] + k).abs() < 1e-5);

        // process only, coef 1: returns are reverse cumsums of the rloo rewards
        let (_, ret) = prime_advantage(&r, &m, &[1.0, 0.0], &[0, 0], 1.0, 0.0).unwrap();
        assert_eq!(
            ret.to_rows(),
            vec![vec![-9.0, -4.0, -1.0], vec![6.0, 5.0, 0.0]]
        );
    }
}
