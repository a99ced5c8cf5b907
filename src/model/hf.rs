//! Reads a Hugging Face Qwen2 / Qwen2.5 model directory (`config.json`, `*.safetensors`,
//! `tokenizer.json`): the decoder config and named weights that
//! [`LanguageModel::from_hf`](super::LanguageModel::from_hf) builds a trainable model from.
//! The decoder is this crate's own differentiable module with HF weight names, so checkpoints
//! load and save without renaming.

use super::checkpoint;
use super::decoder::{DecoderConfig, PositionKind};
use super::error::ModelError;
use super::tokenizer::Tokenizer;
use candle_core::{Device, Result, Tensor};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// The fields of a Qwen2 `config.json` the decoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2Config {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    pub max_position_embeddings: usize,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
}

fn default_rope_theta() -> f64 {
    10000.0
}

fn default_rms_eps() -> f64 {
    1e-6
}

impl Qwen2Config {
    pub fn decoder_config(&self) -> DecoderConfig {
        let heads = self.num_attention_heads;
        DecoderConfig {
            vocab: self.vocab_size,
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads,
            kv_heads: self.num_key_value_heads.unwrap_or(heads),
            head_dim: self.hidden_size.checked_div(heads).unwrap_or(0),
            mlp: self.intermediate_size,
            context: self.max_position_embeddings,
            positions: PositionKind::Rope {
                theta: self.rope_theta,
            },
            rms_eps: self.rms_norm_eps,
            qkv_bias: true,
            tie_embeddings: self.tie_word_embeddings,
            vision: None,
        }
    }
}

pub(super) fn dir_error(dir: &Path, reason: impl std::fmt::Display) -> candle_core::Error {
    ModelError::HfModel {
        path: dir.display().to_string(),
        reason: reason.to_string(),
    }
    .into()
}

/// Reads and checks `config.json`.
pub fn read_config(dir: &Path) -> Result<Qwen2Config> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| dir_error(dir, format!("config.json: {e}")))?;
    let cfg: Qwen2Config =
        serde_json::from_str(&text).map_err(|e| dir_error(dir, format!("config.json: {e}")))?;
    match cfg.model_type.as_deref() {
        Some("qwen2") | None => {}
        Some(other) => {
            return Err(dir_error(
                dir,
                format!("model_type `{other}` is not supported (only qwen2)"),
            ))
        }
    }
    if cfg.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(dir_error(dir, "rope_scaling is not supported"));
    }
    Ok(cfg)
}

/// The directory's `tokenizer.json`.
pub fn tokenizer(dir: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(&dir.join("tokenizer.json"))
}

/// Every `*.safetensors` file of the directory, merged (sharded checkpoints), sorted by name.
fn read_weights(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let entries = std::fs::read_dir(dir).map_err(|e| dir_error(dir, e))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(dir_error(dir, "no *.safetensors file"));
    }
    let mut weights = HashMap::new();
    for f in files {
        weights.extend(checkpoint::load_tensors(&f, device)?);
    }
    Ok(weights)
}

