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
    /// Same as `oprl run`, but always into a sweep directory (kept for scripts).
    #[command(hide = true)]
    Sweep(oprl::experiments::cli::RunArgs),
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
    /// Train: run a recipe into a run directory; or several recipes, `--seeds N` and
    /// `--sweep KEY=V1,V2` into a sweep directory (one run directory each, `--jobs N` at a
    /// time); or continue a run or sweep with `--resume DIR`.
    Run(oprl::experiments::cli::RunArgs),
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
        Command::Sweep(args) => oprl::experiments::cli::run_command(&args, true),
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
        Command::Run(args) => oprl::experiments::cli::run_command(&args, false),
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
