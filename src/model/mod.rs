//! Causal language models on candle: the small transformer trained from scratch, the Hugging
//! Face Qwen2 loader, tokenizers, batched KV-cache sampling, scoring and checkpoints.
//!
//! One type, [`LanguageModel`], serves as policy, PRM, `theta_old` and frozen reference. It keeps
//! two views of the same weights: Var-backed tensors that record the autograd graph (updates) and
//! detached tensors sharing the same storage (rollouts and `logp_old`: no graph, and they see
//! every optimiser step because the optimiser writes into the Vars in place).
//!
//! Batches are left-padded: row `i` holds pad columns, then its prompt, then (when scoring) its
//! action, right-padded. Positions count from each row's first real token and attention never
//! sees pad keys, so batched results equal unbatched ones. Sampling runs on the host from a
//! seeded ChaCha RNG; decode steps use a preallocated KV cache and a fused attention kernel, and
//! finished rows are dropped from the batch. Fused CPU kernels (softmax, masked softmax,
//! RMSNorm, log-prob + entropy) each define their own backward (see [`ops`]).
//!
//! Beyond the contract in MODEL_API.md: [`LanguageModel::vars`] (stable order for the
//! optimiser), [`LanguageModel::add_value_head`], [`LanguageModel::score_and_values`],
//! [`LanguageModel::logits`], [`LanguageModel::generate_uncached`] (the reference for tests),
//! [`Optimizer::step_with_grads`], [`device_for`], [`configure_threads`], [`hf::tokenizer`],
//! and [`bench::run`].

pub mod bench;
pub mod chat;
pub mod checkpoint;
pub mod choices;
pub mod decoder;
pub mod gguf;
pub mod hf;
pub mod ops;
pub mod optim;
pub mod sample;
pub mod tokenizer;
pub mod vision;

pub use choices::ChoiceSet;
pub use decoder::{DecoderConfig, KvCache, PositionKind};
pub use optim::Optimizer;
pub use tokenizer::{CharVocab, Tokenizer};
pub use vision::VisionConfig;

use crate::env::RgbImage;
use crate::graph::{PolicySpec, Positions, TransformerSpec};
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::VarMap;
use decoder::{param_specs, token_tensor, Decoder, Init};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// What can go wrong in this module besides candle's own errors.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model configuration: {reason}")]
    Config { reason: String },
    #[error("sequence needs {needed} positions but the model's context is {context}")]
    TooLong { needed: usize, context: usize },
    #[error("prompt {index} is empty: every prompt needs at least one token")]
    EmptyPrompt { index: usize },
    #[error("{prompts} prompts but {actions} action sequences")]
    BatchMismatch { prompts: usize, actions: usize },
    #[error("token id {id} is outside the model's vocabulary of {vocab}")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("cannot read tokenizer {path}: {reason}")]
    Tokenizer { path: String, reason: String },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    #[error("model directory {path}: {reason}")]
    HfModel { path: String, reason: String },
    #[error("GGUF file {path}: {reason}")]
    Gguf { path: String, reason: String },
    #[error(transparent)]
    ChatTemplate(#[from] chat::ChatTemplateError),
    #[error("device: {reason}")]
    Device { reason: String },
    #[error("weights differ: {reason}")]
    WeightMismatch { reason: String },
    #[error("image input: {reason}")]
    Image { reason: String },
    #[error(
        "prompt {index} holds {found} image placeholder tokens but its image has {expected} \
         patches (a prompt cut to fit the context loses image tokens: raise `context`)"
    )]
    ImageTokens {
        index: usize,
        found: usize,
        expected: usize,
    },
}

impl From<ModelError> for candle_core::Error {
    /// Without `Error::wrap`'s backtrace: these are the user's errors, not the program's.
    fn from(e: ModelError) -> Self {
        candle_core::Error::Wrapped(Box::new(e))
    }
}

/// The compute device for a recipe's `device` setting. CUDA needs the `cuda` cargo feature.
pub fn device_for(kind: crate::graph::Device) -> Result<Device> {
    match kind {
        crate::graph::Device::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        crate::graph::Device::Cuda => Device::new_cuda(0),
        #[cfg(not(feature = "cuda"))]
        crate::graph::Device::Cuda => Err(ModelError::Device {
            reason: "this build has no CUDA support; rebuild with `--features cuda`".into(),
        }
        .into()),
    }
}

