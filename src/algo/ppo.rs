//! The PPO clipped surrogate with dual clip, veRL's loss aggregation modes (`agg_loss`), the
//! entropy bonus, an optional KL loss, and the clipped value loss, as veRL's
//! `compute_policy_loss_vanilla`, `agg_loss` and `compute_value_loss` (volcengine/verl@b178a3cd).
//!
//! Every aggregation is a weighted sum `sum(loss * W)` with weights `W` built from the mask alone
//! ([`agg_weights`]); the slice form and the tensor form share those weights, so they agree by
//! construction and the tensor form stays differentiable.

use super::kl::{kl_penalty_mat, kl_penalty_tensor};
use super::stats::masked_mean;
use super::{AlgoError, Mat};
use crate::graph::{KlKind, LossAgg, PpoSpec};
use candle_core::{DType, Tensor};

/// veRL's clamp on `logp - logp_old` before the exponential.
const LOG_RATIO_CLAMP: f64 = 20.0;

/// The clip parameters of the surrogate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoClip {
    /// The ratio is clipped to `[1 - clip_low, 1 + clip_high]`.
    pub clip_low: f32,
    pub clip_high: f32,
    /// Dual-clip constant `c > 1` for negative advantages (the loss is at most `-A * c`); `None`
    /// turns dual clip off.
    pub dual_clip: Option<f32>,
}

impl PpoClip {
    /// From the recipe's PPO spec; a dual-clip constant that is not a finite number above 1
    /// turns dual clip off (veRL requires `c > 1`).
    pub fn from_spec(spec: &PpoSpec) -> PpoClip {
        let c = spec.dual_clip;
        PpoClip {
            clip_low: spec.clip_low as f32,
            clip_high: spec.clip_high as f32,
            dual_clip: (c.is_finite() && c > 1.0).then_some(c as f32),
        }
    }
}

/// The denominators of an aggregation: the valid tokens, the rows that have one, and the
/// response length `T` (the padded width) of the whole minibatch. Fixed once for a minibatch,
/// they make the loss of a part of its rows (a micro-batch) that part's exact share of the
/// minibatch loss, so the shares sum to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggNorm {
    pub tokens: f64,
    pub rows_with_tokens: f64,
    pub width: usize,
}

impl AggNorm {
    /// The denominators of rows with these valid-token counts.
    pub fn of_lengths(lengths: impl IntoIterator<Item = usize>) -> AggNorm {
        let (mut tokens, mut rows_with_tokens, mut width) = (0.0, 0.0, 0);
        for n in lengths {
            tokens += n as f64;
            rows_with_tokens += (n > 0) as u8 as f64;
            width = width.max(n);
        }
        AggNorm {
            tokens,
            rows_with_tokens,
            width,
        }
    }

    /// The denominators of a whole `[B, T]` mask.
    pub fn of_mask(mask: &Mat) -> AggNorm {
        let mut norm = AggNorm {
            tokens: 0.0,
            rows_with_tokens: 0.0,
            width: mask.cols,
        };
        for i in 0..mask.rows {
            let n: f64 = mask.row(i).iter().map(|&m| m as f64).sum();
            norm.tokens += n;
            norm.rows_with_tokens += (n > 0.0) as u8 as f64;
        }
        norm
    }

    /// `masked_mean(values, mask)` over the minibatch restricted to this part's rows.
    fn masked_share(&self, values: &[f32], mask: &[f32]) -> f64 {
        let s: f64 = values
            .iter()
            .zip(mask)
            .map(|(&v, &m)| v as f64 * m as f64)
            .sum();
        s / (self.tokens + 1e-8)
    }
}

/// The weights that turn a `[B, T]` loss matrix into veRL's `agg_loss(loss, mask, mode)` as
/// `sum(loss * W)` (with `dp_size = 1`, `batch_num_tokens = mask.sum()`, `global_batch_size` =
/// rows with a valid token, as veRL's defaults give):
/// - `token-mean`: `W = m / sum(m)`;
/// - `seq-mean-token-mean`: `W = m / (sum_t m + 1e-8) / R` with `R` the rows that have a valid token;
/// - `seq-mean-token-sum`: `W = m / R`;
/// - `seq-mean-token-sum-norm`: `W = m / T`, `T` the response length (veRL divides the total by `T`
///   and not by the number of rows).
///
/// Fully masked rows get weight 0 and are not counted in `R`. A fully masked batch gets all-zero
/// weights (loss 0) where veRL would divide 0 by 0.
pub fn agg_weights(mask: &Mat, mode: LossAgg) -> Mat {
    agg_share_weights(mask, mode, &AggNorm::of_mask(mask))
}

/// [`agg_weights`] of some rows of a minibatch whose denominators are `norm`.
pub fn agg_share_weights(mask: &Mat, mode: LossAgg, norm: &AggNorm) -> Mat {
    let mut w = mask.clone();
    for i in 0..mask.rows {
        let n: f64 = mask.row(i).iter().map(|&m| m as f64).sum();
        let scale = match mode {
            _ if n <= 0.0 => 0.0,
            LossAgg::TokenMean => 1.0 / norm.tokens,
            LossAgg::SeqMeanTokenMean => 1.0 / (n + 1e-8) / norm.rows_with_tokens,
            LossAgg::SeqMeanTokenSum => 1.0 / norm.rows_with_tokens,
            LossAgg::SeqMeanTokenSumNorm => 1.0 / norm.width as f64,
        };
        for m in w.row_mut(i) {
            *m = (*m as f64 * scale) as f32;
        }
    }
    w
}

