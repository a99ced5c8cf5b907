//! `oprl bench RECIPE [--set k=v]... [--iterations N]`: a few iterations, phase by phase.
//! `oprl bench --model tiny|PATH [--torch FILE] [--json]`: the model alone (sampling, forward,
//! training step), optionally next to a PyTorch peer's printed figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::progress::{ProgressMode, Reporter};
use super::run::experiment_failed;
use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE};
use crate::experiments::bench;
use crate::model::bench::{self as model_bench, PeerFigures, Workload};
use crate::model::error::one_line;
use crate::model::LanguageModel;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["recipe", "model"])))]
pub struct BenchArgs {
    /// A recipe: time a few iterations of it, phase by phase.
    pub recipe: Option<PathBuf>,
    #[arg(long = "set", value_name = "PATH=VALUE", requires = "recipe")]
    pub overrides: Vec<String>,
    #[arg(long, default_value_t = 3, requires = "recipe")]
    pub iterations: usize,
    /// Time the model alone: `tiny` (the 0.5M decoder of torch_tiny_policy_bench.py) or a
    /// pretrained model (Hugging Face directory or .gguf; the torch_smollm2_bench.py shapes).
    #[arg(long, value_name = "tiny|PATH")]
    pub model: Option<String>,
    /// The output of the matching PyTorch benchmark, to print oprl's speed ratios.
    #[arg(long, value_name = "FILE", requires = "model")]
    pub torch: Option<PathBuf>,
    /// Print the model figures as JSON.
    #[arg(long, requires = "model")]
    pub json: bool,
    /// Worker threads (default: all cores, or OPRL_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: &BenchArgs) -> i32 {
    crate::runtime::setup::configure_threads(args.threads);
    match (&args.recipe, &args.model) {
        (_, Some(model)) => model_bench(model, args.torch.as_deref(), args.json),
        (Some(recipe), None) => recipe_bench(recipe, args),
        (None, None) => unreachable!("clap requires a recipe or --model"),
    }
}

fn recipe_bench(recipe: &Path, args: &BenchArgs) -> i32 {
    // Environment retries are shown as warnings; nothing else is printed while it runs.
    let warnings = Arc::new(Reporter::new(ProgressMode::Quiet));
    match bench::bench(
        recipe,
        &args.overrides,
        args.iterations.max(1),
        Some(warnings),
    ) {
        Ok(metrics) => {
            print!("{}", bench::table(&metrics));
            EXIT_OK
        }
        Err(e) => experiment_failed(e),
    }
}

fn model_bench(model: &str, torch: Option<&Path>, json: bool) -> i32 {
    let peer = match torch.map(read_peer).transpose() {
        Ok(peer) => peer,
        Err(message) => return fail(&message, EXIT_USAGE),
    };
    let device = candle_core::Device::Cpu;
    let report = if model == "tiny" {
        model_bench::run(&device)
    } else {
        let path = Path::new(model);
        crate::model::hf::tokenizer(path)
            .and_then(|tokenizer| LanguageModel::from_hf(path, &tokenizer, &device))
            .and_then(|lm| model_bench::run_workload(&lm, Workload::PRETRAINED))
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => return fail(&format!("benchmark failed: {}", one_line(&e)), EXIT_ERRORS),
    };
    if json {
        let ratios = peer.map(|p| p.ratios(&report));
        let out = serde_json::json!({ "oprl": report, "torch": peer, "ratios": ratios });
        println!("{out}");
        return EXIT_OK;
    }
    print!("{report}");
    if let Some(peer) = peer {
        println!("speed against PyTorch (above 1: oprl faster)");
        for (what, ratio) in peer.ratios(&report) {
            println!("  {what:<22}{ratio:.2}x");
        }
    }
    EXIT_OK
}

fn read_peer(path: &Path) -> Result<PeerFigures, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read PyTorch figures {}: {e}", path.display()))?;
    PeerFigures::parse(&text).map_err(|missing| {
        format!(
            "{} has no {missing} figure: give the output of shared/bench/torch_*_bench.py",
            path.display()
        )
    })
}

fn fail(message: &str, code: i32) -> i32 {
    eprintln!("error: {message}");
    code
}
