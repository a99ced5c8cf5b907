//! Host-side token sampling from one row of logits: temperature, nucleus (top-p) truncation and a
//! seeded ChaCha draw, so runs are reproducible (candle's own RNG cannot be seeded on CPU).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A sampled token and its log-probability under the untempered distribution (log softmax of
/// the raw logits), which is what PPO's `logp_old` needs when training at temperature 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    pub token: u32,
    pub logprob: f32,
}

/// `log(sum(exp(x)))`, computed stably.
pub fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum: f64 = x.iter().map(|&v| ((v - max) as f64).exp()).sum();
    max + sum.ln() as f32
}

/// Samples one token. Exactly one uniform number is drawn per call whatever the settings, so the
/// RNG stream stays aligned across runs that differ only in temperature.
/// `temperature <= 0` is greedy; `top_p` keeps the smallest set of most likely tokens whose
/// probability reaches `top_p` (ties broken by lower id).
pub fn draw(logits: &[f32], temperature: f64, top_p: f64, rng: &mut ChaCha8Rng) -> Draw {
    let u: f64 = rng.random();
    let token = if temperature <= 0.0 {
        argmax(logits)
    } else {
        nucleus_pick(logits, temperature, top_p, u)
    };
    Draw {
        token: token as u32,
        logprob: logits[token] - log_sum_exp(logits),
    }
}

/// The `k` most likely ids of `logits` with their log-probs (log softmax of the raw logits),
/// most likely first, ties by lower id.
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 {
        return vec![];
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(order.len());
    let by_logit = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, by_logit);
        order.truncate(k);
    }
    order.sort_by(by_logit);
    let norm = log_sum_exp(logits);
    order
        .into_iter()
        .map(|i| (i as u32, logits[i] - norm))
        .collect()
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Inverse-CDF pick with uniform `u` in [0, 1) from the tempered, top-p truncated distribution.
fn nucleus_pick(logits: &[f32], temperature: f64, top_p: f64, u: f64) -> usize {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let order = if top_p < 1.0 {
        nucleus(&weights, total, top_p)
    } else {
        (0..logits.len()).collect()
    };
    let kept_total: f64 = order.iter().map(|&i| weights[i]).sum();
    let target = u * kept_total;
    let mut acc = 0.0;
    for &i in &order {
        acc += weights[i];
        if target < acc {
            return i;
        }
    }
    // Rounding can leave `target` just past the last cumulative sum.
    *order.last().expect("at least one token is kept")
}

/// Indices of the smallest set of largest weights whose sum reaches `top_p * total`, in
/// decreasing weight order (ties by lower id). Sorting a 150k vocabulary for every token is
/// slow, so only weights above a threshold are sorted; the threshold drops until the candidates
/// hold enough mass, which makes the result the same as sorting everything.
fn nucleus(weights: &[f64], total: f64, top_p: f64) -> Vec<usize> {
    let max = weights.iter().copied().fold(0.0, f64::max);
    let target = top_p * total;
    let mut threshold = max * 1e-3;
    loop {
        let mut cand: Vec<usize> = (0..weights.len())
            .filter(|&i| weights[i] >= threshold)
            .collect();
        let mass: f64 = cand.iter().map(|&i| weights[i]).sum();
        if mass >= target || threshold == 0.0 {
            cand.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
            let mut kept = 0.0;
            let mut n = 0;
            for &i in &cand {
                kept += weights[i];
                n += 1;
                if kept >= target {
                    break;
                }
            }
            cand.truncate(n.max(1));
            return cand;
        }
        threshold = if threshold < max * 1e-12 {
            0.0
        } else {
            threshold * 1e-3
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn greedy_picks_argmax_with_untempered_logprob() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let d = draw(&[0.0, 2.0, 1.0], 0.0, 1.0, &mut rng);
        assert_eq!(d.token, 1);
        let expected = 2.0 - (1.0f64 + 2f64.exp() + 1f64.exp()).ln();
        assert!((d.logprob as f64 - expected).abs() < 1e-6);
    }

    #[test]
    fn top_logprobs_are_the_largest_in_order() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let top = top_logprobs(&logits, 3);
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 3, 2]);
        let norm = log_sum_exp(&logits);
        assert!((top[2].1 - (2.0 - norm)).abs() < 1e-6);
        assert_eq!(top_logprobs(&logits, 9).len(), 5);
        assert!(top_logprobs(&logits, 0).is_empty());
    }

    #[test]
    fn inverse_cdf_follows_probabilities() {
        // probs 0.25 / 0.75 at temperature 1: u < 0.25 picks token 0.
        let logits = [0.0f32, 3f32.ln()];
        assert_eq!(nucleus_pick(&logits, 1.0, 1.0, 0.2), 0);
        assert_eq!(nucleus_pick(&logits, 1.0, 1.0, 0.3), 1);
        // top-p 0.5 keeps only the 0.75 token.
        assert_eq!(nucleus_pick(&logits, 1.0, 0.5, 0.0), 1);
        // temperature 2: weights 1 and sqrt(3); u just under 1/(1+sqrt 3) still picks 0
        // (margin above the f32 rounding of ln 3).
        let p0 = 1.0 / (1.0 + 3f64.sqrt());
        assert_eq!(nucleus_pick(&logits, 2.0, 1.0, p0 - 1e-6), 0);
        assert_eq!(nucleus_pick(&logits, 2.0, 1.0, p0 + 1e-6), 1);
    }

    #[test]
    fn thresholded_nucleus_equals_full_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let w: Vec<f64> = (0..300).map(|_| rng.random::<f64>().powi(12)).collect();
            let total: f64 = w.iter().sum();
            for p in [0.1, 0.5, 0.9, 0.999] {
                let mut all: Vec<usize> = (0..w.len()).collect();
                all.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
                let mut kept = 0.0;
                let n = all
                    .iter()
                    .position(|&i| {
                        kept += w[i];
                        kept >= p * total
                    })
                    .map_or(all.len(), |k| k + 1);
                assert_eq!(nucleus(&w, total, p), all[..n].to_vec());
            }
        }
    }

    #[test]
    fn empirical_frequencies_match_softmax() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let logits = [0.0f32, 1.0, 2.0];
        let mut counts = [0usize; 3];
        let n = 20000;
        for _ in 0..n {
            counts[draw(&logits, 1.0, 1.0, &mut rng).token as usize] += 1;
        }
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (i, &c) in counts.iter().enumerate() {
            let p = (logits[i] as f64).exp() / z;
            assert!((c as f64 / n as f64 - p).abs() < 0.015, "token {i}: {c}");
        }
    }
}
