//! The update stages: the PRM (DPO pairs or PRIME's cross-entropy), the policy (PPO's clipped
//! surrogate) and the critic (clipped value regression). Each takes the model it trains and
//! the products of the earlier stages it reads, and walks its rows with [`Minibatches`].
//!
//! Each optimiser step sums its gradients over micro-batches of rows bounded by the trained
//! model's token budget (`train { micro_batch_tokens }`), so the graph of one forward pass
//! never spans more than that budget. The PPO and value losses are weighted sums over tokens
//! with weights fixed by the whole minibatch ([`algo::ppo::AggNorm`]), so each micro-batch
//! contributes its exact share. The PRM losses compare trajectory scores, so they are not sums
//! over rows: [`accumulate_through`] takes them through micro-batches by the chain rule.

use candle_core::{DType, Tensor, Var, D};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::batch::Trajectory;
use super::check_finite;
use super::metrics::mean;
use super::scoring::{chunk_rows, padded_tensor, row_inputs, View};
use super::tokens::TokenValues;
use super::RuntimeError;
use crate::algo;
use crate::graph::{CriticSpec, PpoSpec, PrmLoss, PrmSpec, TrajScore};
use crate::model::{Batch, GradSum, LanguageModel, Optimizer};

/// A model with its optimiser and the padded tokens one of its forward/backward passes may
/// hold (0: no limit).
pub struct Trained {
    pub model: LanguageModel,
    pub opt: Optimizer,
    pub micro_batch_tokens: usize,
}

impl Trained {
    /// `rows` cut, in order, into the micro-batches of one gradient step.
    fn micro_batches(
        &self,
        trajs: &[Trajectory],
        rows: &[(usize, usize)],
    ) -> Vec<Vec<(usize, usize)>> {
        match self.micro_batch_tokens {
            0 => vec![rows.to_vec()],
            budget => chunk_rows(trajs, rows, budget),
        }
    }
}

/// Gradients of `head(x)` summed into `sum`, where `x` is the `[rows]` vector that
/// `forward(rows, grad)` computes row by row over `micro_batches` (concatenated in order) and
/// `head` maps it to a scalar loss, `None` when there is nothing to learn. One micro-batch is a
/// plain backward pass. Several take two passes: `dL/dx` from a pass without gradients, then
/// per micro-batch the backward of `sum(dL/dx * x)`, whose gradients sum to `dL/dtheta`.
/// Returns the loss.
fn accumulate_through(
    opt: &Optimizer,
    sum: &mut GradSum,
    micro_batches: &[Vec<(usize, usize)>],
    forward: impl Fn(&[(usize, usize)], bool) -> Result<Tensor, RuntimeError>,
    head: impl Fn(&Tensor) -> Result<Option<Tensor>, RuntimeError>,
) -> Result<Option<Tensor>, RuntimeError> {
    if let [rows] = micro_batches {
        let Some(loss) = head(&forward(rows, true)?)? else {
            return Ok(None);
        };
        opt.accumulate(&loss, sum)?;
        return Ok(Some(loss));
    }
    let detached = micro_batches
        .iter()
        .map(|rows| forward(rows, false))
        .collect::<Result<Vec<_>, _>>()?;
    let x = Var::from_tensor(&Tensor::cat(&detached, 0)?)?;
    let Some(loss) = head(x.as_tensor())? else {
        return Ok(None);
    };
    let dx = match loss.backward()?.get(x.as_tensor()) {
        Some(g) => g.detach(),
        None => x.zeros_like()?,
    };
    let mut start = 0;
    for rows in micro_batches {
        let part = forward(rows, true)?;
        let weights = dx.narrow(0, start, rows.len())?;
        start += rows.len();
        opt.accumulate(&(part * weights)?.sum_all()?, sum)?;
    }
    Ok(Some(loss))
}

/// The minibatches of one update: `passes` passes over the members, each pass first shuffled
/// with the update's random stream when it has one (the order carries over from one pass to
/// the next), then cut into chunks of `size`.
pub struct Minibatches<'a> {
    order: Vec<usize>,
    size: usize,
    passes_left: usize,
    /// Start of the next chunk within the current pass.
    next: usize,
    rng: Option<&'a mut ChaCha8Rng>,
}

