//! Behaviour tests of the model module on tiny sizes.

use super::*;
use crate::graph::SamplingSpec;

fn tiny_spec(positions: Positions, tie: bool) -> PolicySpec {
    PolicySpec::Transformer(TransformerSpec {
        layers: 2,
        width: 32,
        heads: 4,
        mlp: 64,
        context: 48,
        positions,
        tie_embeddings: tie,
        patch: 0,
        sampling: SamplingSpec {
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 8,
            stop: vec![],
        },
    })
}

fn tok() -> Tokenizer {
    Tokenizer::chars_with_words("abcdefgh |", &["</a>".to_string()])
}

fn tiny(positions: Positions, tie: bool, seed: u64) -> LanguageModel {
    LanguageModel::from_spec(&tiny_spec(positions, tie), &tok(), &Device::Cpu, seed).unwrap()
}

/// The largest absolute elementwise difference (also used by the fused-op tests).
pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn prompts(t: &Tokenizer) -> Vec<Vec<u32>> {
    ["ab", "hgfedc ba", "c", "dd|ee"]
        .iter()
        .map(|s| t.encode(s))
        .collect()
}

#[test]
fn every_variable_gets_a_gradient() {
    for (positions, tie) in [(Positions::Rope, false), (Positions::Learned, true)] {
        let mut m = tiny(positions, tie, 1);
        m.add_value_head(5).unwrap();
        let t = tok();
        let acts: Vec<Vec<u32>> = ["abc", "d", "eeee", "</a>"]
            .iter()
            .map(|s| t.encode(s))
            .collect();
        let (scored, values) = m.score_and_values(&prompts(&t), &acts, true).unwrap();
        let loss = (scored.logprobs.sum_all().unwrap()
            + scored.entropy.sum_all().unwrap()
            + values.unwrap().sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in m.named_vars() {
            let g = grads
                .get(&var)
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name} has a zero gradient");
        }
    }
}

#[test]
fn detached_scoring_records_no_graph_and_matches_tracked() {
    let m = tiny(Positions::Rope, false, 2);
    let t = tok();
    let acts: Vec<Vec<u32>> = ["ab", "c", "dd", "e"].iter().map(|s| t.encode(s)).collect();
    let a = m.score(&prompts(&t), &acts, true).unwrap();
    let b = m.score(&prompts(&t), &acts, false).unwrap();
    assert_eq!(max_diff(&a.logprobs, &b.logprobs), 0.0);
    assert!(b
        .logprobs
        .sum_all()
        .unwrap()
        .backward()
        .unwrap()
        .get(&m.vars()[0])
        .is_none());
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let t = tok();
    let p = prompts(&t);
    let a = tiny(Positions::Rope, false, 3).logits(&p, false).unwrap();
    let b = tiny(Positions::Rope, false, 3).logits(&p, false).unwrap();
    let c = tiny(Positions::Rope, false, 4).logits(&p, false).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
    assert!(max_diff(&a, &c) > 1e-4);
}

