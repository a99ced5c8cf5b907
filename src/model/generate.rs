//! Sampling: batched generation over left-padded prompts with a preallocated KV cache (and the
//! uncached reference it is tested against). Sampling runs on the host from a seeded ChaCha
//! RNG; finished rows are dropped from the batch.

use super::batch::Batch;
use super::decoder::{token_tensor, Decoder, KvCache};
use super::error::ModelError;
use super::sample;
use super::weights::LanguageModel;
use candle_core::{Result, Tensor};
use rand_chacha::ChaCha8Rng;

/// Sampling settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    pub temperature: f64,
    pub top_p: f64,
    pub max_new_tokens: usize,
    /// Generation of a row stops once its decoded text contains any of these.
    pub stop: Vec<String>,
    /// Whether the caller restricts each turn to the environment's listed answers (it passes
    /// their [`ChoiceSet`](super::ChoiceSet)s in the [`Batch`] of the generation and the
    /// scoring calls).
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

/// The sampling of one row of [`LanguageModel::generate_each`]: its own settings, its own RNG,
/// and how many of the most likely alternatives to report with each token.
#[derive(Debug, Clone)]
pub struct RowSampling {
    pub options: SampleOptions,
    pub rng: ChaCha8Rng,
    pub top_logprobs: usize,
}

/// One token just sampled for `row` of a [`LanguageModel::generate_each`] call.
#[derive(Debug, Clone, Copy)]
pub struct TokenEvent<'a> {
    pub row: usize,
    pub token: u32,
    /// Its log-prob under the untempered distribution, as [`Generation::logprobs`].
    pub logprob: f32,
    /// The row's `top_logprobs` most likely ids and their log-probs, most likely first.
    pub top: &'a [(u32, f32)],
    /// Every token of the row so far, decoded.
    pub text: &'a str,
    /// `Some(stopped)` when this token ends the row (see [`Generation::stopped`]).
    pub finished: Option<bool>,
}

/// Where each row's settings come from.
enum Rows<'a> {
    /// One setting for every row and one RNG drawn from in row order (the training path).
    Shared {
        opts: &'a SampleOptions,
        rng: &'a mut ChaCha8Rng,
    },
    /// Each row its own.
    Each(&'a mut [RowSampling]),
}

impl Rows<'_> {
    fn options(&self, row: usize) -> &SampleOptions {
        match self {
            Rows::Shared { opts, .. } => opts,
            Rows::Each(rows) => &rows[row].options,
        }
    }

    fn max_new_tokens(&self) -> usize {
        match self {
            Rows::Shared { opts, .. } => opts.max_new_tokens,
            Rows::Each(rows) => rows
                .iter()
                .map(|r| r.options.max_new_tokens)
                .max()
                .unwrap_or(0),
        }
    }

    fn draw(&mut self, row: usize, logits: &[f32]) -> (sample::Draw, Vec<(u32, f32)>) {
        match self {
            Rows::Shared { opts, rng } => (
                sample::draw(logits, opts.temperature, opts.top_p, rng),
                vec![],
            ),
            Rows::Each(rows) => {
                let r = &mut rows[row];
                let d = sample::draw(logits, r.options.temperature, r.options.top_p, &mut r.rng);
                (d, sample::top_logprobs(logits, r.top_logprobs))
            }
        }
    }
}

impl LanguageModel {
    /// One batched generation with a KV cache over prompts of different lengths, detached. Rows
    /// with images prefill on their patch embeddings; rows with choices sample from the
    /// restricted distribution, and their log-probs are those [`Self::score`] computes.
    pub fn generate(
        &self,
        batch: Batch,
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Generation>> {
        self.sample_rows(batch, Rows::Shared { opts, rng }, &mut |_| true, true)
    }

    /// [`Self::generate`] with settings, RNG and length limit per row (one entry of `rows` per
    /// prompt; every row gets at least one token), reporting each sampled token to `on_token`
    /// as it is drawn; a row whose report returns `false` is dropped from the batch at once
    /// (its caller went away). Used by `oprl serve` to batch independent requests.
    pub fn generate_each(
        &self,
        batch: Batch,
        rows: &mut [RowSampling],
        on_token: &mut dyn FnMut(TokenEvent) -> bool,
    ) -> Result<Vec<Generation>> {
        if rows.len() != batch.prompts.len() {
            candle_core::bail!(
                "{} row settings for a batch of {} prompts",
                rows.len(),
                batch.prompts.len()
            );
        }
        self.sample_rows(batch, Rows::Each(rows), on_token, true)
    }

    /// The same sampling as [`Self::generate`] but recomputing every step from scratch without
    /// a cache: the reference the cached path is tested against.
    pub fn generate_uncached(
        &self,
        batch: Batch,
        opts: &SampleOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Generation>> {
        self.sample_rows(batch, Rows::Shared { opts, rng }, &mut |_| true, false)
    }

    fn sample_rows(
        &self,
        input: Batch,
        mut settings: Rows,
        on_token: &mut dyn FnMut(TokenEvent) -> bool,
        use_cache: bool,
    ) -> Result<Vec<Generation>> {
        let prompts = input.prompts;
        let mut out: Vec<Generation> = prompts
            .iter()
            .map(|_| Generation {
                tokens: vec![],
                logprobs: vec![],
                text: String::new(),
                stopped: false,
            })
            .collect();
        let max_new_tokens = settings.max_new_tokens();
        if prompts.is_empty() || max_new_tokens == 0 {
            return Ok(out);
        }
        self.check_tokens(prompts)?;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if longest + max_new_tokens > self.cfg.context {
            return Err(ModelError::TooLong {
                needed: longest + max_new_tokens,
                context: self.cfg.context,
            }
            .into());
        }
        let model = &self.detached;
        let stop_ids = self.tokenizer.stop_ids();
        let batch = self.pad_batch(prompts, None)?;
        let injection = self.injection(model, prompts, &batch.pads, input.images)?;
        let mut pads = batch.pads;
        // Original row index of each row still generating.
        let mut active: Vec<usize> = (0..prompts.len()).collect();
        let mut cache = KvCache::new(self.cfg.layers, longest + max_new_tokens);
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
        for _ in 0..max_new_tokens {
            let mut rows: Vec<Vec<f32>> = logits.to_vec2()?;
            let mut next = Vec::with_capacity(active.len());
            let mut keep = Vec::with_capacity(active.len());
            for (r, &orig) in active.iter().enumerate() {
                let row_choices = input.choices_of(orig);
                if let Some(c) = row_choices {
                    c.mask_logits(&out[orig].tokens, &mut rows[r]);
                }
                let (d, top) = settings.draw(orig, &rows[r]);
                let opts = settings.options(orig);
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
                g.stopped = stop;
                let finished = stop || g.tokens.len() >= opts.max_new_tokens;
                let wanted = on_token(TokenEvent {
                    row: orig,
                    token: d.token,
                    logprob: d.logprob,
                    top: &top,
                    text: &g.text,
                    finished: finished.then_some(stop),
                });
                if !finished && wanted {
                    keep.push(r);
                    next.push(d.token);
                }
            }
            if keep.is_empty() {
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
}

/// Logits of the last column: `[B, vocab]`.
fn last_logits(model: &Decoder, hidden: &Tensor) -> Result<Tensor> {
    let t = hidden.dim(1)?;
    model.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
}
