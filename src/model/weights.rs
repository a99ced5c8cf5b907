//! The weights of a [`LanguageModel`]: building them (seeded draw, named tensors, a Hugging
//! Face directory, LoRA adapters over a frozen base), their precision, copying them, the
//! optimiser's view of them, merging adapters, and checkpoints.

use super::checkpoint;
use super::decoder::{self, param_specs, Adapters, Decoder, DecoderConfig, PositionKind};
use super::error::ModelError;
use super::hf;
use super::lora::{self, Dropout};
use super::params::init_tensor;
use super::tokenizer::Tokenizer;
use super::vision::VisionConfig;
use crate::graph::{LoraSpec, PolicySpec, Positions, TransformerSpec, WeightDtype};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A causal LM: policy, PRM, `theta_old`, frozen reference or critic.
///
/// Its weights are of two kinds. Trained ones are f32 Vars in `varmap` (the master weights the
/// optimiser updates in place): every weight under full fine-tuning, only the adapters (and a
/// critic's value head) under LoRA. Frozen ones are plain tensors in `frozen`, matrices in the
/// model's precision and vectors in f32: under LoRA the pretrained base, shared through one
/// `Arc` by every model duplicated from this one; for a frozen copy, all of its weights.
pub struct LanguageModel {
    pub(super) cfg: DecoderConfig,
    varmap: VarMap,
    frozen: Arc<HashMap<String, Tensor>>,
    /// The precision of frozen matrices.
    dtype: DType,
    lora: Option<Lora>,
    /// Graph-recording view (Var tensors).
    tracked: Decoder,
    /// Detached view over the same storage.
    pub(super) detached: Decoder,
    pub(super) tokenizer: Tokenizer,
    pub(super) device: Device,
}

/// A model's LoRA settings and its dropout stream.
#[derive(Debug, Clone)]
struct Lora {
    spec: LoraSpec,
    dropout_seed: u64,
    /// Dropout masks drawn so far (saved with the adapters).
    dropout_draws: Arc<AtomicU64>,
}

/// The name under which a checkpoint of a LoRA model stores its dropout draw count.
pub const LORA_DROPOUT_DRAWS: &str = "lora.dropout_draws";

/// The dtype a recipe's precision names.
pub fn dtype_of(w: WeightDtype) -> DType {
    match w {
        WeightDtype::F32 => DType::F32,
        WeightDtype::Bf16 => DType::BF16,
        WeightDtype::F16 => DType::F16,
    }
}

/// A frozen copy of `t`: a matrix in `dtype`, a vector (norm gain, bias) in f32. Always new
/// storage, never a view of a Var the optimiser will overwrite.
fn frozen_tensor(t: &Tensor, dtype: DType) -> Result<Tensor> {
    let dtype = if t.rank() >= 2 { dtype } else { DType::F32 };
    if t.dtype() == dtype {
        t.copy()
    } else {
        t.to_dtype(dtype)
    }
}

impl LanguageModel {
    /// Builds a fresh model from the recipe's spec; weights drawn from a ChaCha RNG seeded by
    /// `seed`. For `PolicySpec::Hf` the weights come from the directory (or GGUF file) and
    /// `seed` draws the LoRA adapters, if any.
    pub fn from_spec(
        spec: &PolicySpec,
        tokenizer: &Tokenizer,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        match spec {
            PolicySpec::Transformer(t) => {
                let cfg = small_config(t, tokenizer.vocab_size());
                Self::random(cfg, tokenizer, device, seed)
            }
            PolicySpec::Hf(h) => {
                let path = Path::new(&h.path);
                let (cfg, weights) = hf::read_model(path, device)?;
                let dtype = dtype_of(h.dtype);
                let model = match &h.lora {
                    Some(lora) => {
                        Self::with_lora(cfg, weights, tokenizer, device, dtype, lora, seed)
                    }
                    None => Self::from_weights(cfg, weights, tokenizer, device)
                        .map(|m| m.with_precision(dtype)),
                };
                model.map_err(|e| hf::dir_error(path, super::error::one_line(&e)))
            }
        }
    }

