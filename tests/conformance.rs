//! Conformance: oprl's maths against vectors computed by the reference projects' own code
//! (veRL's `core_algos.py`, verl-agent's `gigpo/core_gigpo.py`), read from
//! `tests/data/conformance/*.json`. Tolerance: 1e-5 relative and absolute (float32 results).

use oprl::algo::gae::gae_advantage_return;
use oprl::algo::gigpo::{difflib_ratio, step_groups};
use oprl::algo::kl::{kl_penalty_mat, kl_penalty_tensor, parse_kl_name};
use oprl::algo::ppo::{
    actor_loss, agg_loss, agg_loss_tensor, policy_loss, ActorLossConfig, ActorLossInputs, PpoClip,
};
use oprl::algo::{AlgoError, Mat};
use oprl::graph::LossAgg;
use serde_json::Value;

const TOL: f64 = 1e-5;

fn load(name: &str) -> Value {
    let path = format!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conformance/{}"),
        name
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn cases(file: &Value) -> &Vec<Value> {
    let c = file["cases"].as_array().unwrap();
    assert!(!c.is_empty());
    c
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn vec1(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| f(x) as f32).collect()
}

fn mat(v: &Value) -> Mat {
    let rows: Vec<Vec<f32>> = v.as_array().unwrap().iter().map(vec1).collect();
    Mat::from_rows(&rows).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= TOL * (1.0 + want.abs()),
        "{what}: got {got}, want {want}"
    );
}

fn assert_mat_close(got: &Mat, want: &Mat, what: &str) {
    assert_eq!(
        (got.rows, got.cols),
        (want.rows, want.cols),
        "{what}: shape"
    );
    for (i, (g, w)) in got.data.iter().zip(&want.data).enumerate() {
        assert_close(*g as f64, *w as f64, &format!("{what}[{i}]"));
    }
}

