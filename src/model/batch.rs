//! The inputs of one batched call, [`Batch`]: prompts, with an image and a set of admissible
//! answers per row where the caller has them; and how a batch enters the decoder (token checks,
//! left padding, the patch embeddings that replace image placeholders).

use super::choices::ChoiceSet;
use super::decoder::{token_tensor, Decoder, KvCache};
use super::error::ModelError;
use super::vision;
use super::weights::LanguageModel;
use crate::image::RgbImage;
use candle_core::{Result, Tensor};

/// Rows for one generation, scoring or logits call. Row `i` is `prompts[i]`; `images[i]` (if
/// any) fills its image placeholder tokens (see [`LanguageModel::expand_image_tokens`]);
/// `choices[i]` (if any) restricts what it may produce, and is applied again when it is
/// scored. Empty `images` / `choices`: a text batch / free sampling.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub prompts: &'a [Vec<u32>],
    pub images: &'a [Option<&'a RgbImage>],
    pub choices: &'a [Option<&'a ChoiceSet>],
}

impl<'a> Batch<'a> {
    /// Text prompts, sampled and scored freely.
    pub fn new(prompts: &'a [Vec<u32>]) -> Self {
        Batch {
            prompts,
            images: &[],
            choices: &[],
        }
    }

    /// The same rows with an image each (`None`: a text row).
    pub fn with_images(self, images: &'a [Option<&'a RgbImage>]) -> Self {
        Batch { images, ..self }
    }

    /// The same rows restricted to admissible answers (`None`: a free row).
    pub fn with_choices(self, choices: &'a [Option<&'a ChoiceSet>]) -> Self {
        Batch { choices, ..self }
    }

    /// The answers row `i` is restricted to, if any.
    pub(super) fn choices_of(&self, i: usize) -> Option<&'a ChoiceSet> {
        self.choices.get(i).copied().flatten()
    }
}

/// A left-padded batch: `pads[i]` pad columns then row `i`'s tokens, `width` columns in all.
pub(super) struct PaddedBatch {
    pub(super) tokens: Tensor,
    pub(super) pads: Vec<usize>,
}

impl LanguageModel {
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
    pub(super) fn injection(
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

    /// Refuses ids outside the vocabulary.
    pub(super) fn check_tokens(&self, seqs: &[Vec<u32>]) -> Result<()> {
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

    /// Left-pads `prompts` to a common width and, for `suffixes = Some((suffix, n))`, appends
    /// `n` columns of each row's suffix (right-padded with the pad id).
    pub(super) fn pad_batch(
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

    /// `model`'s hidden states of every row of `padded` (the rows of `batch`, padded), without a
    /// cache: the full forward pass both logits and scoring start from.
    pub(super) fn batch_hidden(
        &self,
        model: &Decoder,
        batch: Batch,
        padded: &PaddedBatch,
    ) -> Result<Tensor> {
        let injection = self.injection(model, batch.prompts, &padded.pads, batch.images)?;
        let all: Vec<usize> = (0..batch.prompts.len()).collect();
        self.hidden_of(
            model,
            &padded.tokens,
            &padded.pads,
            None,
            injection.as_ref(),
            &all,
        )
    }

    /// `model`'s hidden states of a left-padded batch whose rows are the original rows `active`,
    /// with the patch embeddings of `injection` in place of placeholder tokens.
    pub(super) fn hidden_of(
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
}
