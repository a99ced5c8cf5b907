//! The weights of a [`LanguageModel`]: building them (seeded draw, named tensors, a Hugging
//! Face directory), copying them, the optimiser's view of them, and checkpoints.

use super::checkpoint;
use super::decoder::{self, param_specs, Decoder, DecoderConfig, PositionKind};
use super::error::ModelError;
use super::hf;
use super::layers::init_tensor;
use super::tokenizer::Tokenizer;
use super::vision::VisionConfig;
use crate::graph::{PolicySpec, Positions, TransformerSpec};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// A causal LM: policy, PRM, `theta_old` or frozen reference.
pub struct LanguageModel {
    pub(super) cfg: DecoderConfig,
    varmap: VarMap,
    /// Graph-recording view (Var tensors).
    tracked: Decoder,
    /// Detached view over the same storage.
    pub(super) detached: Decoder,
    pub(super) tokenizer: Tokenizer,
    pub(super) device: Device,
}

impl LanguageModel {
    /// Builds a fresh model from the recipe's spec; weights drawn from a ChaCha RNG seeded by
    /// `seed`. For `PolicySpec::Hf` the weights come from the directory and `seed` is unused.
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
            PolicySpec::Hf(h) => Self::from_hf(Path::new(&h.path), tokenizer, device),
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

    /// A model from named weights (names as in [`decoder::param_specs`]); extra names are ignored.
    pub fn from_weights(
        cfg: DecoderConfig,
        mut weights: HashMap<String, Tensor>,
        tokenizer: &Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let varmap = VarMap::new();
        let value_head = weights.contains_key(decoder::VALUE_WEIGHT);
        {
            let mut data = varmap.data().lock().expect("varmap lock");
            for p in param_specs(&cfg, value_head) {
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
                let t = t.to_dtype(DType::F32)?.to_device(device)?;
                data.insert(p.name, Var::from_tensor(&t)?);
            }
        }
        Self::from_varmap(cfg, varmap, tokenizer, device)
    }

    fn from_varmap(
        cfg: DecoderConfig,
        varmap: VarMap,
        tokenizer: &Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        let (tracked, detached) = views(&cfg, &varmap, device)?;
        Ok(LanguageModel {
            cfg,
            varmap,
            tracked,
            detached,
            tokenizer: tokenizer.clone(),
            device: device.clone(),
        })
    }

    /// Adds a value head (`value_head.weight` [1, hidden], `value_head.bias` [1]) drawn from a
    /// ChaCha RNG seeded by `seed`; a no-op if the model already has one.
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
        let (tracked, detached) = views(&self.cfg, &self.varmap, &self.device)?;
        self.tracked = tracked;
        self.detached = detached;
        Ok(())
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

    /// Deep copy with its own VarMap (PRM init, theta_old, frozen reference).
    pub fn duplicate(&self) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let src = self.varmap.data().lock().expect("varmap lock");
            let mut dst = varmap.data().lock().expect("varmap lock");
            for (name, var) in src.iter() {
                dst.insert(name.clone(), Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        Self::from_varmap(self.cfg.clone(), varmap, &self.tokenizer, &self.device)
    }

    /// A deep copy without the patch encoder: the same language model reading text only (the
    /// PRM that reads the text rendering of the states an image policy saw).
    pub fn duplicate_text_only(&self) -> Result<Self> {
        let mut cfg = self.cfg.clone();
        cfg.vision = None;
        let keep: std::collections::HashSet<String> = param_specs(&cfg, self.has_value_head())
            .into_iter()
            .map(|p| p.name)
            .collect();
        let varmap = VarMap::new();
        {
            let src = self.varmap.data().lock().expect("varmap lock");
            let mut dst = varmap.data().lock().expect("varmap lock");
            for (name, var) in src.iter().filter(|(name, _)| keep.contains(*name)) {
                dst.insert(name.clone(), Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        Self::from_varmap(cfg, varmap, &self.tokenizer, &self.device)
    }

    /// The patch encoder's settings, for models that read images.
    pub fn vision(&self) -> Option<&VisionConfig> {
        self.cfg.vision.as_ref()
    }

    /// Overwrite this model's weights with `other`'s (theta_old <- theta).
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

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The current weights by name, detached (what an export writes).
    pub fn merged_weights(&self) -> Result<HashMap<String, Tensor>> {
        Ok(self
            .named_vars()
            .into_iter()
            .map(|(name, var)| (name, var.as_tensor().detach()))
            .collect())
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

    /// Writes the weights as safetensors (tmp file, then rename) and the decoder config as JSON
    /// next to it (`<path>.json`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self
            .named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        checkpoint::save_tensors(&tensors, path)?;
        checkpoint::save_json(&self.cfg, &checkpoint::sidecar(path))
    }

    /// Overwrites the weights from a file written by [`Self::save`] (or HF safetensors with the
    /// same names). Every parameter must be present with its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut tensors = checkpoint::load_tensors(path, &self.device)?;
        let has_value = tensors.contains_key(decoder::VALUE_WEIGHT);
        if has_value && !self.has_value_head() {
            self.add_value_head(0)?;
        }
        for (name, var) in self.named_vars() {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| ModelError::Checkpoint {
                    path: path.display().to_string(),
                    reason: format!("missing parameter {name}"),
                })?;
            if t.dims() != var.dims() {
                return Err(ModelError::Checkpoint {
                    path: path.display().to_string(),
                    reason: format!(
                        "{name} has shape {:?}, model has {:?}",
                        t.dims(),
                        var.dims()
                    ),
                }
                .into());
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

/// The tracked and detached decoders over a VarMap.
fn views(cfg: &DecoderConfig, varmap: &VarMap, device: &Device) -> Result<(Decoder, Decoder)> {
    let guard = varmap.data().lock().expect("varmap lock");
    let data = &*guard;
    let value_head = data.contains_key(decoder::VALUE_WEIGHT);
    let get = |detach: bool| {
        move |name: &str| -> Result<Tensor> {
            let var = data.get(name).ok_or_else(|| ModelError::WeightMismatch {
                reason: format!("missing parameter {name}"),
            })?;
            Ok(if detach {
                var.as_tensor().detach()
            } else {
                var.as_tensor().clone()
            })
        }
    };
    let tracked = Decoder::new(cfg, value_head, device, &get(false))?;
    let detached = Decoder::new(cfg, value_head, device, &get(true))?;
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
