//! The linear layer both the decoder and the patch encoder are made of, with its optional LoRA
//! adapter.

use super::lora::Adapter;
use super::ops::matmul_t;
use candle_core::{Result, Tensor, D};

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
