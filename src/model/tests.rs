//! Behaviour tests of the model module on tiny sizes.

use super::*;
use crate::graph::{PolicySpec, Positions, SamplingSpec, TransformerSpec};
use crate::image::RgbImage;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

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
            actions: crate::graph::ActionSpace::Free,
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

/// Panics naming the first variable of `m` that `grads` misses or holds only zeros for.
fn assert_every_var_has_a_gradient(m: &LanguageModel, grads: &candle_core::backprop::GradStore) {
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
        let (scored, values) = m
            .score_and_values(Batch::new(&prompts(&t)), &acts, true)
            .unwrap();
        let loss = (scored.logprobs.sum_all().unwrap()
            + scored.entropy.sum_all().unwrap()
            + values.unwrap().sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        assert_every_var_has_a_gradient(&m, &grads);
    }
}

#[test]
fn detached_scoring_records_no_graph_and_matches_tracked() {
    let m = tiny(Positions::Rope, false, 2);
    let t = tok();
    let acts: Vec<Vec<u32>> = ["ab", "c", "dd", "e"].iter().map(|s| t.encode(s)).collect();
    let a = m.score(Batch::new(&prompts(&t)), &acts, true).unwrap();
    let b = m.score(Batch::new(&prompts(&t)), &acts, false).unwrap();
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
    let a = tiny(Positions::Rope, false, 3)
        .logits(Batch::new(&p), false)
        .unwrap();
    let b = tiny(Positions::Rope, false, 3)
        .logits(Batch::new(&p), false)
        .unwrap();
    let c = tiny(Positions::Rope, false, 4)
        .logits(Batch::new(&p), false)
        .unwrap();
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
            admissible_only: false,
        };
        let mut r1 = ChaCha8Rng::seed_from_u64(9);
        let mut r2 = ChaCha8Rng::seed_from_u64(9);
        let cached = m
            .generate(Batch::new(&prompts(&t)), &opts, &mut r1)
            .unwrap();
        let plain = m
            .generate_uncached(Batch::new(&prompts(&t)), &opts, &mut r2)
            .unwrap();
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