/// The checked decoder config and the named weights of the model in `dir`.
pub fn read_model(dir: &Path, device: &Device) -> Result<(DecoderConfig, HashMap<String, Tensor>)> {
    let cfg = read_config(dir)?.decoder_config();
    cfg.validate().map_err(|e| dir_error(dir, e))?;
    let mut weights = read_weights(dir, device)?;
    if cfg.tie_embeddings {
        // Some exports store the tied head anyway; the decoder reads the embedding.
        weights.remove("lm_head.weight");
    }
    Ok((cfg, weights))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{HfSpec, PolicySpec, SamplingSpec};
    use crate::model::{Batch, LanguageModel};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const WORDS: [&str; 10] = [
        "go", "left", "right", "up", "down", "<a>", "</a>", "box", "wall", "goal",
    ];
    const VOCAB: usize = 16; // 3 specials + 10 words, padded like real Qwen2 embeddings
    const HIDDEN: usize = 32;
    const HEADS: usize = 4;
    const KV_HEADS: usize = 2;
    const HEAD_DIM: usize = 8;
    const MLP: usize = 48;
    const LAYERS: usize = 2;
    const THETA: f64 = 1_000_000.0;
    const EPS: f64 = 1e-6;

    fn config_json() -> String {
        format!(
            r#"{{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": {VOCAB},
            "hidden_size": {HIDDEN}, "intermediate_size": {MLP}, "num_hidden_layers": {LAYERS},
            "num_attention_heads": {HEADS}, "num_key_value_heads": {KV_HEADS},
            "max_position_embeddings": 64, "rope_theta": {THETA}, "rms_norm_eps": {EPS},
            "tie_word_embeddings": false, "torch_dtype": "float32", "use_sliding_window": false,
            "hidden_act": "silu", "rope_scaling": null}}"#
        )
    }

    fn tokenizer_json() -> String {
        let special = |id: usize, s: &str| {
            format!(
                r#"{{"id": {id}, "content": "{s}", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}"#
            )
        };
        let mut vocab = vec![
            r#""<|endoftext|>": 0"#.to_string(),
            r#""<|im_end|>": 1"#.to_string(),
            r#""<unk>": 2"#.to_string(),
        ];
        for (i, w) in WORDS.iter().enumerate() {
            vocab.push(format!(r#""{w}": {}"#, i + 3));
        }
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{}, {}], "normalizer": null,
            "pre_tokenizer": {{"type": "WhitespaceSplit"}}, "post_processor": null, "decoder": null,
            "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "<unk>"}}}}"#,
            special(0, "<|endoftext|>"),
            special(1, "<|im_end|>"),
            vocab.join(", ")
        )
    }

    /// HF parameter names and shapes of the tiny checkpoint, listed independently of the decoder.
    fn hf_shapes() -> Vec<(String, Vec<usize>)> {
        let mut v = vec![("model.embed_tokens.weight".to_string(), vec![VOCAB, HIDDEN])];
        for l in 0..LAYERS {
            let p = format!("model.layers.{l}");
            v.push((format!("{p}.input_layernorm.weight"), vec![HIDDEN]));
            v.push((
                format!("{p}.self_attn.q_proj.weight"),
                vec![HEADS * HEAD_DIM, HIDDEN],
            ));
            v.push((format!("{p}.self_attn.q_proj.bias"), vec![HEADS * HEAD_DIM]));
            v.push((
                format!("{p}.self_attn.k_proj.weight"),
                vec![KV_HEADS * HEAD_DIM, HIDDEN],
            ));
            v.push((
                format!("{p}.self_attn.k_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
            ));
            v.push((
                format!("{p}.self_attn.v_proj.weight"),
                vec![KV_HEADS * HEAD_DIM, HIDDEN],
            ));
            v.push((
                format!("{p}.self_attn.v_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
            ));
            v.push((
                format!("{p}.self_attn.o_proj.weight"),
                vec![HIDDEN, HEADS * HEAD_DIM],
            ));
            v.push((format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN]));
            v.push((format!("{p}.mlp.gate_proj.weight"), vec![MLP, HIDDEN]));
            v.push((format!("{p}.mlp.up_proj.weight"), vec![MLP, HIDDEN]));
            v.push((format!("{p}.mlp.down_proj.weight"), vec![HIDDEN, MLP]));
        }
        v.push(("model.norm.weight".into(), vec![HIDDEN]));
        v.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));
        v
    }

    type Weights = HashMap<String, Vec<f32>>;

    /// Writes config.json, model.safetensors (random weights) and tokenizer.json to `dir`.
    fn write_tiny_qwen2(dir: &Path) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut host = Weights::new();
        let mut tensors = HashMap::new();
        for (name, shape) in hf_shapes() {
            let n: usize = shape.iter().product();
            let scale = if name.contains("norm") { 0.2 } else { 0.3 };
            let base = if name.contains("norm") { 1.0 } else { 0.0 };
            let v: Vec<f32> = (0..n)
                .map(|_| base + scale * (rng.random::<f32>() * 2.0 - 1.0))
                .collect();
            tensors.insert(
                name.clone(),
                Tensor::from_vec(v.clone(), shape, &Device::Cpu).unwrap(),
            );
            host.insert(name, v);
        }
        std::fs::write(dir.join("config.json"), config_json()).unwrap();
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
        host
    }

    fn matvec(w: &[f32], rows: usize, x: &[f64]) -> Vec<f64> {
        (0..rows)
            .map(|r| (0..x.len()).map(|c| w[r * x.len() + c] as f64 * x[c]).sum())
            .collect()
    }

    fn rmsnorm(x: &[f64], w: &[f32]) -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + EPS).sqrt();
        x.iter().zip(w).map(|(v, &g)| v * r * g as f64).collect()
    }

    fn rope(x: &mut [f64], pos: usize) {
        let half = HEAD_DIM / 2;
        for i in 0..half {
            let angle = pos as f64 * THETA.powf(-2.0 * i as f64 / HEAD_DIM as f64);
            let (x1, x2) = (x[i], x[i + half]);
            x[i] = x1 * angle.cos() - x2 * angle.sin();
            x[i + half] = x2 * angle.cos() + x1 * angle.sin();
        }
    }

    /// A plain, loop-by-loop Qwen2 forward in f64 for one sequence: logits at every position.
    fn reference_logits(w: &Weights, ids: &[u32]) -> Vec<Vec<f64>> {
        let g = |n: &str| &w[n];
        let mut xs: Vec<Vec<f64>> = ids
            .iter()
            .map(|&id| {
                g("model.embed_tokens.weight")[id as usize * HIDDEN..][..HIDDEN]
                    .iter()
                    .map(|&v| v as f64)
                    .collect()
            })
            .collect();
        for l in 0..LAYERS {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            let mut qs = vec![];
            let mut ks = vec![];
            let mut vs = vec![];
            for (t, x) in xs.iter().enumerate() {
                let h = rmsnorm(x, g(&p("input_layernorm.weight")));
                let proj = |name: &str, rows: usize| -> Vec<f64> {
                    let y = matvec(g(&p(&format!("self_attn.{name}.weight"))), rows, &h);
                    y.iter()
                        .zip(g(&p(&format!("self_attn.{name}.bias"))))
                        .map(|(a, &b)| a + b as f64)
                        .collect()
                };
                let mut q = proj("q_proj", HEADS * HEAD_DIM);
                let mut k = proj("k_proj", KV_HEADS * HEAD_DIM);
                for head in q.chunks_mut(HEAD_DIM).chain(k.chunks_mut(HEAD_DIM)) {
                    rope(head, t);
                }
                qs.push(q);
                ks.push(k);
                vs.push(proj("v_proj", KV_HEADS * HEAD_DIM));
            }
            for t in 0..xs.len() {
                let mut attn = vec![0.0; HEADS * HEAD_DIM];
                for head in 0..HEADS {
                    let kvh = head / (HEADS / KV_HEADS);
                    let q = &qs[t][head * HEAD_DIM..][..HEAD_DIM];
                    let scores: Vec<f64> = (0..=t)
                        .map(|s| {
                            let k = &ks[s][kvh * HEAD_DIM..][..HEAD_DIM];
                            q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>()
                                / (HEAD_DIM as f64).sqrt()
                        })
                        .collect();
                    let m = scores.iter().copied().fold(f64::MIN, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                    for (s, sc) in scores.iter().enumerate() {
                        let pr = (sc - m).exp() / z;
                        for d in 0..HEAD_DIM {
                            attn[head * HEAD_DIM + d] += pr * vs[s][kvh * HEAD_DIM + d];
                        }
                    }
                }
                let o = matvec(g(&p("self_attn.o_proj.weight")), HIDDEN, &attn);
                let x: Vec<f64> = xs[t].iter().zip(&o).map(|(a, b)| a + b).collect();
                let h = rmsnorm(&x, g(&p("post_attention_layernorm.weight")));
                let gate = matvec(g(&p("mlp.gate_proj.weight")), MLP, &h);
                let up = matvec(g(&p("mlp.up_proj.weight")), MLP, &h);
                let act: Vec<f64> = gate
                    .iter()
                    .zip(&up)
                    .map(|(a, b)| a / (1.0 + (-a).exp()) * b)
                    .collect();
                let down = matvec(g(&p("mlp.down_proj.weight")), HIDDEN, &act);
                xs[t] = x.iter().zip(&down).map(|(a, b)| a + b).collect();
            }
        }
        xs.iter()
            .map(|x| {
                matvec(
                    g("lm_head.weight"),
                    VOCAB,
                    &rmsnorm(x, g("model.norm.weight")),
                )
            })
            .collect()
    }

    fn spec(dir: &Path) -> PolicySpec {
        PolicySpec::Hf(HfSpec {
            path: dir.display().to_string(),
            sampling: SamplingSpec {
                temperature: 1.0,
                top_p: 1.0,
                max_new_tokens: 4,
                stop: vec![],
                actions: crate::graph::ActionSpace::Free,
            },
        })
    }

    #[test]
    fn tiny_qwen2_matches_a_plain_reference_forward() {
        let dir = tempfile::tempdir().unwrap();
        let host = write_tiny_qwen2(dir.path());
        let tok = tokenizer(dir.path()).unwrap();
        let model = LanguageModel::from_spec(&spec(dir.path()), &tok, &Device::Cpu, 0).unwrap();
        assert_eq!(model.context(), 64);
        let short = tok.encode("go left");
        let long = tok.encode("<a> up down box wall </a> goal");
        assert_eq!(long.len(), 7);
        let logits: Vec<Vec<Vec<f32>>> = model
            .logits(Batch::new(&[short.clone(), long.clone()]), false)
            .unwrap()
            .to_vec3()
            .unwrap();
        for (row, ids) in [(0, &short), (1, &long)] {
            let reference = reference_logits(&host, ids);
            let pad = long.len() - ids.len();
            for (t, r) in reference.iter().enumerate() {
                for (a, b) in logits[row][pad + t].iter().zip(r) {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4,
                        "row {row} pos {t}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn tiny_qwen2_logprobs_survive_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_qwen2(dir.path());
        let tok = tokenizer(dir.path()).unwrap();
        assert_eq!(tok.stop_ids(), vec![1, 0]);
        assert_eq!(tok.pad_id(), 0);
        let model = LanguageModel::from_spec(&spec(dir.path()), &tok, &Device::Cpu, 0).unwrap();
        let prompts = vec![tok.encode("go"), tok.encode("<a> box wall")];
        let actions = vec![tok.encode("left </a>"), tok.encode("up")];
        let before = model
            .score(Batch::new(&prompts), &actions, false)
            .unwrap()
            .logprobs;
        // Saved weights keep the HF names: the output directory is itself a Qwen2 directory.
        let out = tempfile::tempdir().unwrap();
        model.save(&out.path().join("model.safetensors")).unwrap();
        std::fs::remove_file(crate::model::checkpoint::sidecar(
            &out.path().join("model.safetensors"),
        ))
        .unwrap();
        std::fs::write(out.path().join("config.json"), config_json()).unwrap();
        std::fs::write(out.path().join("tokenizer.json"), tokenizer_json()).unwrap();
        let again = LanguageModel::from_spec(&spec(out.path()), &tok, &Device::Cpu, 0).unwrap();
        let after = again
            .score(Batch::new(&prompts), &actions, false)
            .unwrap()
            .logprobs;
        let diff = (before - after)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0);
        // Sampling works with GQA and stops at the chat end tokens.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let opts = crate::model::SampleOptions::from(&SamplingSpec {
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 6,
            stop: vec![],
            actions: crate::graph::ActionSpace::Free,
        });
        let gens = again
            .generate(Batch::new(&prompts), &opts, &mut rng)
            .unwrap();
        let mut r2 = ChaCha8Rng::seed_from_u64(0);
        let plain = again
            .generate_uncached(Batch::new(&prompts), &opts, &mut r2)
            .unwrap();
        for (c, p) in gens.iter().zip(&plain) {
            assert_eq!(
                (&c.tokens, &c.text, c.stopped),
                (&p.tokens, &p.text, p.stopped)
            );
            for (a, b) in c.logprobs.iter().zip(&p.logprobs) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            if c.stopped {
                assert!(tok.stop_ids().contains(c.tokens.last().unwrap()));
            }
        }
    }

    #[test]
    fn unsupported_directories_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let tok = Tokenizer::chars("ab");
        let err = LanguageModel::from_hf(dir.path(), &tok, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(
            dir.path().join("config.json"),
            config_json().replace("qwen2", "llama"),
        )
        .unwrap();
        let err = LanguageModel::from_hf(dir.path(), &tok, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("llama"), "{err}");
    }
}
