//! Micro-batches change nothing but memory: each update with a small token budget (several
//! micro-batches per step) ends where the single-pass update ends, in parameters, optimiser
//! moments (which carry the gradient's scale, that Adam's step hides) and logged loss.

use super::*;
use crate::env::{EpisodeOutcome, Split, Task};
use crate::graph::{KlKind, LossAgg};
use crate::model::{DecoderConfig, PositionKind, Tokenizer};
use crate::runtime::batch::Step;
use crate::runtime::scoring::{all_rows, score_steps};
use crate::runtime::tokens::TokenLayout;
use candle_core::Device;
use rand::{Rng, SeedableRng};

/// Small enough that every step holds several micro-batches.
const BUDGET: usize = 24;
const TOLERANCE: f32 = 1e-5;

fn model(value_head: bool) -> LanguageModel {
    let tokenizer = Tokenizer::chars("abcdefghijklmnop");
    let cfg = DecoderConfig {
        vocab: tokenizer.vocab_size(),
        hidden: 16,
        layers: 2,
        heads: 2,
        kv_heads: 2,
        head_dim: 8,
        mlp: 32,
        context: 64,
        positions: PositionKind::Rope { theta: 10000.0 },
        rms_eps: 1e-5,
        qkv_bias: false,
        tie_embeddings: false,
        vision: None,
        qk_norm: false,
        rope_scaling: None,
    };
    let mut m = LanguageModel::random(cfg, &tokenizer, &Device::Cpu, 7).unwrap();
    if value_head {
        m.add_value_head(11).unwrap();
    }
    m
}

/// Six trajectories in three groups (a success and a failure each), of one to three steps
/// with prompts and actions of varied lengths; one step has no action.
fn trajectories(vocab: usize) -> Vec<Trajectory> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut tokens =
        |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(4..vocab as u32)).collect() };
    (0..6)
        .map(|i| {
            let steps = (0..1 + i % 3)
                .map(|s| {
                    let action = if (i, s) == (4, 1) {
                        vec![]
                    } else {
                        tokens(1 + (i + 2 * s) % 5)
                    };
                    Step {
                        prompt: tokens(3 + (5 * i + 3 * s) % 9),
                        token_logp_old: vec![0.0; action.len()],
                        action,
                        text: String::new(),
                        env_reward: 0.0,
                        valid: true,
                        state_key: String::new(),
                        observation: String::new(),
                        image: None,
                        choices: None,
                        text_prompt: None,
                    }
                })
                .collect();
            Trajectory {
                group: i / 2,
                task: Task {
                    split: Split::Train,
                    index: (i / 2) as u64,
                },
                steps,
                outcome: EpisodeOutcome {
                    won: i % 2 == 0,
                    score: 0.0,
                    env_return: 0.0,
                },
                final_observation: String::new(),
                final_info: serde_json::Value::Null,
                final_image: None,
                reward: (i % 2 == 0) as u8 as f64,
                success: i % 2 == 0,
            }
        })
        .collect()
}

/// Per-token values: `base` (or 0) plus noise of `scale`.
fn noisy(
    layout: &TokenLayout,
    base: Option<&TokenValues<f32>>,
    scale: f32,
    seed: u64,
) -> TokenValues<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let values = (0..layout.tokens())
        .map(|k| base.map_or(0.0, |b| b.values()[k]) + scale * rng.random_range(-1.0f32..1.0))
        .collect();
    TokenValues::new(layout.clone(), values).unwrap()
}

