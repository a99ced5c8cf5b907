//! `oprl report RUN_DIR... [--out DIR]`: the HTML report with its plots.

use std::path::PathBuf;

use super::run::experiment_failed;
use super::EXIT_OK;
use crate::experiments::{report, runs};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output directory (default: `<the one dir given>/report`, else `./report`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> i32 {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| match args.runs.as_slice() {
            [one] => one.join("report"),
            _ => PathBuf::from("report"),
        });
    let loaded = match runs::load_all(&args.runs) {
        Ok(r) => r,
        Err(e) => return experiment_failed(e),
    };
    match report::write_report(&loaded, &out) {
        Ok(files) => {
            println!("{}", files.html.display());
            eprintln!(
                "{} runs, {} plots (PNG and SVG) in {}",
                loaded.len(),
                files.plots.len(),
                out.join("plots").display()
            );
            EXIT_OK
        }
        Err(e) => experiment_failed(e),
    }
}
