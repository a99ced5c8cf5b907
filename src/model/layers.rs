//! The building blocks both the decoder and the patch encoder are made of: named parameter
//! specifications with their initialisation, the seeded draw of fresh weights, and the linear
//! layer.

use candle_core::{Device, Result, Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How a parameter is initialised for a fresh model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal { std: f64 },
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

/// `y = x W^T + b` with W in the HF `[out, in]` layout.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, inner) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
        let mut dims = x.dims().to_vec();
        let y = x.reshape((rows, inner))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        *dims.last_mut().expect("linear input has a last dim") = y.dim(1)?;
        y.reshape(dims)
    }
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
        Init::Ones => vec![1.0; n],
        Init::Zeros => vec![0.0; n],
    };
    Tensor::from_vec(values, shape, device)
}
