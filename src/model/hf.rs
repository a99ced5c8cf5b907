//! Reads pretrained decoder models for [`LanguageModel::from_hf`](super::LanguageModel::from_hf): a Hugging Face model
//! directory (`config.json`, `*.safetensors` single or sharded, `tokenizer.json`) of the Llama
//! (SmolLM2, Llama 3.x), Qwen2 / Qwen2.5 or Qwen3 family, or a GGUF file (see [`gguf`]). The
//! decoder is this crate's own differentiable module with HF weight names, so checkpoints load
//! and save without renaming. Every weight (bf16, f16, f32, or quantised GGUF) becomes f32 on
//! load: training and rollouts run in f32.

use super::chat::ChatTemplate;
use super::checkpoint;
use super::decoder::{DecoderConfig, Family, PositionKind, RopeScaling};
use super::error::ModelError;
use super::gguf::{self, GgufFile};
use super::tokenizer::Tokenizer;
use candle_core::{Device, Result, Tensor};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The fields of a `config.json` (transformers 4.x or 5.x) the decoder uses.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// Absent in some old Qwen2 exports, which this loader read first: taken as qwen2.
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Qwen3 and some Llamas give it; otherwise `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    /// transformers 4.x.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// transformers 4.x.
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    /// transformers 5.x: theta and scaling together.
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama and Qwen3: biases on q/k/v (and o, which the decoder lacks).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub use_sliding_window: bool,
}

/// `rope_scaling` (4.x) or `rope_parameters` (5.x).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    /// The older spelling of `rope_type`.
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
}

/// The rope scaling kinds the decoder implements, for error messages.
const SUPPORTED_ROPE: &str = "default, linear, llama3";

fn default_rms_eps() -> f64 {
    1e-6
}

impl RopeParameters {
    fn kind(&self) -> &str {
        self.rope_type
            .as_deref()
            .or(self.legacy_type.as_deref())
            .unwrap_or("default")
    }

    /// The decoder's scaling; `Err` names what is missing or unsupported.
    fn scaling(&self) -> std::result::Result<Option<RopeScaling>, String> {
        let need = |v: Option<f64>, name: &str| {
            v.ok_or_else(|| format!("{} rope scaling needs `{name}`", self.kind()))
        };
        match self.kind() {
            "default" => Ok(None),
            "linear" => Ok(Some(RopeScaling::Linear {
                factor: need(self.factor, "factor")?,
            })),
            "llama3" => Ok(Some(RopeScaling::Llama3 {
                factor: need(self.factor, "factor")?,
                low_freq_factor: need(self.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: need(self.high_freq_factor, "high_freq_factor")?,
                original_context: self.original_max_position_embeddings.ok_or_else(|| {
                    "llama3 rope scaling needs `original_max_position_embeddings`".to_string()
                })?,
            })),
            other => Err(format!(
                "rope scaling `{other}` is not supported (supported: {SUPPORTED_ROPE})"
            )),
        }
    }
}

impl HfConfig {
    pub fn family(&self) -> std::result::Result<Family, String> {
        match self.model_type.as_deref() {
            None => Ok(Family::Qwen2),
            Some(name) => Family::parse(name).ok_or_else(|| {
                format!(
                    "model_type `{name}` is not supported (supported: {})",
                    Family::SUPPORTED
                )
            }),
        }
    }

    /// The decoder's configuration, or why this model is not one the decoder implements.
    pub fn decoder_config(&self) -> std::result::Result<DecoderConfig, String> {
        let family = self.family()?;
        if let Some(act) = self.hidden_act.as_deref().filter(|&a| a != "silu") {
            return Err(format!("hidden_act `{act}` is not supported (only silu)"));
        }
        if self.mlp_bias {
            return Err("mlp_bias is not supported".into());
        }
        if self.use_sliding_window {
            return Err("sliding-window attention (use_sliding_window) is not supported".into());
        }
        // transformers 5 writes `rope_parameters`; 4.x `rope_theta` and `rope_scaling`.
        let rope = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        let theta = rope
            .and_then(|r| r.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10000.0);
        let rope_scaling = match rope {
            Some(r) => r.scaling()?,
            None => None,
        };
        let heads = self.num_attention_heads;
        Ok(DecoderConfig {
            vocab: self.vocab_size,
            hidden: self.hidden_size,
            layers: self.num_hidden_layers,
            heads,
            kv_heads: self.num_key_value_heads.unwrap_or(heads),
            head_dim: self
                .head_dim
                .unwrap_or_else(|| self.hidden_size.checked_div(heads).unwrap_or(0)),
            mlp: self.intermediate_size,
            context: self.max_position_embeddings,
            positions: PositionKind::Rope { theta },
            rms_eps: self.rms_norm_eps,
            qkv_bias: match family {
                Family::Qwen2 => true,
                Family::Llama | Family::Qwen3 => self.attention_bias.unwrap_or(false),
            },
            tie_embeddings: self.tie_word_embeddings,
            vision: None,
            qk_norm: family == Family::Qwen3,
            rope_scaling,
        })
    }
}

pub(super) fn dir_error(dir: &Path, reason: impl std::fmt::Display) -> candle_core::Error {
    ModelError::HfModel {
        path: dir.display().to_string(),
        reason: reason.to_string(),
    }
    .into()
}

/// Whether `path` names a GGUF file rather than a model directory.
pub fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
}

/// Reads `config.json`.
pub fn read_config(dir: &Path) -> Result<HfConfig> {
    let text = std::fs::read_to_string(dir.join("config.json"))
        .map_err(|e| dir_error(dir, format!("config.json: {e}")))?;
    serde_json::from_str(&text).map_err(|e| dir_error(dir, format!("config.json: {e}")))
}

/// The tokenizer of a model, with the special tokens its `tokenizer_config.json` names and
/// carrying the model's chat template when it ships one: the directory's `tokenizer.json`, or a
/// GGUF file's metadata.
pub fn tokenizer(path: &Path) -> Result<Tokenizer> {
    let tokenizer = if is_gguf(path) {
        GgufFile::open(path)?.tokenizer()?
    } else {
        Tokenizer::from_file_declaring(
            &path.join("tokenizer.json"),
            super::chat::declared_special_tokens(path),
        )?
    };
    let template = chat_template(path, &tokenizer)?;
    Ok(tokenizer.with_chat_template(template))
}

/// The chat template of a model directory or GGUF file, `None` when it ships none.
pub fn chat_template(path: &Path, tokenizer: &Tokenizer) -> Result<Option<ChatTemplate>> {
    let template = if is_gguf(path) {
        GgufFile::open(path)?.chat_template(tokenizer)
    } else {
        ChatTemplate::from_hf_dir(path)
    };
    Ok(template.map_err(ModelError::from)?)
}

/// The safetensors files of a directory: those `model.safetensors.index.json` names (sharded
/// checkpoints), else every `*.safetensors`, sorted by name.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let index_path = dir.join("model.safetensors.index.json");
    if index_path.is_file() {
        let index: Index = checkpoint::load_json(&index_path)?;
        let files: BTreeSet<&String> = index.weight_map.values().collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| dir_error(dir, e))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(dir_error(dir, "no *.safetensors file"));
    }
    Ok(files)
}

fn read_weights(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let mut weights = HashMap::new();
    for f in weight_files(dir)? {
        weights.extend(checkpoint::load_tensors(&f, device)?);
    }
    Ok(weights)
}

/// The checked decoder config and the named weights of the model at `path` (a directory or a
/// GGUF file), for [`LanguageModel::from_hf`](super::LanguageModel::from_hf).
pub fn read_model(
    path: &Path,
    device: &Device,
) -> Result<(DecoderConfig, HashMap<String, Tensor>)> {
    if is_gguf(path) {
        return gguf::read_model(path, device);
    }
    let dir = path;
    let cfg = read_config(dir)?
        .decoder_config()
        .map_err(|e| dir_error(dir, e))?;
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
    use candle_core::DType;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const WORDS: [&str; 10] = [
        "go", "left", "right", "up", "down", "<a>", "</a>", "box", "wall", "goal",
    ];
    const VOCAB: usize = 16; // 3 specials + 10 words, padded like real Qwen2 embeddings
    const HIDDEN: usize = 32;
    const HEADS: usize = 4;
    const KV_HEADS: usize = 2;
    const MLP: usize = 48;
    const LAYERS: usize = 2;
    const EPS: f64 = 1e-6;

    /// One tiny model of a family: what its config.json says and how it is stored.
    struct Arch {
        model_type: &'static str,
        head_dim: usize,
        bias: bool,
        qk_norm: bool,
        tie: bool,
        /// The config.json fields of the rotary embedding (transformers 4.x or 5.x spelling).
        rope_fields: String,
        /// The inverse frequency of each rotary pair, computed by the test itself.
        inv_freqs: Vec<f64>,
        dtype: DType,
        /// Number of safetensors shards (more than one: with `model.safetensors.index.json`).
        shards: usize,
    }

    fn plain_inv_freqs(theta: f64, head_dim: usize) -> Vec<f64> {
        (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
            .collect()
    }

    impl Arch {
        fn qwen2() -> Arch {
            Arch {
                model_type: "qwen2",
                head_dim: 8,
                bias: true,
                qk_norm: false,
                tie: false,
                rope_fields: r#""rope_theta": 1000000.0, "rope_scaling": null"#.into(),
                inv_freqs: plain_inv_freqs(1_000_000.0, 8),
                dtype: DType::F32,
                shards: 1,
            }
        }

        /// Llama 3.x rope scaling (transformers 4.x spelling), tied embeddings (SmolLM2-like).
        /// With head size 8 and theta 10^4 the wavelengths are 6.3, 63, 628 and 6283 positions:
        /// against an original context of 64 (bands at 16 and 64) one pair is kept, one
        /// interpolated, two divided by the factor.
        fn llama3() -> Arch {
            let (factor, low, high, old) = (8.0, 1.0, 4.0, 64.0);
            // transformers' `_compute_llama3_parameters`, as its torch.where steps.
            let inv_freqs = plain_inv_freqs(10000.0, 8)
                .into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let scaled = if wavelen > old / low { f / factor } else { f };
                    let smooth = (old / wavelen - low) / (high - low);
                    let medium = wavelen >= old / high && wavelen <= old / low;
                    if medium {
                        (1.0 - smooth) * scaled / factor + smooth * scaled
                    } else {
                        scaled
                    }
                })
                .collect();
            Arch {
                model_type: "llama",
                head_dim: 8,
                bias: false,
                qk_norm: false,
                tie: true,
                rope_fields: r#""rope_theta": 10000.0, "rope_scaling": {"rope_type": "llama3",
                    "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 64}"#
                    .into(),
                inv_freqs,
                dtype: DType::F32,
                shards: 1,
            }
        }

        /// Qwen3: q/k RMSNorm and a head size that is not width / heads, written by
        /// transformers 5 (`rope_parameters`) in bf16 over two shards.
        fn qwen3() -> Arch {
            Arch {
                model_type: "qwen3",
                head_dim: 16,
                bias: false,
                qk_norm: true,
                tie: false,
                rope_fields:
                    r#""rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}"#.into(),
                inv_freqs: plain_inv_freqs(1_000_000.0, 16),
                dtype: DType::BF16,
                shards: 2,
            }
        }

        fn config_json(&self) -> String {
            format!(
                r#"{{"architectures": ["X"], "model_type": "{}", "vocab_size": {VOCAB},
                "hidden_size": {HIDDEN}, "intermediate_size": {MLP}, "num_hidden_layers": {LAYERS},
                "num_attention_heads": {HEADS}, "num_key_value_heads": {KV_HEADS},
                "head_dim": {}, "attention_bias": {}, "max_position_embeddings": 64,
                {}, "rms_norm_eps": {EPS}, "tie_word_embeddings": {}, "torch_dtype": "float32",
                "use_sliding_window": false, "hidden_act": "silu"}}"#,
                self.model_type,
                self.head_dim,
                self.bias && self.model_type != "qwen2",
                self.rope_fields,
                self.tie
            )
        }

        /// HF parameter names and shapes, listed independently of the decoder.
        fn shapes(&self) -> Vec<(String, Vec<usize>)> {
            let (q_out, kv_out) = (HEADS * self.head_dim, KV_HEADS * self.head_dim);
            let mut v = vec![("model.embed_tokens.weight".to_string(), vec![VOCAB, HIDDEN])];
            for l in 0..LAYERS {
                let p = format!("model.layers.{l}");
                v.push((format!("{p}.input_layernorm.weight"), vec![HIDDEN]));
                for (proj, out) in [("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)] {
                    v.push((format!("{p}.self_attn.{proj}.weight"), vec![out, HIDDEN]));
                    if self.bias {
                        v.push((format!("{p}.self_attn.{proj}.bias"), vec![out]));
                    }
                }
                if self.qk_norm {
                    v.push((format!("{p}.self_attn.q_norm.weight"), vec![self.head_dim]));
                    v.push((format!("{p}.self_attn.k_norm.weight"), vec![self.head_dim]));
                }
                v.push((format!("{p}.self_attn.o_proj.weight"), vec![HIDDEN, q_out]));
                v.push((format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN]));
                v.push((format!("{p}.mlp.gate_proj.weight"), vec![MLP, HIDDEN]));
                v.push((format!("{p}.mlp.up_proj.weight"), vec![MLP, HIDDEN]));
                v.push((format!("{p}.mlp.down_proj.weight"), vec![HIDDEN, MLP]));
            }
            v.push(("model.norm.weight".into(), vec![HIDDEN]));
            if !self.tie {
                v.push(("lm_head.weight".into(), vec![VOCAB, HIDDEN]));
            }
            v
        }
    }

    fn config_json() -> String {
        Arch::qwen2().config_json()
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

    type Weights = HashMap<String, Vec<f32>>;

    /// Writes config.json, the safetensors (random weights, in `arch.dtype`, sharded as asked)
    /// and tokenizer.json to `dir`; returns the weights as stored, read back as f32.
    fn write_tiny(dir: &Path, arch: &Arch) -> Weights {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut host = Weights::new();
        let mut shards = vec![HashMap::new(); arch.shards];
        let mut weight_map = serde_json::Map::new();
        let shard_name = |k: usize| format!("model-{:05}-of-{:05}.safetensors", k + 1, arch.shards);
        for (i, (name, shape)) in arch.shapes().into_iter().enumerate() {
            let n: usize = shape.iter().product();
            let scale = if name.contains("norm") { 0.2 } else { 0.3 };
            let base = if name.contains("norm") { 1.0 } else { 0.0 };
            let v: Vec<f32> = (0..n)
                .map(|_| base + scale * (rng.random::<f32>() * 2.0 - 1.0))
                .collect();
            let t = Tensor::from_vec(v, shape, &Device::Cpu)
                .unwrap()
                .to_dtype(arch.dtype)
                .unwrap();
            let stored = t.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
            host.insert(name.clone(), stored.to_vec1().unwrap());
            let k = i % arch.shards;
            weight_map.insert(name.clone(), shard_name(k).into());
            shards[k].insert(name, t);
        }
        std::fs::write(dir.join("config.json"), arch.config_json()).unwrap();
        std::fs::write(dir.join("tokenizer.json"), tokenizer_json()).unwrap();
        if arch.shards == 1 {
            candle_core::safetensors::save(&shards[0], dir.join("model.safetensors")).unwrap();
            return host;
        }
        for (k, shard) in shards.iter().enumerate() {
            candle_core::safetensors::save(shard, dir.join(shard_name(k))).unwrap();
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        // A file the index does not list (a stale export): read, it would zero the final norm.
        let stray = HashMap::from([(
            "model.norm.weight".to_string(),
            Tensor::zeros(HIDDEN, arch.dtype, &Device::Cpu).unwrap(),
        )]);
        candle_core::safetensors::save(&stray, dir.join("zz-stale.safetensors")).unwrap();
        host
    }

    fn write_tiny_qwen2(dir: &Path) -> Weights {
        write_tiny(dir, &Arch::qwen2())
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

    fn rope(x: &mut [f64], pos: usize, inv_freqs: &[f64]) {
        let half = inv_freqs.len();
        for (i, f) in inv_freqs.iter().enumerate() {
            let angle = pos as f64 * f;
            let (x1, x2) = (x[i], x[i + half]);
            x[i] = x1 * angle.cos() - x2 * angle.sin();
            x[i + half] = x2 * angle.cos() + x1 * angle.sin();
        }
    }

    /// A plain, loop-by-loop forward in f64 for one sequence: logits at every position.
    fn reference_logits(arch: &Arch, w: &Weights, ids: &[u32]) -> Vec<Vec<f64>> {
        let hd = arch.head_dim;
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
                    if !arch.bias {
                        return y;
                    }
                    y.iter()
                        .zip(g(&p(&format!("self_attn.{name}.bias"))))
                        .map(|(a, &b)| a + b as f64)
                        .collect()
                };
                let mut q = proj("q_proj", HEADS * hd);
                let mut k = proj("k_proj", KV_HEADS * hd);
                for (heads, norm) in [(&mut q, "q_norm"), (&mut k, "k_norm")] {
                    for head in heads.chunks_mut(hd) {
                        if arch.qk_norm {
                            let normed = rmsnorm(head, g(&p(&format!("self_attn.{norm}.weight"))));
                            head.copy_from_slice(&normed);
                        }
                        rope(head, t, &arch.inv_freqs);
                    }
                }
                qs.push(q);
                ks.push(k);
                vs.push(proj("v_proj", KV_HEADS * hd));
            }
            for t in 0..xs.len() {
                let mut attn = vec![0.0; HEADS * hd];
                for head in 0..HEADS {
                    let kvh = head / (HEADS / KV_HEADS);
                    let q = &qs[t][head * hd..][..hd];
                    let scores: Vec<f64> = (0..=t)
                        .map(|s| {
                            let k = &ks[s][kvh * hd..][..hd];
                            q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                        })
                        .collect();
                    let m = scores.iter().copied().fold(f64::MIN, f64::max);
                    let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                    for (s, sc) in scores.iter().enumerate() {
                        let pr = (sc - m).exp() / z;
                        for d in 0..hd {
                            attn[head * hd + d] += pr * vs[s][kvh * hd + d];
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
        let head = if arch.tie {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        xs.iter()
            .map(|x| matvec(g(head), VOCAB, &rmsnorm(x, g("model.norm.weight"))))
            .collect()
    }

    /// Loads the tiny model of `arch` from `dir` through the recipe path and checks a padded
    /// batch of two prompts against the plain reference forward.
    fn assert_matches_reference(dir: &Path, arch: &Arch, host: &Weights) -> LanguageModel {
        let tok = tokenizer(dir).unwrap();
        let model = LanguageModel::from_spec(&spec(dir), &tok, &Device::Cpu, 0).unwrap();
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
            let reference = reference_logits(arch, host, ids);
            let pad = long.len() - ids.len();
            for (t, r) in reference.iter().enumerate() {
                for (a, b) in logits[row][pad + t].iter().zip(r) {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4,
                        "{} row {row} pos {t}: {a} vs {b}",
                        arch.model_type
                    );
                }
            }
        }
        model
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
            dtype: crate::graph::WeightDtype::F32,
            lora: None,
        })
    }

    #[test]
    fn tiny_qwen2_matches_a_plain_reference_forward() {
        let dir = tempfile::tempdir().unwrap();
        let host = write_tiny_qwen2(dir.path());
        assert_matches_reference(dir.path(), &Arch::qwen2(), &host);
    }

    #[test]
    fn tiny_llama_with_llama3_rope_scaling_matches_a_plain_reference_forward() {
        let dir = tempfile::tempdir().unwrap();
        let arch = Arch::llama3();
        let host = write_tiny(dir.path(), &arch);
        let model = assert_matches_reference(dir.path(), &arch, &host);
        let cfg = model.config();
        assert!(cfg.tie_embeddings && !cfg.qkv_bias && !cfg.qk_norm);
        assert_eq!(
            cfg.rope_scaling,
            Some(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_context: 64
            })
        );
    }

    #[test]
    fn tiny_qwen3_sharded_bf16_from_transformers_5_matches_a_plain_reference_forward() {
        let dir = tempfile::tempdir().unwrap();
        let arch = Arch::qwen3();
        let host = write_tiny(dir.path(), &arch);
        let model = assert_matches_reference(dir.path(), &arch, &host);
        let cfg = model.config();
        assert!(cfg.qk_norm && !cfg.qkv_bias && !cfg.tie_embeddings);
        assert_eq!(
            (cfg.head_dim, cfg.positions),
            (16, PositionKind::Rope { theta: 1e6 })
        );
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
        // One line, even under RUST_BACKTRACE=1 (the CLI prints it as it is).
        assert!(!err.contains('\n'), "{err}");
        std::fs::write(
            dir.path().join("config.json"),
            config_json().replace("qwen2", "gemma"),
        )
        .unwrap();
        let err = LanguageModel::from_hf(dir.path(), &tok, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model_type `gemma` is not supported (supported: llama, qwen2, qwen3)"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let yarn = r#""rope_theta": 1000000.0, "rope_scaling": {"type": "yarn", "factor": 4.0}"#;
        let config = Arch {
            rope_fields: yarn.into(),
            ..Arch::qwen2()
        }
        .config_json();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        let err = LanguageModel::from_hf(dir.path(), &tok, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(
                "rope scaling `yarn` is not supported (supported: default, linear, llama3)"
            ),
            "{err}"
        );
    }
}
