//! The decoder-only transformer shared by the small model and the pretrained families (Llama,
//! Qwen2, Qwen3): its configuration, its parameter list (Hugging Face names), and a
//! differentiable forward pass over left-padded batches with an explicit KV cache.
//!
//! Layout: row `i` of a batch holds `pads[i]` pad tokens, then its real tokens. Real tokens get
//! positions `0, 1, ...` from their first real column; a query attends to keys at columns
//! `pads[i] ..= its own column` (pad queries attend only to themselves, so no row is all-masked).

use super::error::ModelError;
use super::layers::Linear;
use super::lora::{self, Adapter, Dropout};
use super::ops;
use super::params::{Init, ParamSpec};
use super::vision::{self, PatchEncoder, VisionConfig};
use crate::graph::Projection;
use candle_core::{DType, Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// How token positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PositionKind {
    /// Rotary embedding (HF rotate-half layout) with base `theta`.
    Rope { theta: f64 },
    /// A learned table `model.embed_positions.weight` of `context` rows.
    Learned,
}

/// The model families the decoder implements (HF `model_type`, GGUF `general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 2/3.x, SmolLM2: no biases.
    Llama,
    /// Qwen2 / Qwen2.5: q/k/v biases.
    Qwen2,
    /// Qwen3: per-head q/k RMSNorm, no biases.
    Qwen3,
}

impl Family {
    /// The names accepted, for error messages.
    pub const SUPPORTED: &'static str = "llama, qwen2, qwen3";

    pub fn parse(name: &str) -> Option<Family> {
        match name {
            "llama" => Some(Family::Llama),
            "qwen2" => Some(Family::Qwen2),
            "qwen3" => Some(Family::Qwen3),
            _ => None,
        }
    }
}

/// Sizes and options of a decoder. Serialised next to checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    pub head_dim: usize,
    /// SwiGLU hidden width.
    pub mlp: usize,
    /// Longest sequence in tokens (positions `0..context`).
    pub context: usize,
    pub positions: PositionKind,
    pub rms_eps: f64,
    /// Bias on the q/k/v projections (Qwen2 has one).
    pub qkv_bias: bool,
    pub tie_embeddings: bool,
    /// The patch encoder, for models that read images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision: Option<VisionConfig>,
    /// RMSNorm over each query and key head before the rotary embedding (Qwen3), with weights
    /// `self_attn.q_norm.weight` and `self_attn.k_norm.weight` of `head_dim`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub qk_norm: bool,
    /// Rescaled rotary frequencies (Llama 3.x long context); `None`: plain RoPE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
}

/// How the rotary frequencies `theta^(-2i/d)` are rescaled, as in Hugging Face `rope_scaling`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.x: low frequencies (wavelengths above `original_context / low_freq_factor`)
    /// divided by `factor`, high ones (below `original_context / high_freq_factor`) kept, and
    /// the band between interpolated smoothly.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_context: usize,
    },
}

impl RopeScaling {
    /// The rescaled inverse frequency.
    pub fn apply(&self, inv_freq: f64) -> f64 {
        match *self {
            RopeScaling::Linear { factor } => inv_freq / factor,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => {
                let old = original_context as f64;
                let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
                if wavelen < old / high_freq_factor {
                    inv_freq
                } else if wavelen > old / low_freq_factor {
                    inv_freq / factor
                } else {
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
                }
            }
        }
    }
}

