//! KL penalties between the policy's and a reference's per-token log-probs, as veRL's
//! `kl_penalty` (volcengine/verl@b178a3cd): `kl`/`k1`, `abs`, `mse`/`k2`, `low_var_kl`/`k3`
//! with its clamps. Elementwise, no masking (callers aggregate with the loss mask).

use super::{AlgoError, Mat};
use crate::graph::{from_name, KlKind};
use candle_core::Tensor;

/// The clamp on `ref - logp` inside k3 (veRL).
const K3_LOG_RATIO_CLAMP: f64 = 20.0;
/// The clamp on the k3 value itself (veRL).
const K3_VALUE_CLAMP: f64 = 10.0;

/// Parses a veRL penalty name. The straight-through names `k3+` / `low_var_kl+` are rejected,
/// because veRL's `kl_penalty` raises `NotImplementedError` for them at the reference commit.
pub fn parse_kl_name(name: &str) -> Result<KlKind, AlgoError> {
    from_name(name).ok_or_else(|| AlgoError::UnknownKlPenalty(name.to_string()))
}

/// One token's penalty:
/// - k1: `logp - ref`; abs: `|logp - ref|`; k2: `0.5 (logp - ref)^2`;
/// - k3 (low-variance, Schulman's estimator of KL(pi || ref)): `d = clamp(ref - logp, -20, 20)`,
///   `clamp(exp(d) - d - 1, -10, 10)`.
pub fn kl_penalty(logp: f32, ref_logp: f32, kind: KlKind) -> f32 {
    let (lp, rp) = (logp as f64, ref_logp as f64);
    let v = match kind {
        KlKind::K1 => lp - rp,
        KlKind::Abs => (lp - rp).abs(),
        KlKind::K2 => 0.5 * (lp - rp) * (lp - rp),
        KlKind::K3 => {
            let d = (rp - lp).clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP);
            (d.exp() - d - 1.0).clamp(-K3_VALUE_CLAMP, K3_VALUE_CLAMP)
        }
    };
    v as f32
}

/// [`kl_penalty`] over matrices of the same shape.
pub fn kl_penalty_mat(logp: &Mat, ref_logp: &Mat, kind: KlKind) -> Result<Mat, AlgoError> {
    logp.check_same_shape(ref_logp, "ref_logprob")?;
    let data = logp
        .data
        .iter()
        .zip(&ref_logp.data)
        .map(|(&a, &b)| kl_penalty(a, b, kind))
        .collect();
    Mat::new(logp.rows, logp.cols, data)
}

/// [`kl_penalty`] on tensors, differentiable in both inputs (the clamps pass no gradient where
/// they are active, as in torch).
pub fn kl_penalty_tensor(
    logp: &Tensor,
    ref_logp: &Tensor,
    kind: KlKind,
) -> Result<Tensor, AlgoError> {
    let diff = (logp - ref_logp)?;
    let out = match kind {
        KlKind::K1 => diff,
        KlKind::Abs => diff.abs()?,
        KlKind::K2 => (diff.sqr()? * 0.5)?,
        KlKind::K3 => {
            let d = diff.neg()?.clamp(-K3_LOG_RATIO_CLAMP, K3_LOG_RATIO_CLAMP)?;
            ((d.exp()? - &d)? - 1.0)?.clamp(-K3_VALUE_CLAMP, K3_VALUE_CLAMP)?
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn names_and_rejected_straight_through_names() {
        assert_eq!(parse_kl_name("kl").unwrap(), KlKind::K1);
        assert_eq!(parse_kl_name("k1").unwrap(), KlKind::K1);
        assert_eq!(parse_kl_name("abs").unwrap(), KlKind::Abs);
        assert_eq!(parse_kl_name("mse").unwrap(), KlKind::K2);
        assert_eq!(parse_kl_name("k2").unwrap(), KlKind::K2);
        assert_eq!(parse_kl_name("low_var_kl").unwrap(), KlKind::K3);
        assert_eq!(parse_kl_name("k3").unwrap(), KlKind::K3);
        for bad in ["k3+", "low_var_kl+", "full"] {
            assert_eq!(
                parse_kl_name(bad),
                Err(AlgoError::UnknownKlPenalty(bad.to_string()))
            );
        }
    }

    #[test]
    fn values_by_hand() {
        // logp -1, ref -1.5: diff 0.5
        assert!((kl_penalty(-1.0, -1.5, KlKind::K1) - 0.5).abs() < 1e-7);
        assert!((kl_penalty(-1.5, -1.0, KlKind::Abs) - 0.5).abs() < 1e-7);
        assert!((kl_penalty(-1.0, -1.5, KlKind::K2) - 0.125).abs() < 1e-7);
        // k3: d = ref - logp = -0.5 -> exp(-0.5) + 0.5 - 1
        let want = (-0.5f64).exp() + 0.5 - 1.0;
        assert!((kl_penalty(-1.0, -1.5, KlKind::K3) as f64 - want).abs() < 1e-7);
    }

    #[test]
    fn k3_clamps() {
        // d = ref - logp = 30 -> clamped to 20 -> exp(20) - 21 is huge -> value clamped to 10.
        assert_eq!(kl_penalty(-40.0, -10.0, KlKind::K3), 10.0);
        // d = -30 -> clamped to -20 -> exp(-20) + 19 -> clamped to 10.
        assert_eq!(kl_penalty(-10.0, -40.0, KlKind::K3), 10.0);
        // d = -5: exp(-5) + 4 = 4.0067 stays under the value clamp.
        let v = kl_penalty(0.0, -5.0, KlKind::K3) as f64;
        assert!((v - ((-5.0f64).exp() + 4.0)).abs() < 1e-6);
    }

    #[test]
    fn tensor_form_agrees_and_has_gradients() {
        let dev = Device::Cpu;
        let lp = [-1.0f32, -2.0, -0.1, -40.0];
        let rp = [-1.5f32, -1.0, -0.3, -10.0];
        let lp_var = Var::from_slice(&lp, 4, &dev).unwrap();
        let rp_t = Tensor::from_slice(&rp, 4, &dev).unwrap();
        for kind in [KlKind::K1, KlKind::Abs, KlKind::K2, KlKind::K3] {
            let t = kl_penalty_tensor(lp_var.as_tensor(), &rp_t, kind).unwrap();
            let got = t.to_vec1::<f32>().unwrap();
            for i in 0..4 {
                let want = kl_penalty(lp[i], rp[i], kind);
                assert!(
                    (got[i] - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{kind:?}"
                );
            }
            let grads = t.sum_all().unwrap().backward().unwrap();
            let g = grads
                .get(lp_var.as_tensor())
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            match kind {
                KlKind::K1 => assert_eq!(g, vec![1.0; 4]),
                KlKind::K2 => assert!((g[0] - 0.5).abs() < 1e-6 && (g[1] + 1.0).abs() < 1e-6),
                KlKind::K3 => {
                    // d(exp(d) - d - 1)/dlogp = -(exp(d) - 1), d = ref - logp = -0.5
                    assert!((g[0] + ((-0.5f32).exp() - 1.0)).abs() < 1e-6);
                    // the clamped token gets no gradient
                    assert_eq!(g[3], 0.0);
                }
                KlKind::Abs => assert_eq!(g[0], 1.0),
            }
        }
    }
}
