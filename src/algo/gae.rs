//! Generalised advantage estimation with a response mask and batch whitening, as veRL's
//! `compute_gae_advantage_return` (volcengine/verl@b178a3cd).

use super::stats::masked_whiten;
use super::{AlgoError, Mat};

/// The raw (unwhitened) GAE advantages of `[B, T]` rewards and values, scanning each row from
/// the end: `delta = r_t + gamma * next_value - V_t`, `gae_t = delta + gamma * lam * gae_{t+1}`.
/// Where the mask is 0 the position is skipped: the carried `next_value` and `gae` pass through
/// unchanged and the position holds the carried `gae` (veRL's observation-token rule).
pub fn gae_raw(
    rewards: &Mat,
    values: &Mat,
    mask: &Mat,
    gamma: f64,
    lam: f64,
) -> Result<Mat, AlgoError> {
    rewards.check_same_shape(values, "values")?;
    rewards.check_same_shape(mask, "response_mask")?;
    let mut adv = Mat::filled(rewards.rows, rewards.cols, 0.0);
    for i in 0..rewards.rows {
        let (r, v, m) = (rewards.row(i), values.row(i), mask.row(i));
        let (mut next_value, mut last_gae) = (0.0f64, 0.0f64);
        for t in (0..rewards.cols).rev() {
            let delta = r[t] as f64 + gamma * next_value - v[t] as f64;
            let gae = delta + gamma * lam * last_gae;
            let keep = m[t] as f64;
            next_value = v[t] as f64 * keep + (1.0 - keep) * next_value;
            last_gae = gae * keep + (1.0 - keep) * last_gae;
            adv.row_mut(i)[t] = last_gae as f32;
        }
    }
    Ok(adv)
}

/// veRL's `compute_gae_advantage_return`: returns `(advantages, returns)` where
/// `returns = raw advantages + values` (every position) and `advantages = masked_whiten(raw,
/// mask)` over the whole batch (masked positions are whitened too, not zeroed). Errors when
/// fewer than two positions are valid.
pub fn gae_advantage_return(
    rewards: &Mat,
    values: &Mat,
    mask: &Mat,
    gamma: f64,
    lam: f64,
) -> Result<(Mat, Mat), AlgoError> {
    let raw = gae_raw(rewards, values, mask, gamma, lam)?;
    let returns = Mat::new(
        raw.rows,
        raw.cols,
        raw.data
            .iter()
            .zip(&values.data)
            .map(|(a, v)| a + v)
            .collect(),
    )?;
    let adv = Mat::new(raw.rows, raw.cols, masked_whiten(&raw.data, &mask.data)?)?;
    Ok((adv, returns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_gae_by_hand() {
        // one row, rewards [0, 0, 1], values [0.5, 0.25, 0.75], gamma 0.5, lam 0.5
        let r = Mat::from_rows(&[vec![0.0, 0.0, 1.0]]).unwrap();
        let v = Mat::from_rows(&[vec![0.5, 0.25, 0.75]]).unwrap();
        let m = Mat::filled(1, 3, 1.0);
        let a = gae_raw(&r, &v, &m, 0.5, 0.5).unwrap();
        // t2: delta = 1 - 0.75 = 0.25 -> 0.25
        // t1: delta = 0 + 0.5*0.75 - 0.25 = 0.125; gae = 0.125 + 0.25*0.25 = 0.1875
        // t0: delta = 0 + 0.5*0.25 - 0.5 = -0.375; gae = -0.375 + 0.25*0.1875 = -0.328125
        assert_eq!(a.data, vec![-0.328125, 0.1875, 0.25]);
    }

    #[test]
    fn masked_positions_are_skipped() {
        // gamma = lam = 1; the middle position is an observation token.
        let r = Mat::from_rows(&[vec![0.0, 5.0, 1.0]]).unwrap();
        let v = Mat::from_rows(&[vec![0.5, 9.0, 0.25]]).unwrap();
        let m = Mat::from_rows(&[vec![1.0, 0.0, 1.0]]).unwrap();
        let a = gae_raw(&r, &v, &m, 1.0, 1.0).unwrap();
        // t2: 1 - 0.25 = 0.75; t1 skipped (holds 0.75); t0: 0 + 0.25 - 0.5 + 0.75 = 0.5
        assert_eq!(a.data, vec![0.5, 0.75, 0.75]);
        let (_, ret) = gae_advantage_return(&r, &v, &m, 1.0, 1.0).unwrap();
        assert_eq!(ret.data, vec![1.0, 9.75, 1.0]);
    }

    #[test]
    fn too_few_valid_tokens_is_an_error() {
        let one = Mat::from_rows(&[vec![1.0, 0.0]]).unwrap();
        assert!(gae_advantage_return(&one, &one, &one, 1.0, 1.0).is_err());
    }
}
