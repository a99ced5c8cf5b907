//! The `oprl` command line: argument parsing only; each subcommand calls one library function
//! (see `oprl::cli`) that prints and returns the exit code.
//!
//! To add a subcommand: add a variant to [`Command`] (its doc comment is the help text) and
//! one arm to the `match` in `main`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use oprl::cli::{self, DiagnosticFormat, GraphFormat};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "oprl",
    version,
    about = "Online Process Reward Learning for language-model agents, from recipe files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run recipes over seeds and swept values, each into its own run directory of a sweep
    /// directory (indexed by `sweep.json`), one at a time or `--jobs N` at a time.
    Sweep {
        /// Recipe files (each one a method).
        #[arg(required = true)]
        recipes: Vec<PathBuf>,
        /// Override a key for every run, in recipe syntax: `--set train.iterations=50`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// Seeds per configuration: the recipe's `train.seed`, +1, +2, ...
        #[arg(long, default_value_t = 1)]
        seeds: usize,
        /// Sweep a key over values in recipe syntax: `--sweep train.group=4,8` (repeat for a grid).
        #[arg(long = "sweep", value_name = "PATH=V1,V2,...")]
        sweeps: Vec<String>,
        /// Runs at a time (candle's threads are divided among them).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// The sweep directory (default: `runs/sweep-<timestamp>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Internal: run exactly one run into `--out` (what `--jobs N` spawns).
        #[arg(long, hide = true)]
        single: bool,
    },
    /// Write an HTML report with plots (PNG and SVG) of runs, sweeps or directories of runs.
    Report {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Output directory (default: `<the one dir given>/report`, else `./report`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the method x environment table (mean ± std over seeds) and iterations to a target.
    Compare {
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The success rate whose first reaching iteration is reported.
        #[arg(long, default_value_t = 0.6)]
        target: f64,
        /// Also write compare.md, compare.csv and iterations_to_target.csv here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Time a few iterations of a recipe, phase by phase.
    Bench {
        recipe: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        #[arg(long, default_value_t = 3)]
        iterations: usize,
    },
    /// Check recipes: parse, resolve imports, check every key, type and rule. Exit 1 on errors.
    Check {
        /// Recipe files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override a key, in recipe syntax: `--set train.group=4`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value = "human")]
        format: DiagnosticFormat,
        /// Print the recipe with every default filled in.
        #[arg(long)]
        resolved: bool,
    },
    /// Print the typed execution graph a recipe compiles to.
    Graph {
        file: PathBuf,
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: GraphFormat,
    },
    /// Explain a diagnostic code (`oprl explain E0301`); without a code, list them all.
    Explain { code: Option<String> },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Sweep {
            recipes,
            overrides,
            seeds,
            sweeps,
            jobs,
            out,
            quiet,
            single,
        } => oprl::experiments::cli::sweep_command(&oprl::experiments::cli::SweepArgs {
            recipes,
            overrides,
            seeds,
            sweeps,
            jobs,
            out,
            quiet,
            single,
        }),
        Command::Report { runs, out } => {
            oprl::experiments::cli::report_command(&runs, out.as_deref())
        }
        Command::Compare { runs, target, out } => {
            oprl::experiments::cli::compare_command(&runs, target, out.as_deref())
        }
        Command::Bench {
            recipe,
            overrides,
            iterations,
        } => oprl::experiments::cli::bench_command(&recipe, &overrides, iterations),
        Command::Check {
            files,
            overrides,
            format,
            resolved,
        } => cli::check(&files, &overrides, format, resolved),
        Command::Graph {
            file,
            overrides,
            format,
        } => cli::graph(&file, &overrides, format),
        Command::Explain { code } => cli::explain(code.as_deref()),
    };
    std::process::exit(code);
}