impl<'a> Minibatches<'a> {
    /// `passes` shuffled passes over trajectories `0..count` in chunks of `size`.
    pub fn shuffled(
        count: usize,
        passes: usize,
        size: usize,
        rng: &'a mut ChaCha8Rng,
    ) -> Minibatches<'a> {
        Minibatches {
            order: (0..count).collect(),
            size: size.max(1),
            passes_left: passes.max(1),
            next: count,
            rng: Some(rng),
        }
    }

    /// `passes` passes over all of `members` at once, in order.
    pub fn whole(members: Vec<usize>, passes: usize) -> Minibatches<'a> {
        Minibatches {
            size: members.len().max(1),
            passes_left: passes.max(1),
            next: members.len(),
            order: members,
            rng: None,
        }
    }
}

impl Iterator for Minibatches<'_> {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        loop {
            if self.next < self.order.len() {
                let end = (self.next + self.size).min(self.order.len());
                let chunk = self.order[self.next..end].to_vec();
                self.next = end;
                return Some(chunk);
            }
            if self.passes_left == 0 {
                return None;
            }
            self.passes_left -= 1;
            if let Some(rng) = self.rng.as_deref_mut() {
                self.order.shuffle(rng);
            }
            self.next = 0;
        }
    }
}

/// `(trajectory, step)` of every step of the trajectories `members`.
fn step_rows(trajs: &[Trajectory], members: &[usize]) -> Vec<(usize, usize)> {
    members
        .iter()
        .flat_map(|&t| (0..trajs[t].steps.len()).map(move |s| (t, s)))
        .collect()
}

fn scalar(t: &Tensor) -> Result<f64, RuntimeError> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// What the PRM update reports.
#[derive(Debug, Clone, Default)]
pub struct PrmUpdateStats {
    pub pairs: usize,
    /// Pair accuracy of the PRM before the update, on trajectories it never saw.
    pub pair_accuracy: Option<f64>,
    pub updated: bool,
    pub loss: Option<f64>,
}

/// The PRM's inputs from earlier stages: the trajectories with their outcomes, the per-token
/// process rewards the PRM gave them before this update, and the log-probs its implicit reward
/// is measured against.
pub struct PrmUpdateInputs<'a> {
    pub trajs: &'a [Trajectory],
    pub process_rewards: &'a TokenValues<f64>,
    pub reference: &'a TokenValues<f32>,
    pub view: View,
    pub iteration: usize,
}

/// `spec.updates` optimiser steps of the PRM on this iteration's trajectories.
pub fn prm_update(
    prm: &mut Trained,
    spec: &PrmSpec,
    inputs: &PrmUpdateInputs,
) -> Result<PrmUpdateStats, RuntimeError> {
    let trajs = inputs.trajs;
    let it = inputs.iteration;
    let group_ids: Vec<usize> = trajs.iter().map(|t| t.group).collect();
    let success: Vec<bool> = trajs.iter().map(|t| t.success).collect();
    let pairs = algo::prm::preference_pairs(&group_ids, &success)?;
    let pre_scores: Vec<f32> = trajs
        .iter()
        .enumerate()
        .map(|(t, traj)| {
            let per_step: Vec<f32> = (0..traj.steps.len())
                .map(|s| inputs.process_rewards.step(t, s).iter().sum::<f64>() as f32)
                .collect();
            algo::prm::trajectory_score(&per_step, spec.score)
        })
        .collect();
    let mut stats = PrmUpdateStats {
        pairs: pairs.len(),
        ..Default::default()
    };
    if !pairs.is_empty() {
        let right = pairs
            .iter()
            .filter(|&&(p, f)| pre_scores[p] > pre_scores[f])
            .count();
        stats.pair_accuracy = Some(right as f64 / pairs.len() as f64);
    }
    // Only trajectories that enter the loss are scored with a gradient: for DPO those in a
    // pair (the others belong to all-success or all-failure groups).
    let members: Vec<usize> = match spec.loss {
        PrmLoss::Dpo => {
            let mut m: Vec<usize> = pairs.iter().flat_map(|&(p, f)| [p, f]).collect();
            m.sort_unstable();
            m.dedup();
            m
        }
        PrmLoss::CrossEntropy => (0..trajs.len()).collect(),
    };
    stats.updated = !members.is_empty();
    if members.is_empty() {
        return Ok(stats);
    }
    let mut last_loss = 0.0;
    for members in Minibatches::whole(members, spec.updates) {
        let rows = step_rows(trajs, &members);
        let step_traj: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let head = |log_ratios: &Tensor| -> Result<Option<Tensor>, RuntimeError> {
            Ok(match spec.loss {
                PrmLoss::Dpo => algo::prm::dpo_loss_tensor(
                    &(log_ratios * spec.beta)?,
                    &step_traj,
                    &group_ids,
                    &success,
                    spec.score,
                )?
                .map(|l| l.loss),
                PrmLoss::CrossEntropy => {
                    let sums = algo::prm::trajectory_scores_tensor(
                        log_ratios,
                        &step_traj,
                        trajs.len(),
                        TrajScore::Sum,
                    )?;
                    Some(algo::prm::prime_ce_loss_tensor(
                        &sums,
                        &success,
                        spec.beta as f32,
                    )?)
                }
            })
        };
        let mut sum = prm.opt.grad_sum();
        let Some(loss) = accumulate_through(
            &prm.opt,
            &mut sum,
            &prm.micro_batches(trajs, &rows),
            |rows, grad| step_log_ratios(&prm.model, inputs, rows, grad),
            head,
        )?
        else {
            break;
        };
        last_loss = scalar(&loss)?;
        check_finite("PRM loss", [last_loss], it)?;
        let norm = prm.opt.step_with_sum(&sum, spec.grad_clip)?;
        check_finite("PRM gradient norm", [norm], it)?;
    }
    stats.loss = Some(last_loss);
    Ok(stats)
}

