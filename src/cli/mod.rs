//! The `oprl` command line, one file per subcommand: argument parsing (clap), what is printed,
//! and the process exit code. This is the only part of the crate that prints; everything it
//! shows comes back as data from the library.
//!
//! To add a subcommand: add a file with its arguments and a `run` function returning the exit
//! code, a variant to [`Command`] (its doc comment is the help text), and one arm to [`main`].

pub mod bench;
pub mod board;
pub mod check;
pub mod compare;
pub mod env;
pub mod eval;
pub mod explain;
pub mod export;
pub mod graph;
pub mod lsp;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use crate::compile::Compilation;
use crate::diagnostics;

pub use check::DiagnosticFormat;
pub use explain::explanation;
pub use graph::GraphFormat;

/// Exit code: success, or warnings only.
pub const EXIT_OK: i32 = 0;
/// Exit code: the recipe has errors, or the command failed while running.
pub const EXIT_ERRORS: i32 = 1;
/// Exit code: the command could not start (bad arguments or settings).
pub const EXIT_USAGE: i32 = 2;

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
    Sweep(run::RunArgs),
    /// Write an HTML report with plots (PNG and SVG) of runs, sweeps or directories of runs.
    Report(report::ReportArgs),
    /// Print the method x environment table (mean ± std over seeds) and iterations to a target.
    Compare(compare::CompareArgs),
    /// Time a few iterations of a recipe, phase by phase.
    Bench(bench::BenchArgs),
    /// Check recipes: parse, resolve imports, check every key, type and rule. Exit 1 on errors.
    Check(check::CheckArgs),
    /// Print the typed execution graph a recipe compiles to.
    Graph(graph::GraphArgs),
    /// Train: run a recipe into a run directory; or several recipes, `--seeds N` and
    /// `--sweep KEY=V1,V2` into a sweep directory (one run directory each, `--jobs N` at a
    /// time); or continue a run or sweep with `--resume DIR`.
    Run(run::RunArgs),
    /// Evaluate a run's saved policy on its held-out tasks.
    Eval(eval::EvalArgs),
    /// Write a run's trained policy (or a Hugging Face directory or GGUF file) as a Hugging
    /// Face model directory that transformers and vLLM load.
    Export(export::ExportArgs),
    /// Explain a diagnostic code (`oprl explain E0301`); without a code, list them all.
    Explain(explain::ExplainArgs),
    /// Serve a model over an OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`), to
    /// talk to a trained agent or use it as a SOTOPIA partner or judge.
    Serve(serve::ServeArgs),
    /// Run the language server on stdin/stdout (editors start it; see editors/README.md).
    Lsp,
    /// Run an environment on its own: serve it over JSON lines, or play it in the terminal.
    Env {
        #[command(subcommand)]
        command: env::EnvCommand,
    },
}

/// Parses the process's arguments, runs the subcommand and returns its exit code.
pub fn main() -> i32 {
    match Cli::parse().command {
        Command::Sweep(args) => run::run(&args, true),
        Command::Report(args) => report::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Run(args) => run::run(&args, false),
        Command::Eval(args) => eval::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Lsp => lsp::run(),
        Command::Env { command } => env::run(command),
    }
}

/// Prints a compilation's diagnostics to stderr for a person.
pub fn print_diagnostics(compilation: &Compilation) {
    if compilation.diagnostics.is_empty() {
        return;
    }
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let width = crossterm::terminal::size()
        .map(|(w, _)| w as usize)
        .unwrap_or(80)
        .clamp(60, 120);
    eprint!(
        "{}",
        diagnostics::render_human(
            &compilation.diagnostics,
            &compilation.sources,
            colour,
            width
        )
    );
}

/// Prints `error: {e}` and returns `code`.
fn fail(e: impl std::fmt::Display, code: i32) -> i32 {
    eprintln!("error: {e}");
    code
}
