//! [`evaluate_advantage`]: runs a recipe's advantage expression ([`AdvExpr`]) over one
//! iteration's batch of trajectories and returns one advantage per action token. This is the
//! function the runtime calls; it composes the estimators of the sibling modules.
//!
//! Every term becomes a value per action token: an episode term is normalised within each task
//! group and broadcast to every token of the trajectory, a step term to every token of the step,
//! a token term is per token. `Add` sums terms token by token, `Scale` multiplies.

use super::gae::gae_advantage_return;
use super::gigpo::step_groups;
use super::prm::prime_advantage;
use super::stats::{normalise_by_group, std_unbiased, whiten_affine, Singleton};
use super::step::{discounted_returns, maxabs_scale};
use super::{AlgoError, Mat, GROUP_EPS};
use crate::graph::{AdvExpr, Norm, Signal, StepGroup};

/// One step (one action) of a trajectory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepInput {
    /// Number of action tokens; the step's advantages have this many entries.
    pub tokens: usize,
    /// The implicit step reward `r_phi(a_t) = beta * (logp_prm - logp_old)` (0 without a PRM).
    pub prm_reward: f32,
    /// The environment's step reward `r_env,t` (baselines, ground-truth-PR ablation, GiGPO).
    pub env_reward: f32,
    /// The anchor-state key: the step's current observation (GiGPO groups identical keys within
    /// a task group). Empty when unused.
    pub anchor: String,
    /// Per-token implicit rewards, `tokens` long; empty when unused. For OPRL's token-level
    /// ablation `beta * (log pi_phi - log pi_old)` per token; for PRIME
    /// `beta * (log pi_phi - log pi_ref)` against the frozen reference.
    pub prm_token_rewards: Vec<f32>,
    /// Critic values per action token (PPO+GAE), `tokens` long; empty when unused.
    pub values: Vec<f32>,
}

/// One trajectory of the batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrajectoryInput {
    /// Task group id: trajectories of the same task share it (N per group).
    pub group: usize,
    /// Outcome reward `r_o(tau)`.
    pub outcome: f32,
    /// Success flag (PRIME's binary outcome; DPO pairs).
    pub success: bool,
    /// Steps in order.
    pub steps: Vec<StepInput>,
}

/// One iteration's batch, in any order (groups are found by id).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdvantageInputs {
    pub trajectories: Vec<TrajectoryInput>,
}

/// Parameters that live outside the expression (in the algorithm spec).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvantageParams {
    /// Added to every std (1e-6).
    pub eps: f32,
    /// `(gamma, lambda)` of the critic, for `AdvExpr::Gae`.
    pub gae: Option<(f64, f64)>,
    /// `(process_coef, outcome_coef)`, for `AdvExpr::Prime`.
    pub prime: Option<(f32, f32)>,
}

impl Default for AdvantageParams {
    fn default() -> Self {
        AdvantageParams {
            eps: GROUP_EPS,
            gae: None,
            prime: None,
        }
    }
}

impl AdvantageParams {
    /// From the algorithm spec: the critic's gamma/lambda and PRIME's coefficients when present.
    pub fn from_spec(spec: &crate::graph::AlgorithmSpec) -> AdvantageParams {
        AdvantageParams {
            eps: GROUP_EPS,
            gae: spec.critic().map(|c| (c.gamma, c.lambda)),
            prime: spec
                .prime()
                .map(|p| (p.process_coef as f32, p.outcome_coef as f32)),
        }
    }
}

/// The granularity of a term, for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermLevel {
    Episode,
    Step,
    Token,
    Gae,
    Prime,
}

/// Mean and unbiased std of one term's normalised values over its entries (trajectories for
/// an episode term, steps for a step term, tokens otherwise), before any `Scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TermStats {
    pub level: TermLevel,
    pub entries: usize,
    pub mean: f32,
    pub std: f32,
}

/// The advantages of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvantageOutput {
    /// `advantages[trajectory][step][token]`, shaped as the inputs.
    pub advantages: Vec<Vec<Vec<f32>>>,
    /// PPO+GAE only: the critic's targets (raw GAE advantages + values), same shape.
    pub returns: Option<Vec<Vec<Vec<f32>>>>,
    /// One entry per leaf term, in expression order.
    pub terms: Vec<TermStats>,
}

impl AdvantageOutput {
    /// The std of the first term of `level` (the `std of A_E` / `std of A_S` metrics).
    pub fn std_of(&self, level: TermLevel) -> Option<f32> {
        self.terms.iter().find(|t| t.level == level).map(|t| t.std)
    }
}