impl DecoderConfig {
    /// Checks the sizes fit together.
    pub fn validate(&self) -> std::result::Result<(), ModelError> {
        let bad = |reason: String| Err(ModelError::Config { reason });
        if self.vocab == 0 || self.hidden == 0 || self.layers == 0 || self.heads == 0 {
            return bad("vocab, width, layers and heads must all be positive".into());
        }
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "{} heads cannot be grouped over {} key/value heads",
                self.heads, self.kv_heads
            ));
        }
        // The head size may differ from width / heads (Qwen3 projects to wider heads), but the
        // heads still split the width.
        if !self.hidden.is_multiple_of(self.heads) {
            return bad(format!(
                "width {} does not split over {} heads",
                self.hidden, self.heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head size {} must be even and positive",
                self.head_dim
            ));
        }
        if self.context == 0 || self.mlp == 0 {
            return bad("context and mlp width must be positive".into());
        }
        match self.rope_scaling {
            Some(RopeScaling::Linear { factor }) if factor <= 0.0 => {
                return bad(format!("rope scaling factor {factor} must be positive"));
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            }) if factor <= 0.0
                || low_freq_factor <= 0.0
                || high_freq_factor <= low_freq_factor
                || original_context == 0 =>
            {
                return bad(format!(
                    "llama3 rope scaling needs a positive factor ({factor}), 0 < \
                     low_freq_factor ({low_freq_factor}) < high_freq_factor \
                     ({high_freq_factor}) and a positive original context ({original_context})"
                ));
            }
            _ => {}
        }
        if let Some(v) = &self.vision {
            if v.patch == 0 || v.grid[0] == 0 || v.grid[1] == 0 {
                return bad("the patch size and the patch grid must be positive".into());
            }
            if v.image_token as usize >= self.vocab {
                return bad(format!(
                    "the image token {} is outside the vocabulary of {}",
                    v.image_token, self.vocab
                ));
            }
        }
        Ok(())
    }

    /// Number of scalar parameters (value head excluded).
    pub fn parameter_count(&self) -> usize {
        param_specs(self, false)
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }
}

pub const VALUE_WEIGHT: &str = "value_head.weight";
pub const VALUE_BIAS: &str = "value_head.bias";

fn layer_name(i: usize, rest: &str) -> String {
    format!("model.layers.{i}.{rest}")
}

