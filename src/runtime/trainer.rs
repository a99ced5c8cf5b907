//! One OPRL iteration: the trainer owns the models, optimisers, environments and random
//! streams, and runs the graph's nodes in order. Each node is a stage that takes the products
//! of the earlier ones as explicit inputs and returns its own into the iteration's
//! [`StageOutputs`].

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use rand::RngCore;

use super::advantage::{AdvantageSources, Advantages};
use super::batch::{invalid_rate, Trajectory};
use super::check_finite;
use super::metrics::{mean, rate, IterationMetrics};
use super::rngs::{SavedStreams, Streams};
use super::rollout::{rollout, RetryPolicy, RolloutStats};
use super::scoring::{per_token, score_steps, View};
use super::setup::{make_envs, make_tokenizer, sampling_of, set_threads};
use super::tokens::{TokenLayout, TokenValues};
use super::updates::{
    critic_update, policy_update, prm_update, CriticUpdateInputs, PolicyUpdateInputs,
    PrmUpdateInputs, Trained,
};
use super::RuntimeError;
use crate::algo::AdvantageParams;
use crate::env::{Environment, Split, Task};
use crate::graph::{ExecGraph, Op, PrmReference, RewardSpec};
use crate::model::{Batch, LanguageModel, Optimizer, SampleOptions, Tokenizer};
use crate::reward::verifier::verify;

/// The rollout stage's product.
pub struct Rollout {
    /// B tasks x N trajectories; the outcome stage adds their rewards.
    pub trajs: Vec<Trajectory>,
    /// Where each step's action tokens sit in the per-token products.
    pub layout: TokenLayout,
    /// `log pi_old` of every action token, from one batched forward pass.
    pub old_logp: TokenValues<f32>,
    /// The frozen reference's log-probs (PRIME's PRM reference, the KL loss).
    pub ref_logp: Option<TokenValues<f32>>,
}

/// What one iteration's stages produced; each field is written by one stage.
#[derive(Default)]
pub struct StageOutputs {
    pub rollout: Option<Rollout>,
    /// `beta * (log pi_phi - log pi_ref)` per action token, from the PRM before its update.
    pub process_rewards: Option<TokenValues<f64>>,
    /// Critic values per action token (PPO+GAE).
    pub values: Option<TokenValues<f32>>,
    pub advantages: Option<Advantages>,
}

/// The product of an earlier stage, or an error naming the stage that should have made it.
fn need<'a, T>(product: &'a Option<T>, stage: &str) -> Result<&'a T, RuntimeError> {
    product
        .as_ref()
        .ok_or_else(|| RuntimeError::Config(format!("no `{stage}` node runs before its reader")))
}

