//! One OPRL iteration: the trainer owns the models, optimisers, environments and random streams,
//! and runs the graph's nodes in order, each node reading what the earlier ones left in the
//! iteration's [`Work`].

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, D};
use rand::seq::SliceRandom;
use rand::RngCore;

use super::batch::{TokenValues, Trajectory};
use super::metrics::{mean, rate, IterationMetrics};
use super::rngs::{SavedStreams, Streams};
use super::rollout::{rollout, RetryPolicy, RolloutStats};
use super::scoring::{all_rows, chunk_rows, padded_tensor, row_inputs, score_steps, View};
use super::setup::{make_envs, make_tokenizer, sampling_of, set_threads};
use super::RuntimeError;
use crate::algo;
use crate::env::{Environment, Split, Task};
use crate::graph::{
    AdvExpr, AlgorithmKind, ExecGraph, Op, PrmLoss, PrmReference, RewardSpec, TrajScore,
};
use crate::model::{Batch, LanguageModel, Optimizer, SampleOptions, Tokenizer};
use crate::reward::verifier::verify;

/// What one iteration's nodes produce for the later ones.
#[derive(Default)]
pub struct Work {
    pub trajs: Vec<Trajectory>,
    /// Frozen reference's per-token log-probs (PRIME's PRM reference, the KL loss).
    pub ref_logp: Option<Vec<Vec<Vec<f32>>>>,
    /// PRM per-token log-probs before this iteration's PRM update.
    pub prm_logp: Option<Vec<Vec<Vec<f32>>>>,
    /// Critic values per action token (PPO+GAE).
    pub values: Option<TokenValues>,
    pub advantages: Option<TokenValues>,
    /// Critic targets per action token (PPO+GAE).
    pub returns: Option<TokenValues>,
    pub stats: RolloutStats,
    pub metrics: IterationMetrics,
}

/// A model with its optimiser.
pub struct Trained {
    pub model: LanguageModel,
    pub opt: Optimizer,
}

/// The state of a training run between iterations.
pub struct Trainer {
    pub graph: ExecGraph,
    pub tokenizer: Tokenizer,
    pub device: Device,
    pub policy: Trained,
    pub prm: Option<Trained>,
    /// Frozen copy of the initial policy (PRIME's reference, KL loss).
    pub reference: Option<LanguageModel>,
    pub critic: Option<Trained>,
    pub streams: Streams,
    /// Completed iterations.
    pub iteration: usize,
    pub retry: RetryPolicy,
    envs: Vec<Box<dyn Environment>>,
    /// The recipe's judge, for judged outcome rewards.
    judge: Option<crate::reward::judge::OutcomeJudge>,
}

/// The checkpoint's bookkeeping file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckpointState {
    pub iteration: usize,
    pub streams: SavedStreams,
}

fn check_finite(
    quantity: &str,
    values: impl IntoIterator<Item = f64>,
    iteration: usize,
) -> Result<(), RuntimeError> {
    for v in values {
        if !v.is_finite() {
            return Err(RuntimeError::NonFinite {
                quantity: quantity.to_string(),
                value: v,
                iteration,
            });
        }
    }
    Ok(())
}

fn scalar(t: &Tensor) -> Result<f64, RuntimeError> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

