//! The building blocks both the decoder and the patch encoder are made of: named parameter
//! specifications with their initialisation, the seeded draw of fresh weights, and the linear
//! layer.

use super::lora::Adapter;
use candle_core::{Device, Result, Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How a parameter is initialised for a fresh model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal {
        std: f64,
    },
    /// Uniform on `[-bound, bound)`.
    Uniform {
        bound: f64,
    },
    Ones,
    Zeros,
}

/// One named parameter of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// `y = x W^T + b` with W in the HF `[out, in]` layout, plus a LoRA update when adapted.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub adapter: Option<Adapter>,
}

impl Linear {
    /// A plain (unadapted) linear layer.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear {
            weight,
            bias,
            adapter: None,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, inner) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
        let mut dims = x.dims().to_vec();
        let x = x.reshape((rows, inner))?;
        let mut y = if self.weight.track_op() {
            matmul_t(&x, &self.weight)?
        } else {
            super::ops::frozen_matmul_t(&x, &self.weight)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(adapter) = &self.adapter {
            y = (y + adapter.forward(&x)?)?;
        }
        *dims.last_mut().expect("linear input has a last dim") = y.dim(1)?;
        y.reshape(dims)
    }
}

/// `x W^T` for `x` `[rows, in]` and `W` `[out, in]`. A weight held in a lower precision than
/// the activations (bf16, f16) multiplies in its own dtype, and the product comes back in the
/// activations' dtype: the residual stream, norms and softmaxes stay in f32.
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() == w.dtype() {
        return x.matmul(&w.t()?);
    }
    x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(x.dtype())
}

/// A standard normal draw (Box-Muller) from the host RNG.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A tensor of `shape` drawn with `init` from the host RNG.
pub fn init_tensor(
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
        Init::Uniform { bound } => (0..n)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
            .collect(),
        Init::Ones => vec![1.0; n],
        Init::Zeros => vec![0.0; n],
    };
    Tensor::from_vec(values, shape, device)
}
