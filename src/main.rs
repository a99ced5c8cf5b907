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
    /// Run the language server on stdin/stdout (editors start it; see editors/README.md).
    Lsp,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
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
