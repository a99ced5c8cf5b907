//! Image input for the small transformer: a patch encoder whose output tokens take the places
//! of the image placeholder tokens in a prompt, so text and image tokens share one sequence.
//!
//! An RGB image is cut into `patch x patch` squares (row-major); each square's pixels, scaled to
//! [0, 1] and centred, go through one linear projection to the model width, plus a learned row
//! and a learned column embedding (2-D positions). A prompt holds one placeholder token per
//! patch ([`expand_placeholder`] turns one `<image>` token into that many); the k-th placeholder
//! of a row receives the k-th patch embedding of the row's image. The substitution is a gather
//! over `[text embeddings; patch embeddings]`, which has a backward, so gradients reach the
//! encoder through every later layer.

use super::error::ModelError;
use super::layers::Linear;
use super::params::{Init, ParamSpec};
use crate::image::RgbImage;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// Sizes of the patch encoder. Serialised with the decoder config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Patch side in pixels.
    pub patch: usize,
    /// Largest image in patches: `[rows, cols]` (the sizes of the 2-D position tables).
    pub grid: [usize; 2],
    /// The placeholder token id that image patches replace.
    pub image_token: u32,
}

impl VisionConfig {
    /// Inputs per patch: `patch * patch` RGB pixels.
    pub fn patch_dim(&self) -> usize {
        self.patch * self.patch * 3
    }
}

pub const PATCH_WEIGHT: &str = "vision.patch_embed.weight";
pub const PATCH_BIAS: &str = "vision.patch_embed.bias";
pub const ROW_POS: &str = "vision.row_embed.weight";
pub const COL_POS: &str = "vision.col_embed.weight";

/// The encoder's parameters (drawn after the decoder's, so text models are unaffected).
pub fn param_specs(v: &VisionConfig, hidden: usize) -> Vec<ParamSpec> {
    let std = 0.02;
    // Each output sums patch_dim inputs of size ~0.3: this scale starts a patch token at about
    // the magnitude of a token embedding (0.03 vs 0.02).
    let proj_std = 0.1 / (v.patch_dim() as f64).sqrt();
    let p = |name: &str, shape: Vec<usize>, init: Init| ParamSpec {
        name: name.into(),
        shape,
        init,
    };
    vec![
        p(
            PATCH_WEIGHT,
            vec![hidden, v.patch_dim()],
            Init::Normal { std: proj_std },
        ),
        p(PATCH_BIAS, vec![hidden], Init::Zeros),
        p(ROW_POS, vec![v.grid[0], hidden], Init::Normal { std }),
        p(COL_POS, vec![v.grid[1], hidden], Init::Normal { std }),
    ]
}

/// An image cut into patches: `rows * cols` patches of `patch_dim` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Patches {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

/// Cuts `image` into `patch x patch` squares (row-major), each flattened row by row as RGB
/// triples, pixel values mapped to `v / 255 - 0.5`. The image sides must be multiples of
/// `patch`.
pub fn patchify(image: &RgbImage, patch: usize) -> std::result::Result<Patches, ModelError> {
    if patch == 0 || !image.width.is_multiple_of(patch) || !image.height.is_multiple_of(patch) {
        return Err(ModelError::Image {
            reason: format!(
                "a {}x{} image cannot be cut into {patch}x{patch} patches; use a patch size that \
                 divides both sides (e.g. the environment's cell size)",
                image.width, image.height
            ),
        });
    }
    if image.pixels.len() != image.width * image.height * 3 {
        return Err(ModelError::Image {
            reason: format!(
                "a {}x{} RGB image needs {} bytes, found {}",
                image.width,
                image.height,
                image.width * image.height * 3,
                image.pixels.len()
            ),
        });
    }
    let (rows, cols) = (image.height / patch, image.width / patch);
    let mut values = Vec::with_capacity(image.pixels.len());
    for pr in 0..rows {
        for pc in 0..cols {
            for y in pr * patch..(pr + 1) * patch {
                let start = (y * image.width + pc * patch) * 3;
                values.extend(
                    image.pixels[start..start + patch * 3]
                        .iter()
                        .map(|&b| b as f32 / 255.0 - 0.5),
                );
            }
        }
    }
    Ok(Patches { rows, cols, values })
}

/// How many placeholder tokens an image fills under `v`.
pub fn token_count(v: &VisionConfig, image: &RgbImage) -> usize {
    (image.height / v.patch.max(1)) * (image.width / v.patch.max(1))
}

/// `ids` with every `v.image_token` replaced by `count` copies of it.
pub fn expand_placeholder(ids: &[u32], image_token: u32, count: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len() + count);
    for &id in ids {
        if id == image_token {
            out.extend(std::iter::repeat_n(image_token, count));
        } else {
            out.push(id);
        }
    }
    out
}

/// The patch encoder's weights (tracked or detached, like the decoder's).
#[derive(Debug, Clone)]
pub struct PatchEncoder {
    cfg: VisionConfig,
    proj: Linear,
    row_pos: Tensor,
    col_pos: Tensor,
}

impl PatchEncoder {
    pub fn new(cfg: &VisionConfig, get: &dyn Fn(&str) -> Result<Tensor>) -> Result<PatchEncoder> {
        Ok(PatchEncoder {
            cfg: cfg.clone(),
            proj: Linear::new(get(PATCH_WEIGHT)?, Some(get(PATCH_BIAS)?)),
            row_pos: get(ROW_POS)?,
            col_pos: get(COL_POS)?,
        })
    }