/// Every parameter, in a fixed order (the order a fresh model draws them from its RNG).
/// Names follow Hugging Face Qwen2 so its safetensors load directly.
pub fn param_specs(cfg: &DecoderConfig, value_head: bool) -> Vec<ParamSpec> {
    let d = cfg.hidden;
    let std = 0.02;
    // GPT-2 style: residual-branch outputs scaled down with depth keeps the stream's variance flat.
    let out_std = std / (2.0 * cfg.layers as f64).sqrt();
    let p = |name: String, shape: Vec<usize>, init: Init| ParamSpec { name, shape, init };
    let mut specs = vec![p(
        "model.embed_tokens.weight".into(),
        vec![cfg.vocab, d],
        Init::Normal { std },
    )];
    if cfg.positions == PositionKind::Learned {
        specs.push(p(
            "model.embed_positions.weight".into(),
            vec![cfg.context, d],
            Init::Normal { std },
        ));
    }
    let q_out = cfg.heads * cfg.head_dim;
    let kv_out = cfg.kv_heads * cfg.head_dim;
    for i in 0..cfg.layers {
        specs.push(p(
            layer_name(i, "input_layernorm.weight"),
            vec![d],
            Init::Ones,
        ));
        for (proj, out) in [("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)] {
            let w = format!("self_attn.{proj}.weight");
            specs.push(p(layer_name(i, &w), vec![out, d], Init::Normal { std }));
            if cfg.qkv_bias {
                let b = format!("self_attn.{proj}.bias");
                specs.push(p(layer_name(i, &b), vec![out], Init::Zeros));
            }
        }
        if cfg.qk_norm {
            for norm in ["self_attn.q_norm.weight", "self_attn.k_norm.weight"] {
                specs.push(p(layer_name(i, norm), vec![cfg.head_dim], Init::Ones));
            }
        }
        specs.push(p(
            layer_name(i, "self_attn.o_proj.weight"),
            vec![d, q_out],
            Init::Normal { std: out_std },
        ));
        specs.push(p(
            layer_name(i, "post_attention_layernorm.weight"),
            vec![d],
            Init::Ones,
        ));
        for proj in ["gate_proj", "up_proj"] {
            let w = format!("mlp.{proj}.weight");
            specs.push(p(layer_name(i, &w), vec![cfg.mlp, d], Init::Normal { std }));
        }
        specs.push(p(
            layer_name(i, "mlp.down_proj.weight"),
            vec![d, cfg.mlp],
            Init::Normal { std: out_std },
        ));
    }
    specs.push(p("model.norm.weight".into(), vec![d], Init::Ones));
    if !cfg.tie_embeddings {
        specs.push(p(
            "lm_head.weight".into(),
            vec![cfg.vocab, d],
            Init::Normal { std },
        ));
    }
    if let Some(v) = &cfg.vision {
        specs.extend(vision::param_specs(v, d));
    }
    if value_head {
        specs.push(p(VALUE_WEIGHT.into(), vec![1, d], Init::Normal { std }));
        specs.push(p(VALUE_BIAS.into(), vec![1], Init::Zeros));
    }
    specs
}

#[derive(Debug, Clone)]
struct Layer {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// Per-head RMSNorm weights of queries and keys (Qwen3).
    qk_norm: Option<(Tensor, Tensor)>,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Keys and values of the columns seen so far, per layer, in buffers preallocated for
/// `capacity` columns (`[B, kv_heads, capacity, head_dim]`): a decode step writes one column in
/// place instead of copying the whole cache.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    pub fn new(layers: usize, capacity: usize) -> KvCache {
        KvCache {
            layers: vec![None; layers],
            len: 0,
            capacity,
        }
    }

    /// Columns already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps only the batch rows `rows` (in that order).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        Ok(())
    }

    /// Writes the new columns `k`, `v` (`[B, kv, t, hd]`) of one layer at `offset` and returns
    /// views of all `offset + t` cached columns.
    fn append(
        &mut self,
        layer: usize,
        offset: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, kv, t, hd) = k.dims4()?;
        if offset + t > self.capacity {
            return Err(ModelError::TooLong {
                needed: offset + t,
                context: self.capacity,
            }
            .into());
        }
        let slot = &mut self.layers[layer];
        if slot.is_none() {
            let zeros = Tensor::zeros((b, kv, self.capacity, hd), k.dtype(), k.device())?;
            *slot = Some((zeros.clone(), zeros.copy()?));
        }
        let (ck, cv) = slot.as_ref().expect("cache slot was just filled");
        ck.slice_set(&k.contiguous()?, 2, offset)?;
        cv.slice_set(&v.contiguous()?, 2, offset)?;
        Ok((ck.narrow(2, 0, offset + t)?, cv.narrow(2, 0, offset + t)?))
    }

    /// The whole key and value buffers of one layer (valid columns: `..len + new`).
    fn buffers(&self, layer: usize) -> Option<&(Tensor, Tensor)> {
        self.layers[layer].as_ref()
    }
}

/// The decoder's weights, either tracked Vars (training) or detached tensors (rollouts).
#[derive(Debug, Clone)]
pub struct Decoder {
    cfg: DecoderConfig,
    embed: Tensor,
    embed_positions: Option<Tensor>,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    value_head: Option<Linear>,
    vision: Option<PatchEncoder>,
    /// cos and sin tables `[context, head_dim / 2]` for rotary positions.
    rope: Option<(Tensor, Tensor)>,
    device: Device,
}

/// The LoRA adapters a decoder view attaches: which projections, their scale, and (in the
/// views that train) their dropout. The adapter matrices come from the same lookup as the
/// weights, under [`lora::adapter_names`].
#[derive(Debug, Clone)]
pub struct Adapters<'a> {
    pub targets: &'a [Projection],
    pub scale: f64,
    pub dropout: Option<Dropout>,
}