#[test]
fn kv_cache_sampling_equals_recomputation() {
    for positions in [Positions::Rope, Positions::Learned] {
        let m = tiny(positions, false, 6);
        let t = tok();
        let opts = SampleOptions {
            temperature: 1.3,
            top_p: 0.95,
            max_new_tokens: 12,
            stop: vec!["</a>".into(), "h".into()],
        };
        let mut r1 = ChaCha8Rng::seed_from_u64(9);
        let mut r2 = ChaCha8Rng::seed_from_u64(9);
        let cached = m.generate(&prompts(&t), &opts, &mut r1).unwrap();
        let plain = m.generate_uncached(&prompts(&t), &opts, &mut r2).unwrap();
        for (c, p) in cached.iter().zip(&plain) {
            assert_eq!(c.tokens, p.tokens);
            assert_eq!(c.stopped, p.stopped);
            assert_eq!(c.text, p.text);
            for (a, b) in c.logprobs.iter().zip(&p.logprobs) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        assert!(cached.iter().any(|g| g.tokens.len() > 1));
    }
}

#[test]
fn generation_logprobs_equal_scores_and_stops_are_honoured() {
    let m = tiny(Positions::Rope, false, 7);
    let t = tok();
    let opts = SampleOptions {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 10,
        stop: vec!["a".into()],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let p = prompts(&t);
    let gens = m.generate(&p, &opts, &mut rng).unwrap();
    let acts: Vec<Vec<u32>> = gens.iter().map(|g| g.tokens.clone()).collect();
    let scored = m.score(&p, &acts, false).unwrap();
    let lp: Vec<Vec<f32>> = scored.logprobs.to_vec2().unwrap();
    for (i, g) in gens.iter().enumerate() {
        assert!(g.tokens.len() <= 10);
        if g.stopped {
            let last = *g.tokens.last().unwrap();
            // Whole-word tokens can carry the stop string inside them ("</a>").
            assert!(g.text.contains('a') || last == t.eos_id(), "{g:?}");
        } else {
            assert_eq!(g.tokens.len(), 10);
            assert!(!g.text.contains('a'));
        }
        for (k, &l) in g.logprobs.iter().enumerate() {
            assert!(
                (lp[i][k] - l).abs() < 1e-4,
                "row {i} token {k}: {} vs {l}",
                lp[i][k]
            );
        }
    }
}

#[test]
fn batched_scoring_equals_unbatched() {
    let m = tiny(Positions::Rope, false, 8);
    let t = tok();
    let p = prompts(&t);
    let acts: Vec<Vec<u32>> = ["abc", "d", "eeeeee", "</a>f"]
        .iter()
        .map(|s| t.encode(s))
        .collect();
    let all = m.score(&p, &acts, false).unwrap();
    let lp: Vec<Vec<f32>> = all.logprobs.to_vec2().unwrap();
    let ent: Vec<Vec<f32>> = all.entropy.to_vec2().unwrap();
    let mask: Vec<Vec<f32>> = all.mask.to_vec2().unwrap();
    for i in 0..p.len() {
        let one = m.score(&p[i..=i], &acts[i..=i], false).unwrap();
        let lp1: Vec<Vec<f32>> = one.logprobs.to_vec2().unwrap();
        let ent1: Vec<Vec<f32>> = one.entropy.to_vec2().unwrap();
        assert_eq!(lp1[0].len(), acts[i].len());
        for k in 0..lp[i].len() {
            if k < acts[i].len() {
                assert_eq!(mask[i][k], 1.0);
                assert!((lp[i][k] - lp1[0][k]).abs() < 1e-5);
                assert!((ent[i][k] - ent1[0][k]).abs() < 1e-5);
                assert!(lp[i][k] < 0.0 && ent[i][k] > 0.0);
            } else {
                assert_eq!((mask[i][k], lp[i][k]), (0.0, 0.0));
            }
        }
    }
}

#[test]
fn entropy_matches_an_independent_formula() {
    let m = tiny(Positions::Rope, false, 8);
    let t = tok();
    let p = vec![t.encode("abc")];
    let a = vec![t.encode("d")];
    let ent: Vec<Vec<f32>> = m.score(&p, &a, false).unwrap().entropy.to_vec2().unwrap();
    let logits: Vec<Vec<Vec<f32>>> = m.logits(&p, false).unwrap().to_vec3().unwrap();
    let row = &logits[0][2];
    let z: f64 = row.iter().map(|&l| (l as f64).exp()).sum();
    let h: f64 = row
        .iter()
        .map(|&l| {
            let q = (l as f64).exp() / z;
            -q * q.ln()
        })
        .sum();
    assert!((ent[0][0] as f64 - h).abs() < 1e-4);
}

#[test]
fn adamw_learns_a_tiny_copy_task() {
    let t = Tokenizer::chars("abcd|");
    let spec = tiny_spec(Positions::Rope, false);
    let m = LanguageModel::from_spec(&spec, &t, &Device::Cpu, 11).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let letters = t.encode("abcd");
    let mut prompts = vec![];
    let mut actions = vec![];
    for _ in 0..16 {
        let word: Vec<u32> = (0..4).map(|_| letters[rng.random_range(0..4)]).collect();
        let mut p = vec![t.bos_id()];
        p.extend(&word);
        p.extend(t.encode("|"));
        prompts.push(p);
        actions.push(word);
    }
    let mut opt = Optimizer::new(m.vars(), 1e-2, 0.0).unwrap();
    let mut loss_value = f32::MAX;
    for _ in 0..300 {
        let s = m.score(&prompts, &actions, true).unwrap();
        let loss = (s.logprobs.sum_all().unwrap() * (-1.0 / 64.0)).unwrap();
        loss_value = loss.to_scalar::<f32>().unwrap();
        opt.step(&loss, 1.0).unwrap();
    }
    assert!(loss_value < 0.05, "copy loss after 300 steps: {loss_value}");
    // The detached view sees the optimiser's in-place updates: greedy decoding copies.
    let opts = SampleOptions {
        temperature: 0.0,
        top_p: 1.0,
        max_new_tokens: 4,
        stop: vec![],
    };
    let gens = m.generate(&prompts, &opts, &mut rng).unwrap();
    for (g, a) in gens.iter().zip(&actions) {
        assert_eq!(&g.tokens, a);
    }
}

#[test]
fn save_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.safetensors");
    let mut a = tiny(Positions::Learned, false, 12);
    a.add_value_head(1).unwrap();
    a.save(&path).unwrap();
    assert!(checkpoint::sidecar(&path).is_file());
    let mut b = tiny(Positions::Learned, false, 13);
    let t = tok();
    let p = prompts(&t);
    assert!(max_diff(&a.logits(&p, false).unwrap(), &b.logits(&p, false).unwrap()) > 0.0);
    b.load(&path).unwrap();
    assert_eq!(
        max_diff(&a.logits(&p, false).unwrap(), &b.logits(&p, false).unwrap()),
        0.0
    );
    let acts = prompts(&t);
    let va = a.values(&p, &acts, false).unwrap().unwrap();
    let vb = b.values(&p, &acts, false).unwrap().unwrap();
    assert_eq!(max_diff(&va, &vb), 0.0);
    // A checkpoint for another shape is refused, not half-loaded.
    let mut other = LanguageModel::from_spec(
        &tiny_spec(Positions::Rope, true),
        &Tokenizer::chars("xy"),
        &Device::Cpu,
        0,
    )
    .unwrap();
    assert!(other.load(&path).is_err());
}

#[test]
fn duplicate_is_independent_and_copy_weights_syncs() {
    let t = tok();
    let p = prompts(&t);
    let a = tiny(Positions::Rope, false, 14);
    let mut b = a.duplicate().unwrap();
    let before = a.logits(&p, false).unwrap();
    // Train `a` one step: b must not move.
    let mut opt = Optimizer::new(a.vars(), 1e-2, 0.0).unwrap();
    let loss = a
        .score(&p, &p, true)
        .unwrap()
        .logprobs
        .sum_all()
        .unwrap()
        .neg()
        .unwrap();
    opt.step(&loss, 0.0).unwrap();
    let after = a.logits(&p, false).unwrap();
    assert!(max_diff(&before, &after) > 0.0);
    assert_eq!(max_diff(&before, &b.logits(&p, false).unwrap()), 0.0);
    b.copy_weights_from(&a).unwrap();
    assert_eq!(max_diff(&after, &b.logits(&p, false).unwrap()), 0.0);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let m = tiny(Positions::Rope, false, 15);
    let t = tok();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let opts = SampleOptions {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 10,
        stop: vec![],
    };
    let long = vec![vec![4u32; 40]];
    assert!(m.generate(&long, &opts, &mut rng).is_err());
    assert!(m.generate(&[vec![]], &opts, &mut rng).is_err());
    assert!(m.score(&[vec![4]], &[vec![999]], false).is_err());
    assert!(m.score(&[vec![4]], &[], false).is_err());
    assert!(m
        .score(&[t.encode("ab")], &[vec![4u32; 60]], false)
        .is_err());
    let bad = TransformerSpec {
        heads: 3,
        ..match tiny_spec(Positions::Rope, false) {
            PolicySpec::Transformer(s) => s,
            PolicySpec::Hf(_) => unreachable!(),
        }
    };
    assert!(LanguageModel::from_spec(&PolicySpec::Transformer(bad), &t, &Device::Cpu, 0).is_err());
}