/// Where every step and token of the batch sits; all fields are flat in traj → step → token order.
struct Layout {
    /// For each step: its trajectory.
    step_traj: Vec<usize>,
    /// For each token: its step.
    token_step: Vec<usize>,
    /// Tokens of each step.
    step_tokens: Vec<usize>,
}

impl Layout {
    fn new(batch: &AdvantageInputs) -> Layout {
        let mut l = Layout {
            step_traj: Vec::new(),
            token_step: Vec::new(),
            step_tokens: Vec::new(),
        };
        for (ti, t) in batch.trajectories.iter().enumerate() {
            for s in &t.steps {
                let si = l.step_traj.len();
                l.step_traj.push(ti);
                l.step_tokens.push(s.tokens);
                l.token_step.extend(std::iter::repeat_n(si, s.tokens));
            }
        }
        l
    }

    fn tokens(&self) -> usize {
        self.token_step.len()
    }

    fn steps<'a>(&self, batch: &'a AdvantageInputs) -> impl Iterator<Item = &'a StepInput> {
        batch.trajectories.iter().flat_map(|t| t.steps.iter())
    }
}

/// Evaluates `expr` over `batch`: one advantage per action token, plus GAE returns and per-term
/// statistics. Semantics per term (METHOD.md, DESIGN.md):
///
/// - `Episode { signal, norm }`: one value per trajectory (`outcome` = `r_o`; `env.reward` and
///   `prm` = the sum over steps; `discounted(s, g)` = the discounted return from the first step),
///   normalised within the task group (`zscore` = GRPO, `rloo`, `mean`, `mean_whiten` =
///   REINFORCE++ baseline, `none`; a group of one: mean 0, std 1 as veRL);
/// - `Step { signal, norm, group, maxabs, similarity }`: one value per step (`outcome` broadcast to the steps,
///   `prm` = `r_phi`, `env.reward` = `r_env,t`, `discounted(s, g)` = return-to-go within the
///   trajectory, sums of weighted signals); `maxabs` divides by the batch's max |value|; `pool`
///   normalises against all steps of the task group (a pool of one as above), `anchor_state`
///   within the steps of the task group that share the anchor key, or with `similarity` whose
///   anchors are difflib-similar (a group of one gives 0, as verl-agent's GiGPO);
/// - `Token { signal, norm }`: one value per action token (`prm` = the per-token implicit
///   rewards; step and episode signals broadcast), normalised over all action tokens of the group;
/// - `mean_whiten` terms are centred per group, broadcast, then whitened over every action token
///   of the batch (veRL's `masked_whiten`);
/// - `Gae`: per step row, the outcome at the row's last token, the critic's values, gamma and
///   lambda from `params`; whitened over the batch; `returns` are the critic targets;
/// - `Prime`: per trajectory, the concatenated per-token implicit rewards and the success flag,
///   with `params.prime`'s coefficients.
///
/// GiGPO: `episode(outcome, norm = mean)` normalises over trajectories (the GiGPO paper);
/// verl-agent's code normalises its episode term over the step rows of the task group, which is
/// `step(outcome, norm = mean)` here. With that term,
/// `step(outcome) + step(discounted(env.reward, 0.95), group = anchor_state)` reproduces
/// verl-agent's `compute_gigpo_outcome_advantage` (tests/conformance.rs checks it).
pub fn evaluate_advantage(
    expr: &AdvExpr,
    batch: &AdvantageInputs,
    params: &AdvantageParams,
) -> Result<AdvantageOutput, AlgoError> {
    let layout = Layout::new(batch);
    let mut ctx = Ctx {
        batch,
        layout: &layout,
        params,
        terms: Vec::new(),
        returns: None,
    };
    let flat = ctx.eval(expr)?;
    let returns = ctx.returns.take().map(|r| reshape(batch, &r));
    Ok(AdvantageOutput {
        advantages: reshape(batch, &flat),
        returns,
        terms: ctx.terms,
    })
}

fn reshape(batch: &AdvantageInputs, flat: &[f64]) -> Vec<Vec<Vec<f32>>> {
    let mut it = flat.iter();
    batch
        .trajectories
        .iter()
        .map(|t| {
            t.steps
                .iter()
                .map(|s| it.by_ref().take(s.tokens).map(|&v| v as f32).collect())
                .collect()
        })
        .collect()
}

struct Ctx<'a> {
    batch: &'a AdvantageInputs,
    layout: &'a Layout,
    params: &'a AdvantageParams,
    terms: Vec<TermStats>,
    returns: Option<Vec<f64>>,
}

