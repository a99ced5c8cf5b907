//! `oprl compare RUN_DIR... [--target 0.6] [--out DIR]`: prints the Markdown tables; with
//! `--out`, also writes `compare.md`, `compare.csv` and `iterations_to_target.csv` there.

use std::path::PathBuf;

use super::run::experiment_failed;
use super::EXIT_OK;
use crate::experiments::compare::Comparison;
use crate::experiments::{runs, write_file};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The success rate whose first reaching iteration is reported.
    #[arg(long, default_value_t = 0.6)]
    pub target: f64,
    /// Also write compare.md, compare.csv and iterations_to_target.csv here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &CompareArgs) -> i32 {
    let loaded = match runs::load_all(&args.runs) {
        Ok(r) => r,
        Err(e) => return experiment_failed(e),
    };
    let table = Comparison::new(&loaded, args.target);
    let md = table.markdown();
    print!("{md}");
    if let Some(dir) = &args.out {
        let written = write_file(&dir.join("compare.md"), md.as_bytes())
            .and_then(|_| write_file(&dir.join("compare.csv"), table.csv().as_bytes()))
            .and_then(|_| {
                write_file(
                    &dir.join("iterations_to_target.csv"),
                    table.reach_csv().as_bytes(),
                )
            });
        if let Err(e) = written {
            return experiment_failed(e);
        }
    }
    EXIT_OK
}
