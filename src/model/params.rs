//! Named parameter specifications with their initialisation, and the seeded draw of fresh
//! weights: what the decoder, the patch encoder and LoRA adapters declare.

use candle_core::{Device, Result, Tensor};
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