impl Trainer {
    /// A fresh trainer: the policy from the recipe (seeded), the PRM, reference and critic as
    /// copies of it where the graph needs them.
    pub fn new(graph: ExecGraph) -> Result<Trainer, RuntimeError> {
        set_threads(graph.train.threads);
        let device = super::setup::device_for(graph.train.device)?;
        let tokenizer = make_tokenizer(&graph)?;
        let seed = graph.train.seed;
        let policy = super::setup::make_policy(&graph, &tokenizer, &device, seed)?;
        let ppo = &graph.algorithm.ppo;
        let policy_opt = Optimizer::new(policy.vars(), ppo.lr, ppo.weight_decay)?;
        let prm = match &graph.prm {
            Some(spec) => {
                // A text-reading PRM is the same language model without the patch encoder.
                let model = if spec.text_view {
                    policy.duplicate_text_only()?
                } else {
                    policy.duplicate()?
                };
                let opt = Optimizer::new(model.vars(), spec.lr, 0.0)?;
                Some(Trained { model, opt })
            }
            None => None,
        };
        let frozen_prm = graph
            .prm
            .as_ref()
            .is_some_and(|p| p.reference == PrmReference::Frozen);
        let reference = if frozen_prm || ppo.kl.is_some() {
            Some(policy.duplicate()?)
        } else {
            None
        };
        let critic = match (&graph.algorithm.kind, &graph.algorithm.critic) {
            (AlgorithmKind::PpoGae, Some(spec)) => {
                let mut model = policy.duplicate()?;
                model.add_value_head(seed ^ 0x5eed_c417)?;
                let opt = Optimizer::new(model.vars(), spec.lr, 0.0)?;
                Some(Trained { model, opt })
            }
            (AlgorithmKind::PpoGae, None) => {
                return Err(RuntimeError::Config(
                    "the PPO+GAE algorithm needs a critic block".into(),
                ))
            }
            _ => None,
        };
        let judge = super::judging::outcome_judge(&graph)?;
        Ok(Trainer {
            streams: Streams::new(seed),
            graph,
            tokenizer,
            device,
            policy: Trained {
                model: policy,
                opt: policy_opt,
            },
            prm,
            reference,
            critic,
            iteration: 0,
            retry: RetryPolicy::default(),
            envs: Vec::new(),
            judge,
        })
    }

    /// Writes every model, optimiser and the random streams into `dir` (`state.json` last).
    pub fn save(&self, dir: &Path) -> Result<(), RuntimeError> {
        self.policy.model.save(&dir.join("policy.safetensors"))?;
        self.policy.opt.save(&dir.join("policy.opt.safetensors"))?;
        if let Some(prm) = &self.prm {
            prm.model.save(&dir.join("prm.safetensors"))?;
            prm.opt.save(&dir.join("prm.opt.safetensors"))?;
        }
        if let Some(reference) = &self.reference {
            reference.save(&dir.join("reference.safetensors"))?;
        }
        if let Some(critic) = &self.critic {
            critic.model.save(&dir.join("critic.safetensors"))?;
            critic.opt.save(&dir.join("critic.opt.safetensors"))?;
        }
        let state = CheckpointState {
            iteration: self.iteration,
            streams: self.streams.save(),
        };
        let json = serde_json::to_string_pretty(&state).map_err(RuntimeError::Json)?;
        super::rundir::write_atomic(&dir.join("state.json"), json.as_bytes())
    }

