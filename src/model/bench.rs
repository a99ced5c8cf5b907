//! Model benchmark: sampling tokens/s with the KV cache, the time of one PPO-style training step
//! (forward + backward + AdamW) on a [32 x 128] batch, and the achieved GFLOP/s next to this
//! machine's measured f32 matmul GFLOP/s. Sizes are the 0.5M model of CANDLE-NOTES.md.

use super::batch::Batch;
use super::decoder::{DecoderConfig, PositionKind};
use super::generate::SampleOptions;
use super::optim::Optimizer;
use super::tokenizer::Tokenizer;
use super::weights::LanguageModel;
use candle_core::{Device, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// The figures one benchmark run measures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub threads: usize,
    pub matmul_gflops: f64,
    pub sample_ms: f64,
    pub sampled_tokens: usize,
    pub sample_tokens_per_s: f64,
    pub forward_ms: f64,
    pub train_step_ms: f64,
    pub train_forward_ms: f64,
    pub backward_ms: f64,
    pub adamw_ms: f64,
    pub train_gflops: f64,
    pub forward_gflops: f64,
    /// What the timings measured: `wall time`, or `thread CPU time` (`OPRL_BENCH_CLOCK=cpu`).
    pub clock: &'static str,
}

/// The figures as the benchmark's table, one line each.
impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "threads                         {} ({})",
            self.threads, self.clock
        )?;
        writeln!(
            f,
            "f32 matmul 1024^3               {:.1} GFLOP/s",
            self.matmul_gflops
        )?;
        writeln!(
            f,
            "sampling 32 x 64 (KV cache)     {:.1} ms, {} tokens, {:.0} tokens/s",
            self.sample_ms, self.sampled_tokens, self.sample_tokens_per_s
        )?;
        writeln!(
            f,
            "forward + log-probs [32 x 128]  {:.1} ms, {:.1} GFLOP/s ({:.0}% of matmul)",
            self.forward_ms,
            self.forward_gflops,
            100.0 * self.forward_gflops / self.matmul_gflops
        )?;
        writeln!(
            f,
            "train step fwd+bwd+AdamW        {:.1} ms, {:.1} GFLOP/s ({:.0}% of matmul)",
            self.train_step_ms,
            self.train_gflops,
            100.0 * self.train_gflops / self.matmul_gflops
        )?;
        writeln!(
            f,
            "  of which forward {:.1} ms, backward {:.1} ms, AdamW {:.1} ms",
            self.train_forward_ms, self.backward_ms, self.adamw_ms
        )
    }
}

/// The 0.5M-parameter model: vocab 256, width 128, 4 heads, 2 layers, MLP 512, RoPE.
pub fn bench_config(context: usize) -> DecoderConfig {
    DecoderConfig {
        vocab: 256,
        hidden: 128,
        layers: 2,
        heads: 4,
        kv_heads: 4,
        head_dim: 32,
        mlp: 512,
        context,
        positions: PositionKind::Rope { theta: 10000.0 },
        rms_eps: 1e-5,
        qkv_bias: false,
        tie_embeddings: false,
        vision: None,
        qk_norm: false,
        rope_scaling: None,
    }
}

/// On-CPU time of the calling thread in ms (Linux), if readable.
fn thread_cpu_ms() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

/// Milliseconds on the benchmark's clock: wall time, or with `OPRL_BENCH_CLOCK=cpu` the calling
/// thread's on-CPU time, which stays meaningful on a loaded machine when candle runs on one
/// thread (`RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1`).
fn now_ms() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    if std::env::var("OPRL_BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        if let Some(ms) = thread_cpu_ms() {
            return ms;
        }
    }
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// Median of `reps` timings of `f`, in milliseconds, after one warm-up call.
fn median_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = now_ms();
        f()?;
        times.push(now_ms() - t);
    }
    Ok(median(times))
}

/// Best-of f32 matmul throughput on an n x n x n product.
pub fn matmul_gflops(n: usize, device: &Device) -> Result<f64> {
    let a = Tensor::ones((n, n), candle_core::DType::F32, device)?;
    let b = Tensor::ones((n, n), candle_core::DType::F32, device)?;
    let ms = median_ms(5, || {
        let c = a.matmul(&b)?;
        device.synchronize()?;
        drop(c);
        Ok(())
    })?;
    Ok(2.0 * (n as f64).powi(3) / (ms * 1e-3) / 1e9)
}

/// Multiply-add FLOPs of one forward pass over `b` sequences of `t` tokens (matmuls only:
/// projections, MLP, attention scores and mixing, LM head).
pub fn forward_flops(cfg: &DecoderConfig, b: usize, t: usize) -> f64 {
    let d = cfg.hidden as f64;
    let qkv = (cfg.heads + 2 * cfg.kv_heads) as f64 * cfg.head_dim as f64;
    let per_token_layer =
        2.0 * d * qkv + 2.0 * (cfg.heads * cfg.head_dim) as f64 * d + 6.0 * d * cfg.mlp as f64;
    let attn_per_seq_layer = 2.0 * 2.0 * (t * t) as f64 * (cfg.heads * cfg.head_dim) as f64;
    let tokens = (b * t) as f64;
    cfg.layers as f64 * (per_token_layer * tokens + attn_per_seq_layer * b as f64)
        + 2.0 * d * cfg.vocab as f64 * tokens
}

