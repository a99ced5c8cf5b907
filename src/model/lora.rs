//! Low-rank adapters (LoRA, Hu et al. 2021) on the decoder's projections: a target projection
//! with frozen weight `W` computes `x W^T + alpha / rank * dropout(x) A^T B^T`, where `A`
//! `[rank, in]` is drawn (PEFT's Kaiming-uniform bound `1 / sqrt(in)`) and `B` `[out, rank]`
//! starts at zero, so a fresh adapter leaves the model unchanged.
//!
//! Dropout follows PEFT's train/eval split: it is applied only in the passes that record a
//! graph for an update; the passes without gradients (sampling, `log pi_old`, the reference and
//! PRM scores that serve as targets) run without it, as PEFT's eval mode does. Its masks come
//! from ChaCha stream `n` of the model's seed for the `n`-th adapted product, so the same
//! recipe and seed draw the same masks, and the count is saved with the adapters.

use super::params::{init_tensor, Init, ParamSpec};
use crate::graph::Projection;
use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The module path of a projection inside a decoder layer (`self_attn.q_proj`).
pub fn module(p: Projection) -> &'static str {
    match p {
        Projection::Q => "self_attn.q_proj",
        Projection::K => "self_attn.k_proj",
        Projection::V => "self_attn.v_proj",
        Projection::O => "self_attn.o_proj",
        Projection::Gate => "mlp.gate_proj",
        Projection::Up => "mlp.up_proj",
        Projection::Down => "mlp.down_proj",
    }
}

/// `model.layers.{layer}.{module}.weight`: the frozen weight an adapter adds to.
pub fn weight_name(layer: usize, p: Projection) -> String {
    format!("model.layers.{layer}.{}.weight", module(p))
}

/// The names of an adapter's `A` and `B` (PEFT's, without its `base_model.model.` prefix).
pub fn adapter_names(layer: usize, p: Projection) -> (String, String) {
    let m = module(p);
    (
        format!("model.layers.{layer}.{m}.lora_A.weight"),
        format!("model.layers.{layer}.{m}.lora_B.weight"),
    )
}

/// The adapters' parameters for `targets` of every layer, in drawing order: per layer, per
/// target, `A` `[rank, in]` then `B` `[out, rank]`. `shape_of` gives a frozen weight's `[out, in]`.
pub fn param_specs(
    layers: usize,
    targets: &[Projection],
    rank: usize,
    shape_of: &dyn Fn(&str) -> Option<(usize, usize)>,
) -> Vec<ParamSpec> {
    let mut specs = Vec::new();
    for layer in 0..layers {
        for &p in targets {
            let Some((out, inner)) = shape_of(&weight_name(layer, p)) else {
                continue;
            };
            let (a, b) = adapter_names(layer, p);
            let bound = 1.0 / (inner as f64).sqrt();
            specs.push(ParamSpec {
                name: a,
                shape: vec![rank, inner],
                init: Init::Uniform { bound },
            });
            specs.push(ParamSpec {
                name: b,
                shape: vec![out, rank],
                init: Init::Zeros,
            });
        }
    }
    specs
}

/// Fresh adapters for `specs`, drawn from a ChaCha RNG seeded by `seed`.
pub fn draw(
    specs: &[ParamSpec],
    seed: u64,
    device: &candle_core::Device,
) -> Result<Vec<(String, Tensor)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    specs
        .iter()
        .map(|p| {
            Ok((
                p.name.clone(),
                init_tensor(&p.shape, p.init, &mut rng, device)?,
            ))
        })
        .collect()
}

/// One projection's adapter, as a decoder view holds it.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// `[rank, in]`.
    pub a: Tensor,
    /// `[out, rank]`.
    pub b: Tensor,
    /// `alpha / rank`.
    pub scale: f64,
    /// Present in the views that train.
    pub dropout: Option<Dropout>,
}

impl Adapter {
    /// `scale * dropout(x) A^T B^T` for `x` `[rows, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.dropout {
            Some(d) => d.apply(x)?,
            None => x.clone(),
        };
        x.matmul(&self.a.t()?)?.matmul(&self.b.t()?)? * self.scale
    }
}

/// Seeded inverted dropout shared by the adapters of one model: each application draws its
/// mask from its own ChaCha stream, numbered by a counter the model saves.
#[derive(Debug, Clone)]
pub struct Dropout {
    pub p: f64,
    pub seed: u64,
    pub draws: Arc<AtomicU64>,
}

impl Dropout {
    /// `x * mask / (1 - p)`, the mask keeping each element with probability `1 - p`.
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let draw = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(draw);
        let keep = 1.0 - self.p;
        let kept = (1.0 / keep) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f64>() < keep {
                    kept
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}