/// veRL's `agg_loss` on slices.
pub fn agg_loss(loss: &Mat, mask: &Mat, mode: LossAgg) -> Result<f32, AlgoError> {
    loss.check_same_shape(mask, "loss mask")?;
    let w = agg_weights(mask, mode);
    Ok(loss
        .data
        .iter()
        .zip(&w.data)
        .map(|(&l, &w)| if w == 0.0 { 0.0 } else { l as f64 * w as f64 })
        .sum::<f64>() as f32)
}

/// veRL's `agg_loss` on a `[B, T]` tensor; differentiable in `loss`.
pub fn agg_loss_tensor(loss: &Tensor, mask: &Mat, mode: LossAgg) -> Result<Tensor, AlgoError> {
    agg_share_tensor(loss, mask, mode, &AggNorm::of_mask(mask))
}

/// [`agg_loss_tensor`] of some rows of a minibatch whose denominators are `norm`: that part's
/// share of the minibatch's aggregate.
pub fn agg_share_tensor(
    loss: &Tensor,
    mask: &Mat,
    mode: LossAgg,
    norm: &AggNorm,
) -> Result<Tensor, AlgoError> {
    let w = agg_share_weights(mask, mode, norm).to_tensor(loss.device())?;
    // Zero weights must not turn a non-finite padded loss into NaN: select instead of multiply.
    let keep = w.ne(0f32)?;
    let zeros = loss.zeros_like()?;
    let safe = keep.where_cond(loss, &zeros)?;
    Ok((safe.to_dtype(DType::F32)? * w)?.sum_all()?)
}

/// The per-token clipped surrogate and its statistics (before aggregation).
#[derive(Debug, Clone, PartialEq)]
pub struct SurrogateTokens {
    /// The per-token loss (`pg_losses` in veRL).
    pub loss: Mat,
    /// 1 where the ratio clip is active (`l2 > l1`).
    pub clipped: Mat,
    /// 1 where dual clip is active (`c1 > l3` and `A < 0`).
    pub dual_clipped: Mat,
    /// `log_prob - old_log_prob`, clamped to +-20.
    pub log_ratio: Mat,
}

/// One token of the surrogate: returns (loss, clipped, dual_clipped, clamped log-ratio).
/// `l1 = -A rho`, `l2 = -A clip(rho, 1-lo, 1+hi)`, `c1 = max(l1, l2)`; for `A < 0` with dual
/// clip, the loss is `min(-A c, c1)`.
fn surrogate_token(logp: f32, old: f32, adv: f32, clip: &PpoClip) -> (f32, bool, bool, f32) {
    let log_ratio = (logp - old).clamp(-LOG_RATIO_CLAMP as f32, LOG_RATIO_CLAMP as f32);
    let ratio = log_ratio.exp();
    let l1 = -adv * ratio;
    let l2 = -adv * ratio.clamp(1.0 - clip.clip_low, 1.0 + clip.clip_high);
    let c1 = l1.max(l2);
    let clipped = l2 > l1;
    let (loss, dual) = match clip.dual_clip {
        Some(c) if adv < 0.0 => {
            let l3 = -adv * c;
            (l3.min(c1), c1 > l3)
        }
        _ => (c1, false),
    };
    (loss, clipped, dual, log_ratio)
}

/// The per-token surrogate on slices; all four matrices have the same shape.
pub fn surrogate_tokens(
    old_log_prob: &Mat,
    log_prob: &Mat,
    advantages: &Mat,
    clip: &PpoClip,
) -> Result<SurrogateTokens, AlgoError> {
    old_log_prob.check_same_shape(log_prob, "log_prob")?;
    old_log_prob.check_same_shape(advantages, "advantages")?;
    let (rows, cols) = (old_log_prob.rows, old_log_prob.cols);
    let n = rows * cols;
    let (mut loss, mut clipped, mut dual, mut lr) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let (l, c, d, r) = surrogate_token(
            log_prob.data[i],
            old_log_prob.data[i],
            advantages.data[i],
            clip,
        );
        loss.push(l);
        clipped.push(c as u8 as f32);
        dual.push(d as u8 as f32);
        lr.push(r);
    }
    Ok(SurrogateTokens {
        loss: Mat::new(rows, cols, loss)?,
        clipped: Mat::new(rows, cols, clipped)?,
        dual_clipped: Mat::new(rows, cols, dual)?,
        log_ratio: Mat::new(rows, cols, lr)?,
    })
}