/// [`need`] for a stage that adds to an earlier product.
fn need_mut<'a, T>(product: &'a mut Option<T>, stage: &str) -> Result<&'a mut T, RuntimeError> {
    product
        .as_mut()
        .ok_or_else(|| RuntimeError::Config(format!("no `{stage}` node runs before its reader")))
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
impl Trainer {
    /// A fresh trainer: the policy from the recipe (seeded), the PRM, reference and critic as
    /// copies of it where the graph needs them (under LoRA, copies of its adapters over its one
    /// shared frozen base).
    pub fn new(graph: ExecGraph) -> Result<Trainer, RuntimeError> {
        set_threads(graph.train.threads);
        let device = super::setup::device_for(graph.train.device)?;
        let tokenizer = make_tokenizer(&graph)?;
        let seed = graph.train.seed;
        let micro_batch_tokens = graph.train.micro_batch_tokens;
        let policy = super::setup::make_policy(&graph, &tokenizer, &device, seed)?;
        let ppo = graph.algorithm.ppo();
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
                Some(Trained {
                    model,
                    opt,
                    micro_batch_tokens,
                })
            }
            None => None,
        };
        let frozen_prm = graph
            .prm
            .as_ref()
            .is_some_and(|p| p.reference == PrmReference::Frozen);
        let reference = if frozen_prm || ppo.kl.is_some() {
            Some(policy.frozen_copy()?)
        } else {
            None
        };
        let critic = match graph.algorithm.critic() {
            Some(spec) => {
                let mut model = policy.duplicate()?;
                model.add_value_head(seed ^ 0x5eed_c417)?;
                let opt = Optimizer::new(model.vars(), spec.lr, 0.0)?;
                Some(Trained {
                    model,
                    opt,
                    micro_batch_tokens,
                })
            }
            None => None,
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
                micro_batch_tokens,
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
        let mut m = IterationMetrics {
            iteration,
            ..Default::default()
        };
        let mut out = StageOutputs::default();
        let nodes: Vec<Op> = self.graph.nodes.values().map(|n| n.op).collect();
        for op in nodes {
            let t = Instant::now();
            self.run_stage(op, &mut out, &mut m)?;
            let dt = t.elapsed().as_secs_f64();
            match op {
                Op::Rollout => m.time_rollout += dt,
                Op::OutcomeReward => m.time_reward += dt,
                Op::PrmScore | Op::PrmUpdate => m.time_prm += dt,
                Op::ValueEstimate | Op::Advantage => m.time_advantage += dt,
                Op::PolicyUpdate | Op::CriticUpdate => m.time_update += dt,
            }
        }
        self.iteration = iteration;
        m.time_total = started.elapsed().as_secs_f64();
        Ok(m)
    }

    /// Runs the stage of `op` on the products in `out`, adding its own and its metrics.
    fn run_stage(
        &mut self,
        op: Op,
        out: &mut StageOutputs,
        m: &mut IterationMetrics,
    ) -> Result<(), RuntimeError> {
        let it = m.iteration;
        match op {
            Op::Rollout => out.rollout = Some(self.rollout(m)?),
            Op::OutcomeReward => {
                let rollout = need_mut(&mut out.rollout, "rollout")?;
                self.outcome_reward(&mut rollout.trajs, m)?;
            }
            Op::PrmScore => {
                let rollout = need(&out.rollout, "rollout")?;
                out.process_rewards = Some(self.prm_score(rollout, it)?);
            }
            Op::PrmUpdate => {
                let rollout = need(&out.rollout, "rollout")?;
                let (Some(spec), Some(prm)) = (self.graph.prm.as_ref(), self.prm.as_mut()) else {
                    return Err(RuntimeError::Config(
                        "the graph updates a PRM but declares none".into(),
                    ));
                };
                let inputs = PrmUpdateInputs {
                    trajs: &rollout.trajs,
                    process_rewards: need(&out.process_rewards, "prm_score")?,
                    reference: prm_reference(spec.reference, rollout),
                    view: prm_view(&self.graph),
                    iteration: it,
                };
                let stats = prm_update(prm, spec, &inputs)?;
                m.prm_pairs = Some(stats.pairs);
                m.prm_pair_accuracy = stats.pair_accuracy;
                m.prm_updated = Some(stats.updated);
                m.prm_loss = stats.loss;
            }
            Op::ValueEstimate => {
                let rollout = need(&out.rollout, "rollout")?;
                out.values = Some(self.value_estimate(rollout, it)?);
            }
            Op::Advantage => {
                let rollout = need(&out.rollout, "rollout")?;
                let sources = AdvantageSources {
                    trajs: &rollout.trajs,
                    layout: &rollout.layout,
                    process_rewards: out.process_rewards.as_ref(),
                    values: out.values.as_ref(),
                };
                let params = AdvantageParams::from_spec(&self.graph.algorithm);
                let adv = super::advantage::compute(&self.graph.advantage, &params, &sources)?;
                check_finite(
                    "advantage",
                    adv.advantages.values().iter().map(|&v| v as f64),
                    it,
                )?;
                m.adv_episode_std = adv.episode_std;
                m.adv_step_std = adv.step_std;
                out.advantages = Some(adv);
            }
            Op::PolicyUpdate => {
                let rollout = need(&out.rollout, "rollout")?;
                let inputs = PolicyUpdateInputs {
                    trajs: &rollout.trajs,
                    old_logp: &rollout.old_logp,
                    ref_logp: rollout.ref_logp.as_ref(),
                    advantages: &need(&out.advantages, "advantage")?.advantages,
                    iteration: it,
                };
                let ppo = self.graph.algorithm.ppo();
                let stats =
                    policy_update(&mut self.policy, ppo, &inputs, &mut self.streams.minibatch)?;
                m.policy_loss = stats.loss;
                m.clip_fraction = stats.clip_fraction;
                m.entropy = stats.entropy;
                m.approx_kl = stats.approx_kl;
                m.grad_norm = stats.grad_norm;
            }
            Op::CriticUpdate => {
                let rollout = need(&out.rollout, "rollout")?;
                let (Some(spec), Some(critic)) =
                    (self.graph.algorithm.critic(), self.critic.as_mut())
                else {
                    return Err(RuntimeError::Config(
                        "the graph updates a critic but declares none".into(),
                    ));
                };
                let returns = need(&out.advantages, "advantage")?.returns.as_ref();
                let inputs = CriticUpdateInputs {
                    trajs: &rollout.trajs,
                    values: need(&out.values, "value_estimate")?,
                    returns: returns.ok_or_else(|| {
                        RuntimeError::Config("the critic update needs GAE returns".into())
                    })?,
                    iteration: it,
                };
                let ppo = self.graph.algorithm.ppo();
                let loss = critic_update(critic, spec, ppo, &inputs, &mut self.streams.minibatch)?;
                m.value_loss = Some(loss);
            }
        }
        Ok(())
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
    fn rollout(&mut self, m: &mut IterationMetrics) -> Result<Rollout, RuntimeError> {
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
        let mut stats = RolloutStats::default();
        let trajs = rollout(
            &mut self.envs,
            &tasks,
            &group_of,
            &self.policy.model,
            &self.tokenizer,
            &opts,
            max_turns,
            self.retry.clone(),
            &mut self.streams.sampling,
            &mut stats,
        )?;
        let rollout_time = t.elapsed().as_secs_f64();
        let layout = TokenLayout::of(&trajs);
        let old_logp = score_steps(&self.policy.model, &trajs, &layout, View::Policy)?;
        check_finite(
            "log pi_old",
            (0..trajs.len()).flat_map(|t| {
                let old = &old_logp;
                (0..trajs[t].steps.len())
                    .map(move |s| old.step(t, s).iter().map(|&x| x as f64).sum::<f64>())
            }),
            m.iteration,
        )?;
        let ref_logp = match &self.reference {
            Some(reference) => Some(score_steps(reference, &trajs, &layout, View::Policy)?),
            None => None,
        };
        m.mean_turns = mean(
            &trajs
                .iter()
                .map(|t| t.steps.len() as f64)
                .collect::<Vec<_>>(),
        );
        m.invalid_rate = invalid_rate(&trajs);
        m.tokens_per_s = rate(stats.tokens, rollout_time);
        m.env_steps_per_s = rate(stats.env_steps, rollout_time);
        m.env_retries = stats.env_retries;
        Ok(Rollout {
            trajs,
            layout,
            old_logp,
            ref_logp,
        })
    }

    /// Outcome reward and success of every trajectory, written into it.
    fn outcome_reward(
        &mut self,
        trajs: &mut [Trajectory],
        m: &mut IterationMetrics,
    ) -> Result<(), RuntimeError> {
        match (&self.graph.reward, &self.judge) {
            (RewardSpec::Verifier { signal }, _) => {
                for t in trajs.iter_mut() {
                    let r = verify(*signal, &t.outcome);
                    t.reward = r.reward;
                    t.success = r.success;
                }
            }
            (RewardSpec::Judge(_), Some(judge)) => {
                let means = super::judging::judge_trajectories(judge, trajs)?;
                m.judge_goal = Some(means.goal);
                m.judge_overall = Some(means.overall);
            }
            (RewardSpec::Judge(_), None) => {
                return Err(RuntimeError::Config(
                    "the graph's outcome is judged but the trainer has no judge".into(),
                ))
            }
        }
        check_finite(
            "outcome reward",
            trajs.iter().map(|t| t.reward),
            m.iteration,
        )?;
        let n = trajs.len().max(1) as f64;
        m.success_rate = trajs.iter().filter(|t| t.success).count() as f64 / n;
        m.mean_outcome = trajs.iter().map(|t| t.reward).sum::<f64>() / n;
        Ok(())
    }

    /// `beta * (log pi_phi - log pi_ref)` for every action token, from the pre-update PRM.
    fn prm_score(&self, rollout: &Rollout, it: usize) -> Result<TokenValues<f64>, RuntimeError> {
        let (Some(spec), Some(prm)) = (&self.graph.prm, &self.prm) else {
            return Err(RuntimeError::Config(
                "the graph scores with a PRM but declares none".into(),
            ));
        };
        let view = prm_view(&self.graph);
        let logp = score_steps(&prm.model, &rollout.trajs, &rollout.layout, view)?;
        let reference = prm_reference(spec.reference, rollout);
        let beta = spec.beta;
        let rewards = logp.zip_with(reference, |p, r| beta * (p as f64 - r as f64));
        check_finite("PRM step reward", rewards.values().iter().copied(), it)?;
        Ok(rewards)
    }

    /// The critic's value of every action token.
    fn value_estimate(
        &self,
        rollout: &Rollout,
        it: usize,
    ) -> Result<TokenValues<f32>, RuntimeError> {
        let critic = self.critic.as_ref().ok_or_else(|| {
            RuntimeError::Config("the graph estimates values but declares no critic".into())
        })?;
        let values = per_token(&rollout.trajs, &rollout.layout, View::Policy, |inputs| {
            let images = inputs.image_refs();
            let batch = Batch::new(&inputs.prompts).with_images(&images);
            critic
                .model
                .score_and_values(batch, &inputs.actions, false)?
                .1
                .ok_or_else(|| RuntimeError::Config("the critic has no value head".into()))
        })?;
        check_finite(
            "critic value",
            values.values().iter().map(|&v| v as f64),
            it,
        )?;
        Ok(values)
    }

    /// The trainer's environments' spec-derived sampling options for evaluation.
    pub fn eval_options(&self) -> SampleOptions {
        SampleOptions {
            temperature: self.graph.eval.temperature,
            ..self.sampling()
        }
    }
}

/// What the PRM reads: the text rendering when the recipe says so (`prm.text_view`).
fn prm_view(graph: &ExecGraph) -> View {
    match &graph.prm {
        Some(p) if p.text_view => View::Text,
        _ => View::Policy,
    }
}

/// The per-token log-probs the PRM's implicit reward is measured against.
fn prm_reference(reference: PrmReference, rollout: &Rollout) -> &TokenValues<f32> {
    match (reference, &rollout.ref_logp) {
        (PrmReference::Frozen, Some(r)) => r,
        _ => &rollout.old_logp,
    }
}
