//! `oprl check FILE... [--set PATH=VALUE]... [--format human|json] [--resolved]`.

use std::path::PathBuf;

use super::{print_diagnostics, EXIT_ERRORS, EXIT_OK};
use crate::compile::{self, Compilation};
use crate::diagnostics::{JsonDiagnostic, Severity};

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagnosticFormat {
    /// Source excerpts with labels (colour on a terminal).
    Human,
    /// One JSON object per checked file, on one line each.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Recipe files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Override a key, in recipe syntax: `--set train.group=4`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: DiagnosticFormat,
    /// Print the recipe with every default filled in.
    #[arg(long)]
    pub resolved: bool,
}

fn counts(compilation: &Compilation) -> (usize, usize) {
    let errors = compilation
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors, compilation.diagnostics.len() - errors)
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn run(args: &CheckArgs) -> i32 {
    let mut failed = false;
    for file in &args.files {
        let compilation = compile::compile_path(file, &args.overrides);
        let (errors, warnings) = counts(&compilation);
        failed |= errors > 0;
        match args.format {
            DiagnosticFormat::Human => {
                print_diagnostics(&compilation);
                let status = if errors > 0 { "failed" } else { "ok" };
                let mut summary = format!("{}: {status}", file.display());
                if errors + warnings > 0 {
                    summary.push_str(&format!(
                        " ({}, {})",
                        plural(errors, "error"),
                        plural(warnings, "warning")
                    ));
                }
                eprintln!("{summary}");
            }
            DiagnosticFormat::Json => {
                let diagnostics: Vec<JsonDiagnostic> = compilation
                    .diagnostics
                    .iter()
                    .map(|d| JsonDiagnostic::new(d, &compilation.sources))
                    .collect();
                let object = serde_json::json!({
                    "file": file.display().to_string(),
                    "ok": errors == 0,
                    "errors": errors,
                    "warnings": warnings,
                    "diagnostics": diagnostics,
                });
                println!("{object}");
            }
        }
        if args.resolved && errors == 0 {
            if let Some(text) = compilation.resolved() {
                if args.files.len() > 1 {
                    println!("# {}", file.display());
                }
                print!("{text}");
            }
        }
    }
    if failed {
        EXIT_ERRORS
    } else {
        EXIT_OK
    }
}