impl Ctx<'_> {
    fn eps(&self) -> f64 {
        self.params.eps as f64
    }

    fn eval(&mut self, expr: &AdvExpr) -> Result<Vec<f64>, AlgoError> {
        match expr {
            AdvExpr::Episode { signal, norm } => self.episode(signal, *norm),
            AdvExpr::Step {
                signal,
                norm,
                group,
                maxabs,
                similarity,
            } => self.step(signal, *norm, *group, *maxabs, *similarity),
            AdvExpr::Token { signal, norm } => self.token(signal, *norm),
            AdvExpr::Scale { factor, expr } => {
                Ok(self.eval(expr)?.into_iter().map(|v| v * factor).collect())
            }
            AdvExpr::Add { terms } => {
                let mut acc = vec![0.0; self.layout.tokens()];
                for t in terms {
                    for (a, v) in acc.iter_mut().zip(self.eval(t)?) {
                        *a += v;
                    }
                }
                Ok(acc)
            }
            AdvExpr::Gae => self.gae(),
            AdvExpr::Prime => self.prime(),
        }
    }

    /// Records a term's statistics, applies `mean_whiten`'s batch whitening, and broadcasts
    /// entry values to tokens with `entry_of_token`.
    fn finish(
        &mut self,
        level: TermLevel,
        mut entries: Vec<f64>,
        norm: Norm,
        entry_of_token: impl Fn(usize) -> usize,
    ) -> Result<Vec<f64>, AlgoError> {
        let mut tokens: Vec<f64> = (0..self.layout.tokens())
            .map(|k| entries[entry_of_token(k)])
            .collect();
        if norm == Norm::MeanWhiten {
            let as_f32: Vec<f32> = tokens.iter().map(|&v| v as f32).collect();
            let (m, inv) = whiten_affine(&as_f32, &vec![1.0; as_f32.len()])?;
            for v in tokens.iter_mut().chain(entries.iter_mut()) {
                *v = (*v - m) * inv;
            }
        }
        self.terms.push(stats(level, &entries));
        Ok(tokens)
    }

    fn episode(&mut self, signal: &Signal, norm: Norm) -> Result<Vec<f64>, AlgoError> {
        let trajs = &self.batch.trajectories;
        let values = trajs
            .iter()
            .map(|t| episode_value(signal, t))
            .collect::<Result<Vec<_>, _>>()?;
        let groups: Vec<usize> = trajs.iter().map(|t| t.group).collect();
        let normed =
            normalise_by_group(&values, &groups, norm, self.eps(), Singleton::PassThrough)?;
        let (token_step, step_traj) = (&self.layout.token_step, &self.layout.step_traj);
        let map: Vec<usize> = token_step.iter().map(|&s| step_traj[s]).collect();
        self.finish(TermLevel::Episode, normed, norm, |k| map[k])
    }

    fn step(
        &mut self,
        signal: &Signal,
        norm: Norm,
        group: StepGroup,
        maxabs: bool,
        similarity: Option<f64>,
    ) -> Result<Vec<f64>, AlgoError> {
        let mut values = Vec::with_capacity(self.layout.step_traj.len());
        for t in &self.batch.trajectories {
            values.extend(step_values(signal, t)?);
        }
        if maxabs {
            values = maxabs_scale(&values);
        }
        let trajs = &self.batch.trajectories;
        // Each step's task group: `pool` normalises within it, `anchor_state` splits it further.
        let task_groups: Vec<usize> = self
            .layout
            .step_traj
            .iter()
            .map(|&t| trajs[t].group)
            .collect();
        let normed = match group {
            StepGroup::Pool => normalise_by_group(
                &values,
                &task_groups,
                norm,
                self.eps(),
                Singleton::PassThrough,
            )?,
            StepGroup::AnchorState => {
                let anchors: Vec<&str> = self
                    .layout
                    .steps(self.batch)
                    .map(|s| s.anchor.as_str())
                    .collect();
                let groups = step_groups(&task_groups, &anchors, similarity)?;
                normalise_by_group(&values, &groups, norm, self.eps(), Singleton::Zero)?
            }
        };
        let token_step = &self.layout.token_step;
        let map = token_step.clone();
        self.finish(TermLevel::Step, normed, norm, |k| map[k])
    }

    fn token(&mut self, signal: &Signal, norm: Norm) -> Result<Vec<f64>, AlgoError> {
        let mut values = Vec::with_capacity(self.layout.tokens());
        for t in &self.batch.trajectories {
            for (si, s) in t.steps.iter().enumerate() {
                values.extend(token_values(signal, t, si, s)?);
            }
        }
        let trajs = &self.batch.trajectories;
        let groups: Vec<usize> = self
            .layout
            .token_step
            .iter()
            .map(|&s| trajs[self.layout.step_traj[s]].group)
            .collect();
        let normed =
            normalise_by_group(&values, &groups, norm, self.eps(), Singleton::PassThrough)?;
        self.finish(TermLevel::Token, normed, norm, |k| k)
    }

    /// One padded `[rows, width]` matrix from per-row token vectors, and its mask.
    fn padded(rows: &[Vec<f32>]) -> Result<(Mat, Mat), AlgoError> {
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let (mut m, mut mask) = (
            Mat::filled(rows.len(), width, 0.0),
            Mat::filled(rows.len(), width, 0.0),
        );
        for (i, r) in rows.iter().enumerate() {
            m.row_mut(i)[..r.len()].copy_from_slice(r);
            mask.row_mut(i)[..r.len()].fill(1.0);
        }
        Ok((m, mask))
    }

    /// Reads a padded matrix back into the flat token order, row by row.
    fn unpad(m: &Mat, lens: &[usize]) -> Vec<f64> {
        let mut out = Vec::new();
        for (i, &n) in lens.iter().enumerate() {
            out.extend(m.row(i)[..n].iter().map(|&v| v as f64));
        }
        out
    }

    fn gae(&mut self) -> Result<Vec<f64>, AlgoError> {
        let (gamma, lam) = self.params.gae.ok_or_else(|| {
            AlgoError::Unsupported("`gae` needs the critic's gamma and lambda".into())
        })?;
        let trajs = &self.batch.trajectories;
        let mut rewards = Vec::new();
        let mut values = Vec::new();
        for (s, &t) in self.layout.steps(self.batch).zip(&self.layout.step_traj) {
            if s.values.len() != s.tokens {
                return Err(AlgoError::LengthMismatch {
                    what: "critic values of a step",
                    got: s.values.len(),
                    expected: s.tokens,
                });
            }
            let mut r = vec![0.0; s.tokens];
            if let Some(last) = r.last_mut() {
                *last = trajs[t].outcome;
            }
            rewards.push(r);
            values.push(s.values.clone());
        }
        let (r, mask) = Self::padded(&rewards)?;
        let (v, _) = Self::padded(&values)?;
        let (adv, ret) = gae_advantage_return(&r, &v, &mask, gamma, lam)?;
        let lens = &self.layout.step_tokens;
        let flat = Self::unpad(&adv, lens);
        self.returns = Some(Self::unpad(&ret, lens));
        self.terms.push(stats(TermLevel::Gae, &flat));
        Ok(flat)
    }

    fn prime(&mut self) -> Result<Vec<f64>, AlgoError> {
        let (process_coef, outcome_coef) = self.params.prime.ok_or_else(|| {
            AlgoError::Unsupported("`prime` needs the process and outcome coefficients".into())
        })?;
        let trajs = &self.batch.trajectories;
        let mut rows = Vec::with_capacity(trajs.len());
        for t in trajs {
            let mut r = Vec::new();
            for s in &t.steps {
                if s.prm_token_rewards.len() != s.tokens {
                    return Err(AlgoError::LengthMismatch {
                        what: "per-token PRM rewards of a step",
                        got: s.prm_token_rewards.len(),
                        expected: s.tokens,
                    });
                }
                r.extend_from_slice(&s.prm_token_rewards);
            }
            rows.push(r);
        }
        let (process, mask) = Self::padded(&rows)?;
        let outcomes: Vec<f32> = trajs.iter().map(|t| t.success as u8 as f32).collect();
        let groups: Vec<usize> = trajs.iter().map(|t| t.group).collect();
        let (adv, _) = prime_advantage(
            &process,
            &mask,
            &outcomes,
            &groups,
            process_coef,
            outcome_coef,
        )?;
        let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
        let flat = Self::unpad(&adv, &lens);
        self.terms.push(stats(TermLevel::Prime, &flat));
        Ok(flat)
    }
}

