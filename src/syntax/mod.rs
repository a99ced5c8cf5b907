//! Recipe syntax: the pest grammar (`grammar/oprl.pest`), the AST with byte spans, and the
//! conversion of parse errors into diagnostics.

pub mod ast;
mod lex;
mod parse;

pub use lex::MAX_DEPTH;
pub use parse::{parse_file, parse_override, Override, MAX_OPERATORS};

/// The reserved words of the grammar. The editors' grammars are tested against this list.
pub const KEYWORDS: &[&str] = &["use", "true", "false"];

/// The kinds of top-level statements (blocks, definitions and assignments) the checker knows,
/// in the order `--resolved` prints them.
pub const BLOCK_KINDS: &[&str] = &[
    "env",
    "policy",
    "reward",
    "prm",
    "advantage",
    "algorithm",
    "train",
    "eval",
    "output",
];