/// `sum_tokens (log pi_phi - log pi_ref)` of each step in `rows`, with gradient through the
/// PRM when `grad`.
fn step_log_ratios(
    prm: &LanguageModel,
    inputs: &PrmUpdateInputs,
    rows: &[(usize, usize)],
    grad: bool,
) -> Result<Tensor, RuntimeError> {
    let scored = row_inputs(inputs.trajs, rows, inputs.view).score(prm, grad)?;
    let width = scored.logprobs.dim(1)?;
    let reference = padded_tensor(
        rows,
        width,
        |t, s| inputs.reference.step(t, s),
        prm.device(),
    )?;
    Ok(((scored.logprobs - reference)? * scored.mask)?.sum(D::Minus1)?)
}

/// The aggregation denominators of a minibatch of `rows`: its action tokens.
fn action_norm(trajs: &[Trajectory], rows: &[(usize, usize)]) -> algo::ppo::AggNorm {
    algo::ppo::AggNorm::of_lengths(rows.iter().map(|&(t, s)| trajs[t].steps[s].action.len()))
}

/// What the policy update reports: means over its minibatches.
#[derive(Debug, Clone, Default)]
pub struct PolicyUpdateStats {
    pub loss: f64,
    pub clip_fraction: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub grad_norm: f64,
}

/// The policy update's inputs from earlier stages.
pub struct PolicyUpdateInputs<'a> {
    pub trajs: &'a [Trajectory],
    /// `log pi_old` of every action token.
    pub old_logp: &'a TokenValues<f32>,
    /// The frozen reference's log-probs, for a KL loss.
    pub ref_logp: Option<&'a TokenValues<f32>>,
    pub advantages: &'a TokenValues<f32>,
    pub iteration: usize,
}

