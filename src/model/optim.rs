//! AdamW with global grad-norm clipping and saveable state (moments and step count), so a run
//! resumes exactly where it stopped.
//!
//! Update (as PyTorch's AdamW): `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
//! `theta = theta (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)` with bias-corrected `m_hat`,
//! `v_hat`. Weight decay applies to matrices only (rank >= 2), not to norm gains or biases.

use super::checkpoint;
use super::error::ModelError;
use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The gradients of an optimiser's variables summed over several backward passes (the
/// micro-batches of one update). It keeps the variables' gradients only, so nothing of a pass's
/// graph or activations outlives that pass.
pub struct GradSum {
    grads: Vec<Option<Tensor>>,
}

/// AdamW over a fixed list of variables.
pub struct Optimizer {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    state: OptimizerState,
}

/// The scalar part of the optimiser state, saved as JSON next to the moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerState {
    pub step: u64,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Shape of each variable, to refuse state saved for another model.
    pub shapes: Vec<Vec<usize>>,
}

impl Optimizer {
    /// AdamW with betas (0.9, 0.999) and eps 1e-8. Pass the variables in a stable order
    /// (`LanguageModel::vars()`), the same on resume.
    pub fn new(vars: Vec<Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let v = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<Result<Vec<_>>>()?;
        let shapes = vars.iter().map(|v| v.dims().to_vec()).collect();
        Ok(Optimizer {
            vars,
            m,
            v,
            state: OptimizerState {
                step: 0,
                lr,
                weight_decay,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                shapes,
            },
        })
    }

    pub fn lr(&self) -> f64 {
        self.state.lr
    }