/// Rows with their own settings and RNGs sample each as it would alone: a batch of mixed rows
/// gives every row the generation of a batch of that row only.
#[test]
fn rows_with_their_own_settings_sample_as_alone() {
    let m = tiny(Positions::Rope, false, 6);
    let t = tok();
    let rows: Vec<RowSampling> = (0..3)
        .map(|i| RowSampling {
            options: SampleOptions {
                temperature: [0.0, 1.3, 0.7][i],
                top_p: [1.0, 0.95, 0.8][i],
                max_new_tokens: [5, 12, 3][i],
                stop: if i == 1 { vec!["h".into()] } else { vec![] },
                admissible_only: false,
            },
            rng: ChaCha8Rng::seed_from_u64(20 + i as u64),
            top_logprobs: i,
        })
        .collect();
    let p = prompts(&t)[..3].to_vec();
    let mut reported: Vec<Vec<u32>> = vec![vec![]; 3];
    let mut report = |e: TokenEvent| {
        reported[e.row].push(e.token);
        assert_eq!(e.top.len(), e.row);
        assert!(e.top.windows(2).all(|w| w[0].1 >= w[1].1));
        true
    };
    let together = m
        .generate_each(Batch::new(&p), &mut rows.clone(), &mut report)
        .unwrap();
    for (i, g) in together.iter().enumerate() {
        let alone = m
            .generate_each(
                Batch::new(&p[i..=i]),
                &mut rows[i..=i].to_vec(),
                &mut |_| true,
            )
            .unwrap();
        assert_eq!(g.tokens, alone[0].tokens, "row {i}");
        assert_eq!(reported[i], g.tokens);
        assert!(g.tokens.len() <= rows[i].options.max_new_tokens);
    }
    // A row whose report declines is dropped at once.
    let cut = m
        .generate_each(Batch::new(&p), &mut rows.clone(), &mut |e| e.row != 1)
        .unwrap();
    assert_eq!(cut[1].tokens.len(), 1);
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
        admissible_only: false,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let p = prompts(&t);
    let gens = m.generate(Batch::new(&p), &opts, &mut rng).unwrap();
    let acts: Vec<Vec<u32>> = gens.iter().map(|g| g.tokens.clone()).collect();
    let scored = m.score(Batch::new(&p), &acts, false).unwrap();
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
fn restricted_generation_draws_only_answers_and_scores_the_restricted_distribution() {
    let m = tiny(Positions::Rope, false, 9);
    let t = tok();
    let p = prompts(&t);
    let answer = |s: &str| t.encode(s);
    // Row 0: "ab" or "c" ("a" alone is not an answer); row 1 free; rows 2, 3: "h" or "g|".
    let first = ChoiceSet::new(vec![answer("ab"), answer("c")], t.stop_ids()).unwrap();
    let second = ChoiceSet::new(vec![answer("h"), answer("g|")], t.stop_ids()).unwrap();
    let choices = [Some(&first), None, Some(&second), Some(&second)];
    let opts = SampleOptions {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 4,
        stop: vec![],
        admissible_only: true,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..20 {
        let gens = m
            .generate(Batch::new(&p).with_choices(&choices), &opts, &mut rng)
            .unwrap();
        for (g, c) in gens.iter().zip(&choices) {
            if let Some(c) = c {
                assert!(c.answers().contains(&g.tokens), "{g:?} is not an answer");
                assert!(g.stopped, "a finished answer stops its row");
                seen.insert(g.text.clone());
            }
        }
        let acts: Vec<Vec<u32>> = gens.iter().map(|g| g.tokens.clone()).collect();
        let restricted: Vec<Vec<f32>> = m
            .score(Batch::new(&p).with_choices(&choices), &acts, false)
            .unwrap()
            .logprobs
            .to_vec2()
            .unwrap();
        // Independently: the restricted log-prob of token k is its full log-prob minus the
        // log of the total full probability of the tokens allowed at k.
        let logits: Vec<Vec<Vec<f32>>> = (0..p.len())
            .map(|i| {
                let mut seq = p[i].clone();
                seq.extend_from_slice(&acts[i]);
                m.logits(Batch::new(&[seq]), false)
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
                    .to_vec2()
                    .unwrap()
            })
            .collect();
        for (i, g) in gens.iter().enumerate() {
            for (k, &token) in g.tokens.iter().enumerate() {
                let row = &logits[i][p[i].len() - 1 + k];
                let allowed: Vec<usize> = match choices[i] {
                    Some(c) => c
                        .allowed_after(&g.tokens[..k])
                        .iter()
                        .map(|&x| x as usize)
                        .collect(),
                    None => (0..row.len()).collect(),
                };
                let lse = |ids: &[usize]| {
                    let max = ids.iter().map(|&j| row[j]).fold(f32::MIN, f32::max);
                    max + ids.iter().map(|&j| (row[j] - max).exp()).sum::<f32>().ln()
                };
                let expected = row[token as usize] - lse(&allowed);
                assert!(
                    (restricted[i][k] - expected).abs() < 1e-4,
                    "row {i} token {k}"
                );
                assert!((g.logprobs[k] - expected).abs() < 1e-4, "row {i} token {k}");
            }
        }
    }
    assert_eq!(
        seen.len(),
        4,
        "every answer is drawn at some point: {seen:?}"
    );

    // Gradients flow through the restricted scores, and entropies stay finite.
    let acts = vec![answer("ab"), answer("d"), answer("g|"), answer("h")];
    let scored = m
        .score(Batch::new(&p).with_choices(&choices), &acts, true)
        .unwrap();
    let loss = scored.logprobs.sum_all().unwrap();
    let grads = loss.backward().unwrap();
    assert!(m.vars().iter().any(|v| grads.get(v).is_some()));
    let ent: Vec<Vec<f32>> = scored.entropy.to_vec2().unwrap();
    assert!(ent.iter().flatten().all(|e| e.is_finite() && *e >= -1e-6));
    // "ab": at the first token only "a" and "c" are open, so the entropy is at most ln 2.
    assert!(ent[0][0] <= 2f32.ln() + 1e-5);
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
    let all = m.score(Batch::new(&p), &acts, false).unwrap();
    let lp: Vec<Vec<f32>> = all.logprobs.to_vec2().unwrap();
    let ent: Vec<Vec<f32>> = all.entropy.to_vec2().unwrap();
    let mask: Vec<Vec<f32>> = all.mask.to_vec2().unwrap();
    for i in 0..p.len() {
        let one = m.score(Batch::new(&p[i..=i]), &acts[i..=i], false).unwrap();
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
    let ent: Vec<Vec<f32>> = m
        .score(Batch::new(&p), &a, false)
        .unwrap()
        .entropy
        .to_vec2()
        .unwrap();
    let logits: Vec<Vec<Vec<f32>>> = m.logits(Batch::new(&p), false).unwrap().to_vec3().unwrap();
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
        let s = m.score(Batch::new(&prompts), &actions, true).unwrap();
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
        admissible_only: false,
    };
    let gens = m.generate(Batch::new(&prompts), &opts, &mut rng).unwrap();
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
    assert!(
        max_diff(
            &a.logits(Batch::new(&p), false).unwrap(),
            &b.logits(Batch::new(&p), false).unwrap()
        ) > 0.0
    );
    b.load(&path).unwrap();
    assert_eq!(
        max_diff(
            &a.logits(Batch::new(&p), false).unwrap(),
            &b.logits(Batch::new(&p), false).unwrap()
        ),
        0.0
    );
    let acts = prompts(&t);
    let va = a
        .score_and_values(Batch::new(&p), &acts, false)
        .unwrap()
        .1
        .unwrap();
    let vb = b
        .score_and_values(Batch::new(&p), &acts, false)
        .unwrap()
        .1
        .unwrap();
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
    let before = a.logits(Batch::new(&p), false).unwrap();
    // Train `a` one step: b must not move.
    let mut opt = Optimizer::new(a.vars(), 1e-2, 0.0).unwrap();
    let loss = a
        .score(Batch::new(&p), &p, true)
        .unwrap()
        .logprobs
        .sum_all()
        .unwrap()
        .neg()
        .unwrap();
    opt.step(&loss, 0.0).unwrap();
    let after = a.logits(Batch::new(&p), false).unwrap();
    assert!(max_diff(&before, &after) > 0.0);
    assert_eq!(
        max_diff(&before, &b.logits(Batch::new(&p), false).unwrap()),
        0.0
    );
    b.copy_weights_from(&a).unwrap();
    assert_eq!(
        max_diff(&after, &b.logits(Batch::new(&p), false).unwrap()),
        0.0
    );
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
        admissible_only: false,
    };
    let long = vec![vec![4u32; 40]];
    assert!(m.generate(Batch::new(&long), &opts, &mut rng).is_err());
    assert!(m.generate(Batch::new(&[vec![]]), &opts, &mut rng).is_err());
    assert!(m
        .score(Batch::new(&[vec![4]]), &[vec![999]], false)
        .is_err());
    assert!(m.score(Batch::new(&[vec![4]]), &[], false).is_err());
    assert!(m
        .score(Batch::new(&[t.encode("ab")]), &[vec![4u32; 60]], false)
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

// ---------------------------------------------------------------------------------------------
// Image input

fn vision_tok() -> Tokenizer {
    Tokenizer::chars_with_words("abcdefgh |", &["</a>".to_string(), "<image>".to_string()])
}

/// A tiny model with a patch encoder: 4x4 patches, images up to 2x3 patches (8x12 pixels).
fn tiny_vision(positions: Positions, seed: u64) -> LanguageModel {
    let t = vision_tok();
    let image_token = t.encode("<image>")[0];
    let vision = VisionConfig {
        patch: 4,
        grid: [2, 3],
        image_token,
    };
    LanguageModel::from_spec_with_vision(
        &tiny_spec(positions, false),
        &t,
        &Device::Cpu,
        seed,
        Some(vision),
    )
    .unwrap()
}

/// A `w` x `h` image of pseudo-random pixels.
fn noise_image(w: usize, h: usize, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    RgbImage {
        width: w,
        height: h,
        pixels: (0..w * h * 3).map(|_| rng.random::<u8>()).collect(),
    }
}

/// Prompts with an image placeholder (expanded per patch) and one text-only prompt.
fn vision_batch(m: &LanguageModel) -> (Vec<Vec<u32>>, Vec<Option<RgbImage>>) {
    let t = m.tokenizer().clone();
    let images = vec![
        Some(noise_image(12, 8, 1)),
        None,
        Some(noise_image(8, 4, 2)),
        Some(noise_image(12, 8, 3)),
    ];
    let texts = ["ab<image>c", "hgfedc ba", "<image>\nd", "dd|<image>"];
    let prompts = texts
        .iter()
        .zip(&images)
        .map(|(s, img)| match img {
            Some(img) => m.expand_image_tokens(&t.encode(s), img),
            None => t.encode(s),
        })
        .collect();
    (prompts, images)
}

fn refs(images: &[Option<RgbImage>]) -> Vec<Option<&RgbImage>> {
    images.iter().map(Option::as_ref).collect()
}

#[test]
fn the_patch_encoder_receives_gradients() {
    for positions in [Positions::Rope, Positions::Learned] {
        let m = tiny_vision(positions, 21);
        let (p, images) = vision_batch(&m);
        // 6 patches for a 12x8 image, 2 for an 8x4 one, in place of the one `<image>` token.
        assert_eq!(p[0].len(), 2 + 6 + 1);
        assert_eq!(p[2].len(), 2 + 2);
        let t = m.tokenizer().clone();
        let acts: Vec<Vec<u32>> = ["abc", "d", "ee", "</a>"]
            .iter()
            .map(|s| t.encode(s))
            .collect();
        let scored = m
            .score(Batch::new(&p).with_images(&refs(&images)), &acts, true)
            .unwrap();
        let grads = scored.logprobs.sum_all().unwrap().backward().unwrap();
        assert_every_var_has_a_gradient(&m, &grads);
        assert!(m
            .named_vars()
            .iter()
            .any(|(n, _)| n == vision::PATCH_WEIGHT));
    }
}

#[test]
fn image_tokens_with_the_kv_cache_match_full_recomputation() {
    for positions in [Positions::Rope, Positions::Learned] {
        let m = tiny_vision(positions, 22);
        let (p, images) = vision_batch(&m);
        let opts = SampleOptions {
            temperature: 1.2,
            top_p: 1.0,
            max_new_tokens: 8,
            stop: vec!["</a>".into()],
            admissible_only: false,
        };
        let mut r1 = ChaCha8Rng::seed_from_u64(4);
        let mut r2 = ChaCha8Rng::seed_from_u64(4);
        let cached = m
            .generate(Batch::new(&p).with_images(&refs(&images)), &opts, &mut r1)
            .unwrap();
        let plain = m
            .generate_uncached(Batch::new(&p).with_images(&refs(&images)), &opts, &mut r2)
            .unwrap();
        // The sampled ids' log-probs from the cache equal an independent full forward pass.
        let acts: Vec<Vec<u32>> = cached.iter().map(|g| g.tokens.clone()).collect();
        let scored: Vec<Vec<f32>> = m
            .score(Batch::new(&p).with_images(&refs(&images)), &acts, false)
            .unwrap()
            .logprobs
            .to_vec2()
            .unwrap();
        for (i, (c, u)) in cached.iter().zip(&plain).enumerate() {
            assert_eq!(c.tokens, u.tokens);
            for (k, (a, b)) in c.logprobs.iter().zip(&u.logprobs).enumerate() {
                assert!((a - b).abs() < 1e-5, "row {i} token {k}: {a} vs {b}");
                assert!((a - scored[i][k]).abs() < 1e-4, "{a} vs {}", scored[i][k]);
            }
        }
        assert!(cached.iter().any(|g| g.tokens.len() > 1));
        // The prefill's logits (last prompt column of a full forward over the left-padded
        // prompts) give the first sampled token's log-prob.
        let logits: Vec<Vec<Vec<f32>>> = m
            .logits(Batch::new(&p).with_images(&refs(&images)), false)
            .unwrap()
            .to_vec3()
            .unwrap();
        for (i, g) in cached.iter().enumerate() {
            let last = logits[i].last().unwrap();
            let lp = last[g.tokens[0] as usize] - sample::log_sum_exp(last);
            assert!(
                (lp - g.logprobs[0]).abs() < 1e-4,
                "{lp} vs {}",
                g.logprobs[0]
            );
        }
    }
}

#[test]
fn the_image_changes_the_prediction_and_batching_does_not() {
    let m = tiny_vision(Positions::Rope, 23);
    let (p, images) = vision_batch(&m);
    let t = m.tokenizer().clone();
    let acts: Vec<Vec<u32>> = ["ab", "c", "dd", "e"].iter().map(|s| t.encode(s)).collect();
    let all: Vec<Vec<f32>> = m
        .score(Batch::new(&p).with_images(&refs(&images)), &acts, false)
        .unwrap()
        .logprobs
        .to_vec2()
        .unwrap();
    for i in 0..p.len() {
        let one: Vec<Vec<f32>> = m
            .score(
                Batch::new(&p[i..=i]).with_images(&refs(&images[i..=i])),
                &acts[i..=i],
                false,
            )
            .unwrap()
            .logprobs
            .to_vec2()
            .unwrap();
        for k in 0..acts[i].len() {
            assert!((all[i][k] - one[0][k]).abs() < 1e-5, "row {i} token {k}");
        }
    }
    let other = vec![Some(noise_image(12, 8, 99))];
    let changed: Vec<Vec<f32>> = m
        .score(
            Batch::new(&p[..1]).with_images(&refs(&other)),
            &acts[..1],
            false,
        )
        .unwrap()
        .logprobs
        .to_vec2()
        .unwrap();
    assert!((changed[0][0] - all[0][0]).abs() > 1e-6);
}

#[test]
fn image_inputs_that_do_not_fit_are_errors() {
    let m = tiny_vision(Positions::Rope, 24);
    let t = m.tokenizer().clone();
    let img = noise_image(12, 8, 5);
    let one = t.encode("a<image>");
    let acts = vec![t.encode("b")];
    // A placeholder not expanded to the image's 6 patches.
    let err = m
        .score(
            Batch::new(std::slice::from_ref(&one)).with_images(&[Some(&img)]),
            &acts,
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("1 image placeholder tokens"),
        "{err}"
    );
    // Patches that do not tile the image, and an image larger than the position tables.
    let odd = noise_image(10, 8, 6);
    let p = m.expand_image_tokens(&one, &odd);
    assert!(m
        .score(Batch::new(&[p]).with_images(&[Some(&odd)]), &acts, false)
        .is_err());
    let big = noise_image(16, 8, 7);
    let p = m.expand_image_tokens(&one, &big);
    assert!(m
        .score(Batch::new(&[p]).with_images(&[Some(&big)]), &acts, false)
        .is_err());
    // A text-only model refuses images; a text-only copy drops the encoder.
    let text = m.duplicate_text_only().unwrap();
    assert!(text.vision().is_none());
    assert!(!text
        .named_vars()
        .iter()
        .any(|(n, _)| n.starts_with("vision.")));
    let p = m.expand_image_tokens(&one, &img);
    assert!(text
        .score(
            Batch::new(std::slice::from_ref(&p)).with_images(&[Some(&img)]),
            &acts,
            false
        )
        .is_err());
    // Text rows of both models agree: the copy is the same language model.
    let q = vec![t.encode("abc")];
    let a = m.logits(Batch::new(&q), false).unwrap();
    let b = text.logits(Batch::new(&q), false).unwrap();
    assert_eq!(max_diff(&a, &b), 0.0);
}

// ---------------------------------------------------------------------------------------------
// LoRA and precision

fn all_targets() -> Vec<crate::graph::Projection> {
    crate::graph::Projection::NAMES
        .iter()
        .map(|n| crate::graph::from_name(n).unwrap())
        .collect()
}

fn lora_spec(rank: usize, dropout: f64) -> crate::graph::LoraSpec {
    crate::graph::LoraSpec {
        rank,
        alpha: 16.0,
        dropout,
        targets: all_targets(),
    }
}

/// A tiny Llama-shaped decoder (grouped-query attention, untied head) with drawn weights.
fn tiny_base(seed: u64) -> LanguageModel {
    let cfg = DecoderConfig {
        vocab: tok().vocab_size(),
        hidden: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 8,
        mlp: 48,
        context: 48,
        positions: PositionKind::Rope { theta: 10000.0 },
        rms_eps: 1e-5,
        qkv_bias: false,
        tie_embeddings: false,
        vision: None,
        qk_norm: false,
        rope_scaling: None,
    };
    LanguageModel::random(cfg, &tok(), &Device::Cpu, seed).unwrap()
}

/// `base`'s weights as the frozen base of a LoRA model.
fn lora_over(base: &LanguageModel, dtype: candle_core::DType, dropout: f64) -> LanguageModel {
    LanguageModel::with_lora(
        base.config().clone(),
        base.merged_weights().unwrap(),
        &tok(),
        &Device::Cpu,
        dtype,
        &lora_spec(4, dropout),
        7,
    )
    .unwrap()
}

/// Mean negative log-prob of `acts` after `prompts`, with gradients.
fn nll(m: &LanguageModel, prompts: &[Vec<u32>], acts: &[Vec<u32>]) -> Tensor {
    let s = m.score(Batch::new(prompts), acts, true).unwrap();
    let tokens = s.mask.sum_all().unwrap();
    (s.logprobs.sum_all().unwrap().neg().unwrap() / tokens.to_scalar::<f32>().unwrap() as f64)
        .unwrap()
}

fn lora_actions(t: &Tokenizer) -> Vec<Vec<u32>> {
    ["abc", "d", "eeee", "</a>"]
        .iter()
        .map(|s| t.encode(s))
        .collect()
}

#[test]
fn a_fresh_adapter_leaves_the_logits_exactly_unchanged() {
    let base = tiny_base(21);
    let m = lora_over(&base, candle_core::DType::F32, 0.0);
    let p = prompts(&tok());
    for grad in [false, true] {
        let a = base.logits(Batch::new(&p), grad).unwrap();
        let b = m.logits(Batch::new(&p), grad).unwrap();
        assert_eq!(max_diff(&a, &b), 0.0);
    }
    // 2 layers x 7 projections x (A, B).
    assert_eq!(m.vars().len(), 28);
}

#[test]
fn a_lora_step_trains_only_the_adapters_and_lowers_the_loss() {
    let base = tiny_base(22);
    let m = lora_over(&base, candle_core::DType::F32, 0.0);
    for (name, _) in m.named_vars() {
        assert!(
            name.contains(".lora_A.") || name.contains(".lora_B."),
            "{name}"
        );
    }
    let frozen_before: Vec<(String, Tensor)> = m
        .tensors()
        .into_iter()
        .filter(|(n, _)| !n.contains(".lora_"))
        .map(|(n, t)| (n, t.copy().unwrap()))
        .collect();
    let t = tok();
    let (p, acts) = (prompts(&t), lora_actions(&t));
    let mut opt = Optimizer::new(m.vars(), 1e-2, 0.0).unwrap();
    let first = nll(&m, &p, &acts).to_scalar::<f32>().unwrap();
    for _ in 0..5 {
        let loss = nll(&m, &p, &acts);
        opt.step(&loss, 1.0).unwrap();
    }
    let last = nll(&m, &p, &acts).to_scalar::<f32>().unwrap();
    assert!(last < first - 1e-3, "loss {first} -> {last}");
    let now: HashMap<String, Tensor> = m.tensors().into_iter().collect();
    for (name, before) in &frozen_before {
        assert_eq!(max_diff(before, &now[name]), 0.0, "{name} moved");
    }
}

#[test]
fn merged_weights_fold_each_adapter_into_its_base() {
    let base = tiny_base(23);
    let m = lora_over(&base, candle_core::DType::F32, 0.0);
    // Give every B a value, so that the fold is not trivially W.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (name, var) in m.named_vars() {
        if name.contains(".lora_B.") {
            let n = var.elem_count();
            let values: Vec<f32> = (0..n).map(|_| rng.random::<f32>() - 0.5).collect();
            var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let merged = m.merged_weights().unwrap();
    let base_weights = base.merged_weights().unwrap();
    let vars: HashMap<String, Tensor> = m
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let scale = 16.0 / 4.0;
    let name = "model.layers.1.mlp.down_proj.weight";
    let w: Vec<Vec<f32>> = base_weights[name].to_vec2().unwrap();
    let a: Vec<Vec<f32>> = vars["model.layers.1.mlp.down_proj.lora_A.weight"]
        .to_vec2()
        .unwrap();
    let b: Vec<Vec<f32>> = vars["model.layers.1.mlp.down_proj.lora_B.weight"]
        .to_vec2()
        .unwrap();
    let got: Vec<Vec<f32>> = merged[name].to_vec2().unwrap();
    for (o, row) in w.iter().enumerate() {
        for (i, &wv) in row.iter().enumerate() {
            let ba: f64 = (0..4).map(|r| b[o][r] as f64 * a[r][i] as f64).sum();
            let want = wv as f64 + scale * ba;
            assert!((got[o][i] as f64 - want).abs() < 1e-5, "[{o}, {i}]");
        }
    }
    // Same names as the base, no adapter left; the merged model computes what LoRA computes.
    let mut names: Vec<&String> = merged.keys().collect();
    let mut base_names: Vec<&String> = base_weights.keys().collect();
    names.sort();
    base_names.sort();
    assert_eq!(names, base_names);
    let plain =
        LanguageModel::from_weights(m.config().clone(), merged, &tok(), &Device::Cpu).unwrap();
    let p = prompts(&tok());
    let d = max_diff(
        &plain.logits(Batch::new(&p), false).unwrap(),
        &m.logits(Batch::new(&p), false).unwrap(),
    );
    assert!(d < 1e-4, "{d}");
}

#[test]
fn the_prm_reference_and_critic_share_one_base() {
    let base = tiny_base(24);
    let policy = lora_over(&base, candle_core::DType::BF16, 0.0);
    let prm = policy.duplicate().unwrap();
    let reference = policy.frozen_copy().unwrap();
    let mut critic = policy.duplicate().unwrap();
    critic.add_value_head(3).unwrap();
    // Clones of one tensor: one id, one storage.
    let storage = |t: &Tensor| t.id();
    let of = |m: &LanguageModel| -> HashMap<String, Tensor> { m.tensors().into_iter().collect() };
    let (p, r, c, q) = (of(&policy), of(&prm), of(&reference), of(&critic));
    let name = "model.layers.0.self_attn.q_proj.weight";
    assert_eq!(p[name].dtype(), candle_core::DType::BF16);
    for m in [&r, &c, &q] {
        assert_eq!(storage(&m[name]), storage(&p[name]));
    }
    // Bytes held by the four models together: the base once, four sets of adapters.
    let bytes = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for m in [&p, &r, &c, &q] {
        for t in m.values() {
            if seen.insert(t.id()) {
                total += bytes(t);
            }
        }
    }
    let base_bytes: usize = p
        .iter()
        .filter(|(n, _)| !n.contains(".lora_"))
        .map(|(_, t)| bytes(t))
        .sum();
    let adapter_bytes: usize = p
        .iter()
        .filter(|(n, _)| n.contains(".lora_"))
        .map(|(_, t)| bytes(t))
        .sum();
    let head_bytes = (32 + 1) * 4;
    assert_eq!(total, base_bytes + 4 * adapter_bytes + head_bytes);
    // Training the PRM's adapter moves neither the policy nor the reference.
    let t = tok();
    let (pr, acts) = (prompts(&t), lora_actions(&t));
    let before = policy.logits(Batch::new(&pr), false).unwrap();
    let mut opt = Optimizer::new(prm.vars(), 1e-2, 0.0).unwrap();
    opt.step(&nll(&prm, &pr, &acts), 1.0).unwrap();
    assert!(max_diff(&before, &prm.logits(Batch::new(&pr), false).unwrap()) > 0.0);
    assert_eq!(
        max_diff(&before, &policy.logits(Batch::new(&pr), false).unwrap()),
        0.0
    );
    assert_eq!(
        max_diff(&before, &reference.logits(Batch::new(&pr), false).unwrap()),
        0.0
    );
}

/// bf16 keeps 8 bits of mantissa: each weight and each activation cast to bf16 carries a
/// relative error up to 2^-9, and a dot product of n such terms a random-walk error of about
/// sqrt(n) 2^-9 of its typical term. Over the tiny model's few layers that stays within 2% of
/// the largest logit; an f32 mistake (a wrong cast, a dropped scale) would be of the logits'
/// own size.
fn assert_close_in_bf16(a: &Tensor, b: &Tensor) {
    let scale = a
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let d = max_diff(a, b);
    assert!(d <= 0.02 * scale, "max |diff| {d} vs max |logit| {scale}");
}

#[test]
fn half_precision_bases_give_close_logits_and_still_train() {
    let base = tiny_base(25);
    let p = prompts(&tok());
    let want = base.logits(Batch::new(&p), false).unwrap();
    for dtype in [candle_core::DType::BF16, candle_core::DType::F16] {
        let m = lora_over(&base, dtype, 0.0);
        assert_close_in_bf16(&want, &m.logits(Batch::new(&p), false).unwrap());
        let t = tok();
        let acts = lora_actions(&t);
        let mut opt = Optimizer::new(m.vars(), 1e-2, 0.0).unwrap();
        let first = nll(&m, &p, &acts).to_scalar::<f32>().unwrap();
        for _ in 0..5 {
            opt.step(&nll(&m, &p, &acts), 1.0).unwrap();
        }
        let last = nll(&m, &p, &acts).to_scalar::<f32>().unwrap();
        assert!(last < first - 1e-3, "{dtype:?}: loss {first} -> {last}");
        // Trained weights and optimiser state are f32 master weights.
        assert!(m
            .vars()
            .iter()
            .all(|v| v.dtype() == candle_core::DType::F32));
    }
    // Full fine-tuning in bf16: the policy trains in f32, its frozen reference is bf16.
    let full = base
        .duplicate()
        .unwrap()
        .with_precision(candle_core::DType::BF16);
    let reference = full.frozen_copy().unwrap();
    assert!(reference.vars().is_empty());
    assert!(reference
        .tensors()
        .iter()
        .all(|(_, t)| t.rank() < 2 || t.dtype() == candle_core::DType::BF16));
    assert_close_in_bf16(&want, &reference.logits(Batch::new(&p), false).unwrap());
}

#[test]
fn an_f32_frozen_reference_equals_its_policy_and_stays_put() {
    let policy = tiny(Positions::Learned, true, 26);
    let reference = policy.frozen_copy().unwrap();
    let t = tok();
    let p = prompts(&t);
    let before = policy.logits(Batch::new(&p), false).unwrap();
    assert_eq!(
        max_diff(&before, &reference.logits(Batch::new(&p), false).unwrap()),
        0.0
    );
    let mut opt = Optimizer::new(policy.vars(), 1e-2, 0.0).unwrap();
    opt.step(&nll(&policy, &p, &lora_actions(&t)), 1.0).unwrap();
    assert!(max_diff(&before, &policy.logits(Batch::new(&p), false).unwrap()) > 0.0);
    assert_eq!(
        max_diff(&before, &reference.logits(Batch::new(&p), false).unwrap()),
        0.0
    );
}

#[test]
fn lora_dropout_is_seeded_training_only_and_resumes_exactly() {
    let base = tiny_base(27);
    let t = tok();
    let (p, acts) = (prompts(&t), lora_actions(&t));
    let a = lora_over(&base, candle_core::DType::F32, 0.3);
    let b = lora_over(&base, candle_core::DType::F32, 0.3);
    // Non-zero B, so that dropout shows in the output.
    for m in [&a, &b] {
        for (name, var) in m.named_vars() {
            if name.contains(".lora_B.") {
                var.set(&var.ones_like().unwrap()).unwrap();
            }
        }
    }
    let score = |m: &LanguageModel, grad: bool| {
        m.score(Batch::new(&p), &acts, grad)
            .unwrap()
            .logprobs
            .detach()
    };
    // Scoring without gradients has no dropout: it is reproducible and differs from training.
    assert_eq!(max_diff(&score(&a, false), &score(&a, false)), 0.0);
    let trained = score(&a, true);
    assert!(max_diff(&trained, &score(&a, false)) > 1e-4);
    // Same seed, same masks; the next pass draws new ones.
    assert_eq!(max_diff(&trained, &score(&b, true)), 0.0);
    assert!(max_diff(&score(&a, true), &trained) > 1e-4);
    // The draw count travels with the adapters: a model loaded from `a` draws `a`'s next mask.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.safetensors");
    a.save(&path).unwrap();
    let saved = checkpoint::load_tensors(&path, &Device::Cpu).unwrap();
    assert!(saved
        .keys()
        .all(|k| k.contains(".lora_") || k == weights::LORA_DROPOUT_DRAWS));
    let mut c = lora_over(&base, candle_core::DType::F32, 0.3);
    c.load(&path).unwrap();
    assert_eq!(max_diff(&score(&a, true), &score(&c, true)), 0.0);
}

#[test]
fn a_frozen_product_equals_the_plain_product_and_its_input_gradient() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random::<f32>() - 0.5).collect() };
    let x =
        candle_core::Var::from_tensor(&Tensor::from_vec(draw(15), (3, 5), &Device::Cpu).unwrap())
            .unwrap();
    let w = Tensor::from_vec(draw(20), (4, 5), &Device::Cpu).unwrap();
    let c = Tensor::from_vec(draw(12), (3, 4), &Device::Cpu).unwrap();
    for dtype in [candle_core::DType::F32, candle_core::DType::BF16] {
        let w = w.to_dtype(dtype).unwrap();
        let plain = ops::matmul_t(x.as_tensor(), &w).unwrap();
        let frozen = ops::frozen_matmul_t(x.as_tensor(), &w).unwrap();
        assert_eq!(max_diff(&plain, &frozen), 0.0);
        let grads = |y: &Tensor| (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
        let (gp, gf) = (grads(&plain), grads(&frozen));
        assert_eq!(
            max_diff(gp.get(&x).unwrap(), gf.get(&x).unwrap()),
            0.0,
            "{dtype:?}"
        );
    }
}
