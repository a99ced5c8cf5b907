//! Compiler: resolve imports and names (stdlib, relative files), check every block against its
//! schema, and lower a checked recipe to the typed [`crate::graph::ExecGraph`].
//!
//! Phases collect diagnostics instead of stopping at the first; lowering runs only when there
//! is no error. Entry points: [`compile_path`] (what `oprl check` and `oprl run` use),
//! [`compile_text`] (in-memory sources: tests, the language server), [`check_module`]
//! (a stdlib module or an imported fragment on its own), [`compile_file`], and [`compile_env`]
//! (one `env` block with `--set` overrides, for `oprl env serve|play`).

mod advantage;
mod check;
mod checked;
mod error;
mod lower;
mod print;
mod resolve;
mod rules;
pub mod schema;
pub mod stdlib;
mod value;

pub use checked::{CheckedBlock, CheckedRecipe, CheckedReward, Field, FieldValue};
pub use error::CheckError;
pub use print::{advantage_text, graph_dot, graph_text, resolved_recipe};
pub use value::Value;

use crate::diagnostics::{self, Diagnostic, SourceMap};
use crate::graph::{EnvSpec, ExecGraph};
use resolve::RootSource;
use std::path::Path;

/// Everything one compilation produced.
#[derive(Debug)]
pub struct Compilation {
    /// Every source read: the recipe, its imports, `<cli>` overrides.
    pub sources: SourceMap,
    /// Sorted by position; errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// The checked recipe (present unless resolution failed entirely).
    pub checked: Option<CheckedRecipe>,
    /// The lowered graph, only when there is no error.
    pub graph: Option<ExecGraph>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        diagnostics::has_errors(&self.diagnostics)
    }

    /// The diagnostics without colour at width 80 (the snapshot format).
    pub fn render_plain(&self) -> String {
        diagnostics::render_plain(&self.diagnostics, &self.sources)
    }

    /// The recipe with every default filled in (see [`resolved_recipe`]).
    pub fn resolved(&self) -> Option<String> {
        self.checked.as_ref().map(resolved_recipe)
    }

    /// The environment spec when there is no error: the lowered graph's, or for a fragment
    /// such as [`compile_env`]'s, its checked `env` block lowered on its own.
    pub fn env_spec(&self) -> Option<EnvSpec> {
        if self.has_errors() {
            return None;
        }
        match &self.graph {
            Some(graph) => Some(graph.env.clone()),
            None => self.checked.as_ref()?.env.as_ref().map(lower::env),
        }
    }
}

/// Compiles the recipe at `path` with `--set` overrides.
pub fn compile_path(path: &Path, overrides: &[String]) -> Compilation {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recipe".into());
    run(RootSource::Path(path), overrides, &name, false)
}

/// Compiles in-memory text named `name`; relative imports and paths resolve from `dir`.
pub fn compile_text(name: &str, text: &str, dir: &Path, overrides: &[String]) -> Compilation {
    let stem = Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    run(
        RootSource::Text { name, text, dir },
        overrides,
        &stem,
        false,
    )
}

/// The name of [`compile_env`]'s in-memory recipe in diagnostics.
pub const ENV_SOURCE: &str = "<env>";

/// Compiles the recipe `env NAME { }` on its own with `KEY=VALUE` overrides of the block's keys
/// (`oprl env serve|play NAME --set KEY=VALUE`), each applied as the recipe override
/// `--set env.KEY=VALUE` (an `env.` prefix may be written too): the same schema, defaults, checks
/// and diagnostics as the `env` block of a recipe. Read the result with
/// [`Compilation::env_spec`]; the diagnostics point into the `<cli>` sources.
pub fn compile_env(name: &str, sets: &[String]) -> Compilation {
    let text = format!("env {name} {{ }}\n");
    let overrides: Vec<String> = sets
        .iter()
        .map(|set| {
            let set = set.trim_start();
            if set.starts_with("env.") {
                set.to_string()
            } else {
                format!("env.{set}")
            }
        })
        .collect();
    let root = RootSource::Text {
        name: ENV_SOURCE,
        text: &text,
        dir: Path::new("."),
    };
    run(root, &overrides, name, true)
}

/// Checks a module that is not a whole recipe (a stdlib preset, an imported fragment):
/// everything is checked except that required top-level items may be missing.
pub fn check_module(name: &str, text: &str, dir: &Path) -> Compilation {
    run(RootSource::Text { name, text, dir }, &[], name, true)
}

/// Checks one embedded stdlib module by name (`std::presets::oprl_rloo`).
pub fn check_stdlib_module(path: &str) -> Option<Compilation> {
    let (_, text) = stdlib::MODULES.iter().find(|(p, _)| *p == path)?;
    let name = stdlib::module_name(path);
    // A stdlib module is checked like a fragment, with its own text as the root.
    Some(check_module(&name, text, Path::new(".")))
}

/// The library entry point for tools that only need the graph: `Ok` with warnings, or `Err`
/// with every diagnostic. Render them with [`compile_path`]'s sources when you need text.
pub fn compile_file(
    path: &Path,
    overrides: &[String],
) -> Result<(ExecGraph, Vec<Diagnostic>), Vec<Diagnostic>> {
    let compilation = compile_path(path, overrides);
    match compilation.graph {
        Some(graph) if !diagnostics::has_errors(&compilation.diagnostics) => {
            Ok((graph, compilation.diagnostics))
        }
        _ => Err(compilation.diagnostics),
    }
}

fn run(root: RootSource, overrides: &[String], name: &str, fragment: bool) -> Compilation {
    let mut sources = SourceMap::new();
    let mut diagnostics = Vec::new();
    let resolved = resolve::resolve(root, overrides, &mut sources, &mut diagnostics);
    let mut checked = None;
    // Without a complete AST there is nothing sound to check; after a failed import, the
    // items it would have provided are missing, which is not worth reporting again.
    let failed_in = |phase: diagnostics::Phase| {
        diagnostics
            .iter()
            .any(|d| d.is_error() && d.code.phase() == phase)
    };
    let parse_failed = failed_in(diagnostics::Phase::Parse);
    let import_failed = failed_in(diagnostics::Phase::Resolve);
    if resolved.root.is_some() && !parse_failed {
        let mut checker = check::Checker {
            sources: &sources,
            errors: Vec::new(),
            root: resolved.root,
            fragment: fragment || import_failed,
        };
        checked = checker.check(&resolved.recipe);
        diagnostics.extend(checker.errors.into_iter().map(Diagnostic::from));
    }
    let graph = match &checked {
        Some(c) if !fragment && !diagnostics::has_errors(&diagnostics) => lower::lower(c, name),
        _ => None,
    };
    diagnostics::sort(&mut diagnostics);
    diagnostics.dedup();
    Compilation {
        sources,
        diagnostics,
        checked,
        graph,
    }
}
