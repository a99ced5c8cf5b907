//! OPRL's step-level helpers (METHOD.md step 5) that [`super::evaluate_advantage`] applies to a
//! step signal: the optional `maxabs` pre-scaling and discounted return-to-go within a
//! trajectory. (Pooled normalisation is [`super::stats::normalise_by_group`]; implicit and
//! merged step rewards are signals of the advantage expression.)

/// The released code's pre-scaling: every value divided by the batch's max `|value|`. A batch
/// of zeros (iteration 1, when the PRM equals the old policy) stays zero.
pub fn maxabs_scale(values: &[f64]) -> Vec<f64> {
    let max = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if max > 0.0 {
        values.iter().map(|v| v / max).collect()
    } else {
        values.to_vec()
    }
}

/// Return-to-go within one trajectory: `R_t = r_t + gamma * R_{t+1}`, accumulated in f64.
pub fn discounted_returns(rewards: &[f64], gamma: f64) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut running = 0.0f64;
    for t in (0..rewards.len()).rev() {
        running = rewards[t] + gamma * running;
        out[t] = running;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxabs_by_hand_and_zero_batch() {
        assert_eq!(maxabs_scale(&[0.5, -2.0, 1.0]), vec![0.25, -1.0, 0.5]);
        assert_eq!(maxabs_scale(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn discounted_by_hand() {
        let r = discounted_returns(&[-0.1, -0.1, 1.0], 0.5);
        // R2 = 1, R1 = -0.1 + 0.5 = 0.4, R0 = -0.1 + 0.2 = 0.1
        assert!((r[2] - 1.0).abs() < 1e-12 && (r[1] - 0.4).abs() < 1e-12);
        assert!((r[0] - 0.1).abs() < 1e-12);
    }
}