/// The statistics veRL's policy loss reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyLossStats {
    /// The aggregated surrogate loss.
    pub pg_loss: f32,
    /// Masked mean of "ratio clip active".
    pub clipfrac: f32,
    /// Masked mean of `logp_old - logp` (approx KL, veRL's `ppo_kl`).
    pub ppo_kl: f32,
    /// Masked mean of "dual clip active" (veRL's `pg_clipfrac_lower`).
    pub clipfrac_lower: f32,
}

/// veRL's `compute_policy_loss_vanilla` on slices.
pub fn policy_loss(
    old_log_prob: &Mat,
    log_prob: &Mat,
    advantages: &Mat,
    mask: &Mat,
    clip: &PpoClip,
    mode: LossAgg,
) -> Result<PolicyLossStats, AlgoError> {
    old_log_prob.check_same_shape(mask, "response_mask")?;
    let s = surrogate_tokens(old_log_prob, log_prob, advantages, clip)?;
    Ok(surrogate_stats(&s, mask, mode))
}

fn surrogate_stats(s: &SurrogateTokens, mask: &Mat, mode: LossAgg) -> PolicyLossStats {
    let neg: Vec<f32> = s.log_ratio.data.iter().map(|x| -x).collect();
    PolicyLossStats {
        pg_loss: agg_loss(&s.loss, mask, mode).unwrap_or(f32::NAN),
        clipfrac: masked_mean(&s.clipped.data, &mask.data) as f32,
        ppo_kl: masked_mean(&neg, &mask.data) as f32,
        clipfrac_lower: masked_mean(&s.dual_clipped.data, &mask.data) as f32,
    }
}

/// The extra terms of the actor loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActorLossConfig {
    pub clip: PpoClip,
    pub agg: LossAgg,
    /// Entropy bonus coefficient: `loss -= coef * agg(entropy)`.
    pub entropy_coef: f32,
    /// KL loss against a reference: `loss += coef * agg(kl_penalty(logp, ref))`.
    pub kl: Option<(KlKind, f32)>,
}

impl ActorLossConfig {
    /// From the recipe's PPO spec.
    pub fn from_spec(spec: &PpoSpec) -> ActorLossConfig {
        ActorLossConfig {
            clip: PpoClip::from_spec(spec),
            agg: spec.loss_agg,
            entropy_coef: spec.entropy as f32,
            kl: spec.kl.map(|kind| (kind, spec.kl_coef as f32)),
        }
    }
}

/// The per-token inputs of the actor loss, all `[B, T]`. `log_prob` (and `entropy`) carry the
/// autograd graph in the tensor form.
pub struct ActorLossInputs<'a> {
    pub log_prob: &'a Tensor,
    pub old_log_prob: &'a Tensor,
    pub advantages: &'a Tensor,
    /// 1 on real action tokens.
    pub mask: &'a Tensor,
    /// Per-token entropy of the current policy; needed when `entropy_coef != 0`.
    pub entropy: Option<&'a Tensor>,
    /// Per-token reference log-probs; needed when a KL loss is configured.
    pub ref_log_prob: Option<&'a Tensor>,
}

/// The actor loss (a differentiable scalar) and the numbers a run logs.
#[derive(Debug, Clone)]
pub struct ActorLoss {
    /// `pg_loss - entropy_coef * entropy + kl_coef * kl`, a scalar tensor.
    pub loss: Tensor,
    pub stats: PolicyLossStats,
    /// The aggregated entropy (0 without entropy input).
    pub entropy: f32,
    /// The aggregated KL penalty (0 without a KL loss).
    pub kl: f32,
}

/// The full actor loss on tensors: the clipped surrogate with dual clip, aggregated with veRL's
/// mode, minus the entropy bonus, plus the KL loss. Gradients flow into `log_prob` (and `entropy`)
/// except where the ratio (or the dual clip, or the log-ratio clamp) is active: there the loss
/// does not depend on `log_prob`, exactly as in torch.
pub fn actor_loss(
    inputs: &ActorLossInputs<'_>,
    cfg: &ActorLossConfig,
) -> Result<ActorLoss, AlgoError> {
    let norm = AggNorm::of_mask(&Mat::from_tensor(inputs.mask)?);
    actor_loss_share(inputs, cfg, &norm)
}