fn stats(level: TermLevel, entries: &[f64]) -> TermStats {
    TermStats {
        level,
        entries: entries.len(),
        mean: super::stats::mean(entries) as f32,
        std: std_unbiased(entries) as f32,
    }
}

/// A trajectory-level value of a signal.
fn episode_value(signal: &Signal, t: &TrajectoryInput) -> Result<f64, AlgoError> {
    Ok(match signal {
        Signal::Outcome => t.outcome as f64,
        Signal::Prm => t.steps.iter().map(|s| s.prm_reward as f64).sum(),
        Signal::EnvReward => t.steps.iter().map(|s| s.env_reward as f64).sum(),
        Signal::Discounted { .. } => step_values(signal, t)?.first().copied().unwrap_or(0.0),
        Signal::Sum { terms } => {
            let mut acc = 0.0;
            for (w, s) in terms {
                acc += w * episode_value(s, t)?;
            }
            acc
        }
    })
}

/// One value per step of a trajectory.
fn step_values(signal: &Signal, t: &TrajectoryInput) -> Result<Vec<f64>, AlgoError> {
    let n = t.steps.len();
    Ok(match signal {
        Signal::Outcome => vec![t.outcome as f64; n],
        Signal::Prm => t.steps.iter().map(|s| s.prm_reward as f64).collect(),
        Signal::EnvReward => t.steps.iter().map(|s| s.env_reward as f64).collect(),
        Signal::Discounted { signal, gamma } => {
            if !(0.0..=1.0).contains(gamma) {
                return Err(AlgoError::Invalid(format!(
                    "discount {gamma} is outside [0, 1]"
                )));
            }
            discounted_returns(&step_values(signal, t)?, *gamma)
        }
        Signal::Sum { terms } => {
            let mut acc = vec![0.0; n];
            for (w, s) in terms {
                for (a, v) in acc.iter_mut().zip(step_values(s, t)?) {
                    *a += w * v;
                }
            }
            acc
        }
    })
}