impl Decoder {
    /// Builds the decoder from a lookup of its parameters by name, with `adapters` on the
    /// projections they target.
    pub fn new(
        cfg: &DecoderConfig,
        value_head: bool,
        device: &Device,
        get: &dyn Fn(&str) -> Result<Tensor>,
        adapters: Option<&Adapters>,
    ) -> Result<Decoder> {
        let linear = |i: usize, p: Projection, bias: bool| -> Result<Linear> {
            let name = lora::module(p);
            let adapter = match adapters.filter(|a| a.targets.contains(&p)) {
                Some(a) => {
                    let (a_name, b_name) = lora::adapter_names(i, p);
                    Some(Adapter {
                        a: get(&a_name)?,
                        b: get(&b_name)?,
                        scale: a.scale,
                        dropout: a.dropout.clone(),
                    })
                }
                None => None,
            };
            Ok(Linear {
                weight: get(&lora::weight_name(i, p))?,
                bias: if bias {
                    Some(get(&layer_name(i, &format!("{name}.bias")))?)
                } else {
                    None
                },
                adapter,
            })
        };
        let mut layers = Vec::with_capacity(cfg.layers);
        for i in 0..cfg.layers {
            layers.push(Layer {
                input_norm: get(&layer_name(i, "input_layernorm.weight"))?,
                q: linear(i, Projection::Q, cfg.qkv_bias)?,
                k: linear(i, Projection::K, cfg.qkv_bias)?,
                v: linear(i, Projection::V, cfg.qkv_bias)?,
                o: linear(i, Projection::O, false)?,
                qk_norm: if cfg.qk_norm {
                    Some((
                        get(&layer_name(i, "self_attn.q_norm.weight"))?,
                        get(&layer_name(i, "self_attn.k_norm.weight"))?,
                    ))
                } else {
                    None
                },
                post_norm: get(&layer_name(i, "post_attention_layernorm.weight"))?,
                gate: linear(i, Projection::Gate, false)?,
                up: linear(i, Projection::Up, false)?,
                down: linear(i, Projection::Down, false)?,
            });
        }
        let embed = get("model.embed_tokens.weight")?;
        let lm_head = if cfg.tie_embeddings {
            embed.clone()
        } else {
            get("lm_head.weight")?
        };
        let rope = match cfg.positions {
            PositionKind::Rope { theta } => Some(rope_tables(cfg, theta, device)?),
            PositionKind::Learned => None,
        };
        Ok(Decoder {
            cfg: cfg.clone(),
            embed,
            embed_positions: match cfg.positions {
                PositionKind::Learned => Some(get("model.embed_positions.weight")?),
                PositionKind::Rope { .. } => None,
            },
            layers,
            norm: get("model.norm.weight")?,
            lm_head,
            value_head: if value_head {
                Some(Linear::new(get(VALUE_WEIGHT)?, Some(get(VALUE_BIAS)?)))
            } else {
                None
            },
            vision: match &cfg.vision {
                Some(v) => Some(PatchEncoder::new(v, get)?),
                None => None,
            },
            rope,
            device: device.clone(),
        })
    }

