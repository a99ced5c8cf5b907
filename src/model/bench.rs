//! Model benchmark: sampling tokens/s with the KV cache, the time of one PPO-style training step
//! (forward + backward + AdamW) on a [32 x 128] batch, and the achieved GFLOP/s next to this
//! machine's measured f32 matmul GFLOP/s. Sizes are the 0.5M model of CANDLE-NOTES.md.

use super::{DecoderConfig, LanguageModel, Optimizer, PositionKind, SampleOptions, Tokenizer};
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
    pub train_gflops: f64,
    pub forward_gflops: f64,
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
    }
}

/// Median of `reps` timings of `f`, in milliseconds, after one warm-up call.
fn median_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
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

/// Runs the benchmark on `device` and prints one line per figure.
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
    };
    let mut sampled = 0;
    let sample_ms = median_ms(5, || {
        let mut r = ChaCha8Rng::seed_from_u64(2);
        let gens = model.generate(&prompts, &opts, &mut r)?;
        sampled = gens.iter().map(|g| g.tokens.len()).sum();
        Ok(())
    })?;

    // Training step on [32 x 128]: 64 prompt + 64 action tokens, policy-gradient style loss.
    let prompts = random_seqs(&mut rng, 32, 64, cfg.vocab);
    let actions = random_seqs(&mut rng, 32, 64, cfg.vocab);
    let forward_ms = median_ms(5, || {
        model.score(&prompts, &actions, false)?;
        Ok(())
    })?;
    let mut opt = Optimizer::new(model.vars(), 1e-4, 0.0)?;
    let train_ms = median_ms(5, || {
        let s = model.score(&prompts, &actions, true)?;
        let loss = (s.logprobs.sum_all()? * (-1.0 / (32.0 * 64.0)))?;
        opt.step(&loss, 1.0)?;
        Ok(())
    })?;
    let fwd = forward_flops(&cfg, 32, 127);
    let report = BenchReport {
        threads,
        matmul_gflops: matmul,
        sample_ms,
        sampled_tokens: sampled,
        sample_tokens_per_s: sampled as f64 / (sample_ms * 1e-3),
        forward_ms,
        train_step_ms: train_ms,
        train_gflops: 3.0 * fwd / (train_ms * 1e-3) / 1e9,
        forward_gflops: fwd / (forward_ms * 1e-3) / 1e9,
    };
    println!("threads                         {}", report.threads);
    println!(
        "f32 matmul 1024^3               {:.1} GFLOP/s",
        report.matmul_gflops
    );
    println!(
        "sampling 32 x 64 (KV cache)     {:.1} ms, {} tokens, {:.0} tokens/s",
        report.sample_ms, report.sampled_tokens, report.sample_tokens_per_s
    );
    println!(
        "forward + log-probs [32 x 128]  {:.1} ms, {:.1} GFLOP/s ({:.0}% of matmul)",
        report.forward_ms,
        report.forward_gflops,
        100.0 * report.forward_gflops / report.matmul_gflops
    );
    println!(
        "train step fwd+bwd+AdamW        {:.1} ms, {:.1} GFLOP/s ({:.0}% of matmul)",
        report.train_step_ms,
        report.train_gflops,
        100.0 * report.train_gflops / report.matmul_gflops
    );
    Ok(report)
}