/// [`actor_loss`] of some rows of a minibatch whose denominators are `norm`: the loss and every
/// statistic are that part's share, so the shares of a minibatch's parts sum to its
/// [`actor_loss`].
pub fn actor_loss_share(
    inputs: &ActorLossInputs<'_>,
    cfg: &ActorLossConfig,
    norm: &AggNorm,
) -> Result<ActorLoss, AlgoError> {
    let mask = Mat::from_tensor(inputs.mask)?;
    let dtype = inputs.log_prob.dtype();
    let old = inputs.old_log_prob.detach().to_dtype(dtype)?;
    let adv = inputs.advantages.detach().to_dtype(dtype)?;
    let log_ratio = (inputs.log_prob - &old)?.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)?;
    let ratio = log_ratio.exp()?;
    let neg_adv = adv.neg()?;
    let l1 = (&neg_adv * &ratio)?;
    let clipped_ratio = ratio.clamp(
        1.0 - cfg.clip.clip_low as f64,
        1.0 + cfg.clip.clip_high as f64,
    )?;
    let l2 = (&neg_adv * clipped_ratio)?;
    let clip_active = l2.gt(&l1)?;
    let c1 = clip_active.where_cond(&l2, &l1)?;
    let (token_loss, dual_active) = match cfg.clip.dual_clip {
        Some(c) => {
            let l3 = (&neg_adv * c as f64)?;
            let negative = adv.lt(0f32)?;
            // dual clip binds where the advantage is negative and c1 exceeds -A c
            let dual = (c1.gt(&l3)?.to_dtype(DType::F32)? * negative.to_dtype(DType::F32)?)?;
            let loss = dual.ne(0f32)?.where_cond(&l3, &c1)?;
            (loss, dual)
        }
        None => (c1, inputs.mask.zeros_like()?.to_dtype(DType::F32)?),
    };
    let pg_loss = agg_share_tensor(&token_loss, &mask, cfg.agg, norm)?;

    let neg_log_ratio = Mat::from_tensor(&log_ratio.neg()?)?;
    let share = |m: &Tensor| -> Result<f32, AlgoError> {
        Ok(norm.masked_share(&Mat::from_tensor(m)?.data, &mask.data) as f32)
    };
    let stats = PolicyLossStats {
        pg_loss: pg_loss.to_dtype(DType::F32)?.to_scalar::<f32>()?,
        clipfrac: share(&clip_active)?,
        ppo_kl: norm.masked_share(&neg_log_ratio.data, &mask.data) as f32,
        clipfrac_lower: share(&dual_active)?,
    };

    let mut loss = pg_loss;
    let mut entropy_value = 0.0;
    if cfg.entropy_coef != 0.0 {
        let ent = inputs.entropy.ok_or_else(|| {
            AlgoError::Invalid("an entropy bonus needs the per-token entropy".into())
        })?;
        let ent_agg = agg_share_tensor(ent, &mask, cfg.agg, norm)?;
        entropy_value = ent_agg.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        loss = (loss - (ent_agg * cfg.entropy_coef as f64)?)?;
    }
    let mut kl_value = 0.0;
    if let Some((kind, coef)) = cfg.kl {
        let reference = inputs
            .ref_log_prob
            .ok_or_else(|| AlgoError::Invalid("a KL loss needs the reference log-probs".into()))?;
        let reference = reference.detach().to_dtype(dtype)?;
        let kl_tok = kl_penalty_tensor(inputs.log_prob, &reference, kind)?;
        let kl_agg = agg_share_tensor(&kl_tok, &mask, cfg.agg, norm)?;
        kl_value = kl_agg.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        loss = (loss + (kl_agg * coef as f64)?)?;
    }
    Ok(ActorLoss {
        loss,
        stats,
        entropy: entropy_value,
        kl: kl_value,
    })
}

/// The actor loss on slices (same definition as [`actor_loss`]); returns (loss, stats).
#[allow(clippy::too_many_arguments)]
pub fn actor_loss_slices(
    old_log_prob: &Mat,
    log_prob: &Mat,
    advantages: &Mat,
    mask: &Mat,
    entropy: Option<&Mat>,
    ref_log_prob: Option<&Mat>,
    cfg: &ActorLossConfig,
) -> Result<(f32, PolicyLossStats), AlgoError> {
    let stats = policy_loss(old_log_prob, log_prob, advantages, mask, &cfg.clip, cfg.agg)?;
    let mut loss = stats.pg_loss as f64;
    if cfg.entropy_coef != 0.0 {
        let ent = entropy.ok_or_else(|| {
            AlgoError::Invalid("an entropy bonus needs the per-token entropy".into())
        })?;
        loss -= cfg.entropy_coef as f64 * agg_loss(ent, mask, cfg.agg)? as f64;
    }
    if let Some((kind, coef)) = cfg.kl {
        let reference = ref_log_prob
            .ok_or_else(|| AlgoError::Invalid("a KL loss needs the reference log-probs".into()))?;
        let kl = kl_penalty_mat(log_prob, reference, kind)?;
        loss += coef as f64 * agg_loss(&kl, mask, cfg.agg)? as f64;
    }
    Ok((loss as f32, stats))
}

/// veRL's `compute_value_loss` on slices: `vclip = clamp(vpred, v_old - c, v_old + c)`,
/// `0.5 * agg(max((vpred - R)^2, (vclip - R)^2))`; returns (loss, clipfrac) where clipfrac is the
/// masked mean of "the clipped error is larger".
pub fn value_loss(
    vpreds: &Mat,
    returns: &Mat,
    old_values: &Mat,
    mask: &Mat,
    clip: f32,
    mode: LossAgg,
) -> Result<(f32, f32), AlgoError> {
    vpreds.check_same_shape(returns, "returns")?;
    vpreds.check_same_shape(old_values, "values")?;
    vpreds.check_same_shape(mask, "response_mask")?;
    let mut losses = Vec::with_capacity(vpreds.data.len());
    let mut clipped = Vec::with_capacity(vpreds.data.len());
    for i in 0..vpreds.data.len() {
        let (v, r, o) = (vpreds.data[i], returns.data[i], old_values.data[i]);
        let vc = v.clamp(o - clip, o + clip);
        let (e1, e2) = ((v - r) * (v - r), (vc - r) * (vc - r));
        losses.push(e1.max(e2));
        clipped.push((e2 > e1) as u8 as f32);
    }
    let loss = Mat::new(vpreds.rows, vpreds.cols, losses)?;
    let agg = agg_loss(&loss, mask, mode)?;
    Ok((0.5 * agg, masked_mean(&clipped, &mask.data) as f32))
}