/// Copies of `base` trained in one pass and in micro-batches of [`BUDGET`] tokens.
fn pair(base: &LanguageModel, lr: f64) -> (Trained, Trained) {
    let make = |micro_batch_tokens| {
        let model = base.duplicate().unwrap();
        let opt = Optimizer::new(model.vars(), lr, 0.0).unwrap();
        Trained {
            model,
            opt,
            micro_batch_tokens,
        }
    };
    (make(0), make(BUDGET))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// Same parameters and optimiser moments after the updates.
fn assert_same_state(one: &Trained, micro: &Trained) {
    for (a, b) in one.model.vars().iter().zip(micro.model.vars()) {
        let d = max_diff(a.as_tensor(), b.as_tensor());
        assert!(d < TOLERANCE, "parameters differ by {d}");
    }
    let dir = tempfile::tempdir().unwrap();
    let moments = |t: &Trained, name: &str| {
        let path = dir.path().join(name);
        t.opt.save(&path).unwrap();
        candle_core::safetensors::load(&path, &Device::Cpu).unwrap()
    };
    let (a, b) = (moments(one, "one"), moments(micro, "micro"));
    assert!(one.opt.step_count() > 0 && one.opt.step_count() == micro.opt.step_count());
    for (name, m) in &a {
        let d = max_diff(m, &b[name]);
        assert!(
            d < TOLERANCE * 0.1,
            "optimiser moment {name} differs by {d}"
        );
    }
}

fn assert_close(one: f64, micro: f64, what: &str) {
    assert!(
        (one - micro).abs() < TOLERANCE as f64,
        "{what}: {one} vs {micro}"
    );
}

#[test]
fn the_budget_cuts_every_step_into_several_micro_batches() {
    let base = model(false);
    let trajs = trajectories(base.config().vocab);
    let (one, micro) = pair(&base, 1e-3);
    let rows = all_rows(&trajs);
    assert_eq!(one.micro_batches(&trajs, &rows).len(), 1);
    assert!(micro.micro_batches(&trajs, &rows).len() >= 5);
}

#[test]
fn policy_update_in_micro_batches_equals_one_pass() {
    let base = model(false);
    let trajs = trajectories(base.config().vocab);
    let layout = TokenLayout::of(&trajs);
    let current = score_steps(&base, &trajs, &layout, View::Policy).unwrap();
    let old_logp = noisy(&layout, Some(&current), 0.3, 1);
    let ref_logp = noisy(&layout, Some(&current), 0.2, 2);
    let advantages = noisy(&layout, None, 1.0, 3);
    let inputs = PolicyUpdateInputs {
        trajs: &trajs,
        old_logp: &old_logp,
        ref_logp: Some(&ref_logp),
        advantages: &advantages,
        iteration: 1,
    };
    for agg in [
        LossAgg::TokenMean,
        LossAgg::SeqMeanTokenMean,
        LossAgg::SeqMeanTokenSum,
        LossAgg::SeqMeanTokenSumNorm,
    ] {
        let ppo = PpoSpec {
            lr: 1e-3,
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: 3.0,
            entropy: 0.01,
            kl: Some(KlKind::K3),
            kl_coef: 0.1,
            epochs: 2,
            minibatch: 4,
            grad_clip: 0.5,
            loss_agg: agg,
            weight_decay: 0.0,
        };
        let (mut one, mut micro) = pair(&base, ppo.lr);
        let run = |t: &mut Trained| {
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            policy_update(t, &ppo, &inputs, &mut rng).unwrap()
        };
        let (a, b) = (run(&mut one), run(&mut micro));
        assert_same_state(&one, &micro);
        assert_close(a.loss, b.loss, "loss");
        assert_close(a.grad_norm, b.grad_norm, "grad norm");
        assert_close(a.clip_fraction, b.clip_fraction, "clip fraction");
        assert_close(a.entropy, b.entropy, "entropy");
        assert_close(a.approx_kl, b.approx_kl, "approx KL");
    }
}

#[test]
fn critic_update_in_micro_batches_equals_one_pass() {
    let base = model(true);
    let trajs = trajectories(base.config().vocab);
    let layout = TokenLayout::of(&trajs);
    let values = noisy(&layout, None, 0.5, 4);
    let returns = noisy(&layout, None, 1.0, 5);
    let inputs = CriticUpdateInputs {
        trajs: &trajs,
        values: &values,
        returns: &returns,
        iteration: 1,
    };
    let critic = CriticSpec {
        lr: 1e-3,
        value_clip: 0.2,
        gamma: 1.0,
        lambda: 1.0,
    };
    for agg in [LossAgg::TokenMean, LossAgg::SeqMeanTokenSumNorm] {
        let ppo = PpoSpec {
            lr: 1e-3,
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: 3.0,
            entropy: 0.0,
            kl: None,
            kl_coef: 0.0,
            epochs: 2,
            minibatch: 3,
            grad_clip: 0.5,
            loss_agg: agg,
            weight_decay: 0.0,
        };
        let (mut one, mut micro) = pair(&base, critic.lr);
        let run = |t: &mut Trained| {
            let mut rng = ChaCha8Rng::seed_from_u64(6);
            critic_update(t, &critic, &ppo, &inputs, &mut rng).unwrap()
        };
        let (a, b) = (run(&mut one), run(&mut micro));
        assert_same_state(&one, &micro);
        assert_close(a, b, "value loss");
    }
}

/// The PRM update with `loss` (DPO pairs, or PRIME's cross-entropy), in one pass and in
/// micro-batches.
fn prm_equals_one_pass(loss: PrmLoss, score: TrajScore) {
    let base = model(false);
    let trajs = trajectories(base.config().vocab);
    let layout = TokenLayout::of(&trajs);
    let current = score_steps(&base, &trajs, &layout, View::Policy).unwrap();
    let reference = noisy(&layout, Some(&current), 0.5, 7);
    let process_rewards = noisy(&layout, None, 1.0, 8).map(|v| v as f64);
    let inputs = PrmUpdateInputs {
        trajs: &trajs,
        process_rewards: &process_rewards,
        reference: &reference,
        view: View::Text,
        iteration: 1,
    };
    let spec = PrmSpec {
        init: crate::graph::PrmInit::Policy,
        beta: 0.5,
        score,
        loss,
        reference: crate::graph::PrmReference::OldPolicy,
        lr: 1e-3,
        grad_clip: 0.5,
        updates: 3,
        text_view: true,
    };
    let (mut one, mut micro) = pair(&base, spec.lr);
    let a = prm_update(&mut one, &spec, &inputs).unwrap();
    let b = prm_update(&mut micro, &spec, &inputs).unwrap();
    assert!(a.updated && b.updated);
    assert_same_state(&one, &micro);
    assert_close(a.loss.unwrap(), b.loss.unwrap(), "PRM loss");
}

#[test]
fn dpo_prm_update_in_micro_batches_equals_one_pass() {
    prm_equals_one_pass(PrmLoss::Dpo, TrajScore::Mean);
    prm_equals_one_pass(PrmLoss::Dpo, TrajScore::Sum);
}

#[test]
fn prime_prm_update_in_micro_batches_equals_one_pass() {
    prm_equals_one_pass(PrmLoss::CrossEntropy, TrajScore::Sum);
}
