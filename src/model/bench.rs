//! Model benchmark: sampling tokens/s with the KV cache, forward + log-probs and one full
//! training step (forward + backward + AdamW) in tokens/s, and the achieved GFLOP/s next to this
//! machine's measured f32 matmul GFLOP/s. Two workloads mirror the PyTorch peers in
//! `shared/bench`: [`Workload::TINY`] (the 0.5M model of CANDLE-NOTES.md,
//! `torch_tiny_policy_bench.py`) and [`Workload::PRETRAINED`] (a real pretrained model such as
//! SmolLM2-135M, `torch_smollm2_bench.py`).

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

/// The shapes one benchmark run measures; each matches its PyTorch peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Workload {
    /// Rows of the forward and training batches.
    pub rows: usize,
    /// Tokens of each row read as prompt (not scored) ...
    pub prompt: usize,
    /// ... and as the scored action: the forward computes log-probs for these.
    pub action: usize,
    /// Rows sampled together.
    pub sample_rows: usize,
    /// Prompt length of sampled row `i`: `sample_prompt + i * sample_prompt_step`.
    pub sample_prompt: usize,
    pub sample_prompt_step: usize,
    /// New tokens sampled per row.
    pub new_tokens: usize,
    /// Timed repetitions of each measurement (median reported).
    pub reps: usize,
}

impl Workload {
    /// The 0.5M model: forward and training on [32 x 128] (64 prompt + 64 action tokens),
    /// sampling 32 rows of 64 new tokens after prompts of 16..48 tokens.
    pub const TINY: Workload = Workload {
        rows: 32,
        prompt: 64,
        action: 64,
        sample_rows: 32,
        sample_prompt: 16,
        sample_prompt_step: 1,
        new_tokens: 64,
        reps: 5,
    };

    /// A pretrained model (`torch_smollm2_bench.py`): log-probs of all 127 next tokens of
    /// [8 x 128] rows, and 8 rows of 32 new tokens after a 64-token prompt.
    pub const PRETRAINED: Workload = Workload {
        rows: 8,
        prompt: 1,
        action: 127,
        sample_rows: 8,
        sample_prompt: 64,
        sample_prompt_step: 0,
        new_tokens: 32,
        reps: 3,
    };

    fn tokens(&self) -> usize {
        self.rows * (self.prompt + self.action)
    }
}