/// [`value_loss`] on tensors; differentiable in `vpreds`. Returns (loss, clipfrac).
pub fn value_loss_tensor(
    vpreds: &Tensor,
    returns: &Tensor,
    old_values: &Tensor,
    mask: &Tensor,
    clip: f32,
    mode: LossAgg,
) -> Result<(Tensor, f32), AlgoError> {
    let norm = AggNorm::of_mask(&Mat::from_tensor(mask)?);
    value_loss_share(vpreds, returns, old_values, mask, clip, mode, &norm)
}

/// [`value_loss_tensor`] of some rows of a minibatch whose denominators are `norm`: that
/// part's share of the loss and of the clip fraction.
pub fn value_loss_share(
    vpreds: &Tensor,
    returns: &Tensor,
    old_values: &Tensor,
    mask: &Tensor,
    clip: f32,
    mode: LossAgg,
    norm: &AggNorm,
) -> Result<(Tensor, f32), AlgoError> {
    let mask = Mat::from_tensor(mask)?;
    let returns = returns.detach().to_dtype(vpreds.dtype())?;
    let old = old_values.detach().to_dtype(vpreds.dtype())?;
    let lo = (&old - clip as f64)?;
    let hi = (&old + clip as f64)?;
    let vclipped = vpreds.maximum(&lo)?.minimum(&hi)?;
    let e1 = (vpreds - &returns)?.sqr()?;
    let e2 = (vclipped - &returns)?.sqr()?;
    let use_clipped = e2.gt(&e1)?;
    let worst = use_clipped.where_cond(&e2, &e1)?;
    let loss = (agg_share_tensor(&worst, &mask, mode, norm)? * 0.5)?;
    let clipfrac = norm.masked_share(&Mat::from_tensor(&use_clipped)?.data, &mask.data) as f32;
    Ok((loss, clipfrac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use proptest::prelude::*;

    const ALL_MODES: [LossAgg; 4] = [
        LossAgg::TokenMean,
        LossAgg::SeqMeanTokenMean,
        LossAgg::SeqMeanTokenSum,
        LossAgg::SeqMeanTokenSumNorm,
    ];

    fn clip() -> PpoClip {
        PpoClip {
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: Some(3.0),
        }
    }

    fn m(rows: &[Vec<f32>]) -> Mat {
        Mat::from_rows(rows).unwrap()
    }

    #[test]
    fn agg_modes_by_hand_with_a_fully_masked_row() {
        // rows: [1, 2 | 3 masked], [4 masked, 5 masked, 6 masked], [7, 8, 9]
        let loss = m(&[
            vec![1.0, 2.0, 3.0],
            vec![4.0, 5.0, 6.0],
            vec![7.0, 8.0, 9.0],
        ]);
        let mask = m(&[vec![1.0, 1.0, 0.0], vec![0.0; 3], vec![1.0; 3]]);
        let got = |mode| agg_loss(&loss, &mask, mode).unwrap();
        // token-mean: (1+2+7+8+9)/5 = 27/5
        assert!((got(LossAgg::TokenMean) - 5.4).abs() < 1e-6);
        // seq-mean-token-mean: (1.5 + 8) / 2 (the empty row is not counted)
        assert!((got(LossAgg::SeqMeanTokenMean) - 4.75).abs() < 1e-6);
        // seq-mean-token-sum: (3 + 24) / 2
        assert!((got(LossAgg::SeqMeanTokenSum) - 13.5).abs() < 1e-6);
        // seq-mean-token-sum-norm: 27 / T with T = 3
        assert!((got(LossAgg::SeqMeanTokenSumNorm) - 9.0).abs() < 1e-6);
        // a fully masked batch aggregates to 0 in every mode
        for mode in ALL_MODES {
            assert_eq!(agg_loss(&loss, &Mat::filled(3, 3, 0.0), mode).unwrap(), 0.0);
        }
    }

    #[test]
    fn surrogate_token_by_hand() {
        let c = clip();
        // A > 0, ratio e^0.5 = 1.65 > 1.2: clipped, loss = -A * 1.2
        let (l, clipped, dual, _) = surrogate_token(-0.5, -1.0, 2.0, &c);
        assert!((l + 2.4).abs() < 1e-6 && clipped && !dual);
        // A > 0, ratio 1: not clipped, loss = -A
        let (l, clipped, _, _) = surrogate_token(-1.0, -1.0, 2.0, &c);
        assert!((l + 2.0).abs() < 1e-6 && !clipped);
        // A < 0, ratio e^2 = 7.39: l1 = 7.39, l2 = 1.2; c1 = 7.39 > -A*3 = 3 -> dual clip gives 3
        let (l, clipped, dual, _) = surrogate_token(1.0, -1.0, -1.0, &c);
        assert!((l - 3.0).abs() < 1e-6 && !clipped && dual);
        // same without dual clip: 7.389
        let no_dual = PpoClip {
            dual_clip: None,
            ..c
        };
        let (l, _, dual, _) = surrogate_token(1.0, -1.0, -1.0, &no_dual);
        assert!((l - 2f32.exp()).abs() < 1e-5 && !dual);
        // A < 0, ratio e^-1 = 0.37 < 0.8: l1 = 0.37, l2 = 0.8 -> clipped, c1 = 0.8 < 3
        let (l, clipped, dual, _) = surrogate_token(-2.0, -1.0, -1.0, &c);
        assert!((l - 0.8).abs() < 1e-6 && clipped && !dual);
        // log-ratio clamp at 20
        let (_, _, _, lr) = surrogate_token(30.0, 0.0, 1.0, &c);
        assert_eq!(lr, 20.0);
    }

    #[test]
    fn policy_loss_stats_by_hand() {
        let old = m(&[vec![-1.0, -1.0], vec![-1.0, -1.0]]);
        let new = m(&[vec![-0.5, -1.0], vec![1.0, 5.0]]);
        let adv = m(&[vec![2.0, 2.0], vec![-1.0, 9.0]]);
        let mask = m(&[vec![1.0, 1.0], vec![1.0, 0.0]]);
        let s = policy_loss(&old, &new, &adv, &mask, &clip(), LossAgg::TokenMean).unwrap();
        // token losses: -2.4, -2.0, 3.0 (the masked one ignored)
        assert!((s.pg_loss - (-2.4 - 2.0 + 3.0) / 3.0).abs() < 1e-6);
        assert!((s.clipfrac - 1.0 / 3.0).abs() < 1e-6);
        assert!((s.clipfrac_lower - 1.0 / 3.0).abs() < 1e-6);
        // ppo_kl = mean(old - new) = (-0.5 + 0 - 2) / 3
        assert!((s.ppo_kl + 2.5 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn value_loss_by_hand() {
        let v = m(&[vec![1.0, 0.0]]);
        let r = m(&[vec![0.0, 0.0]]);
        let old = m(&[vec![0.0, 0.0]]);
        let mask = m(&[vec![1.0, 1.0]]);
        // token 0: vpred 1, clipped to 0.5: errors 1 and 0.25 -> max 1 (unclipped wins);
        // token 1: 0 -> 0. Loss 0.5 * mean(1, 0) = 0.25; clipfrac 0.
        let (l, cf) = value_loss(&v, &r, &old, &mask, 0.5, LossAgg::TokenMean).unwrap();
        assert!((l - 0.25).abs() < 1e-6 && cf == 0.0);
        // returns 2: vpred 1 -> err 1; clipped 0.5 -> err 2.25 (larger, clipped counts)
        let r2 = m(&[vec![2.0, 0.0]]);
        let (l, cf) = value_loss(&v, &r2, &old, &mask, 0.5, LossAgg::TokenMean).unwrap();
        assert!((l - 0.5 * 2.25 / 2.0).abs() < 1e-6 && (cf - 0.5).abs() < 1e-6);
        let dev = Device::Cpu;
        let var = Var::from_tensor(&v.to_tensor(&dev).unwrap()).unwrap();
        let (lt, cft) = value_loss_tensor(
            var.as_tensor(),
            &r2.to_tensor(&dev).unwrap(),
            &old.to_tensor(&dev).unwrap(),
            &mask.to_tensor(&dev).unwrap(),
            0.5,
            LossAgg::TokenMean,
        )
        .unwrap();
        assert!((lt.to_scalar::<f32>().unwrap() - l).abs() < 1e-6 && cft == cf);
        let g = lt.backward().unwrap();
        let g = Mat::from_tensor(g.get(var.as_tensor()).unwrap()).unwrap();
        // token 0 is clipped: no gradient; token 1 has error 0: gradient 0 too.
        assert_eq!(g.data, vec![0.0, 0.0]);
    }

    fn tensors(rows: &[Mat]) -> Vec<Tensor> {
        rows.iter()
            .map(|m| m.to_tensor(&Device::Cpu).unwrap())
            .collect()
    }

    #[test]
    fn tensor_actor_loss_agrees_with_slices_and_has_gradients() {
        let old = m(&[vec![-1.0, -1.2, -0.7], vec![-2.0, -0.3, -1.0]]);
        let new = m(&[vec![-0.5, -1.1, -0.9], vec![-1.0, -0.35, -40.0]]);
        let adv = m(&[vec![2.0, -0.5, 0.3], vec![-1.0, 0.7, 1.0]]);
        let mask = m(&[vec![1.0, 1.0, 1.0], vec![1.0, 1.0, 0.0]]);
        let ent = m(&[vec![1.0, 2.0, 3.0], vec![0.5, 0.5, 0.5]]);
        let reference = m(&[vec![-1.1, -1.0, -0.8], vec![-1.5, -0.4, -1.0]]);
        for mode in ALL_MODES {
            let cfg = ActorLossConfig {
                clip: clip(),
                agg: mode,
                entropy_coef: 0.01,
                kl: Some((KlKind::K3, 0.1)),
            };
            let (want, want_stats) =
                actor_loss_slices(&old, &new, &adv, &mask, Some(&ent), Some(&reference), &cfg)
                    .unwrap();
            let var = Var::from_tensor(&new.to_tensor(&Device::Cpu).unwrap()).unwrap();
            let t = tensors(&[
                old.clone(),
                adv.clone(),
                mask.clone(),
                ent.clone(),
                reference.clone(),
            ]);
            let out = actor_loss(
                &ActorLossInputs {
                    log_prob: var.as_tensor(),
                    old_log_prob: &t[0],
                    advantages: &t[1],
                    mask: &t[2],
                    entropy: Some(&t[3]),
                    ref_log_prob: Some(&t[4]),
                },
                &cfg,
            )
            .unwrap();
            let got = out.loss.to_scalar::<f32>().unwrap();
            assert!((got - want).abs() < 1e-5, "{mode:?}: {got} vs {want}");
            assert!((out.stats.pg_loss - want_stats.pg_loss).abs() < 1e-6);
            assert_eq!(out.stats.clipfrac, want_stats.clipfrac);
            assert_eq!(out.stats.clipfrac_lower, want_stats.clipfrac_lower);
            assert!((out.stats.ppo_kl - want_stats.ppo_kl).abs() < 1e-6);
            let grads = out.loss.backward().unwrap();
            let g = Mat::from_tensor(grads.get(var.as_tensor()).unwrap()).unwrap();
            // token (0,0): ratio e^0.5 clipped with A > 0: only the KL term's gradient remains.
            // token (0,1): unclipped: surrogate gradient present.
            assert!(g.row(0)[1].abs() > 1e-4, "{mode:?} {g:?}");
            // masked token (1,2): no gradient at all
            assert_eq!(g.row(1)[2], 0.0);
        }
    }

    #[test]
    fn config_from_spec() {
        let mut spec = PpoSpec {
            lr: 1e-5,
            clip_low: 0.2,
            clip_high: 0.28,
            dual_clip: 3.0,
            entropy: 0.001,
            kl: Some(KlKind::K3),
            kl_coef: 0.01,
            epochs: 1,
            minibatch: 8,
            grad_clip: 1.0,
            loss_agg: LossAgg::SeqMeanTokenMean,
            weight_decay: 0.0,
        };
        let cfg = ActorLossConfig::from_spec(&spec);
        assert_eq!(cfg.clip.clip_high, 0.28);
        assert_eq!(cfg.clip.dual_clip, Some(3.0));
        assert_eq!(cfg.kl, Some((KlKind::K3, 0.01)));
        assert_eq!(cfg.agg, LossAgg::SeqMeanTokenMean);
        for off in [1.0, 0.0, f64::INFINITY] {
            spec.dual_clip = off;
            assert_eq!(PpoClip::from_spec(&spec).dual_clip, None);
        }
    }

    #[test]
    fn entropy_bonus_gradient_is_minus_coef_times_weight() {
        let dev = Device::Cpu;
        let lp = m(&[vec![-1.0, -1.0], vec![-1.0, -1.0]]);
        let mask = m(&[vec![1.0, 1.0], vec![1.0, 0.0]]);
        let zero = Mat::filled(2, 2, 0.0);
        let ent = Var::from_tensor(&Mat::filled(2, 2, 2.0).to_tensor(&dev).unwrap()).unwrap();
        let t = tensors(&[lp.clone(), zero.clone(), mask.clone()]);
        let cfg = ActorLossConfig {
            clip: clip(),
            agg: LossAgg::TokenMean,
            entropy_coef: 0.1,
            kl: None,
        };
        let out = actor_loss(
            &ActorLossInputs {
                log_prob: &t[0],
                old_log_prob: &t[0],
                advantages: &t[1],
                mask: &t[2],
                entropy: Some(ent.as_tensor()),
                ref_log_prob: None,
            },
            &cfg,
        )
        .unwrap();
        // advantages 0: loss = -0.1 * mean entropy over the 3 valid tokens = -0.2
        assert!((out.loss.to_scalar::<f32>().unwrap() + 0.2).abs() < 1e-6);
        assert!((out.entropy - 2.0).abs() < 1e-6);
        let g = out.loss.backward().unwrap();
        let g = Mat::from_tensor(g.get(ent.as_tensor()).unwrap()).unwrap();
        let w = -0.1 / 3.0;
        assert!((g.data[0] - w).abs() < 1e-7 && (g.data[2] - w).abs() < 1e-7);
        assert_eq!(g.data[3], 0.0);
    }

    #[test]
    fn inputs_of_another_float_dtype_are_converted() {
        let dev = Device::Cpu;
        let lp = Tensor::new(&[[-1.0f32, -0.5]], &dev).unwrap();
        let old = Tensor::new(&[[-1.0f64, -1.0]], &dev).unwrap();
        let adv = Tensor::new(&[[1.0f64, -1.0]], &dev).unwrap();
        let mask = Tensor::new(&[[1.0f32, 1.0]], &dev).unwrap();
        let cfg = ActorLossConfig {
            clip: clip(),
            agg: LossAgg::TokenMean,
            entropy_coef: 0.0,
            kl: None,
        };
        let out = actor_loss(
            &ActorLossInputs {
                log_prob: &lp,
                old_log_prob: &old,
                advantages: &adv,
                mask: &mask,
                entropy: None,
                ref_log_prob: None,
            },
            &cfg,
        )
        .unwrap();
        // token 0: ratio 1 -> -1; token 1: ratio e^0.5 with A < 0 -> l1 = 1.6487 (> l2 = 1.2)
        let want = (-1.0 + 0.5f32.exp()) / 2.0;
        assert!((out.loss.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
    }

    #[test]
    fn missing_entropy_or_reference_is_an_error() {
        let z = m(&[vec![0.0]]);
        let cfg = ActorLossConfig {
            clip: clip(),
            agg: LossAgg::TokenMean,
            entropy_coef: 0.1,
            kl: None,
        };
        assert!(actor_loss_slices(&z, &z, &z, &m(&[vec![1.0]]), None, None, &cfg).is_err());
    }

    proptest! {
        /// The tensor form equals the slice form for random inputs and masks (fully masked rows
        /// included) in every aggregation mode.
        #[test]
        fn tensor_and_slice_forms_agree(
            old in prop::collection::vec(-3.0f32..0.0, 12),
            new in prop::collection::vec(-3.0f32..0.0, 12),
            adv in prop::collection::vec(-2.0f32..2.0, 12),
            ent in prop::collection::vec(0.0f32..3.0, 12),
            keep in prop::collection::vec(prop::bool::weighted(0.7), 12),
            empty_row in 0usize..4,
        ) {
            let mut mask: Vec<f32> = keep.iter().map(|&k| k as u8 as f32).collect();
            mask[empty_row * 3..empty_row * 3 + 3].fill(0.0);
            let mk = |v: &[f32]| Mat::new(4, 3, v.to_vec()).unwrap();
            let (old, new, adv, ent, mask) = (mk(&old), mk(&new), mk(&adv), mk(&ent), mk(&mask));
            for mode in ALL_MODES {
                let cfg = ActorLossConfig { clip: clip(), agg: mode, entropy_coef: 0.01,
                    kl: Some((KlKind::K2, 0.05)) };
                let (want, stats) = actor_loss_slices(&old, &new, &adv, &mask, Some(&ent),
                    Some(&old), &cfg).unwrap();
                let t = tensors(&[new.clone(), old.clone(), adv.clone(), mask.clone(), ent.clone()]);
                let out = actor_loss(&ActorLossInputs { log_prob: &t[0], old_log_prob: &t[1],
                    advantages: &t[2], mask: &t[3], entropy: Some(&t[4]), ref_log_prob: Some(&t[1]) },
                    &cfg).unwrap();
                let got = out.loss.to_scalar::<f32>().unwrap();
                prop_assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "{:?}: {} vs {}", mode, got, want);
                prop_assert_eq!(out.stats.clipfrac, stats.clipfrac);
                prop_assert_eq!(out.stats.clipfrac_lower, stats.clipfrac_lower);
            }
        }

        /// Where the ratio clip (or dual clip) binds, the surrogate does not depend on logp:
        /// its gradient there is exactly 0; elsewhere it is -A * ratio / (token weight).
        #[test]
        fn gradient_is_zero_exactly_where_clipped(
            lp in prop::collection::vec(-1.0f32..1.0, 6),
            adv in prop::collection::vec(-2.0f32..2.0, 6),
        ) {
            let old = Mat::filled(2, 3, 0.0);
            let new = Mat::new(2, 3, lp.clone()).unwrap();
            let a = Mat::new(2, 3, adv.clone()).unwrap();
            let mask = Mat::filled(2, 3, 1.0);
            let cfg = ActorLossConfig { clip: clip(), agg: LossAgg::TokenMean, entropy_coef: 0.0, kl: None };
            let var = Var::from_tensor(&new.to_tensor(&Device::Cpu).unwrap()).unwrap();
            let t = tensors(&[old.clone(), a.clone(), mask.clone()]);
            let out = actor_loss(&ActorLossInputs {
                log_prob: var.as_tensor(), old_log_prob: &t[0], advantages: &t[1], mask: &t[2],
                entropy: None, ref_log_prob: None }, &cfg).unwrap();
            let grads = out.loss.backward().unwrap();
            let g = Mat::from_tensor(grads.get(var.as_tensor()).unwrap()).unwrap();
            let s = surrogate_tokens(&old, &new, &a, &cfg.clip).unwrap();
            for i in 0..6 {
                if s.clipped.data[i] == 1.0 || s.dual_clipped.data[i] == 1.0 {
                    prop_assert_eq!(g.data[i], 0.0);
                } else {
                    let want = -adv[i] * lp[i].exp() / 6.0;
                    prop_assert!((g.data[i] - want).abs() < 1e-5, "{} vs {}", g.data[i], want);
                }
            }
        }
    }
}