/// Sets candle's CPU thread count for the process: `threads`, else `OPRL_THREADS`, else the
/// number of available cores. Call once at startup, before the first tensor op: candle reads
/// `RAYON_NUM_THREADS` / `CANDLE_NUM_THREADS` when it builds its pools. An explicit
/// `RAYON_NUM_THREADS` in the environment wins. Returns the count in effect.
pub fn configure_threads(threads: Option<usize>) -> usize {
    if let Some(n) = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    let n = threads
        .or_else(|| {
            std::env::var("OPRL_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
        })
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Edition 2021: set_var is safe; this runs before candle starts any thread.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    n
}

/// Sampling settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Generation of a row stops once its decoded text contains any of these.
    pub stop: Vec<String>,
    /// Whether the caller restricts each turn to the environment's listed answers (it passes
    /// their [`ChoiceSet`]s to [`LanguageModel::generate_among`] and the scoring calls).
    pub admissible_only: bool,
}

impl From<&crate::graph::SamplingSpec> for SampleOptions {
    fn from(s: &crate::graph::SamplingSpec) -> Self {
        SampleOptions {
            temperature: s.temperature,
            top_p: s.top_p,
            max_new_tokens: s.max_new_tokens,
            stop: s.stop.clone(),
            admissible_only: s.actions == crate::graph::ActionSpace::Admissible,
        }
    }
}

/// One sampled continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Sampled ids, including a final end-of-sequence id if one was drawn.
    pub tokens: Vec<u32>,
    /// Log-prob of each sampled id under the untempered policy (log softmax of raw logits).
    pub logprobs: Vec<f32>,
    /// `tokens` decoded, special tokens dropped.
    pub text: String,
    /// True when a stop string or an end-of-sequence id ended the row (false: length limit).
    pub stopped: bool,
}

/// Per-token scores of actions given prompts; right-padded on the action axis.
#[derive(Debug, Clone)]
pub struct Scored {
    /// `[B, A]` log-probs of the action tokens (0 on padding).
    pub logprobs: Tensor,
    /// `[B, A]` entropy of the next-token distribution at each action position.
    pub entropy: Tensor,
    /// `[B, A]` f32, 1 on real action tokens.
    pub mask: Tensor,
}

/// A causal LM: policy, PRM, `theta_old` or frozen reference.
pub struct LanguageModel {
    cfg: DecoderConfig,
    varmap: VarMap,
    /// Graph-recording view (Var tensors).
    tracked: Decoder,
    /// Detached view over the same storage.
    detached: Decoder,
    tokenizer: Tokenizer,
    device: Device,
}

/// A left-padded batch: `pads[i]` pad columns then row `i`'s tokens, `width` columns in all.
struct PaddedBatch {
    tokens: Tensor,
    pads: Vec<usize>,
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
            PolicySpec::Hf(h) => hf::load(Path::new(&h.path), tokenizer, device),
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

    /// The prompt ids `ids` with each image placeholder token expanded to one token per patch
    /// of `image` (unchanged for a model that reads no images).
    pub fn expand_image_tokens(&self, ids: &[u32], image: &RgbImage) -> Vec<u32> {
        match &self.cfg.vision {
            Some(v) => {
                vision::expand_placeholder(ids, v.image_token, vision::token_count(v, image))
            }
            None => ids.to_vec(),
        }
    }