/// PPO over minibatches of trajectories, `ppo.epochs` times.
pub fn policy_update(
    policy: &mut Trained,
    ppo: &PpoSpec,
    inputs: &PolicyUpdateInputs,
    rng: &mut ChaCha8Rng,
) -> Result<PolicyUpdateStats, RuntimeError> {
    let cfg = algo::ppo::ActorLossConfig::from_spec(ppo);
    let (trajs, it) = (inputs.trajs, inputs.iteration);
    let device = policy.model.device().clone();
    let (mut losses, mut clips, mut ents, mut kls, mut norms) =
        (vec![], vec![], vec![], vec![], vec![]);
    for mb in Minibatches::shuffled(trajs.len(), ppo.epochs, ppo.minibatch, rng) {
        let rows: Vec<(usize, usize)> = step_rows(trajs, &mb)
            .into_iter()
            .filter(|&(t, s)| !trajs[t].steps[s].action.is_empty())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let norm = action_norm(trajs, &rows);
        let mut sum = policy.opt.grad_sum();
        let mut total = PolicyUpdateStats::default();
        for rows in policy.micro_batches(trajs, &rows) {
            let scored = row_inputs(trajs, &rows, View::Policy).score(&policy.model, true)?;
            let width = scored.logprobs.dim(1)?;
            let tok =
                |v: &TokenValues<f32>| padded_tensor(&rows, width, |t, s| v.step(t, s), &device);
            let old = tok(inputs.old_logp)?;
            let adv = tok(inputs.advantages)?;
            let reference = match inputs.ref_logp {
                Some(r) if cfg.kl.is_some() => Some(tok(r)?),
                _ => None,
            };
            let out = algo::ppo::actor_loss_share(
                &algo::ppo::ActorLossInputs {
                    log_prob: &scored.logprobs,
                    old_log_prob: &old,
                    advantages: &adv,
                    mask: &scored.mask,
                    entropy: Some(&scored.entropy),
                    ref_log_prob: reference.as_ref(),
                },
                &cfg,
                &norm,
            )?;
            total.loss += scalar(&out.loss)?;
            total.clip_fraction += out.stats.clipfrac as f64;
            total.entropy += out.entropy as f64;
            total.approx_kl += out.stats.ppo_kl as f64;
            policy.opt.accumulate(&out.loss, &mut sum)?;
        }
        check_finite("policy loss", [total.loss], it)?;
        let norm = policy.opt.step_with_sum(&sum, ppo.grad_clip)?;
        check_finite("policy gradient norm", [norm], it)?;
        losses.push(total.loss);
        clips.push(total.clip_fraction);
        ents.push(total.entropy);
        kls.push(total.approx_kl);
        norms.push(norm);
    }
    Ok(PolicyUpdateStats {
        loss: mean(&losses),
        clip_fraction: mean(&clips),
        entropy: mean(&ents),
        approx_kl: mean(&kls),
        grad_norm: mean(&norms),
    })
}

/// The critic update's inputs from earlier stages.
pub struct CriticUpdateInputs<'a> {
    pub trajs: &'a [Trajectory],
    /// The critic's values before the update.
    pub values: &'a TokenValues<f32>,
    /// The GAE returns it regresses on.
    pub returns: &'a TokenValues<f32>,
    pub iteration: usize,
}

/// Clipped value regression on the GAE returns, over minibatches of trajectories; the mean
/// loss.
pub fn critic_update(
    critic: &mut Trained,
    spec: &CriticSpec,
    ppo: &PpoSpec,
    inputs: &CriticUpdateInputs,
    rng: &mut ChaCha8Rng,
) -> Result<f64, RuntimeError> {
    let (trajs, it) = (inputs.trajs, inputs.iteration);
    let device = critic.model.device().clone();
    let mut losses = Vec::new();
    for mb in Minibatches::shuffled(trajs.len(), ppo.epochs, ppo.minibatch, rng) {
        let rows = step_rows(trajs, &mb);
        if rows.is_empty() {
            continue;
        }
        let norm = action_norm(trajs, &rows);
        let mut sum = critic.opt.grad_sum();
        let mut loss = 0.0;
        for rows in critic.micro_batches(trajs, &rows) {
            let inputs_of_rows = row_inputs(trajs, &rows, View::Policy);
            let images = inputs_of_rows.image_refs();
            let batch = Batch::new(&inputs_of_rows.prompts).with_images(&images);
            let (scored, v) =
                critic
                    .model
                    .score_and_values(batch, &inputs_of_rows.actions, true)?;
            let v = v.ok_or_else(|| RuntimeError::Config("the critic has no value head".into()))?;
            let width = v.dim(1)?;
            let old = padded_tensor(&rows, width, |t, s| inputs.values.step(t, s), &device)?;
            let ret = padded_tensor(&rows, width, |t, s| inputs.returns.step(t, s), &device)?;
            let (part, _clipfrac) = algo::ppo::value_loss_share(
                &v,
                &ret,
                &old,
                &scored.mask,
                spec.value_clip as f32,
                ppo.loss_agg,
                &norm,
            )?;
            loss += scalar(&part)?;
            critic.opt.accumulate(&part, &mut sum)?;
        }
        check_finite("value loss", [loss], it)?;
        let norm = critic.opt.step_with_sum(&sum, ppo.grad_clip)?;
        check_finite("critic gradient norm", [norm], it)?;
        losses.push(loss);
    }
    Ok(mean(&losses))
}

#[cfg(test)]
mod tests;
