//! `oprl graph FILE [--set PATH=VALUE]... [--format text|dot|json]`.

use std::path::PathBuf;

use super::{fail, print_diagnostics, EXIT_ERRORS, EXIT_OK};
use crate::compile;

/// How `oprl graph` prints the execution graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Text,
    Dot,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    pub file: PathBuf,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: GraphFormat,
}

pub fn run(args: &GraphArgs) -> i32 {
    let compilation = compile::compile_path(&args.file, &args.overrides);
    print_diagnostics(&compilation);
    let Some(graph) = &compilation.graph else {
        eprintln!("{}: failed", args.file.display());
        return EXIT_ERRORS;
    };
    match args.format {
        GraphFormat::Text => print!("{}", compile::graph_text(graph)),
        GraphFormat::Dot => print!("{}", compile::graph_dot(graph)),
        GraphFormat::Json => match serde_json::to_string_pretty(graph) {
            Ok(json) => println!("{json}"),
            Err(e) => return fail(format!("cannot serialise the graph: {e}"), EXIT_ERRORS),
        },
    }
    EXIT_OK
}