    /// The patch encoder, for models that read images.
    pub fn vision(&self) -> Option<&PatchEncoder> {
        self.vision.as_ref()
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    pub fn has_value_head(&self) -> bool {
        self.value_head.is_some()
    }

    /// Final-norm hidden states `[B, T, hidden]` of `tokens` `[B, T]` (u32), which occupy the
    /// columns `cache.len() ..` of a batch whose row `i` starts with `pads[i]` pad columns.
    /// With a cache, the new keys/values are appended to it.
    pub fn hidden(
        &self,
        tokens: &Tensor,
        pads: &[usize],
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.hidden_with(tokens, pads, cache, None)
    }

    /// [`Self::hidden`] with image patch embeddings substituted for placeholder tokens:
    /// `inject = (embeds [M, hidden], index [B * T])`, the token embeddings `x` becoming
    /// `[x; embeds].index_select(index)` (see [`vision::Injection::index`]).
    pub fn hidden_with(
        &self,
        tokens: &Tensor,
        pads: &[usize],
        mut cache: Option<&mut KvCache>,
        inject: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if pads.len() != b {
            candle_core::bail!("{} pad counts for a batch of {b} rows", pads.len());
        }
        let offset = cache.as_ref().map_or(0, |c| c.len);
        let positions = positions(pads, offset, t);
        if let Some(&max) = positions.iter().max() {
            if max as usize >= self.cfg.context {
                return Err(ModelError::TooLong {
                    needed: max as usize + 1,
                    context: self.cfg.context,
                }
                .into());
            }
        }
        let positions = Tensor::from_vec(positions, b * t, &self.device)?;
        // The residual stream is f32 whatever the precision of the (frozen) embedding table.
        let mut x = self
            .embed
            .index_select(&tokens.flatten_all()?, 0)?
            .to_dtype(DType::F32)?;
        if let Some((embeds, index)) = inject {
            x = Tensor::cat(&[&x, embeds], 0)?.index_select(index, 0)?;
        }
        if let Some(table) = &self.embed_positions {
            x = (x + table.index_select(&positions, 0)?.to_dtype(DType::F32)?)?;
        }
        let mut x = x.reshape((b, t, self.cfg.hidden))?;
        let rope = match &self.rope {
            Some((cos, sin)) => {
                let half = self.cfg.head_dim / 2;
                let cos = cos.index_select(&positions, 0)?.reshape((b, 1, t, half))?;
                let sin = sin.index_select(&positions, 0)?.reshape((b, 1, t, half))?;
                Some((cos, sin))
            }
            None => None,
        };
        // One new column per row against a CPU cache: the fused decode kernel masks by `pads`.
        let decode_step = cache.is_some() && t == 1 && self.device.is_cpu();
        let mask = if decode_step {
            None
        } else {
            attention_mask(pads, offset, t, &self.device)?
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = cache.as_deref_mut().map(|c| (c, i, offset));
            let attn = Attend {
                rope: rope.as_ref(),
                mask: mask.as_ref(),
                pads: decode_step.then_some(pads),
            };
            x = self.layer(layer, &x, &attn, kv)?;
        }
        if let Some(c) = cache {
            c.len += t;
        }
        ops::rms_norm(&x, &self.norm, self.cfg.rms_eps)
    }

    fn layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        attend: &Attend,
        cache: Option<(&mut KvCache, usize, usize)>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let h = ops::rms_norm(x, &layer.input_norm, cfg.rms_eps)?;
        let split = |y: Tensor, heads: usize| -> Result<Tensor> {
            y.reshape((b, t, heads, cfg.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let mut q = split(layer.q.forward(&h)?, cfg.heads)?;
        let mut k = split(layer.k.forward(&h)?, cfg.kv_heads)?;
        let v = split(layer.v.forward(&h)?, cfg.kv_heads)?;
        if let Some((q_norm, k_norm)) = &layer.qk_norm {
            q = ops::rms_norm(&q, q_norm, cfg.rms_eps)?;
            k = ops::rms_norm(&k, k_norm, cfg.rms_eps)?;
        }
        if let Some((cos, sin)) = attend.rope {
            q = ops::rope(&q, cos, sin)?;
            k = ops::rope(&k, cos, sin)?;
        }
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        let attn = match (cache, attend.pads) {
            (Some((cache, index, offset)), Some(pads)) => {
                cache.append(index, offset, &k, &v)?;
                let (ck, cv) = cache.buffers(index).expect("appended above");
                ops::decode_attention(&q, ck, cv, offset + 1, pads, scale)?
            }
            (cache, _) => {
                let (k, v) = match cache {
                    Some((cache, index, offset)) => cache.append(index, offset, &k, &v)?,
                    None => (k, v),
                };
                let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?);
                let scores = (q * scale)?.matmul(&k.t()?)?;
                let probs = match attend.mask {
                    Some(m) => ops::masked_softmax_last(&scores, m)?,
                    None => ops::softmax_last(&scores)?,
                };
                probs.matmul(&v)?
            }
        };
        let attn = attn
            .transpose(1, 2)?
            .reshape((b, t, cfg.heads * cfg.head_dim))?;
        let x = (x + layer.o.forward(&attn)?)?;
        let h = ops::rms_norm(&x, &layer.post_norm, cfg.rms_eps)?;
        let mlp = (layer.gate.forward(&h)?.silu()? * layer.up.forward(&h)?)?;
        x + layer.down.forward(&mlp)?
    }

    /// `[B, kv_heads, S, hd]` -> `[B, heads, S, hd]` for grouped-query attention.
    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let rep = self.cfg.heads / self.cfg.kv_heads;
        if rep == 1 {
            return Ok(x);
        }
        let (b, kv, s, hd) = x.dims4()?;
        x.unsqueeze(2)?
            .broadcast_as((b, kv, rep, s, hd))?
            .reshape((b, kv * rep, s, hd))
    }

    /// Next-token logits `[.., vocab]` from hidden states `[.., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Linear::new(self.lm_head.clone(), None).forward(hidden)
    }

