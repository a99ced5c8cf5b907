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
    /// Train: run a recipe's OPRL loop (or continue a run with `--resume RUN_DIR`).
    Run {
        /// The recipe file.
        #[arg(required_unless_present = "resume", conflicts_with = "resume")]
        recipe: Option<PathBuf>,
        /// Override a key, in recipe syntax: `--set train.iterations=50`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        overrides: Vec<String>,
        /// Run directory (default: `<output.dir>/<recipe>-<timestamp>`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in this directory from its last checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        /// One JSON object of metrics per iteration on stdout.
        #[arg(long)]
        json_lines: bool,
    },
    /// Evaluate a run's saved policy on its held-out tasks.
    Eval {
        run_dir: PathBuf,
        /// The checkpoint's iteration (default: the last).
        #[arg(long)]
        checkpoint: Option<usize>,
    },
    /// Explain a diagnostic code (`oprl explain E0301`); without a code, list them all.
    Explain { code: Option<String> },
    /// Serve a model over an OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`), to
    /// talk to a trained agent or use it as a SOTOPIA partner or judge.
    Serve {
        /// A run directory (the policy of its latest checkpoint) or a Hugging Face model directory.
        model: PathBuf,
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Address to listen on; `0.0.0.0` exposes the server to the network.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// Run the language server on stdin/stdout (editors start it; see editors/README.md).
    Lsp,
    /// Run an environment on its own: serve it over JSON lines, or play it in the terminal.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
}

#[derive(Subcommand)]
enum EnvCommand {
    /// Serve an environment over the JSON-lines protocol on stdin/stdout (see the README).
    Serve {
        /// Environment name (`sokoban`, `webshop`).
        name: String,
        /// Set a key of the `env` block, checked as a recipe's: `--set room=[7,7]`, `--set prompt=compact`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Play an environment in the terminal (Sokoban: arrows or w/a/s/d, r, n, q; WebShop: one
    /// action per line).
    Play {
        /// Environment name (`sokoban`, `webshop`, `sotopia`).
        name: String,
        /// Set a key of the `env` block, checked as a recipe's: `--set room=[7,7]`, `--set boxes=2`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// First task: Sokoban's level seed, WebShop's and SOTOPIA's train task.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
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
        Command::Run {
            recipe,
            overrides,
            out,
            resume,
            quiet,
            json_lines,
        } => oprl::runtime::cli::run_command(&oprl::runtime::cli::RunArgs {
            recipe,
            overrides,
            out,
            resume,
            quiet,
            json_lines,
        }),
        Command::Eval {
            run_dir,
            checkpoint,
        } => oprl::runtime::cli::eval_command(&run_dir, checkpoint),
        Command::Env { command } => match command {
            EnvCommand::Serve { name, sets } => oprl::env::cli::env_serve(&name, &sets),
            EnvCommand::Play { name, sets, seed } => oprl::env::cli::env_play(&name, &sets, seed),
        },
        Command::Serve { model, port, host } => {
            oprl::openai::command::serve_command(&model, &host, port)
        }
        Command::Lsp => match oprl::lsp::serve_stdio() {
            Ok(()) => cli::EXIT_OK,
            Err(e) => {
                eprintln!("error: {e}");
                cli::EXIT_ERRORS
            }
        },
    };
    std::process::exit(code);
}