/// The figures one benchmark run measures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub workload: Workload,
    pub threads: usize,
    pub matmul_gflops: f64,
    pub sample_ms: f64,
    pub sampled_tokens: usize,
    pub sample_tokens_per_s: f64,
    pub forward_ms: f64,
    pub forward_tokens_per_s: f64,
    pub train_step_ms: f64,
    pub train_tokens_per_s: f64,
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
        let w = &self.workload;
        let shape = format!("[{} x {}]", w.rows, w.prompt + w.action);
        writeln!(
            f,
            "threads                              {} ({})",
            self.threads, self.clock
        )?;
        writeln!(
            f,
            "f32 matmul 1024^3                    {:.1} GFLOP/s",
            self.matmul_gflops
        )?;
        writeln!(
            f,
            "{:<37}{:.1} ms, {} tokens, {:.0} tokens/s",
            format!("sampling {} x {} (KV cache)", w.sample_rows, w.new_tokens),
            self.sample_ms,
            self.sampled_tokens,
            self.sample_tokens_per_s
        )?;
        writeln!(
            f,
            "{:<37}{:.1} ms, {:.0} tokens/s, {:.1} GFLOP/s ({:.0}% of matmul)",
            format!("forward + log-probs {shape}"),
            self.forward_ms,
            self.forward_tokens_per_s,
            self.forward_gflops,
            100.0 * self.forward_gflops / self.matmul_gflops
        )?;
        writeln!(
            f,
            "{:<37}{:.1} ms, {:.0} tokens/s, {:.1} GFLOP/s ({:.0}% of matmul)",
            format!("train step fwd+bwd+AdamW {shape}"),
            self.train_step_ms,
            self.train_tokens_per_s,
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

/// The 0.5M model with fresh weights on `device`, timed on [`Workload::TINY`].
pub fn run(device: &Device) -> Result<BenchReport> {
    let alphabet: String = (0u8..=255)
        .filter_map(|b| char::from_u32(b as u32 + 0x100))
        .take(252)
        .collect();
    let tokenizer = Tokenizer::chars(&alphabet);
    let model = LanguageModel::random(bench_config(256), &tokenizer, device, 0)?;
    run_workload(&model, Workload::TINY)
}

/// Times `workload` on `model` (its weights are trained in place by the training step, so
/// load a fresh copy to reuse it). Its [`std::fmt::Display`] is the table `oprl bench` prints.
pub fn run_workload(model: &LanguageModel, workload: Workload) -> Result<BenchReport> {
    let w = workload;
    let cfg = model.config().clone();
    let device = model.device();
    let threads = candle_core::utils::get_num_threads();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let matmul = matmul_gflops(1024, device)?;

    // Sampling with no stop strings; every row runs to `new_tokens` unless it draws its end
    // token, and the rate counts the tokens actually drawn.
    let prompts: Vec<Vec<u32>> = (0..w.sample_rows)
        .map(|i| {
            let len = w.sample_prompt + i * w.sample_prompt_step;
            random_seqs(&mut rng, 1, len, cfg.vocab).remove(0)
        })
        .collect();
    let opts = SampleOptions {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: w.new_tokens,
        stop: vec![],
        admissible_only: false,
    };
    let mut sampled = 0;
    let sample_ms = median_ms(w.reps, || {
        let mut r = ChaCha8Rng::seed_from_u64(2);
        let gens = model.generate(Batch::new(&prompts), &opts, &mut r)?;
        sampled = gens.iter().map(|g| g.tokens.len()).sum();
        Ok(())
    })?;

    // Forward and a policy-gradient style training step on [rows x (prompt + action)].
    let prompts = random_seqs(&mut rng, w.rows, w.prompt, cfg.vocab);
    let actions = random_seqs(&mut rng, w.rows, w.action, cfg.vocab);
    let scale = -1.0 / (w.rows * w.action) as f64;
    let forward_ms = median_ms(w.reps, || {
        model.score(Batch::new(&prompts), &actions, false)?;
        Ok(())
    })?;
    let mut opt = Optimizer::new(model.vars(), 1e-6, 0.0)?;
    let train_ms = median_ms(w.reps, || {
        let s = model.score(Batch::new(&prompts), &actions, true)?;
        let loss = (s.logprobs.sum_all()? * scale)?;
        opt.step(&loss, 1.0)?;
        Ok(())
    })?;
    // The same step in parts: forward with graph, backward, AdamW.
    let (mut f_ms, mut b_ms, mut o_ms) = (vec![], vec![], vec![]);
    for _ in 0..w.reps {
        let t0 = now_ms();
        let s = model.score(Batch::new(&prompts), &actions, true)?;
        let loss = (s.logprobs.sum_all()? * scale)?;
        let t1 = now_ms();
        let grads = loss.backward()?;
        let t2 = now_ms();
        opt.step_with_grads(&grads, 1.0)?;
        let t3 = now_ms();
        f_ms.push(t1 - t0);
        b_ms.push(t2 - t1);
        o_ms.push(t3 - t2);
    }
    let fwd = forward_flops(&cfg, w.rows, w.prompt + w.action - 1);
    let per_s = |tokens: usize, ms: f64| tokens as f64 / (ms * 1e-3);
    Ok(BenchReport {
        workload: w,
        threads,
        matmul_gflops: matmul,
        sample_ms,
        sampled_tokens: sampled,
        sample_tokens_per_s: per_s(sampled, sample_ms),
        forward_ms,
        forward_tokens_per_s: per_s(w.tokens(), forward_ms),
        train_step_ms: train_ms,
        train_tokens_per_s: per_s(w.tokens(), train_ms),
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
    })
}

/// A PyTorch peer's figures for the same workload, read from what `torch_tiny_policy_bench.py` or
/// `torch_smollm2_bench.py` print.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PeerFigures {
    pub forward_ms: f64,
    pub train_step_ms: f64,
    pub sample_tokens_per_s: f64,
}