    /// Restores what [`Trainer::save`] wrote.
    pub fn load(&mut self, dir: &Path) -> Result<(), RuntimeError> {
        let state_path = dir.join("state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| RuntimeError::Io {
            path: state_path.clone(),
            source: e,
        })?;
        let state: CheckpointState =
            serde_json::from_str(&text).map_err(|e| RuntimeError::RunDir {
                path: state_path.clone(),
                message: format!("holds an unreadable checkpoint state: {e}"),
            })?;
        if !state.streams.check() {
            return Err(RuntimeError::RunDir {
                path: state_path,
                message: "holds damaged random-stream positions".into(),
            });
        }
        self.policy.model.load(&dir.join("policy.safetensors"))?;
        self.policy.opt.load(&dir.join("policy.opt.safetensors"))?;
        if let Some(prm) = &mut self.prm {
            prm.model.load(&dir.join("prm.safetensors"))?;
            prm.opt.load(&dir.join("prm.opt.safetensors"))?;
        }
        if let Some(reference) = &mut self.reference {
            reference.load(&dir.join("reference.safetensors"))?;
        }
        if let Some(critic) = &mut self.critic {
            critic.model.load(&dir.join("critic.safetensors"))?;
            critic.opt.load(&dir.join("critic.opt.safetensors"))?;
        }
        self.iteration = state.iteration;
        self.streams = Streams::restore(&state.streams);
        Ok(())
    }

    /// Runs one iteration: every node of the graph, in order.
    pub fn step(&mut self) -> Result<IterationMetrics, RuntimeError> {
        let started = Instant::now();
        let iteration = self.iteration + 1;
        let mut w = Work {
            metrics: IterationMetrics {
                iteration,
                ..Default::default()
            },
            ..Default::default()
        };
        let nodes: Vec<Op> = self.graph.nodes.values().map(|n| n.op).collect();
        for op in nodes {
            let t = Instant::now();
            match op {
                Op::Rollout => self.rollout(&mut w)?,
                Op::OutcomeReward => self.outcome_reward(&mut w)?,
                Op::PrmScore => self.prm_score(&mut w)?,
                Op::PrmUpdate => self.prm_update(&mut w)?,
                Op::ValueEstimate => self.value_estimate(&mut w)?,
                Op::Advantage => self.advantage(&mut w)?,
                Op::PolicyUpdate => self.policy_update(&mut w)?,
                Op::CriticUpdate => self.critic_update(&mut w)?,
                // Rollouts sample from the live policy weights and record their log-probs at
                // sampling time, so after the update the sampling policy *is* the new theta:
                // the snapshot theta_old needs no separate copy.
                Op::SyncOld => {}
            }
            let dt = t.elapsed().as_secs_f64();
            let m = &mut w.metrics;
            match op {
                Op::Rollout => m.time_rollout += dt,
                Op::OutcomeReward => m.time_reward += dt,
                Op::PrmScore | Op::PrmUpdate => m.time_prm += dt,
                Op::ValueEstimate | Op::Advantage => m.time_advantage += dt,
                Op::PolicyUpdate | Op::CriticUpdate | Op::SyncOld => m.time_update += dt,
            }
        }
        self.iteration = iteration;
        w.metrics.time_total = started.elapsed().as_secs_f64();
        Ok(w.metrics)
    }

    /// What the PRM reads: the text rendering when the recipe says so (`prm.text_view`).
    fn prm_view(&self) -> View {
        match &self.graph.prm {
            Some(p) if p.text_view => View::Text,
            _ => View::Policy,
        }
    }

    fn sampling(&self) -> SampleOptions {
        sampling_of(&self.graph.policy)
    }

    fn max_turns(&self) -> usize {
        super::setup::max_turns(&self.graph.env)
    }

    /// B tasks x N trajectories with the current policy; `logp_old` recomputed by a batched
    /// forward pass so that it is bit-identical to how the PRM and the update score the same
    /// tokens (the sampler's incremental KV-cache sums can differ in the last bits).
    fn rollout(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let (b, n) = (self.graph.train.tasks, self.graph.train.group);
        let mut tasks = Vec::with_capacity(b * n);
        let mut group_of = Vec::with_capacity(b * n);
        for g in 0..b {
            let task = Task {
                split: Split::Train,
                index: self.streams.tasks.next_u64() >> 1,
            };
            for _ in 0..n {
                tasks.push(task);
                group_of.push(g);
            }
        }
        if self.envs.len() != b * n {
            self.envs = make_envs(&self.graph.env, b * n)?;
        }
        let opts = self.sampling();
        let max_turns = self.max_turns();
        let t = Instant::now();
        w.trajs = rollout(
            &mut self.envs,
            &tasks,
            &group_of,
            &self.policy.model,
            &self.tokenizer,
            &opts,
            max_turns,
            self.retry,
            &mut self.streams.sampling,
            &mut w.stats,
        )?;
        let rollout_time = t.elapsed().as_secs_f64();
        let old = score_steps(&self.policy.model, &w.trajs, View::Policy)?;
        for (traj, lps) in w.trajs.iter_mut().zip(old.logp) {
            for (step, lp) in traj.steps.iter_mut().zip(lps) {
                step.token_logp_old = lp;
            }
        }
        check_finite(
            "log pi_old",
            w.trajs
                .iter()
                .flat_map(|t| t.steps.iter().map(|s| s.logp_old())),
            w.metrics.iteration,
        )?;
        if let Some(reference) = &self.reference {
            w.ref_logp = Some(score_steps(reference, &w.trajs, View::Policy)?.logp);
        }
        let m = &mut w.metrics;
        let steps: usize = w.trajs.iter().map(|t| t.steps.len()).sum();
        let invalid = w
            .trajs
            .iter()
            .flat_map(|t| &t.steps)
            .filter(|s| !s.valid)
            .count();
        m.mean_turns = mean(
            &w.trajs
                .iter()
                .map(|t| t.steps.len() as f64)
                .collect::<Vec<_>>(),
        );
        m.invalid_rate = if steps > 0 {
            invalid as f64 / steps as f64
        } else {
            0.0
        };
        m.tokens_per_s = rate(w.stats.tokens, rollout_time);
        m.env_steps_per_s = rate(w.stats.env_steps, rollout_time);
        m.env_retries = w.stats.env_retries;
        Ok(())
    }

    fn outcome_reward(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        match (&self.graph.reward, &self.judge) {
            (RewardSpec::Verifier { signal }, _) => {
                for t in &mut w.trajs {
                    let r = verify(*signal, &t.outcome);
                    t.reward = r.reward;
                    t.success = r.success;
                }
            }
            (RewardSpec::Judge(_), Some(judge)) => {
                let means = super::judging::judge_trajectories(judge, &mut w.trajs)?;
                w.metrics.judge_goal = Some(means.goal);
                w.metrics.judge_overall = Some(means.overall);
            }
            (RewardSpec::Judge(_), None) => {
                return Err(RuntimeError::Config(
                    "the graph's outcome is judged but the trainer has no judge".into(),
                ))
            }
        }
        let it = w.metrics.iteration;
        check_finite("outcome reward", w.trajs.iter().map(|t| t.reward), it)?;
        let n = w.trajs.len().max(1) as f64;
        w.metrics.success_rate = w.trajs.iter().filter(|t| t.success).count() as f64 / n;
        w.metrics.mean_outcome = w.trajs.iter().map(|t| t.reward).sum::<f64>() / n;
        Ok(())
    }

    /// The per-token reference the PRM's implicit reward is measured against.
    fn prm_reference<'a>(&self, w: &'a Work, t: usize, s: usize) -> &'a [f32] {
        match (&self.graph.prm, &w.ref_logp) {
            (Some(p), Some(r)) if p.reference == PrmReference::Frozen => &r[t][s],
            _ => &w.trajs[t].steps[s].token_logp_old,
        }
    }

    /// `beta * (log pi_phi - log pi_ref)` for every action token, from the pre-update PRM.
    fn token_process_rewards(&self, w: &Work) -> Option<TokenValues> {
        let beta = self.graph.prm.as_ref()?.beta;
        let prm = w.prm_logp.as_ref()?;
        Some(
            w.trajs
                .iter()
                .enumerate()
                .map(|(t, traj)| {
                    (0..traj.steps.len())
                        .map(|s| {
                            let reference = self.prm_reference(w, t, s);
                            prm[t][s]
                                .iter()
                                .zip(reference)
                                .map(|(&p, &r)| beta * (p as f64 - r as f64))
                                .collect()
                        })
                        .collect()
                })
                .collect(),
        )
    }

    fn prm_score(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let Some(prm) = &self.prm else {
            return Err(RuntimeError::Config(
                "the graph scores with a PRM but declares none".into(),
            ));
        };
        w.prm_logp = Some(score_steps(&prm.model, &w.trajs, self.prm_view())?.logp);
        let tokens = self.token_process_rewards(w).unwrap_or_default();
        check_finite(
            "PRM step reward",
            tokens.iter().flatten().flatten().copied(),
            w.metrics.iteration,
        )
    }

    fn prm_update(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let spec = self.graph.prm.clone().ok_or_else(|| {
            RuntimeError::Config("the graph updates a PRM but declares none".into())
        })?;
        let it = w.metrics.iteration;
        let tokens = self.token_process_rewards(w).ok_or_else(|| {
            RuntimeError::Config(
                "the PRM update needs the PRM scores (a `prm_score` node before it)".into(),
            )
        })?;
        let group_ids: Vec<usize> = w.trajs.iter().map(|t| t.group).collect();
        let success: Vec<bool> = w.trajs.iter().map(|t| t.success).collect();
        let pairs = algo::prm::preference_pairs(&group_ids, &success)?;
        // Pair accuracy of the PRM as it was before this update, on trajectories it never saw.
        let pre_scores: Vec<f32> = tokens
            .iter()
            .map(|steps| {
                let per_step: Vec<f32> =
                    steps.iter().map(|s| s.iter().sum::<f64>() as f32).collect();
                algo::prm::trajectory_score(&per_step, spec.score)
            })
            .collect();
        w.metrics.prm_pairs = Some(pairs.len());
        if !pairs.is_empty() {
            let right = pairs
                .iter()
                .filter(|&&(p, f)| pre_scores[p] > pre_scores[f])
                .count();
            w.metrics.prm_pair_accuracy = Some(right as f64 / pairs.len() as f64);
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
            PrmLoss::CrossEntropy => (0..w.trajs.len()).collect(),
        };
        w.metrics.prm_updated = Some(!members.is_empty());
        if members.is_empty() {
            return Ok(());
        }
        let mut last_loss = 0.0;
        for _ in 0..spec.updates.max(1) {
            let (log_ratios, step_traj) = self.prm_step_log_ratios(w, &members)?;
            let loss = match spec.loss {
                PrmLoss::Dpo => {
                    let step_rewards = (log_ratios * spec.beta)?;
                    match algo::prm::dpo_loss_tensor(
                        &step_rewards,
                        &step_traj,
                        &group_ids,
                        &success,
                        spec.score,
                    )? {
                        Some(l) => l.loss,
                        None => break,
                    }
                }
                PrmLoss::CrossEntropy => {
                    let sums = algo::prm::trajectory_scores_tensor(
                        &log_ratios,
                        &step_traj,
                        w.trajs.len(),
                        TrajScore::Sum,
                    )?;
                    algo::prm::prime_ce_loss_tensor(&sums, &success, spec.beta as f32)?
                }
            };
            last_loss = scalar(&loss)?;
            check_finite("PRM loss", [last_loss], it)?;
            let prm = self.prm.as_mut().expect("checked above");
            let norm = prm.opt.step(&loss, spec.grad_clip)?;
            check_finite("PRM gradient norm", [norm], it)?;
        }
        w.metrics.prm_loss = Some(last_loss);
        Ok(())
    }

    /// `sum_tokens (log pi_phi - log pi_ref)` of every step of `members`, with gradient through
    /// the PRM, and the trajectory of each step.
    fn prm_step_log_ratios(
        &self,
        w: &Work,
        members: &[usize],
    ) -> Result<(Tensor, Vec<usize>), RuntimeError> {
        let prm = &self.prm.as_ref().expect("caller checked").model;
        let rows: Vec<(usize, usize)> = members
            .iter()
            .flat_map(|&t| (0..w.trajs[t].steps.len()).map(move |s| (t, s)))
            .collect();
        let scored = row_inputs(&w.trajs, &rows, self.prm_view()).score(prm, true)?;
        let width = scored.logprobs.dim(1)?;
        let reference = padded_tensor(
            &rows,
            width,
            |t, s| {
                self.prm_reference(w, t, s)
                    .iter()
                    .map(|&x| x as f64)
                    .collect()
            },
            &self.device,
        )?;
        let log_ratio = ((scored.logprobs - reference)? * scored.mask)?.sum(D::Minus1)?;
        Ok((log_ratio, rows.iter().map(|r| r.0).collect()))
    }

    fn value_estimate(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let critic = self.critic.as_ref().ok_or_else(|| {
            RuntimeError::Config("the graph estimates values but declares no critic".into())
        })?;
        let mut values: TokenValues = w
            .trajs
            .iter()
            .map(|t| vec![Vec::new(); t.steps.len()])
            .collect();
        let rows = all_rows(&w.trajs);
        for chunk in chunk_rows(&w.trajs, &rows, super::scoring::SCORE_TOKEN_BUDGET) {
            let inputs = row_inputs(&w.trajs, &chunk, View::Policy);
            let actions = &inputs.actions;
            let images = inputs.image_refs();
            let batch = Batch::new(&inputs.prompts).with_images(&images);
            let v = critic
                .model
                .score_and_values(batch, actions, false)?
                .1
                .ok_or_else(|| RuntimeError::Config("the critic has no value head".into()))?;
            let v = v.to_vec2::<f32>()?;
            for (k, &(t, s)) in chunk.iter().enumerate() {
                values[t][s] = v[k][..actions[k].len()].iter().map(|&x| x as f64).collect();
            }
        }
        check_finite(
            "critic value",
            values.iter().flatten().flatten().copied(),
            w.metrics.iteration,
        )?;
        w.values = Some(values);
        Ok(())
    }

    fn advantage(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let out = super::advantage::compute(self, w)?;
        check_finite(
            "advantage",
            out.advantages.iter().flatten().flatten().copied(),
            w.metrics.iteration,
        )?;
        w.metrics.adv_episode_std = out.episode_std;
        w.metrics.adv_step_std = out.step_std;
        w.advantages = Some(out.advantages);
        w.returns = out.returns;
        Ok(())
    }

    pub(crate) fn token_rewards_for_advantage(&self, w: &Work) -> Option<TokenValues> {
        self.token_process_rewards(w)
    }

    /// PPO over minibatches of trajectories, `epochs` times.
    fn policy_update(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let advantages = w.advantages.as_ref().ok_or_else(|| {
            RuntimeError::Config(
                "the policy update needs advantages (an `advantage` node before it)".into(),
            )
        })?;
        let ppo = self.graph.algorithm.ppo.clone();
        let cfg = algo::ppo::ActorLossConfig::from_spec(&ppo);
        let it = w.metrics.iteration;
        let mut order: Vec<usize> = (0..w.trajs.len()).collect();
        let (mut losses, mut clips, mut ents, mut kls, mut norms) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..ppo.epochs.max(1) {
            order.shuffle(&mut self.streams.minibatch);
            for mb in order.chunks(ppo.minibatch.max(1)) {
                let rows: Vec<(usize, usize)> = mb
                    .iter()
                    .flat_map(|&t| (0..w.trajs[t].steps.len()).map(move |s| (t, s)))
                    .filter(|&(t, s)| !w.trajs[t].steps[s].action.is_empty())
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let scored =
                    row_inputs(&w.trajs, &rows, View::Policy).score(&self.policy.model, true)?;
                let width = scored.logprobs.dim(1)?;
                let tok = |f: &dyn Fn(usize, usize) -> Vec<f64>| {
                    padded_tensor(&rows, width, f, &self.device)
                };
                let old = tok(&|t, s| {
                    w.trajs[t].steps[s]
                        .token_logp_old
                        .iter()
                        .map(|&x| x as f64)
                        .collect()
                })?;
                let adv = tok(&|t, s| advantages[t][s].clone())?;
                let reference = match &w.ref_logp {
                    Some(r) if cfg.kl.is_some() => {
                        Some(tok(&|t, s| r[t][s].iter().map(|&x| x as f64).collect())?)
                    }
                    _ => None,
                };
                let out = algo::ppo::actor_loss(
                    &algo::ppo::ActorLossInputs {
                        log_prob: &scored.logprobs,
                        old_log_prob: &old,
                        advantages: &adv,
                        mask: &scored.mask,
                        entropy: Some(&scored.entropy),
                        ref_log_prob: reference.as_ref(),
                    },
                    &cfg,
                )?;
                let loss = scalar(&out.loss)?;
                check_finite("policy loss", [loss], it)?;
                let norm = self.policy.opt.step(&out.loss, ppo.grad_clip)?;
                check_finite("policy gradient norm", [norm], it)?;
                losses.push(loss);
                clips.push(out.stats.clipfrac as f64);
                ents.push(out.entropy as f64);
                kls.push(out.stats.ppo_kl as f64);
                norms.push(norm);
            }
        }
        let m = &mut w.metrics;
        m.policy_loss = mean(&losses);
        m.clip_fraction = mean(&clips);
        m.entropy = mean(&ents);
        m.approx_kl = mean(&kls);
        m.grad_norm = mean(&norms);
        Ok(())
    }

    /// Clipped value regression on the GAE returns, over minibatches of trajectories.
    fn critic_update(&mut self, w: &mut Work) -> Result<(), RuntimeError> {
        let spec = self.graph.algorithm.critic.clone().ok_or_else(|| {
            RuntimeError::Config("the graph updates a critic but declares none".into())
        })?;
        let (Some(values), Some(returns)) = (&w.values, &w.returns) else {
            return Err(RuntimeError::Config(
                "the critic update needs values and returns (value and advantage nodes before it)"
                    .into(),
            ));
        };
        let ppo = self.graph.algorithm.ppo.clone();
        let it = w.metrics.iteration;
        let critic = self.critic.as_mut().expect("spec checked");
        let mut order: Vec<usize> = (0..w.trajs.len()).collect();
        let mut losses = Vec::new();
        for _ in 0..ppo.epochs.max(1) {
            order.shuffle(&mut self.streams.minibatch);
            for mb in order.chunks(ppo.minibatch.max(1)) {
                let rows: Vec<(usize, usize)> = mb
                    .iter()
                    .flat_map(|&t| (0..w.trajs[t].steps.len()).map(move |s| (t, s)))
                    .collect();
                if rows.is_empty() {
                    continue;
                }
                let inputs = row_inputs(&w.trajs, &rows, View::Policy);
                let images = inputs.image_refs();
                let batch = Batch::new(&inputs.prompts).with_images(&images);
                let (scored, v) = critic
                    .model
                    .score_and_values(batch, &inputs.actions, true)?;
                let v =
                    v.ok_or_else(|| RuntimeError::Config("the critic has no value head".into()))?;
                let width = v.dim(1)?;
                let old = padded_tensor(&rows, width, |t, s| values[t][s].clone(), &self.device)?;
                let ret = padded_tensor(&rows, width, |t, s| returns[t][s].clone(), &self.device)?;
                let (loss, _clipfrac) = algo::ppo::value_loss_tensor(
                    &v,
                    &ret,
                    &old,
                    &scored.mask,
                    spec.value_clip as f32,
                    ppo.loss_agg,
                )?;
                let l = scalar(&loss)?;
                check_finite("value loss", [l], it)?;
                let norm = critic.opt.step(&loss, ppo.grad_clip)?;
                check_finite("critic gradient norm", [norm], it)?;
                losses.push(l);
            }
        }
        w.metrics.value_loss = Some(mean(&losses));
        Ok(())
    }

    /// The trainer's environments' spec-derived sampling options for evaluation.
    pub fn eval_options(&self) -> SampleOptions {
        SampleOptions {
            temperature: self.graph.eval.temperature,
            ..self.sampling()
        }
    }

    pub fn uses_advantage_expr(&self) -> bool {
        !matches!(self.graph.advantage, AdvExpr::Gae | AdvExpr::Prime)
    }
}