    /// Token embeddings `[sum of patches, hidden]` of `images`, image after image, patches
    /// row-major: one projection over all patches of the batch.
    pub fn encode(&self, images: &[&RgbImage], device: &Device) -> Result<Tensor> {
        let mut values = Vec::new();
        let (mut rows_idx, mut cols_idx) = (Vec::new(), Vec::new());
        for image in images {
            let p = patchify(image, self.cfg.patch)?;
            if p.rows > self.cfg.grid[0] || p.cols > self.cfg.grid[1] {
                return Err(ModelError::Image {
                    reason: format!(
                        "the image is {}x{} patches but the model's position tables hold {}x{}",
                        p.rows, p.cols, self.cfg.grid[0], self.cfg.grid[1]
                    ),
                }
                .into());
            }
            values.extend_from_slice(&p.values);
            for r in 0..p.rows {
                for c in 0..p.cols {
                    rows_idx.push(r as u32);
                    cols_idx.push(c as u32);
                }
            }
        }
        let n = rows_idx.len();
        let x = Tensor::from_vec(values, (n, self.cfg.patch_dim()), device)?;
        let rows_idx = Tensor::from_vec(rows_idx, n, device)?;
        let cols_idx = Tensor::from_vec(cols_idx, n, device)?;
        let pos = (self.row_pos.index_select(&rows_idx, 0)?
            + self.col_pos.index_select(&cols_idx, 0)?)?;
        self.proj.forward(&x)? + pos
    }
}

/// Where the patch embeddings of a batch go: the embeddings `[M, hidden]` and, for each row
/// (in the original batch order), the first embedding of its image and the columns of its
/// placeholder tokens in the padded layout.
#[derive(Debug, Clone)]
pub struct Injection {
    pub embeds: Tensor,
    rows: Vec<Option<(usize, Vec<usize>)>>,
}

impl Injection {
    /// Encodes the images of a left-padded batch. `prompts[i]` starts at column `pads[i]`;
    /// every row with an image must hold exactly as many placeholder tokens as its image has
    /// patches, and a row without one must hold none. `None` when no row has an image.
    pub fn build(
        encoder: &PatchEncoder,
        prompts: &[Vec<u32>],
        pads: &[usize],
        images: &[Option<&RgbImage>],
        device: &Device,
    ) -> Result<Option<Injection>> {
        if images.iter().all(Option::is_none) {
            if let Some(index) = prompts
                .iter()
                .position(|p| p.contains(&encoder.cfg.image_token))
            {
                return Err(ModelError::ImageTokens {
                    index,
                    found: count_of(&prompts[index], encoder.cfg.image_token),
                    expected: 0,
                }
                .into());
            }
            return Ok(None);
        }
        if images.len() != prompts.len() {
            return Err(ModelError::BatchMismatch {
                prompts: prompts.len(),
                actions: images.len(),
            }
            .into());
        }
        let token = encoder.cfg.image_token;
        let mut rows = Vec::with_capacity(prompts.len());
        let mut start = 0;
        let mut present = Vec::new();
        for (index, (p, image)) in prompts.iter().zip(images).enumerate() {
            let cols: Vec<usize> = p
                .iter()
                .enumerate()
                .filter(|&(_, &id)| id == token)
                .map(|(j, _)| pads[index] + j)
                .collect();
            let expected = image.map_or(0, |img| token_count(&encoder.cfg, img));
            if cols.len() != expected {
                return Err(ModelError::ImageTokens {
                    index,
                    found: cols.len(),
                    expected,
                }
                .into());
            }
            match image {
                Some(img) => {
                    rows.push(Some((start, cols)));
                    start += expected;
                    present.push(*img);
                }
                None => rows.push(None),
            }
        }
        Ok(Some(Injection {
            embeds: encoder.encode(&present, device)?,
            rows,
        }))
    }

    /// The gather index over `[x; embeds]` (`x`: `[B * width, hidden]` token embeddings) for
    /// the batch rows `active` (original row numbers, in their current order) at `width`
    /// columns: each placeholder column points at its patch embedding, every other position at
    /// itself.
    pub fn index(&self, active: &[usize], width: usize, device: &Device) -> Result<Tensor> {
        let total = active.len() * width;
        let mut idx: Vec<u32> = (0..total as u32).collect();
        for (b, &orig) in active.iter().enumerate() {
            if let Some((start, cols)) = &self.rows[orig] {
                for (k, &c) in cols.iter().enumerate() {
                    if c < width {
                        idx[b * width + c] = (total + start + k) as u32;
                    }
                }
            }
        }
        Tensor::from_vec(idx, total, device)
    }
}

fn count_of(ids: &[u32], token: u32) -> usize {
    ids.iter().filter(|&&id| id == token).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_row_major_squares_of_scaled_pixels() {
        // 4x2 image, pixel (x, y) = [10x + y, 0, 255]; 2x2 patches -> 1 row, 2 cols.
        let mut pixels = Vec::new();
        for y in 0..2u8 {
            for x in 0..4u8 {
                pixels.extend([10 * x + y, 0, 255]);
            }
        }
        let img = RgbImage {
            width: 4,
            height: 2,
            pixels,
        };
        let p = patchify(&img, 2).unwrap();
        assert_eq!((p.rows, p.cols, p.values.len()), (1, 2, 24));
        let s = |v: u8| v as f32 / 255.0 - 0.5;
        // Second patch: pixels (2,0), (3,0), (2,1), (3,1).
        assert_eq!(&p.values[12..15], &[s(20), s(0), s(255)]);
        assert_eq!(&p.values[15..18], &[s(30), s(0), s(255)]);
        assert_eq!(&p.values[18..21], &[s(21), s(0), s(255)]);
        assert!(patchify(&img, 3).is_err());
        assert_eq!(expand_placeholder(&[1, 9, 5], 9, 3), vec![1, 9, 9, 9, 5]);
    }
}
