//! The tree-sitter grammar of oprl recipes: `LANGUAGE` for a `tree_sitter::Parser`, and the
//! highlight query that Neovim and Helix use.

use tree_sitter_language::LanguageFn;

extern "C" {
    fn tree_sitter_oprl() -> *const ();
}

/// The oprl language, for `parser.set_language(&tree_sitter_oprl::LANGUAGE.into())`.
pub const LANGUAGE: LanguageFn = unsafe { LanguageFn::from_raw(tree_sitter_oprl) };

/// `queries/highlights.scm`.
pub const HIGHLIGHTS_QUERY: &str = include_str!("../../queries/highlights.scm");

/// `src/node-types.json`: the node types of the syntax tree.
pub const NODE_TYPES: &str = include_str!("../../src/node-types.json");