/// One value per action token of step `si`.
fn token_values(
    signal: &Signal,
    t: &TrajectoryInput,
    si: usize,
    s: &StepInput,
) -> Result<Vec<f64>, AlgoError> {
    Ok(match signal {
        Signal::Prm => {
            if s.prm_token_rewards.len() != s.tokens {
                return Err(AlgoError::LengthMismatch {
                    what: "per-token PRM rewards of a step",
                    got: s.prm_token_rewards.len(),
                    expected: s.tokens,
                });
            }
            s.prm_token_rewards.iter().map(|&r| r as f64).collect()
        }
        Signal::Outcome | Signal::EnvReward => vec![step_values(signal, t)?[si]; s.tokens],
        Signal::Discounted { .. } => {
            return Err(AlgoError::Unsupported(
                "a discounted return has no token-level form".into(),
            ))
        }
        Signal::Sum { terms } => {
            let mut acc = vec![0.0; s.tokens];
            for (w, sig) in terms {
                for (a, v) in acc.iter_mut().zip(token_values(sig, t, si, s)?) {
                    *a += w * v;
                }
            }
            acc
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(tokens: usize, prm: f32, env: f32, anchor: &str) -> StepInput {
        StepInput {
            tokens,
            prm_reward: prm,
            env_reward: env,
            anchor: anchor.to_string(),
            prm_token_rewards: vec![prm / tokens as f32; tokens],
            values: vec![0.0; tokens],
        }
    }

    fn traj(group: usize, outcome: f32, steps: Vec<StepInput>) -> TrajectoryInput {
        TrajectoryInput {
            group,
            outcome,
            success: outcome > 0.5,
            steps,
        }
    }

    /// Two groups: group 0 has trajectories with outcomes 1 and 0, group 1 a single one.
    fn batch() -> AdvantageInputs {
        AdvantageInputs {
            trajectories: vec![
                traj(
                    0,
                    1.0,
                    vec![step(2, 0.2, -0.1, "s0"), step(1, 0.4, 1.0, "s1")],
                ),
                traj(0, 0.0, vec![step(1, -0.2, -0.1, "s0")]),
                traj(1, 3.0, vec![step(2, 0.0, 0.0, "s0")]),
            ],
        }
    }

    fn episode(norm: Norm) -> AdvExpr {
        AdvExpr::Episode {
            signal: Signal::Outcome,
            norm,
        }
    }

    fn step_term(signal: Signal, norm: Norm, group: StepGroup) -> AdvExpr {
        AdvExpr::Step {
            signal,
            norm,
            group,
            maxabs: false,
            similarity: None,
        }
    }

    fn run(expr: &AdvExpr) -> AdvantageOutput {
        evaluate_advantage(expr, &batch(), &AdvantageParams::default()).unwrap()
    }

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-5 * (1.0 + b.abs())
    }

    #[test]
    fn rloo_episode_broadcasts_to_every_token() {
        let out = run(&episode(Norm::Rloo));
        assert_eq!(out.advantages[0], vec![vec![1.0, 1.0], vec![1.0]]);
        assert_eq!(out.advantages[1], vec![vec![-1.0]]);
        // a group of one keeps its score
        assert_eq!(out.advantages[2], vec![vec![3.0, 3.0]]);
        assert_eq!(out.terms[0].level, TermLevel::Episode);
        assert_eq!(out.terms[0].entries, 3);
    }

    #[test]
    fn oprl_default_is_episode_zscore_plus_pooled_step_zscore() {
        let expr = AdvExpr::Add {
            terms: vec![
                episode(Norm::Zscore),
                step_term(Signal::Prm, Norm::Zscore, StepGroup::Pool),
            ],
        };
        let out = run(&expr);
        // A_E group 0: outcomes 1, 0 -> +-1/(sqrt(0.5) + 1e-6)
        let ae = 0.5 / (0.5f64.sqrt() + 1e-6);
        // A_S group 0 pools 0.2, 0.4, -0.2: mean 2/15, unbiased std sqrt(28/300)
        let (m, sd) = (0.4 / 3.0, (0.28f64 / 3.0).sqrt() + 1e-6);
        let as0 = (0.2 - m) / sd;
        let as1 = (0.4 - m) / sd;
        let as2 = (-0.2 - m) / sd;
        assert!(close(out.advantages[0][0][0], ae + as0));
        assert!(close(out.advantages[0][0][1], ae + as0));
        assert!(close(out.advantages[0][1][0], ae + as1));
        assert!(close(out.advantages[1][0][0], -ae + as2));
        // group 1: single trajectory, single step: 3/(1+eps) + 0/(1+eps)
        assert!(close(out.advantages[2][0][0], 3.0 / (1.0 + 1e-6)));
        assert!(out.std_of(TermLevel::Episode).is_some());
        assert_eq!(out.terms[1].entries, 4);
    }

    #[test]
    fn scale_multiplies_and_maxabs_prescales() {
        let expr = AdvExpr::Scale {
            factor: 2.0,
            expr: Box::new(AdvExpr::Step {
                signal: Signal::Prm,
                norm: Norm::None,
                group: StepGroup::Pool,
                maxabs: true,
                similarity: None,
            }),
        };
        let out = run(&expr);
        // max |r_phi| = 0.4: 0.2 -> 0.5 -> x2 = 1
        assert!(close(out.advantages[0][0][0], 1.0));
        assert!(close(out.advantages[0][1][0], 2.0));
        assert!(close(out.advantages[1][0][0], -1.0));
    }

    #[test]
    fn merged_rewards_one_rloo_over_step_rows() {
        let expr = step_term(
            Signal::Sum {
                terms: vec![(1.0, Signal::Outcome), (1.0, Signal::Prm)],
            },
            Norm::Rloo,
            StepGroup::Pool,
        );
        let out = run(&expr);
        // group 0 rows: 1.2, 1.4, -0.2: row - mean of the other two
        assert!(close(out.advantages[0][0][0], 1.2 - 0.6));
        assert!(close(out.advantages[0][1][0], 1.4 - 0.5));
        assert!(close(out.advantages[1][0][0], -0.2 - 1.3));
    }

    #[test]
    fn token_level_pools_tokens_of_the_group() {
        let expr = AdvExpr::Token {
            signal: Signal::Prm,
            norm: Norm::Mean,
        };
        let out = run(&expr);
        // group 0 tokens: 0.1, 0.1, 0.4, -0.2 -> mean 0.1
        assert!(close(out.advantages[0][0][0], 0.0));
        assert!(close(out.advantages[0][1][0], 0.3));
        assert!(close(out.advantages[1][0][0], -0.3));
        assert_eq!(out.terms[0].entries, 6);
    }

    #[test]
    fn ground_truth_step_rewards_and_gigpo_anchor_groups() {
        let gt = run(&step_term(Signal::EnvReward, Norm::Mean, StepGroup::Pool));
        // group 0 env rewards -0.1, 1.0, -0.1: mean 0.8/3
        assert!(close(gt.advantages[0][1][0], 1.0 - 0.8 / 3.0));
        let gigpo = run(&step_term(
            Signal::Discounted {
                signal: Box::new(Signal::EnvReward),
                gamma: 0.5,
            },
            Norm::Mean,
            StepGroup::AnchorState,
        ));
        // group 0, anchor s0: returns -0.1 + 0.5 = 0.4 and -0.1 -> mean 0.15 -> 0.25, -0.25;
        // anchor s1 alone -> 0; group 1 alone -> 0.
        assert!(close(gigpo.advantages[0][0][0], 0.25));
        assert!(close(gigpo.advantages[1][0][0], -0.25));
        assert_eq!(gigpo.advantages[0][1], vec![0.0]);
        assert_eq!(gigpo.advantages[2][0], vec![0.0, 0.0]);
    }

    #[test]
    fn similar_anchors_share_a_step_group() {
        // one task group; the two anchors' difflib ratio is 18/20 = 0.9
        let b = AdvantageInputs {
            trajectories: vec![
                traj(0, 0.0, vec![step(1, 0.0, 1.0, "abcdefghij")]),
                traj(0, 0.0, vec![step(1, 0.0, 3.0, "abcdefghiX")]),
            ],
        };
        let term = |similarity| AdvExpr::Step {
            signal: Signal::EnvReward,
            norm: Norm::Mean,
            group: StepGroup::AnchorState,
            maxabs: false,
            similarity,
        };
        let run = |similarity| {
            evaluate_advantage(&term(similarity), &b, &AdvantageParams::default())
                .unwrap()
                .advantages
        };
        // identical anchors only, or a stricter threshold: two singletons, advantage 0
        assert_eq!(run(None), vec![vec![vec![0.0]], vec![vec![0.0]]]);
        assert_eq!(run(Some(0.95)), vec![vec![vec![0.0]], vec![vec![0.0]]]);
        assert_eq!(run(Some(0.9)), vec![vec![vec![-1.0]], vec![vec![1.0]]]);
    }

    #[test]
    fn mean_whiten_whitens_over_tokens() {
        let out = run(&episode(Norm::MeanWhiten));
        // centred: 0.5 (3 tokens), -0.5 (1 token), 3 (group of one, 2 tokens)
        let tokens = [0.5, 0.5, 0.5, -0.5, 3.0, 3.0];
        let m: f64 = tokens.iter().sum::<f64>() / 6.0;
        let var: f64 = tokens.iter().map(|t| (t - m) * (t - m)).sum::<f64>() / 5.0;
        let k = 1.0 / (var + 1e-8).sqrt();
        assert!(close(out.advantages[0][0][0], (0.5 - m) * k));
        assert!(close(out.advantages[2][0][1], (3.0 - m) * k));
    }

    #[test]
    fn gae_and_prime_need_their_params() {
        assert!(matches!(
            evaluate_advantage(&AdvExpr::Gae, &batch(), &AdvantageParams::default()),
            Err(AlgoError::Unsupported(_))
        ));
        assert!(matches!(
            evaluate_advantage(&AdvExpr::Prime, &batch(), &AdvantageParams::default()),
            Err(AlgoError::Unsupported(_))
        ));
        let params = AdvantageParams {
            gae: Some((1.0, 1.0)),
            ..Default::default()
        };
        let out = evaluate_advantage(&AdvExpr::Gae, &batch(), &params).unwrap();
        // values are 0: raw advantage = outcome at every token of every step row
        let ret = out.returns.unwrap();
        assert_eq!(ret[0], vec![vec![1.0, 1.0], vec![1.0]]);
        assert_eq!(ret[1], vec![vec![0.0]]);
        assert_eq!(ret[2], vec![vec![3.0, 3.0]]);
        let prime = AdvantageParams {
            prime: Some((5.0, 5.0)),
            ..Default::default()
        };
        let out = evaluate_advantage(&AdvExpr::Prime, &batch(), &prime).unwrap();
        assert_eq!(out.advantages[0].len(), 2);
        assert_eq!(out.terms[0].level, TermLevel::Prime);
    }

    #[test]
    fn params_from_algorithm_spec() {
        use crate::graph::{AlgorithmSpec, CriticSpec, LossAgg, PpoSpec, PrimeSpec};
        let ppo = PpoSpec {
            lr: 1e-5,
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: 3.0,
            entropy: 0.0,
            kl: None,
            kl_coef: 0.0,
            epochs: 1,
            minibatch: 4,
            grad_clip: 1.0,
            loss_agg: LossAgg::TokenMean,
            weight_decay: 0.0,
        };
        let gae = AlgorithmSpec::PpoGae {
            ppo: ppo.clone(),
            critic: CriticSpec {
                lr: 1e-5,
                value_clip: 0.5,
                gamma: 1.0,
                lambda: 0.95,
            },
        };
        let p = AdvantageParams::from_spec(&gae);
        assert_eq!(p.gae, Some((1.0, 0.95)));
        assert_eq!(p.prime, None);
        let prime = AlgorithmSpec::Prime {
            ppo,
            prime: PrimeSpec {
                process_coef: 5.0,
                outcome_coef: 4.0,
            },
        };
        let p = AdvantageParams::from_spec(&prime);
        assert_eq!(p.gae, None);
        assert_eq!(p.prime, Some((5.0, 4.0)));
        assert_eq!(p.eps, GROUP_EPS);
    }

    #[test]
    fn missing_token_rewards_is_an_error() {
        let mut b = batch();
        b.trajectories[0].steps[0].prm_token_rewards.clear();
        let expr = AdvExpr::Token {
            signal: Signal::Prm,
            norm: Norm::Zscore,
        };
        assert!(matches!(
            evaluate_advantage(&expr, &b, &AdvantageParams::default()),
            Err(AlgoError::LengthMismatch { .. })
        ));
    }

    /// A batch of `groups x size` trajectories with 1..3 steps of 1..3 tokens; outcomes on a
    /// quarter grid so shifted scores stay exact in f32.
    fn random_batch() -> impl proptest::strategy::Strategy<Value = AdvantageInputs> {
        use proptest::prelude::*;
        prop::collection::vec(
            (
                0usize..3,
                -20i32..20,
                prop::collection::vec((1usize..4, -8i32..8), 1..4),
            ),
            2..12,
        )
        .prop_map(|rows| AdvantageInputs {
            trajectories: rows
                .into_iter()
                .map(|(group, o, steps)| TrajectoryInput {
                    group,
                    outcome: o as f32 * 0.25,
                    success: o > 0,
                    steps: steps
                        .into_iter()
                        .map(|(tokens, p)| step(tokens, p as f32 * 0.125, 0.0, "s"))
                        .collect(),
                })
                .collect(),
        })
    }

    proptest::proptest! {
        /// Episode and pooled step terms sum to zero over each group of two or more entries
        /// (rloo, zscore, mean), and do not change when a constant is added to every outcome of
        /// a group (for groups of two or more).
        #[test]
        fn group_terms_sum_to_zero_and_ignore_group_shifts(
            b in random_batch(),
            shift in proptest::collection::vec(-8i32..8, 3),
        ) {
            use crate::algo::stats::group_members;
            let groups: Vec<usize> = b.trajectories.iter().map(|t| t.group).collect();
            let members = group_members(&groups);
            for norm in [Norm::Rloo, Norm::Zscore, Norm::Mean] {
                let out = evaluate_advantage(&episode(norm), &b, &AdvantageParams::default())
                    .unwrap();
                for m in members.iter().filter(|m| m.len() >= 2) {
                    // first token of the first step carries the trajectory's value
                    let sum: f32 = m.iter().map(|&i| out.advantages[i][0][0]).sum();
                    proptest::prop_assert!(sum.abs() < 1e-3, "{:?} sum {}", norm, sum);
                }
                let mut shifted = b.clone();
                for t in shifted.trajectories.iter_mut() {
                    t.outcome += shift[t.group] as f32 * 0.25;
                }
                let out2 = evaluate_advantage(&episode(norm), &shifted, &AdvantageParams::default())
                    .unwrap();
                for m in members.iter().filter(|m| m.len() >= 2) {
                    for &i in m {
                        let (x, y) = (out.advantages[i][0][0], out2.advantages[i][0][0]);
                        proptest::prop_assert!((x - y).abs() < 1e-3 * (1.0 + x.abs()), "{} vs {}", x, y);
                    }
                }
                let steps = evaluate_advantage(
                    &step_term(Signal::Prm, norm, StepGroup::Pool), &b, &AdvantageParams::default(),
                ).unwrap();
                for m in &members {
                    let vals: Vec<f32> = m.iter()
                        .flat_map(|&i| steps.advantages[i].iter().map(|s| s[0]))
                        .collect();
                    if vals.len() >= 2 {
                        let sum: f32 = vals.iter().sum();
                        proptest::prop_assert!(sum.abs() < 1e-3, "{:?} step sum {}", norm, sum);
                    }
                }
                // adding a constant to every r_phi of a group leaves pooled step terms unchanged
                let mut shifted = b.clone();
                for t in shifted.trajectories.iter_mut() {
                    for st in t.steps.iter_mut() {
                        st.prm_reward += shift[t.group] as f32 * 0.125;
                    }
                }
                let steps2 = evaluate_advantage(
                    &step_term(Signal::Prm, norm, StepGroup::Pool), &shifted,
                    &AdvantageParams::default(),
                ).unwrap();
                for m in &members {
                    let n_steps: usize = m.iter().map(|&i| b.trajectories[i].steps.len()).sum();
                    if n_steps < 2 {
                        continue;
                    }
                    for &i in m {
                        for (x, y) in steps.advantages[i].iter().zip(&steps2.advantages[i]) {
                            proptest::prop_assert!((x[0] - y[0]).abs() < 1e-3 * (1.0 + x[0].abs()),
                                "{:?}: {} vs {}", norm, x[0], y[0]);
                        }
                    }
                }
            }
        }
    }
}