impl PeerFigures {
    /// Reads the peer's printed figures; `None` names the first one missing.
    pub fn parse(text: &str) -> std::result::Result<PeerFigures, &'static str> {
        let (mut forward, mut train, mut sample) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.starts_with("(a) fwd logprobs no_grad") || line.starts_with("forward+logprobs")
            {
                forward = forward.or(number_before(line, " ms"));
            } else if line.starts_with("(b) PPO step") {
                train = number_after(line, "total ");
            } else if line.starts_with("train step") {
                train = number_before(line, " ms");
            } else if line.starts_with("(c) sample") {
                sample = number_before(line, " tok/s");
            } else if line.starts_with("sampling") {
                sample = number_before(line, " new tokens/s");
            }
        }
        Ok(PeerFigures {
            forward_ms: forward.ok_or("forward")?,
            train_step_ms: train.ok_or("training step")?,
            sample_tokens_per_s: sample.ok_or("sampling")?,
        })
    }

    /// oprl's speed over the peer's (above 1: oprl is faster) for forward, training step and
    /// sampling.
    pub fn ratios(&self, ours: &BenchReport) -> [(&'static str, f64); 3] {
        [
            ("forward + log-probs", self.forward_ms / ours.forward_ms),
            ("train step", self.train_step_ms / ours.train_step_ms),
            (
                "sampling",
                ours.sample_tokens_per_s / self.sample_tokens_per_s,
            ),
        ]
    }
}

/// The number that ends right before the first `unit` in `line` (`"12.5 ms"` -> 12.5).
fn number_before(line: &str, unit: &str) -> Option<f64> {
    let head = &line[..line.find(unit)?];
    let start = head
        .rfind(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or(0, |i| i + 1);
    head[start..].parse().ok()
}

/// The number that starts right after the first `label` in `line` (`"total 9.5 ms"` -> 9.5).
fn number_after(line: &str, label: &str) -> Option<f64> {
    let tail = &line[line.find(label)? + label.len()..];
    let end = tail
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(tail.len());
    tail[..end].parse().ok()
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

    #[test]
    fn reads_both_pytorch_peers_output() {
        let tiny = "torch 2.15 threads=2\n\
            (a) fwd logprobs no_grad: 62.0 ms => 40.1 GFLOP/s  [61.0, 62.0]\n\
            (a) fwd logprobs with autograd graph: 70.5 ms => 35.0 GFLOP/s\n\
            (b) PPO step: fwd 40.0 ms, backward 60.0 ms, AdamW 3.0 ms, total 111.5 ms => 60 GFLOP/s\n\
            (c) sample 32x64 (prompt 16) KV cache inference_mode: 61.0 ms (0.95 ms/step, 33571 tok/s)\n";
        assert_eq!(
            PeerFigures::parse(tiny),
            Ok(PeerFigures {
                forward_ms: 62.0,
                train_step_ms: 111.5,
                sample_tokens_per_s: 33571.0
            })
        );
        let smollm2 = "torch 2.15 threads=2 SmolLM2-135M f32\n\
            forward+logprobs [8x128]: 410 ms, 2498 tokens/s\n\
            train step fwd+bwd+AdamW [8x128]: 1900 ms, 539 tokens/s\n\
            sampling 8x32 new (prompt 64, KV cache): 1200 ms, 213 new tokens/s\n";
        let peer = PeerFigures::parse(smollm2).unwrap();
        assert_eq!(
            (
                peer.forward_ms,
                peer.train_step_ms,
                peer.sample_tokens_per_s
            ),
            (410.0, 1900.0, 213.0)
        );
        assert_eq!(PeerFigures::parse("torch 2.15\n"), Err("forward"));
    }

    /// `cargo test --lib model::bench -- --ignored --nocapture` (test profile: rough figures).
    #[test]
    #[ignore]
    fn print_benchmark() {
        run(&Device::Cpu).unwrap();
    }
}
