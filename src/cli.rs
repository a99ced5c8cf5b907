//! The command-line front end's work, as library functions: `main.rs` parses arguments with
//! clap and calls one function per subcommand, which prints and returns the exit code.

use crate::compile::{self, Compilation};
use crate::diagnostics::{self, Code, JsonDiagnostic, Severity};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Exit code: success, or warnings only.
pub const EXIT_OK: i32 = 0;
/// Exit code: the recipe has errors.
pub const EXIT_ERRORS: i32 = 1;

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagnosticFormat {
    /// Source excerpts with labels (colour on a terminal).
    Human,
    /// One JSON object per checked file, on one line each.
    Json,
}

/// How `oprl graph` prints the execution graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Json,
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

/// `oprl check FILE... [--set PATH=VALUE]... [--format human|json] [--resolved]`.
pub fn check(
    files: &[PathBuf],
    overrides: &[String],
    format: DiagnosticFormat,
    resolved: bool,
) -> i32 {
    let mut failed = false;
    for file in files {
        let compilation = compile::compile_path(file, overrides);
        let (errors, warnings) = counts(&compilation);
        failed |= errors > 0;
        match format {
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
        if resolved && errors == 0 {
            if let Some(text) = compilation.resolved() {
                if files.len() > 1 {
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

/// `oprl graph FILE [--format text|dot|json]`.
pub fn graph(file: &Path, overrides: &[String], format: GraphFormat) -> i32 {
    let compilation = compile::compile_path(file, overrides);
    print_diagnostics(&compilation);
    let Some(graph) = &compilation.graph else {
        eprintln!("{}: failed", file.display());
        return EXIT_ERRORS;
    };
    match format {
        GraphFormat::Text => print!("{}", compile::graph_text(graph)),
        GraphFormat::Dot => print!("{}", compile::graph_dot(graph)),
        GraphFormat::Json => match serde_json::to_string_pretty(graph) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("error: cannot serialise the graph: {e}");
                return EXIT_ERRORS;
            }
        },
    }
    EXIT_OK
}

/// The text `oprl explain CODE` prints, or `None` for an unknown code.
pub fn explanation(code: &str) -> Option<String> {
    let code = Code::parse(code)?;
    Some(format!(
        "{} ({}): {}\n\n{}\n",
        code.as_str(),
        phase_name(code),
        code.title(),
        code.explain()
    ))
}

fn phase_name(code: Code) -> &'static str {
    match code.phase() {
        diagnostics::Phase::Parse => "parse error",
        diagnostics::Phase::Resolve => "resolve error",
        diagnostics::Phase::Type => "type error",
        diagnostics::Phase::Rule => "rule error",
        diagnostics::Phase::Lower => "lowering error",
        diagnostics::Phase::Warning => "warning",
    }
}

/// `oprl explain [CODE]`: the long form of a code, or the list of codes.
pub fn explain(code: Option<&str>) -> i32 {
    match code {
        None => {
            for c in Code::ALL {
                println!("{}  {}", c.as_str(), c.title());
            }
            EXIT_OK
        }
        Some(id) => match explanation(id) {
            Some(text) => {
                print!("{text}");
                EXIT_OK
            }
            None => {
                eprintln!("error: no diagnostic code `{id}`; `oprl explain` lists them");
                EXIT_ERRORS
            }
        },
    }
}
