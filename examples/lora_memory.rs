//! Memory of the models an OPRL run holds for a pretrained policy, full fine-tuning against
//! LoRA: the policy, the PRM (initialised from it), the frozen reference and their AdamW
//! state, built as the trainer builds them, then one policy update on a short batch.
//!
//! ```sh
//! cargo run --release --example lora_memory -- "$(sh scripts/fetch-test-model.sh)" full f32
//! cargo run --release --example lora_memory -- "$(sh scripts/fetch-test-model.sh)" lora bf16
//! ```
//!
//! Run one configuration per process: resident memory (`VmRSS`, and its peak `VmHWM`, from
//! `/proc/self/status`) is the process's. Tensor bytes count every weight and moment tensor
//! once, however many models share it. `theta_old` takes no memory of its own: `log pi_old` is
//! scored with the policy before its update.

use candle_core::{DType, Device, Tensor};
use oprl::graph::{from_name, LoraSpec, Projection};
use oprl::model::{hf, Batch, LanguageModel, Optimizer};
use std::collections::HashSet;
use std::path::PathBuf;

fn status_kib(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn rss(label: &str) {
    println!(
        "{label:<34} VmRSS {:>8.1} MiB   VmHWM {:>8.1} MiB",
        status_kib("VmRSS:") as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0
    );
}

/// Bytes of the distinct tensors in `tensors`.
fn unique_bytes<'a>(
    tensors: impl Iterator<Item = &'a Tensor>,
    seen: &mut HashSet<String>,
) -> usize {
    tensors
        .filter(|t| seen.insert(format!("{:?}", t.id())))
        .map(|t| t.elem_count() * t.dtype().size_in_bytes())
        .sum()
}

fn main() -> candle_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, mode, dtype] = &args[..] else {
        eprintln!("usage: lora_memory MODEL_PATH full|lora f32|bf16|f16");
        std::process::exit(2);
    };
    let dtype = match dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => panic!("unknown dtype {other}"),
    };
    let path = PathBuf::from(path);
    let device = Device::Cpu;
    rss("start");
    let tokenizer = hf::tokenizer(&path)?;
    let (cfg, weights) = hf::read_model(&path, &device)?;
    let policy = match mode.as_str() {
        "full" => {
            LanguageModel::from_weights(cfg, weights, &tokenizer, &device)?.with_precision(dtype)
        }
        "lora" => {
            let lora = LoraSpec {
                rank: 8,
                alpha: 16.0,
                dropout: 0.0,
                targets: Projection::NAMES
                    .iter()
                    .map(|n| from_name(n).expect("a projection name"))
                    .collect(),
            };
            LanguageModel::with_lora(cfg, weights, &tokenizer, &device, dtype, &lora, 0)?
        }
        other => panic!("unknown mode {other}"),
    };
    rss("policy");
    let prm = policy.duplicate()?;
    rss("+ PRM");
    let reference = policy.frozen_copy()?;
    rss("+ reference");
    let mut policy_opt = Optimizer::new(policy.vars(), 1e-5, 0.0)?;
    let _prm_opt = Optimizer::new(prm.vars(), 1e-6, 0.0)?;
    rss("+ AdamW state (policy, PRM)");

    let mut seen = HashSet::new();
    let mut weight_bytes = 0;
    for (name, m) in [
        ("policy", &policy),
        ("PRM", &prm),
        ("reference", &reference),
    ] {
        let tensors = m.tensors();
        let own = unique_bytes(tensors.iter().map(|(_, t)| t), &mut seen);
        let trained: usize = m
            .vars()
            .iter()
            .map(|v| v.elem_count() * v.dtype().size_in_bytes())
            .sum();
        println!(
            "{name:<10} new tensor bytes {:>8.1} MiB (Vars {:>8.1} MiB in {} tensors)",
            mib(own),
            mib(trained),
            m.vars().len()
        );
        weight_bytes += own;
    }
    // AdamW keeps two f32 moments per trained value.
    let adam: usize = [&policy, &prm]
        .iter()
        .flat_map(|m| m.vars())
        .map(|v| 2 * v.elem_count() * 4)
        .sum();
    println!(
        "weights {:.1} MiB + AdamW moments {:.1} MiB = {:.1} MiB",
        mib(weight_bytes),
        mib(adam),
        mib(weight_bytes + adam)
    );

    // One policy update on 4 rows of 32 prompt + 16 action tokens.
    let prompt: Vec<u32> =
        tokenizer.encode(&"The quick brown fox jumps over the lazy dog. ".repeat(8));
    let prompts: Vec<Vec<u32>> = (0..4).map(|i| prompt[i..i + 32].to_vec()).collect();
    let actions: Vec<Vec<u32>> = (0..4).map(|i| prompt[i + 32..i + 48].to_vec()).collect();
    let start = std::time::Instant::now();
    let scored = policy.score(Batch::new(&prompts), &actions, true)?;
    let loss = (scored.logprobs.sum_all()?.neg()? / 64.0)?;
    policy_opt.step(&loss, 1.0)?;
    println!("one policy update in {:.2?}", start.elapsed());
    rss("after one policy update");
    Ok(())
}