    /// Value-head outputs `[..]` (last dim squeezed), if the model has a value head.
    pub fn values(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
        match &self.value_head {
            Some(head) => Ok(Some(head.forward(hidden)?.squeeze(D::Minus1)?)),
            None => Ok(None),
        }
    }
}

/// What attention needs beyond the layer input: rotary tables, the additive mask, and for fused
/// decode steps the left-pad counts.
struct Attend<'a> {
    rope: Option<&'a (Tensor, Tensor)>,
    mask: Option<&'a Tensor>,
    pads: Option<&'a [usize]>,
}

/// Position of every (row, column) of the new columns, row-major; pad columns get 0.
fn positions(pads: &[usize], offset: usize, t: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(pads.len() * t);
    for &pad in pads {
        for c in offset..offset + t {
            out.push(c.saturating_sub(pad) as u32);
        }
    }
    out
}

/// Additive mask `[B, 1, T, offset + T]`: 0 where a query may attend, a large negative number
/// elsewhere. `None` when nothing needs masking (one new column and no padding).
fn attention_mask(
    pads: &[usize],
    offset: usize,
    t: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    if t == 1 && pads.iter().all(|&p| p == 0) {
        return Ok(None);
    }
    let s = offset + t;
    let mut m = vec![0f32; pads.len() * t * s];
    for (row, &pad) in pads.iter().enumerate() {
        for qi in 0..t {
            let q_col = offset + qi;
            let base = (row * t + qi) * s;
            for k_col in 0..s {
                let allowed = k_col <= q_col && (k_col >= pad || k_col == q_col);
                if !allowed {
                    m[base + k_col] = -1e9;
                }
            }
        }
    }
    Ok(Some(Tensor::from_vec(m, (pads.len(), 1, t, s), device)?))
}

fn rope_tables(cfg: &DecoderConfig, theta: f64, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let mut cos = Vec::with_capacity(cfg.context * half);
    let mut sin = Vec::with_capacity(cfg.context * half);
    for pos in 0..cfg.context {
        for i in 0..half {
            let mut inv_freq = 1.0 / theta.powf(2.0 * i as f64 / cfg.head_dim as f64);
            if let Some(scaling) = &cfg.rope_scaling {
                inv_freq = scaling.apply(inv_freq);
            }
            let angle = pos as f64 * inv_freq;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (cfg.context, half), device)?,
        Tensor::from_vec(sin, (cfg.context, half), device)?,
    ))
}

/// A u32 token matrix `[rows, cols]` on `device`.
pub fn token_tensor(ids: Vec<u32>, rows: usize, cols: usize, device: &Device) -> Result<Tensor> {
    Tensor::from_vec(ids, (rows, cols), device)?.to_dtype(DType::U32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_start_at_first_real_column() {
        assert_eq!(positions(&[2, 0], 0, 4), vec![0, 0, 0, 1, 0, 1, 2, 3]);
        assert_eq!(positions(&[2, 0], 4, 1), vec![2, 4]);
    }

    #[test]
    fn mask_is_causal_and_hides_left_padding() {
        let m = attention_mask(&[1], 0, 3, &Device::Cpu).unwrap().unwrap();
        let m: Vec<Vec<f32>> = m.reshape((3, 3)).unwrap().to_vec2().unwrap();
        let open = |v: f32| v == 0.0;
        // pad query sees itself only; real queries see real keys up to themselves.
        assert_eq!(
            m[0].iter().map(|&v| open(v)).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!(
            m[1].iter().map(|&v| open(v)).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(
            m[2].iter().map(|&v| open(v)).collect::<Vec<_>>(),
            [false, true, true]
        );
        assert!(attention_mask(&[0, 0], 5, 1, &Device::Cpu)
            .unwrap()
            .is_none());
    }
}