fn mode(name: &str) -> LossAgg {
    match name {
        "token-mean" => LossAgg::TokenMean,
        "seq-mean-token-mean" => LossAgg::SeqMeanTokenMean,
        "seq-mean-token-sum" => LossAgg::SeqMeanTokenSum,
        "seq-mean-token-sum-norm" => LossAgg::SeqMeanTokenSumNorm,
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn verl_gae_advantage_return() {
    let file = load("verl_gae_advantage.json");
    for c in cases(&file) {
        let name = c["name"].as_str().unwrap();
        let i = &c["inputs"];
        let (adv, ret) = gae_advantage_return(
            &mat(&i["token_level_rewards"]),
            &mat(&i["values"]),
            &mat(&i["response_mask"]),
            f(&i["gamma"]),
            f(&i["lam"]),
        )
        .unwrap();
        assert_mat_close(&adv, &mat(&c["outputs"]["advantages"]), name);
        assert_mat_close(&ret, &mat(&c["outputs"]["returns"]), name);
    }
}

#[test]
fn verl_ppo_policy_loss_slices_and_tensors() {
    let file = load("verl_ppo_policy_loss.json");
    let dev = candle_core::Device::Cpu;
    for c in cases(&file) {
        let name = c["name"].as_str().unwrap();
        let i = &c["inputs"];
        let old = mat(&i["old_log_prob"]);
        let new = mat(&i["log_prob"]);
        let adv = mat(&i["advantages"]);
        let mask = mat(&i["response_mask"]);
        let clip = PpoClip {
            clip_low: f(&i["clip_ratio_low"]) as f32,
            clip_high: f(&i["clip_ratio_high"]) as f32,
            dual_clip: Some(f(&i["clip_ratio_c"]) as f32),
        };
        for (mode_name, want) in c["outputs"].as_object().unwrap() {
            let m = mode(mode_name);
            let what = format!("{name}/{mode_name}");
            let s = policy_loss(&old, &new, &adv, &mask, &clip, m).unwrap();
            assert_close(
                s.pg_loss as f64,
                f(&want["pg_loss"]),
                &format!("{what} pg_loss"),
            );
            assert_close(
                s.clipfrac as f64,
                f(&want["pg_clipfrac"]),
                &format!("{what} clipfrac"),
            );
            assert_close(
                s.ppo_kl as f64,
                f(&want["ppo_kl"]),
                &format!("{what} ppo_kl"),
            );
            assert_close(
                s.clipfrac_lower as f64,
                f(&want["pg_clipfrac_lower"]),
                &format!("{what} clipfrac_lower"),
            );
            // the tensor form (the one the runtime differentiates) gives the same numbers
            let var = candle_core::Var::from_tensor(&new.to_tensor(&dev).unwrap()).unwrap();
            let (o, a, k) = (
                old.to_tensor(&dev).unwrap(),
                adv.to_tensor(&dev).unwrap(),
                mask.to_tensor(&dev).unwrap(),
            );
            let cfg = ActorLossConfig {
                clip,
                agg: m,
                entropy_coef: 0.0,
                kl: None,
            };
            let out = actor_loss(
                &ActorLossInputs {
                    log_prob: var.as_tensor(),
                    old_log_prob: &o,
                    advantages: &a,
                    mask: &k,
                    entropy: None,
                    ref_log_prob: None,
                },
                &cfg,
            )
            .unwrap();
            let loss = out.loss.to_scalar::<f32>().unwrap() as f64;
            assert_close(loss, f(&want["pg_loss"]), &format!("{what} tensor pg_loss"));
            assert_close(out.stats.clipfrac as f64, f(&want["pg_clipfrac"]), &what);
            assert_close(out.stats.ppo_kl as f64, f(&want["ppo_kl"]), &what);
            assert_close(
                out.stats.clipfrac_lower as f64,
                f(&want["pg_clipfrac_lower"]),
                &what,
            );
            let grads = out.loss.backward().unwrap();
            assert!(grads.get(var.as_tensor()).is_some(), "{what}: no gradient");
        }
    }
}

#[test]
fn verl_agg_loss_slices_and_tensors() {
    let file = load("verl_agg_loss.json");
    for c in cases(&file) {
        let name = c["name"].as_str().unwrap();
        let loss = mat(&c["inputs"]["loss_mat"]);
        let mask = mat(&c["inputs"]["loss_mask"]);
        let t = loss.to_tensor(&candle_core::Device::Cpu).unwrap();
        for (mode_name, want) in c["outputs"].as_object().unwrap() {
            let m = mode(mode_name);
            let what = format!("{name}/{mode_name}");
            assert_close(agg_loss(&loss, &mask, m).unwrap() as f64, f(want), &what);
            let tv = agg_loss_tensor(&t, &mask, m)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_close(tv as f64, f(want), &what);
        }
    }
}

#[test]
fn verl_kl_penalty_slices_and_tensors() {
    let file = load("verl_kl_penalty.json");
    for c in cases(&file) {
        let name = c["name"].as_str().unwrap();
        let lp = mat(&c["inputs"]["logprob"]);
        let rp = mat(&c["inputs"]["ref_logprob"]);
        let dev = candle_core::Device::Cpu;
        for (variant, want) in c["outputs"].as_object().unwrap() {
            let what = format!("{name}/{variant}");
            if want.get("raises").is_some() {
                assert_eq!(
                    parse_kl_name(variant),
                    Err(AlgoError::UnknownKlPenalty(variant.clone())),
                    "{what}"
                );
                continue;
            }
            let kind = parse_kl_name(variant).unwrap();
            let got = kl_penalty_mat(&lp, &rp, kind).unwrap();
            assert_mat_close(&got, &mat(want), &what);
            let t = kl_penalty_tensor(
                &lp.to_tensor(&dev).unwrap(),
                &rp.to_tensor(&dev).unwrap(),
                kind,
            )
            .unwrap();
            assert_mat_close(&Mat::from_tensor(&t).unwrap(), &mat(want), &what);
        }
    }
}

#[test]
fn gigpo_similarity_ratios_match_difflib() {
    let file = load("gigpo_advantage.json");
    for r in file["similarity_reference"].as_array().unwrap() {
        let (a, b) = (r["a"].as_str().unwrap(), r["b"].as_str().unwrap());
        let ratio = difflib_ratio(a, b);
        assert!(
            (ratio - f(&r["ratio"])).abs() < 1e-12,
            "{a:?} vs {b:?}: {ratio}"
        );
        assert_eq!(ratio >= 0.9, r["are_similar_0.9"].as_bool().unwrap());
        assert_eq!(ratio >= 0.95, r["are_similar_0.95"].as_bool().unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// The runtime's entry point, `evaluate_advantage`, on veRL's and verl-agent's vectors: each row
// becomes one step of a trajectory, with as many action tokens as its mask has ones (the masks
// are prefixes).

use oprl::algo::{
    evaluate_advantage, AdvantageInputs, AdvantageParams, StepInput, TrajectoryInput, GROUP_EPS,
};
use oprl::graph::{AdvExpr, Norm, Signal, StepGroup};

/// Dense ids for string ids, in order of first appearance.
fn dense_ids(ids: &[String]) -> Vec<usize> {
    let mut seen: Vec<&String> = Vec::new();
    ids.iter()
        .map(|id| match seen.iter().position(|s| *s == id) {
            Some(p) => p,
            None => {
                seen.push(id);
                seen.len() - 1
            }
        })
        .collect()
}

fn prefix_len(mask_row: &[f32]) -> usize {
    let n = mask_row.iter().filter(|&&m| m != 0.0).count();
    assert!(
        mask_row[..n].iter().all(|&m| m == 1.0),
        "mask is not a prefix"
    );
    n
}

/// Compares the evaluator's per-token output with the valid tokens of a reference matrix; rows
/// are listed as (trajectory, step) in row order.
fn assert_rows_close(got: &[Vec<Vec<f32>>], rows: &[(usize, usize)], want: &Mat, what: &str) {
    for (r, &(t, s)) in rows.iter().enumerate() {
        for (k, v) in got[t][s].iter().enumerate() {
            assert_close(
                *v as f64,
                want.row(r)[k] as f64,
                &format!("{what} row {r} token {k}"),
            );
        }
    }
}

#[test]
fn evaluate_advantage_reproduces_verl_grpo_and_rloo() {
    for (file, norm_of) in [
        ("verl_grpo_advantage.json", true),
        ("verl_rloo_advantage.json", false),
    ] {
        let file = load(file);
        for c in cases(&file) {
            let name = c["name"].as_str().unwrap();
            let i = &c["inputs"];
            let rewards = mat(&i["token_level_rewards"]);
            let mask = mat(&i["response_mask"]);
            let groups = dense_ids(&strings(&i["index"]));
            let batch = AdvantageInputs {
                trajectories: (0..mask.rows)
                    .map(|r| TrajectoryInput {
                        group: groups[r],
                        outcome: rewards.row(r).iter().sum(),
                        success: false,
                        steps: vec![StepInput {
                            tokens: prefix_len(mask.row(r)),
                            ..Default::default()
                        }],
                    })
                    .collect(),
            };
            let norm = match (norm_of, i["norm_adv_by_std_in_grpo"].as_bool()) {
                (true, Some(true)) => Norm::Zscore,
                (true, _) => Norm::Mean,
                (false, _) => Norm::Rloo,
            };
            let expr = AdvExpr::Episode {
                signal: Signal::Outcome,
                norm,
            };
            let params = AdvantageParams {
                eps: i["epsilon"].as_f64().map_or(GROUP_EPS, |e| e as f32),
                ..Default::default()
            };
            let out = evaluate_advantage(&expr, &batch, &params).unwrap();
            let rows: Vec<(usize, usize)> = (0..mask.rows).map(|r| (r, 0)).collect();
            for key in ["advantages", "returns"] {
                assert_rows_close(&out.advantages, &rows, &mat(&c["outputs"][key]), name);
            }
        }
    }
}

/// The GiGPO batch of a case: each row becomes one step of its trajectory (trajectories in
/// order of first appearance), with as many action tokens as its mask has ones; also the
/// (trajectory, step) of each row.
fn gigpo_batch(i: &Value) -> (AdvantageInputs, Vec<(usize, usize)>) {
    let mask = mat(&i["response_mask"]);
    let token_rewards = mat(&i["token_level_rewards"]);
    let groups = dense_ids(&strings(&i["index"]));
    let trajs = dense_ids(&strings(&i["traj_index"]));
    let anchors = strings(&i["anchor_obs"]);
    let env = vec1(&i["env_rewards"]);
    let mut batch = AdvantageInputs::default();
    let mut rows = Vec::new();
    for r in 0..mask.rows {
        if trajs[r] == batch.trajectories.len() {
            batch.trajectories.push(TrajectoryInput {
                group: groups[r],
                outcome: token_rewards.row(r).iter().sum(),
                ..Default::default()
            });
        }
        let t = &mut batch.trajectories[trajs[r]];
        rows.push((trajs[r], t.steps.len()));
        t.steps.push(StepInput {
            tokens: prefix_len(mask.row(r)),
            env_reward: env[r],
            anchor: anchors[r].clone(),
            ..Default::default()
        });
    }
    (batch, rows)
}

/// verl-agent's GiGPO through the runtime's evaluator, term by term. verl-agent normalises the
/// episode term over the step ROWS of a task group; in the recipe language that is
/// `step(outcome, norm = mean)` (outcome broadcast to steps, pooled), so
/// `step(outcome) + w * step(discounted(env.reward, gamma), group = anchor_state)` must
/// reproduce `compute_gigpo_outcome_advantage`, with `similarity` = verl-agent's
/// `similarity_thresh` when `enable_similarity` is set.
#[test]
fn gigpo_advantage_verl_agent() {
    let file = load("gigpo_advantage.json");
    for c in cases(&file) {
        let name = c["name"].as_str().unwrap();
        let i = &c["inputs"];
        let o = &c["outputs"];
        let (batch, rows) = gigpo_batch(i);
        let norm = match i["mode"].as_str().unwrap() {
            "mean_norm" => Norm::Mean,
            "mean_std_norm" => Norm::Zscore,
            other => panic!("unknown mode {other}"),
        };
        let similarity = i["enable_similarity"]
            .as_bool()
            .unwrap()
            .then(|| f(&i["similarity_thresh"]));
        let params = AdvantageParams {
            eps: f(&i["epsilon"]) as f32,
            ..Default::default()
        };
        let discounted = Signal::Discounted {
            signal: Box::new(Signal::EnvReward),
            gamma: f(&i["gamma"]),
        };
        let step = |signal: &Signal, norm, group| AdvExpr::Step {
            signal: signal.clone(),
            norm,
            group,
            maxabs: false,
            similarity,
        };
        let run = |expr: &AdvExpr| {
            evaluate_advantage(expr, &batch, &params)
                .unwrap()
                .advantages
        };

        // Discounted step returns: the un-normalised step term.
        let returns = run(&step(&discounted, Norm::None, StepGroup::Pool));
        for key in ["outputs", "outputs_under_numpy2"] {
            let want = vec1(&c[key]["step_rewards"]);
            for (r, &(t, s)) in rows.iter().enumerate() {
                assert_close(
                    returns[t][s][0] as f64,
                    want[r] as f64,
                    &format!("{name} {key} step_rewards[{r}]"),
                );
            }
        }
        // Step groups, as the evaluator forms them.
        let anchors = strings(&i["anchor_obs"]);
        let groups = step_groups(&strings(&i["index"]), &anchors, similarity).unwrap();
        let canonical: Vec<usize> = o["step_group_canonical"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(groups, canonical, "{name} step groups");
        // The two terms and their sum.
        let episode = run(&step(&Signal::Outcome, norm, StepGroup::Pool));
        assert_rows_close(&episode, &rows, &mat(&o["episode_advantages"]), name);
        let step_term = step(&discounted, norm, StepGroup::AnchorState);
        assert_rows_close(&run(&step_term), &rows, &mat(&o["step_advantages"]), name);
        let expr = AdvExpr::Add {
            terms: vec![
                step(&Signal::Outcome, norm, StepGroup::Pool),
                AdvExpr::Scale {
                    factor: f(&i["step_advantage_w"]),
                    expr: Box::new(step_term),
                },
            ],
        };
        let adv = run(&expr);
        assert_rows_close(&adv, &rows, &mat(&o["advantages"]), name);
        assert_rows_close(&adv, &rows, &mat(&o["returns"]), name);
        // numpy 2 accumulates the discounted returns in f32: about one ulp apart, still within
        // the tolerance.
        let numpy2 = &c["outputs_under_numpy2"]["advantages"];
        assert_rows_close(&adv, &rows, &mat(numpy2), name);
    }
}