    /// Encodes the images of a left-padded batch with `model`'s patch encoder; `None` for a
    /// text batch (`images` empty or all `None`).
    fn injection(
        &self,
        model: &Decoder,
        prompts: &[Vec<u32>],
        pads: &[usize],
        images: &[Option<&RgbImage>],
    ) -> Result<Option<vision::Injection>> {
        if images.iter().all(Option::is_none) {
            return Ok(None);
        }
        let Some(encoder) = model.vision() else {
            return Err(ModelError::Image {
                reason: "this model has no patch encoder and cannot read images".into(),
            }
            .into());
        };
        vision::Injection::build(encoder, prompts, pads, images, &self.device)
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

    /// Max prompt + action tokens.
    pub fn context(&self) -> usize {
        self.cfg.context
    }

    fn view(&self, grad: bool) -> &Decoder {
        if grad {
            &self.tracked
        } else {
            &self.detached
        }
    }

    fn check_tokens(&self, seqs: &[Vec<u32>]) -> Result<()> {
        for &id in seqs.iter().flatten() {
            if id as usize >= self.cfg.vocab {
                return Err(ModelError::TokenOutOfRange {
                    id,
                    vocab: self.cfg.vocab,
                }
                .into());
            }
        }
        Ok(())
    }

    /// Left-pads `prompts` to a common width and appends `suffix_cols` columns from `suffix`
    /// (right-padded with the pad id).
    fn pad_batch(
        &self,
        prompts: &[Vec<u32>],
        suffixes: Option<(&[Vec<u32>], usize)>,
    ) -> Result<PaddedBatch> {
        for (index, p) in prompts.iter().enumerate() {
            if p.is_empty() {
                return Err(ModelError::EmptyPrompt { index }.into());
            }
        }
        let pad_id = self.tokenizer.pad_id();
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let extra = suffixes.map_or(0, |(_, n)| n);
        let mut ids = Vec::with_capacity(prompts.len() * (width + extra));
        let mut pads = Vec::with_capacity(prompts.len());
        for (i, p) in prompts.iter().enumerate() {
            let pad = width - p.len();
            pads.push(pad);
            ids.extend(std::iter::repeat_n(pad_id, pad));
            ids.extend_from_slice(p);
            if let Some((suffix, n)) = suffixes {
                let s = &suffix[i][..suffix[i].len().min(n)];
                ids.extend_from_slice(s);
                ids.extend(std::iter::repeat_n(pad_id, n - s.len()));
            }
        }
        Ok(PaddedBatch {
            tokens: token_tensor(ids, prompts.len(), width + extra, &self.device)?,
            pads,
        })
    }

    /// One batched generation with a KV cache over prompts of different lengths. Detached.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Generation>> {
        self.generate_impl(prompts, &[], &[], opts, rng, true)
    }

