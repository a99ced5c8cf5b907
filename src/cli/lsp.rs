//! `oprl lsp`: the language server on stdin/stdout.

use super::{fail, EXIT_ERRORS, EXIT_OK};

pub fn run() -> i32 {
    match crate::lsp::serve_stdio() {
        Ok(()) => EXIT_OK,
        Err(e) => fail(e, EXIT_ERRORS),
    }
}