    /// Changes the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.state.lr = lr;
    }

    /// Updates taken so far.
    pub fn step_count(&self) -> u64 {
        self.state.step
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// backward + clip the global grad norm to `max_norm` (no clipping if `max_norm <= 0`) +
    /// one AdamW step; returns the pre-clip grad norm. A non-finite norm skips the update (the
    /// weights stay as they were) and is returned as is, for the caller to log.
    pub fn step(&mut self, loss: &Tensor, max_norm: f64) -> Result<f64> {
        let grads = loss.backward()?;
        self.step_with_grads(&grads, max_norm)
    }

    /// [`Self::step`] from gradients already computed (e.g. summed over several losses).
    pub fn step_with_grads(&mut self, grads: &GradStore, max_norm: f64) -> Result<f64> {
        let gs: Vec<Option<&Tensor>> = self.vars.iter().map(|v| grads.get(v)).collect();
        self.apply(&gs, max_norm)
    }

    /// An empty gradient sum over this optimiser's variables.
    pub fn grad_sum(&self) -> GradSum {
        GradSum {
            grads: vec![None; self.vars.len()],
        }
    }

    /// backward of `loss`, adding the variables' gradients to `sum`. The first pass's
    /// gradients are stored as they are, so one pass steps exactly as [`Self::step`].
    pub fn accumulate(&self, loss: &Tensor, sum: &mut GradSum) -> Result<()> {
        let grads = loss.backward()?;
        for (var, slot) in self.vars.iter().zip(sum.grads.iter_mut()) {
            let Some(g) = grads.get(var) else { continue };
            *slot = Some(match slot.take() {
                None => g.detach(),
                Some(total) => (total + g)?.detach(),
            });
        }
        Ok(())
    }

    /// [`Self::step`] from gradients summed by [`Self::accumulate`]: the clip applies to the
    /// norm of the sum.
    pub fn step_with_sum(&mut self, sum: &GradSum, max_norm: f64) -> Result<f64> {
        let gs: Vec<Option<&Tensor>> = sum.grads.iter().map(Option::as_ref).collect();
        self.apply(&gs, max_norm)
    }

    /// Clip and one AdamW step from the gradient of each variable (`None`: untouched).
    fn apply(&mut self, gs: &[Option<&Tensor>], max_norm: f64) -> Result<f64> {
        let mut sq = 0f64;
        for g in gs.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Ok(norm);
        }
        let clip = if max_norm > 0.0 && norm > max_norm {
            max_norm / (norm + 1e-6)
        } else {
            1.0
        };
        self.state.step += 1;
        let s = &self.state;
        let t = s.step as i32;
        let (b1, b2) = (s.beta1, s.beta2);
        let m_corr = 1.0 / (1.0 - b1.powi(t));
        let v_corr = 1.0 / (1.0 - b2.powi(t));
        for (i, g) in gs.iter().enumerate() {
            let Some(g) = g else { continue };
            let var = &self.vars[i];
            let m = ((&self.m[i] * b1)? + (*g * ((1.0 - b1) * clip))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * ((1.0 - b2) * clip * clip))?)?;
            let denom = ((&v * v_corr)?.sqrt()? + s.eps)?;
            let update = ((&m * (m_corr * s.lr))? / denom)?;
            let decay = if var.rank() >= 2 { s.weight_decay } else { 0.0 };
            let theta = ((var.as_tensor() * (1.0 - s.lr * decay))? - update)?;
            var.set(&theta)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(norm)
    }

    /// Saves moments as safetensors (`m.N`, `v.N`) and the scalars as `<path>.json`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for (i, (m, v)) in self.m.iter().zip(&self.v).enumerate() {
            tensors.insert(format!("m.{i}"), m.clone());
            tensors.insert(format!("v.{i}"), v.clone());
        }
        checkpoint::save_tensors(&tensors, path)?;
        checkpoint::save_json(&self.state, &checkpoint::sidecar(path))
    }

    /// Restores state written by [`Self::save`] for the same variables (checked by shape).
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |reason: String| -> candle_core::Error {
            ModelError::Checkpoint {
                path: path.display().to_string(),
                reason,
            }
            .into()
        };
        let state: OptimizerState = checkpoint::load_json(&checkpoint::sidecar(path))?;
        if state.shapes != self.state.shapes {
            return Err(bad(format!(
                "optimiser state is for {} variables of other shapes than this model's {}",
                state.shapes.len(),
                self.state.shapes.len()
            )));
        }
        let device = self.vars.first().map(|v| v.device().clone());
        let Some(device) = device else {
            self.state = state;
            return Ok(());
        };
        let mut tensors = checkpoint::load_tensors(path, &device)?;
        let mut take = |name: String| {
            tensors
                .remove(&name)
                .ok_or_else(|| bad(format!("missing tensor {name}")))
        };
        let mut m = Vec::with_capacity(self.vars.len());
        let mut v = Vec::with_capacity(self.vars.len());
        for i in 0..self.vars.len() {
            m.push(take(format!("m.{i}"))?);
            v.push(take(format!("v.{i}"))?);
        }
        self.m = m;
        self.v = v;
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // With bias correction, step 1 is theta -= lr * g / (|g| + eps) (no decay on vectors).
        let w = Var::from_vec(vec![1.0f32, -2.0, 3.0], 3, &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(vec![w.clone()], 0.1, 0.0).unwrap();
        let target = Tensor::new(&[0.0f32, 0.0, 10.0], &Device::Cpu).unwrap();
        let loss = (w.as_tensor() - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let norm = opt.step(&loss, 0.0).unwrap();
        // grad = 2 (w - target) = [2, -4, -14]
        assert!((norm - (4.0f64 + 16.0 + 196.0).sqrt()).abs() < 1e-4);
        let got: Vec<f32> = w.as_tensor().to_vec1().unwrap();
        for (g, e) in got.iter().zip([0.9f32, -1.9, 3.1]) {
            assert!((g - e).abs() < 1e-5, "{got:?}");
        }
    }

    #[test]
    fn decay_applies_to_matrices_and_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        // Same gradient with and without decay: the difference is exactly -lr * wd * theta.
        let w = Var::from_vec(vec![1.0f32; 4], (2, 2), &Device::Cpu).unwrap();
        let u = Var::from_vec(vec![1.0f32; 4], (2, 2), &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(vec![w.clone()], 0.01, 0.5).unwrap();
        let mut plain = Optimizer::new(vec![u.clone()], 0.01, 0.0).unwrap();
        opt.step(&w.as_tensor().sum_all().unwrap(), 1.0).unwrap();
        plain.step(&u.as_tensor().sum_all().unwrap(), 1.0).unwrap();
        let a: Vec<Vec<f32>> = w.as_tensor().to_vec2().unwrap();
        let b: Vec<Vec<f32>> = u.as_tensor().to_vec2().unwrap();
        assert!((a[0][0] - b[0][0] + 0.005).abs() < 1e-6, "{a:?} {b:?}");
        let path = dir.path().join("opt.safetensors");
        opt.save(&path).unwrap();
        let mut other = Optimizer::new(vec![w.clone()], 0.3, 0.0).unwrap();
        other.load(&path).unwrap();
        assert_eq!(other.step_count(), 1);
        assert_eq!(other.lr(), 0.01);
        let wrong = Var::from_vec(vec![1.0f32; 3], 3, &Device::Cpu).unwrap();
        assert!(Optimizer::new(vec![wrong], 0.1, 0.0)
            .unwrap()
            .load(&path)
            .is_err());
    }
}
