//! `oprl explain [CODE]`: the long form of a diagnostic code, or the list of codes.

use super::{EXIT_ERRORS, EXIT_OK};
use crate::diagnostics::{Code, Phase};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    pub code: Option<String>,
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
        Phase::Parse => "parse error",
        Phase::Resolve => "resolve error",
        Phase::Type => "type error",
        Phase::Rule => "rule error",
        Phase::Lower => "lowering error",
        Phase::Warning => "warning",
    }
}

pub fn run(args: &ExplainArgs) -> i32 {
    match args.code.as_deref() {
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
            None => super::fail(
                format!("no diagnostic code `{id}`; `oprl explain` lists them"),
                EXIT_ERRORS,
            ),
        },
    }
}