fn random_seqs(rng: &mut ChaCha8Rng, n: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    // Ids from 4 up: no special tokens in the inputs.
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| rng.random_range(4..vocab as u32))
                .collect()
        })
        .collect()
}

/// Runs the benchmark on `device` and returns its figures (their [`std::fmt::Display`] is the
/// table `cargo bench --bench model` prints).
pub fn run(device: &Device) -> Result<BenchReport> {
    let threads = candle_core::utils::get_num_threads();
    let alphabet: String = (0u8..=255)
        .filter_map(|b| char::from_u32(b as u32 + 0x100))
        .take(252)
        .collect();
    let tokenizer = Tokenizer::chars(&alphabet);
    let cfg = bench_config(256);
    let model = LanguageModel::random(cfg.clone(), &tokenizer, device, 0)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    let matmul = matmul_gflops(1024, device)?;

    // Sampling: batch 32, prompts of 16..48 tokens, 64 new tokens, no stop strings.
    let prompts: Vec<Vec<u32>> = (0..32)
        .map(|i| random_seqs(&mut rng, 1, 16 + i, cfg.vocab).remove(0))
        .collect();
    let opts = SampleOptions {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 64,
        stop: vec![],
        admissible_only: false,
    };
    let mut sampled = 0;
    let sample_ms = median_ms(5, || {
        let mut r = ChaCha8Rng::seed_from_u64(2);
        let gens = model.generate(Batch::new(&prompts), &opts, &mut r)?;
        sampled = gens.iter().map(|g| g.tokens.len()).sum();
        Ok(())
    })?;

    // Training step on [32 x 128]: 64 prompt + 64 action tokens, policy-gradient style loss.
    let prompts = random_seqs(&mut rng, 32, 64, cfg.vocab);
    let actions = random_seqs(&mut rng, 32, 64, cfg.vocab);
    let forward_ms = median_ms(5, || {
        model.score(Batch::new(&prompts), &actions, false)?;
        Ok(())
    })?;
    let mut opt = Optimizer::new(model.vars(), 1e-4, 0.0)?;
    let train_ms = median_ms(5, || {
        let s = model.score(Batch::new(&prompts), &actions, true)?;
        let loss = (s.logprobs.sum_all()? * (-1.0 / (32.0 * 64.0)))?;
        opt.step(&loss, 1.0)?;
        Ok(())
    })?;
    // The same step in parts: forward with graph, backward, AdamW.
    let (mut f_ms, mut b_ms, mut o_ms) = (vec![], vec![], vec![]);
    for _ in 0..5 {
        let t0 = now_ms();
        let s = model.score(Batch::new(&prompts), &actions, true)?;
        let loss = (s.logprobs.sum_all()? * (-1.0 / (32.0 * 64.0)))?;
        let t1 = now_ms();
        let grads = loss.backward()?;
        let t2 = now_ms();
        opt.step_with_grads(&grads, 1.0)?;
        let t3 = now_ms();
        f_ms.push(t1 - t0);
        b_ms.push(t2 - t1);
        o_ms.push(t3 - t2);
    }
    let fwd = forward_flops(&cfg, 32, 127);
    let report = BenchReport {
        threads,
        matmul_gflops: matmul,
        sample_ms,
        sampled_tokens: sampled,
        sample_tokens_per_s: sampled as f64 / (sample_ms * 1e-3),
        forward_ms,
        train_step_ms: train_ms,
        train_forward_ms: median(f_ms),
        backward_ms: median(b_ms),
        adamw_ms: median(o_ms),
        train_gflops: 3.0 * fwd / (train_ms * 1e-3) / 1e9,
        forward_gflops: fwd / (forward_ms * 1e-3) / 1e9,
        clock: if std::env::var("OPRL_BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
            "thread CPU time"
        } else {
            "wall time"
        },
    };
    Ok(report)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_of_a_one_layer_model_by_hand() {
        let mut cfg = bench_config(16);
        cfg.layers = 1;
        // per token: qkv 2*128*384 + o 2*128*128 + mlp 6*128*512 + head 2*128*256
        let per_token =
            2.0 * 128.0 * 384.0 + 2.0 * 128.0 * 128.0 + 6.0 * 128.0 * 512.0 + 2.0 * 128.0 * 256.0;
        // attention per sequence: scores and mixing, 2 * 2 * t^2 * 128
        let attn = 4.0 * 100.0 * 128.0;
        assert_eq!(forward_flops(&cfg, 3, 10), 3.0 * (10.0 * per_token + attn));
    }

    /// `cargo test --lib model::bench -- --ignored --nocapture` (test profile: rough figures).
    #[test]
    #[ignore]
    fn print_benchmark() {
        run(&Device::Cpu).unwrap();
    }
}