    /// [`Self::generate`] for prompts with images: `images[i]` (if any) fills the placeholder
    /// tokens of `prompts[i]` (see [`Self::expand_image_tokens`]); the prefill runs on the patch
    /// embeddings, the decode steps on the KV cache.
    pub fn generate_with_images(
        &self,
        prompts: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Generation>> {
        self.generate_impl(prompts, images, &[], opts, rng, true)
    }

    /// [`Self::generate_with_images`] (`images` may be empty) where row `i` may only produce one
    /// of the answers in `choices[i]` (`None` or an empty `choices`: free). The log-probs are
    /// those of the restricted distribution, as [`Self::score_among`] computes them.
    pub fn generate_among(
        &self,
        prompts: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        choices: &[Option<&ChoiceSet>],
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Generation>> {
        self.generate_impl(prompts, images, choices, opts, rng, true)
    }

    /// The same sampling as [`Self::generate_with_images`] (`images` may be empty for text
    /// prompts) but recomputing every step from scratch without a cache: the reference the
    /// cached path is tested against.
    pub fn generate_uncached(
        &self,
        prompts: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Generation>> {
        self.generate_impl(prompts, images, &[], opts, rng, false)
    }

    fn generate_impl(
        &self,
        prompts: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        choices: &[Option<&ChoiceSet>],
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
        use_cache: bool,
    ) -> Result<Vec<Generation>> {
        let mut out: Vec<Generation> = prompts
            .iter()
            .map(|_| Generation {
                tokens: vec![],
                logprobs: vec![],
                text: String::new(),
                stopped: false,
            })
            .collect();
        if prompts.is_empty() || opts.max_new_tokens == 0 {
            return Ok(out);
        }
        self.check_tokens(prompts)?;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if longest + opts.max_new_tokens > self.cfg.context {
            return Err(ModelError::TooLong {
                needed: longest + opts.max_new_tokens,
                context: self.cfg.context,
            }
            .into());
        }
        let model = &self.detached;
        let stop_ids = self.tokenizer.stop_ids();
        let batch = self.pad_batch(prompts, None)?;
        let injection = self.injection(model, prompts, &batch.pads, images)?;
        let mut pads = batch.pads;
        // Original row index of each row still generating.
        let mut active: Vec<usize> = (0..prompts.len()).collect();
        let mut cache = KvCache::new(self.cfg.layers, longest + opts.max_new_tokens);
        let mut prefix = batch.tokens; // uncached path: every column so far
        let hidden = if use_cache {
            self.hidden_of(
                model,
                &prefix,
                &pads,
                Some(&mut cache),
                injection.as_ref(),
                &active,
            )?
        } else {
            self.hidden_of(model, &prefix, &pads, None, injection.as_ref(), &active)?
        };
        let mut logits = last_logits(model, &hidden)?;
        for step in 0..opts.max_new_tokens {
            let mut rows: Vec<Vec<f32>> = logits.to_vec2()?;
            let mut next = Vec::with_capacity(active.len());
            let mut keep = Vec::with_capacity(active.len());
            for (r, &orig) in active.iter().enumerate() {
                let row_choices = choices.get(orig).copied().flatten();
                if let Some(c) = row_choices {
                    c.mask_logits(&out[orig].tokens, &mut rows[r]);
                }
                let d = sample::draw(&rows[r], opts.temperature, opts.top_p, rng);
                let g = &mut out[orig];
                g.tokens.push(d.token);
                g.logprobs.push(d.logprob);
                let text = self.tokenizer.decode(&g.tokens);
                let stop = stop_ids.contains(&d.token)
                    || row_choices.is_some_and(|c| c.is_finished(&g.tokens))
                    || opts
                        .stop
                        .iter()
                        .any(|s| !s.is_empty() && text.contains(s.as_str()));
                g.text = text;
                if stop {
                    g.stopped = true;
                } else {
                    keep.push(r);
                    next.push(d.token);
                }
            }
            if keep.is_empty() || step + 1 == opts.max_new_tokens {
                break;
            }
            if keep.len() < active.len() {
                let idx = Tensor::from_vec(
                    keep.iter().map(|&r| r as u32).collect::<Vec<_>>(),
                    keep.len(),
                    &self.device,
                )?;
                if use_cache {
                    cache.select_rows(&idx)?;
                } else {
                    prefix = prefix.index_select(&idx, 0)?;
                }
                active = keep.iter().map(|&r| active[r]).collect();
                pads = keep.iter().map(|&r| pads[r]).collect();
            }
            let new = token_tensor(next, active.len(), 1, &self.device)?;
            let hidden = if use_cache {
                model.hidden(&new, &pads, Some(&mut cache))?
            } else {
                prefix = Tensor::cat(&[&prefix, &new], 1)?;
                self.hidden_of(model, &prefix, &pads, None, injection.as_ref(), &active)?
            };
            logits = last_logits(model, &hidden)?;
        }
        Ok(out)
    }

    /// `model`'s hidden states of a left-padded batch whose rows are the original rows `active`,
    /// with the patch embeddings of `injection` in place of placeholder tokens.
    fn hidden_of(
        &self,
        model: &Decoder,
        tokens: &Tensor,
        pads: &[usize],
        cache: Option<&mut KvCache>,
        injection: Option<&vision::Injection>,
        active: &[usize],
    ) -> Result<Tensor> {
        match injection {
            Some(inj) => {
                let index = inj.index(active, tokens.dim(1)?, &self.device)?;
                model.hidden_with(tokens, pads, cache, Some((&inj.embeds, &index)))
            }
            None => model.hidden(tokens, pads, cache),
        }
    }

    /// Hidden states at the positions that predict each action token: `[B, A, hidden]`, plus the
    /// padded action ids `[B, A]` and the mask.
    fn action_hidden(
        &self,
        prompts: &[Vec<u32>],
        actions: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        grad: bool,
    ) -> Result<(Tensor, Vec<u32>, Vec<f32>, usize)> {
        if prompts.len() != actions.len() {
            return Err(ModelError::BatchMismatch {
                prompts: prompts.len(),
                actions: actions.len(),
            }
            .into());
        }
        self.check_tokens(prompts)?;
        self.check_tokens(actions)?;
        let a = actions.iter().map(Vec::len).max().unwrap_or(0);
        let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
        // The last action token predicts nothing we score: feed one column fewer.
        let cols = a.saturating_sub(1);
        let batch = self.pad_batch(prompts, Some((actions, cols)))?;
        let model = self.view(grad);
        let injection = self.injection(model, prompts, &batch.pads, images)?;
        let all: Vec<usize> = (0..prompts.len()).collect();
        let hidden = self.hidden_of(
            model,
            &batch.tokens,
            &batch.pads,
            None,
            injection.as_ref(),
            &all,
        )?;
        // Column p-1+k predicts action token k.
        let hidden = hidden.narrow(1, p - 1, a)?;
        let mut ids = Vec::with_capacity(actions.len() * a);
        let mut mask = Vec::with_capacity(actions.len() * a);
        for act in actions {
            for k in 0..a {
                ids.push(act.get(k).copied().unwrap_or(0));
                mask.push(if k < act.len() { 1.0 } else { 0.0 });
            }
        }
        Ok((hidden, ids, mask, a))
    }

    /// Log-probs (and entropy) of `actions[i]` given `prompts[i]`, batched. With `grad` the result
    /// carries the autograd graph to the Vars; without, it is computed on detached weights.
    pub fn score(&self, prompts: &[Vec<u32>], actions: &[Vec<u32>], grad: bool) -> Result<Scored> {
        self.score_with_images(prompts, actions, &[], grad)
    }

    /// [`Self::score`] for prompts with images (`images` empty: none), batched the same way.
    pub fn score_with_images(
        &self,
        prompts: &[Vec<u32>],
        actions: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        grad: bool,
    ) -> Result<Scored> {
        self.score_among(prompts, actions, images, &[], grad)
    }

    /// [`Self::score_with_images`] where `actions[i]` was drawn from the answers `choices[i]`
    /// (`None` or an empty `choices`: free): log-probs and entropies of the restricted
    /// distribution, the one [`Self::generate_among`] samples from.
    pub fn score_among(
        &self,
        prompts: &[Vec<u32>],
        actions: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        choices: &[Option<&ChoiceSet>],
        grad: bool,
    ) -> Result<Scored> {
        let b = prompts.len();
        if b == 0 {
            let z = Tensor::zeros((0, 0), DType::F32, &self.device)?;
            return Ok(Scored {
                logprobs: z.clone(),
                entropy: z.clone(),
                mask: z,
            });
        }
        let (hidden, ids, mask, a) = self.action_hidden(prompts, actions, images, grad)?;
        let restriction = Restriction { actions, choices };
        self.score_hidden(&hidden, ids, mask, b, a, restriction, grad)
    }

    #[allow(clippy::too_many_arguments)]
    fn score_hidden(
        &self,
        hidden: &Tensor,
        ids: Vec<u32>,
        mask: Vec<f32>,
        b: usize,
        a: usize,
        restriction: Restriction,
        grad: bool,
    ) -> Result<Scored> {
        let mask = Tensor::from_vec(mask, (b, a), &self.device)?;
        if a == 0 {
            return Ok(Scored {
                logprobs: mask.clone(),
                entropy: mask.clone(),
                mask,
            });
        }
        let logits = self.view(grad).logits(hidden)?;
        let vocab = logits.dim(D::Minus1)?;
        let ids = Tensor::from_vec(ids, b * a, &self.device)?;
        let mut logits = logits.reshape((b * a, vocab))?;
        if let Some(bias) = restriction.logit_bias(a, vocab, &self.device)? {
            logits = (logits + bias)?;
        }
        let both = ops::logprob_entropy(&logits, &ids)?;
        let chosen = both.narrow(1, 0, 1)?.reshape((b, a))?;
        let entropy = both.narrow(1, 1, 1)?.reshape((b, a))?;
        Ok(Scored {
            logprobs: (chosen * &mask)?,
            entropy: (entropy * &mask)?,
            mask,
        })
    }

    /// Scalar value per action token from the value head (`[B, A]`, 0 on padding), or None if
    /// the model has no value head. The value of token k is read at the state that predicts it.
    pub fn values(
        &self,
        prompts: &[Vec<u32>],
        actions: &[Vec<u32>],
        grad: bool,
    ) -> Result<Option<Tensor>> {
        if !self.has_value_head() {
            return Ok(None);
        }
        Ok(self.score_and_values(prompts, actions, grad)?.1)
    }

    /// [`Self::score`] and [`Self::values`] from one forward pass.
    pub fn score_and_values(
        &self,
        prompts: &[Vec<u32>],
        actions: &[Vec<u32>],
        grad: bool,
    ) -> Result<(Scored, Option<Tensor>)> {
        self.score_and_values_with_images(prompts, actions, &[], grad)
    }

    /// [`Self::score_and_values`] for prompts with images (`images` empty: none). The log-probs
    /// are those of the free distribution: a critic reads only the values and the mask; scoring
    /// a restricted action goes through [`Self::score_among`].
    pub fn score_and_values_with_images(
        &self,
        prompts: &[Vec<u32>],
        actions: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        grad: bool,
    ) -> Result<(Scored, Option<Tensor>)> {
        let b = prompts.len();
        if b == 0 {
            return Ok((self.score(prompts, actions, grad)?, None));
        }
        let (hidden, ids, mask, a) = self.action_hidden(prompts, actions, images, grad)?;
        let scored = self.score_hidden(&hidden, ids, mask, b, a, Restriction::NONE, grad)?;
        let values = match self.view(grad).values(&hidden)? {
            Some(v) if a > 0 => Some((v * &scored.mask)?),
            Some(_) => Some(scored.mask.clone()),
            None => None,
        };
        Ok((scored, values))
    }

    /// Next-token logits `[B, T, vocab]` at every position of left-padded `prompts`.
    pub fn logits(&self, prompts: &[Vec<u32>], grad: bool) -> Result<Tensor> {
        self.logits_with_images(prompts, &[], grad)
    }

    /// [`Self::logits`] for prompts with images (`images` empty: none).
    pub fn logits_with_images(
        &self,
        prompts: &[Vec<u32>],
        images: &[Option<&RgbImage>],
        grad: bool,
    ) -> Result<Tensor> {
        self.check_tokens(prompts)?;
        let batch = self.pad_batch(prompts, None)?;
        let model = self.view(grad);
        let injection = self.injection(model, prompts, &batch.pads, images)?;
        let all: Vec<usize> = (0..prompts.len()).collect();
        let hidden = self.hidden_of(
            model,
            &batch.tokens,
            &batch.pads,
            None,
            injection.as_ref(),
            &all,
        )?;
        model.logits(&hidden)
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

/// The answer sets the scored actions were drawn from (an empty `choices`: none).
struct Restriction<'a> {
    actions: &'a [Vec<u32>],
    choices: &'a [Option<&'a ChoiceSet>],
}

impl Restriction<'_> {
    const NONE: Restriction<'static> = Restriction {
        actions: &[],
        choices: &[],
    };

    /// The additive `[rows * a, vocab]` logit mask of the restricted rows, or `None` when no
    /// row is restricted.
    fn logit_bias(&self, a: usize, vocab: usize, device: &Device) -> Result<Option<Tensor>> {
        if self.choices.iter().all(Option::is_none) {
            return Ok(None);
        }
        let rows = self.actions.len();
        let mut bias = vec![0f32; rows * a * vocab];
        for (i, (action, c)) in self.actions.iter().zip(self.choices).enumerate() {
            if let Some(c) = c {
                let block = &mut bias[i * a * vocab..(i + 1) * a * vocab];
                choices::fill_mask(c, action, vocab, block);
            }
        }
        Ok(Some(Tensor::from_vec(bias, (rows * a, vocab), device)?))
    }
}

/// Logits of the last column: `[B, vocab]`.
fn last_logits(model: &Decoder, hidden: &Tensor) -> Result<Tensor> {
    let t = hidden.dim(1)?;
    model.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
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

/// A standard normal draw (Box-Muller) from the host RNG.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn init_tensor(
    shape: &[usize],
    init: Init,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = match init {
        Init::Normal { std } => (0..n)
            .map(|_| (standard_normal(rng) * std) as f32)
            .collect(),
        Init::Ones => vec![1.0; n],
        Init::Zeros => vec![0.0; n],
    };
    Tensor::from_vec(values, shape, device)
}

#[cfg(test)]
mod tests;
