//! `oprl bench RECIPE [--set k=v]... [--iterations N]`: a few iterations, phase by phase.

use std::path::PathBuf;
use std::sync::Arc;

use super::progress::{ProgressMode, Reporter};
use super::run::experiment_failed;
use super::EXIT_OK;
use crate::experiments::bench;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    pub recipe: PathBuf,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    #[arg(long, default_value_t = 3)]
    pub iterations: usize,
}

pub fn run(args: &BenchArgs) -> i32 {
    // Environment retries are shown as warnings; nothing else is printed while it runs.
    let warnings = Arc::new(Reporter::new(ProgressMode::Quiet));
    match bench::bench(
        &args.recipe,
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