    /// [`Self::from_spec`] with a patch encoder of `vision` (the small transformer only).
    pub fn from_spec_with_vision(
        spec: &PolicySpec,
        tokenizer: &Tokenizer,
        device: &Device,
        seed: u64,
        vision: Option<VisionConfig>,
    ) -> Result<Self> {
        match (spec, vision) {
            (_, None) => Self::from_spec(spec, tokenizer, device, seed),
            (PolicySpec::Transformer(t), Some(v)) => {
                let mut cfg = small_config(t, tokenizer.vocab_size());
                cfg.vision = Some(v);
                Self::random(cfg, tokenizer, device, seed)
            }
            (PolicySpec::Hf(_), Some(_)) => Err(ModelError::Image {
                reason: "a Hugging Face model has no patch encoder; use `policy transformer`"
                    .into(),
            }
            .into()),
        }
    }

    /// A model with freshly drawn weights for `cfg`.
    pub fn random(
        cfg: DecoderConfig,
        tokenizer: &Tokenizer,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let weights = param_specs(&cfg, false)
            .into_iter()
            .map(|p| {
                let t = init_tensor(&p.shape, p.init, &mut rng, device)?;
                Ok((p.name, t))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Self::from_weights(cfg, weights, tokenizer, device)
    }

    /// Loads the Hugging Face model in `dir` as a trainable f32 model on `device`.
    pub fn from_hf(path: &Path, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        let (cfg, weights) = hf::read_model(path, device)?;
        Self::from_weights(cfg, weights, tokenizer, device)
            .map_err(|e| hf::dir_error(path, super::error::one_line(&e)))
    }

    /// A model from named weights (names as in [`decoder::param_specs`]), every one trained in
    /// f32; extra names are ignored.
    pub fn from_weights(
        cfg: DecoderConfig,
        mut weights: HashMap<String, Tensor>,
        tokenizer: &Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let value_head = weights.contains_key(decoder::VALUE_WEIGHT);
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, t) in take_params(&cfg, value_head, &mut weights)? {
                let t = t.to_dtype(DType::F32)?.to_device(device)?;
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        Self::assemble(
            cfg,
            varmap,
            Arc::default(),
            DType::F32,
            None,
            tokenizer,
            device,
        )
    }

    /// A LoRA model: the named weights frozen in `dtype` (vectors in f32), and fresh adapters
    /// for `lora.targets` drawn from a ChaCha RNG seeded by `seed`, which also seeds the
    /// dropout masks. Only the adapters train.
    pub fn with_lora(
        cfg: DecoderConfig,
        mut weights: HashMap<String, Tensor>,
        tokenizer: &Tokenizer,
        device: &Device,
        dtype: DType,
        lora: &LoraSpec,
        seed: u64,
    ) -> Result<Self> {
        cfg.validate()?;
        let value_head = weights.contains_key(decoder::VALUE_WEIGHT);
        let frozen = take_params(&cfg, value_head, &mut weights)?
            .into_iter()
            .map(|(name, t)| Ok((name, frozen_tensor(&t.to_device(device)?, dtype)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let shape_of = |name: &str| frozen.get(name).and_then(|t| t.dims2().ok());
        let specs = lora::param_specs(cfg.layers, &lora.targets, lora.rank, &shape_of);
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for (name, t) in lora::draw(&specs, seed, device)? {
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let lora = Lora {
            spec: lora.clone(),
            dropout_seed: seed,
            dropout_draws: Arc::default(),
        };
        Self::assemble(
            cfg,
            varmap,
            Arc::new(frozen),
            dtype,
            Some(lora),
            tokenizer,
            device,
        )
    }

    /// The same model, with frozen copies made in `dtype` from now on.
    pub fn with_precision(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    fn assemble(
        cfg: DecoderConfig,
        varmap: VarMap,
        frozen: Arc<HashMap<String, Tensor>>,
        dtype: DType,
        lora: Option<Lora>,
        tokenizer: &Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        let (tracked, detached) = views(&cfg, &varmap, &frozen, lora.as_ref(), device)?;
        Ok(LanguageModel {
            cfg,
            varmap,
            frozen,
            dtype,
            lora,
            tracked,
            detached,
            tokenizer: tokenizer.clone(),
            device: device.clone(),
        })
    }

    /// Rebuilds both views after the set of weights changed.
    fn refresh_views(&mut self) -> Result<()> {
        let (tracked, detached) = views(
            &self.cfg,
            &self.varmap,
            &self.frozen,
            self.lora.as_ref(),
            &self.device,
        )?;
        self.tracked = tracked;
        self.detached = detached;
        Ok(())
    }

    /// Adds a value head (`value_head.weight` [1, hidden], `value_head.bias` [1]) drawn from a
    /// ChaCha RNG seeded by `seed`; a no-op if the model already has one. It trains (in f32)
    /// whether or not the rest of the model does.
    pub fn add_value_head(&mut self, seed: u64) -> Result<()> {
        if self.has_value_head() {
            return Ok(());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        {
            let mut data = self.varmap.data().lock().expect("varmap lock");
            for p in param_specs(&self.cfg, true)
                .into_iter()
                .filter(|p| p.name.starts_with("value_head."))
            {
                let t = init_tensor(&p.shape, p.init, &mut rng, &self.device)?;
                data.insert(p.name, Var::from_tensor(&t)?);
            }
        }
        self.refresh_views()
    }

    pub fn has_value_head(&self) -> bool {
        self.tracked.has_value_head()
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The LoRA settings, if the model trains adapters.
    pub fn lora(&self) -> Option<&LoraSpec> {
        self.lora.as_ref().map(|l| &l.spec)
    }

    /// The precision of the frozen weights and of frozen copies.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A copy with its own trained weights (PRM init, theta_old, critic): under LoRA its own
    /// adapters over the same frozen base (shared, not copied), otherwise a deep copy.
    pub fn duplicate(&self) -> Result<Self> {
        self.copy_keeping(|_| true, self.cfg.clone())
    }

    /// A copy without the patch encoder: the same language model reading text only (the
    /// PRM that reads the text rendering of the states an image policy saw).
    pub fn duplicate_text_only(&self) -> Result<Self> {
        let mut cfg = self.cfg.clone();
        cfg.vision = None;
        let keep: HashSet<String> = param_specs(&cfg, self.has_value_head())
            .into_iter()
            .map(|p| p.name)
            .collect();
        let adapters = self.lora.is_some();
        self.copy_keeping(
            |name| keep.contains(name) || (adapters && name.contains(".lora_")),
            cfg,
        )
    }

    /// A copy of the weights `keep` accepts, the trained ones copied, the frozen ones shared
    /// (the whole map when nothing is dropped).
    fn copy_keeping(&self, keep: impl Fn(&str) -> bool, cfg: DecoderConfig) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let src = self.varmap.data().lock().expect("varmap lock");
            let mut dst = varmap.data().lock().expect("varmap lock");
            for (name, var) in src.iter().filter(|(name, _)| keep(name)) {
                dst.insert(name.clone(), Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        let frozen = if self.frozen.keys().all(|name| keep(name)) {
            self.frozen.clone()
        } else {
            let kept = self.frozen.iter().filter(|(name, _)| keep(name));
            Arc::new(kept.map(|(k, t)| (k.clone(), t.clone())).collect())
        };
        let lora = self.lora.as_ref().map(|l| Lora {
            dropout_draws: Arc::new(AtomicU64::new(l.dropout_draws.load(Ordering::Relaxed))),
            ..l.clone()
        });
        Self::assemble(
            cfg,
            varmap,
            frozen,
            self.dtype,
            lora,
            &self.tokenizer,
            &self.device,
        )
    }

    /// A copy that never trains (the frozen reference). Under LoRA: the shared base and its
    /// own copy of the adapters. Otherwise every weight copied into a frozen tensor in the
    /// model's precision (bf16 halves the reference's memory).
    pub fn frozen_copy(&self) -> Result<Self> {
        if self.lora.is_some() {
            return self.duplicate();
        }
        let mut frozen = (*self.frozen).clone();
        for (name, var) in self.named_vars() {
            frozen.insert(name, frozen_tensor(var.as_tensor(), self.dtype)?);
        }
        Self::assemble(
            self.cfg.clone(),
            VarMap::new(),
            Arc::new(frozen),
            self.dtype,
            None,
            &self.tokenizer,
            &self.device,
        )
    }

    /// The patch encoder's settings, for models that read images.
    pub fn vision(&self) -> Option<&VisionConfig> {
        self.cfg.vision.as_ref()
    }

    /// Overwrite this model's trained weights with `other`'s (theta_old <- theta).
    pub fn copy_weights_from(&mut self, other: &Self) -> Result<()> {
        let src = other.varmap.data().lock().expect("varmap lock");
        let dst = self.varmap.data().lock().expect("varmap lock");
        if src.len() != dst.len() {
            return Err(ModelError::WeightMismatch {
                reason: format!("{} parameters vs {}", src.len(), dst.len()),
            }
            .into());
        }
        for (name, var) in dst.iter() {
            let from = src.get(name).ok_or_else(|| ModelError::WeightMismatch {
                reason: format!("source has no parameter {name}"),
            })?;
            var.set(from.as_tensor())?;
        }
        Ok(())
    }

    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Trainable variables sorted by name: a stable order across processes (the VarMap's own
    /// order is a hash order), so optimiser state saved in one run lines up on resume.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// `(name, var)` pairs sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Every weight tensor the model reads, trained and frozen, by name (adapters under their
    /// own names): for memory accounting. Frozen tensors shared between models are the same
    /// tensors (equal [`Tensor::id`]s, one storage).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        out.extend(self.frozen.iter().map(|(k, t)| (k.clone(), t.clone())));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The full named weights (as [`decoder::param_specs`] names them, value head included),
    /// each LoRA adapter folded into its projection: `W + alpha / rank * B A`, computed in f32
    /// and stored in `W`'s dtype (as PEFT's merge does). Weights are in the dtype they are held
    /// in: trained ones f32, frozen ones in the model's precision.
    pub fn merged_weights(&self) -> Result<HashMap<String, Tensor>> {
        let mut out: HashMap<String, Tensor> = (*self.frozen).clone();
        let vars = self.named_vars();
        let var = |name: &str| {
            vars.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_tensor().detach())
        };
        for (name, v) in &vars {
            if !name.contains(".lora_") {
                out.insert(name.clone(), v.as_tensor().detach());
            }
        }
        let Some(lora) = &self.lora else {
            return Ok(out);
        };
        let scale = lora.spec.alpha / lora.spec.rank as f64;
        for layer in 0..self.cfg.layers {
            for &p in &lora.spec.targets {
                let (a_name, b_name) = lora::adapter_names(layer, p);
                let (Some(a), Some(b)) = (var(&a_name), var(&b_name)) else {
                    continue;
                };
                let name = lora::weight_name(layer, p);
                let w = out.get(&name).ok_or_else(|| ModelError::WeightMismatch {
                    reason: format!("an adapter without its weight {name}"),
                })?;
                let merged = (w.to_dtype(DType::F32)? + (b.matmul(&a)? * scale)?)?;
                let merged = merged.to_dtype(w.dtype())?;
                out.insert(name, merged);
            }
        }
        Ok(out)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Max prompt + action tokens.
    pub fn context(&self) -> usize {
        self.cfg.context
    }

    /// The graph-recording weights with `grad`, the detached ones without.
    pub(super) fn view(&self, grad: bool) -> &Decoder {
        if grad {
            &self.tracked
        } else {
            &self.detached
        }
    }

    /// The weights a checkpoint holds: the trained ones, the frozen ones unless they are a
    /// LoRA base (which the recipe's model path gives back), and LoRA's dropout draw count.
    fn own_weights(&self) -> Result<HashMap<String, Tensor>> {
        let mut out: HashMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        match &self.lora {
            Some(lora) => {
                let draws = lora.dropout_draws.load(Ordering::Relaxed) as i64;
                out.insert(
                    LORA_DROPOUT_DRAWS.into(),
                    Tensor::new(&[draws], &Device::Cpu)?,
                );
            }
            None => out.extend(self.frozen.iter().map(|(k, t)| (k.clone(), t.clone()))),
        }
        Ok(out)
    }

    /// Writes the weights as safetensors (tmp file, then rename) and the decoder config as JSON
    /// next to it (`<path>.json`). Under LoRA only the adapters (and a value head) are written.
    pub fn save(&self, path: &Path) -> Result<()> {
        checkpoint::save_tensors(&self.own_weights()?, path)?;
        checkpoint::save_json(&self.cfg, &checkpoint::sidecar(path))
    }

    /// Overwrites the weights from a file written by [`Self::save`] (or HF safetensors with the
    /// same names). Every weight the model saves must be present with its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut tensors = checkpoint::load_tensors(path, &self.device)?;
        let has_value = tensors.contains_key(decoder::VALUE_WEIGHT);
        if has_value && !self.has_value_head() {
            self.add_value_head(0)?;
        }
        let own = self.own_weights()?;
        let mut take = |name: &str, like: &Tensor| -> Result<Tensor> {
            let t = tensors.remove(name).ok_or_else(|| ModelError::Checkpoint {
                path: path.display().to_string(),
                reason: format!("missing parameter {name}"),
            })?;
            if t.dims() != like.dims() {
                return Err(ModelError::Checkpoint {
                    path: path.display().to_string(),
                    reason: format!(
                        "{name} has shape {:?}, model has {:?}",
                        t.dims(),
                        like.dims()
                    ),
                }
                .into());
            }
            t.to_dtype(like.dtype())
        };
        for (name, var) in self.named_vars() {
            var.set(&take(&name, var.as_tensor())?)?;
        }
        if let Some(lora) = &self.lora {
            let draws = take(LORA_DROPOUT_DRAWS, &own[LORA_DROPOUT_DRAWS])?;
            let draws = draws.to_vec1::<i64>()?[0].max(0) as u64;
            lora.dropout_draws.store(draws, Ordering::Relaxed);
        } else if !self.frozen.is_empty() {
            // A new map: other models may share the old one.
            let frozen = self
                .frozen
                .iter()
                .map(|(name, t)| Ok((name.clone(), take(name, t)?)))
                .collect::<Result<HashMap<_, _>>>()?;
            self.frozen = Arc::new(frozen);
            self.refresh_views()?;
        }
        Ok(())
    }
}

/// The parameters of `cfg` taken out of `weights`, each checked for its shape.
fn take_params(
    cfg: &DecoderConfig,
    value_head: bool,
    weights: &mut HashMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    param_specs(cfg, value_head)
        .into_iter()
        .map(|p| {
            let t = weights
                .remove(&p.name)
                .ok_or_else(|| ModelError::WeightMismatch {
                    reason: format!("missing parameter {}", p.name),
                })?;
            if t.dims() != p.shape.as_slice() {
                return Err(ModelError::WeightMismatch {
                    reason: format!(
                        "{} has shape {:?}, expected {:?}",
                        p.name,
                        t.dims(),
                        p.shape
                    ),
                }
                .into());
            }
            Ok((p.name, t))
        })
        .collect()
}

/// The tracked and detached decoders over the trained weights (Vars, tracked or detached)
/// and the frozen ones; only the tracked view applies LoRA dropout.
fn views(
    cfg: &DecoderConfig,
    varmap: &VarMap,
    frozen: &HashMap<String, Tensor>,
    lora: Option<&Lora>,
    device: &Device,
) -> Result<(Decoder, Decoder)> {
    let guard = varmap.data().lock().expect("varmap lock");
    let data = &*guard;
    let value_head = data.contains_key(decoder::VALUE_WEIGHT);
    let get = |detach: bool| {
        move |name: &str| -> Result<Tensor> {
            if let Some(var) = data.get(name) {
                return Ok(if detach {
                    var.as_tensor().detach()
                } else {
                    var.as_tensor().clone()
                });
            }
            frozen.get(name).cloned().ok_or_else(|| {
                ModelError::WeightMismatch {
                    reason: format!("missing parameter {name}"),
                }
                .into()
            })
        }
    };
    let adapters = |train: bool| {
        lora.map(|l| Adapters {
            targets: &l.spec.targets,
            scale: l.spec.alpha / l.spec.rank as f64,
            dropout: (train && l.spec.dropout > 0.0).then(|| Dropout {
                p: l.spec.dropout,
                seed: l.dropout_seed,
                draws: l.dropout_draws.clone(),
            }),
        })
    };
    let tracked = Decoder::new(
        cfg,
        value_head,
        device,
        &get(false),
        adapters(true).as_ref(),
    )?;
    let detached = Decoder::new(
        cfg,
        value_head,
        device,
        &get(true),
        adapters(false).as_ref(),
    )?;
    Ok((tracked, detached))
}

/// Decoder config of the small transformer for a recipe's spec.
pub fn small_config(spec: &TransformerSpec, vocab: usize) -> DecoderConfig {
    DecoderConfig {
        vocab,
        hidden: spec.width,
        layers: spec.layers,
        heads: spec.heads,
        kv_heads: spec.heads,
        head_dim: spec.width.checked_div(spec.heads).unwrap_or(0),
        mlp: spec.mlp,
        context: spec.context,
        positions: match spec.positions {
            Positions::Rope => PositionKind::Rope { theta: 10000.0 },
            Positions::Learned => PositionKind::Learned,
        },
        rms_eps: 1e-5,
        qkv_bias: false,
        tie_embeddings: spec.tie_embeddings,
        vision: None,
        qk_norm: false,
        rope_scaling: None,
    }
}
