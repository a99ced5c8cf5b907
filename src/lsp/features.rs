//! What the server answers, as pure functions of a document's text and path: diagnostics (the
//! compiler's, as `oprl check` reports them), hover, completion and go-to-definition. All
//! knowledge of keys, types and defaults comes from [`crate::compile::schema`].

use super::context::{self, Frame, Position as At};
use super::position::LineIndex;
use crate::compile::schema::{BlockSchema, DefaultValue as D, KeySchema, Ty};
use crate::compile::{self, schema, stdlib, Compilation};
use crate::diagnostics::{self, Origin, Severity, SourceId};
use crate::syntax::ast::{self, Statement};
use lsp_types::{
    CompletionItem, CompletionItemKind, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Documentation, Hover, HoverContents, Location, MarkupContent, MarkupKind,
    NumberOrString, Position, Range, Uri,
};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Compiles a document as `oprl check` would: a whole recipe, or a fragment when the file
/// lives under a `stdlib` directory (presets need not name an environment).
pub fn compile_document(path: &Path, text: &str) -> Compilation {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recipe.oprl".into());
    let dir = path.parent().unwrap_or(Path::new("."));
    if path.components().any(|c| c.as_os_str() == "stdlib") {
        compile::check_module(&name, text, dir)
    } else {
        compile::compile_text(&name, text, dir, &[])
    }
}

/// The id of the document's own source in a compilation (the first one read).
fn root_source(compilation: &Compilation) -> Option<SourceId> {
    compilation.sources.files().next().map(|(id, _)| id)
}

/// The compiler's diagnostics for the document. A diagnostic inside an imported file is shown
/// on the `use` line that brings that file in (or the first `use` for a deeper import).
pub fn diagnostics(path: &Path, text: &str) -> Vec<Diagnostic> {
    let compilation = compile_document(path, text);
    let Some(root) = root_source(&compilation) else {
        return Vec::new();
    };
    let index = LineIndex::new(text);
    let uses = use_spans(text);
    compilation
        .diagnostics
        .iter()
        .map(|d| {
            let primary = d.primary_span();
            let (range, prefix) = match primary {
                Some(span) if span.source == root => {
                    (index.range(span.start, span.end), String::new())
                }
                Some(span) => {
                    let file = compilation.sources.get(span.source);
                    let at = uses
                        .iter()
                        .find(|(target, _)| imports(target, &file.origin, path))
                        .or(uses.first())
                        .map_or(Range::default(), |(_, (s, e))| index.range(*s, *e));
                    let (line, col) = file.line_col(span.start);
                    (at, format!("in `{}` at {line}:{col}: ", file.name))
                }
                None => (Range::default(), String::new()),
            };
            let mut message = format!("{prefix}{}", d.message);
            if let Some(label) = d
                .labels
                .first()
                .filter(|l| !l.message.is_empty() && !d.message.contains(&l.message))
            {
                message.push_str(&format!("\n{}", label.message));
            }
            if let Some(help) = &d.help {
                message.push_str(&format!("\nhelp: {help}"));
            }
            let related: Vec<DiagnosticRelatedInformation> = d
                .labels
                .iter()
                .skip(1)
                .filter_map(|label| {
                    let file = compilation.sources.get(label.span.source);
                    let (uri, range) = if label.span.source == root {
                        (
                            path_to_uri(path)?,
                            index.range(label.span.start, label.span.end),
                        )
                    } else {
                        let file_path = source_path(&file.origin)?;
                        let other = LineIndex::new(&file.text);
                        (
                            path_to_uri(&file_path)?,
                            other.range(label.span.start, label.span.end),
                        )
                    };
                    Some(DiagnosticRelatedInformation {
                        location: Location::new(uri, range),
                        message: label.message.clone(),
                    })
                })
                .collect();
            Diagnostic {
                range,
                severity: Some(match d.severity {
                    Severity::Error => DiagnosticSeverity::ERROR,
                    Severity::Warning => DiagnosticSeverity::WARNING,
                }),
                code: Some(NumberOrString::String(d.code.as_str().to_string())),
                source: Some("oprl".into()),
                message,
                related_information: (!related.is_empty()).then_some(related),
                ..Diagnostic::default()
            }
        })
        .collect()
}

/// The `use` targets of a text with the byte range of each `use` line's target, found by the
/// tolerant scan so that they are known even when the text does not parse.
fn use_spans(text: &str) -> Vec<(String, (usize, usize))> {
    let tokens = context::tokenize(text);
    tokens
        .windows(2)
        .filter(|w| &text[w[0].start..w[0].end] == "use")
        .map(|w| {
            (
                text[w[1].start..w[1].end].trim_matches('"').to_string(),
                (w[0].start, w[1].end),
            )
        })
        .collect()
}

/// True when `use TARGET` in the document at `path` names the source `origin`.
fn imports(target: &str, origin: &Origin, path: &Path) -> bool {
    match origin {
        Origin::Stdlib(name) => target == name,
        Origin::File(file) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            same_file(&dir.join(target), file)
        }
        Origin::Cli => false,
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Where a source's text can be opened: its file, or a copy of a stdlib module.
fn source_path(origin: &Origin) -> Option<PathBuf> {
    match origin {
        Origin::File(p) => Some(p.clone()),
        Origin::Stdlib(name) => stdlib_file(name),
        Origin::Cli => None,
    }
}

/// A file holding the stdlib module `std::a::b`: the source tree's `stdlib/a/b.oprl` when this
/// binary was built from one that still matches, else a copy written to the temp directory
/// (the modules are embedded in the binary, so an installed `oprl` has no source tree).
pub fn stdlib_file(name: &str) -> Option<PathBuf> {
    let relative = name.strip_prefix("std::")?.replace("::", "/");
    let (_, text) = stdlib::MODULES.iter().find(|(p, _)| *p == relative)?;
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("stdlib")
        .join(format!("{relative}.oprl"));
    if std::fs::read_to_string(&tree).is_ok_and(|t| t == *text) {
        return Some(tree);
    }
    let copy = std::env::temp_dir()
        .join(format!("oprl-stdlib-{}", env!("CARGO_PKG_VERSION")))
        .join(format!("{relative}.oprl"));
    if std::fs::read_to_string(&copy).is_ok_and(|t| t == *text) {
        return Some(copy);
    }
    std::fs::create_dir_all(copy.parent()?).ok()?;
    std::fs::write(&copy, text).ok()?;
    Some(copy)
}

/// `file:///a/b%20c.oprl` -> `/a/b c.oprl`.
pub fn uri_to_path(uri: &Uri) -> Option<PathBuf> {
    if uri.scheme().map(|s| s.as_str()) != Some("file") {
        return None;
    }
    let decoded = uri.path().as_estr().decode().into_string().ok()?;
    Some(PathBuf::from(decoded.into_owned()))
}

/// `/a/b c.oprl` -> `file:///a/b%20c.oprl`.
pub fn path_to_uri(path: &Path) -> Option<Uri> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut encoded = String::from("file://");
    for byte in absolute.to_str()?.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Uri::from_str(&encoded).ok()
}

/// How a key's default reads in hover text.
pub fn default_text(default: &D) -> String {
    match default {
        D::Int(i) => format!("`{i}`"),
        D::Float(x) => format!("`{}`", ast::format_float(*x)),
        D::Bool(b) => format!("`{b}`"),
        D::Str(s) => format!("`{}`", ast::quote(s)),
        D::Name(n) => format!("`{n}`"),
        D::IntList(xs) => format!(
            "`[{}]`",
            xs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        ),
        D::StrList(xs) => format!(
            "`[{}]`",
            xs.iter()
                .map(|s| ast::quote(s))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        D::NameList(xs) => format!("`[{}]`", xs.join(", ")),
        D::Block => "every key at its default".into(),
        D::Derived(how) => format!("derived: {how}"),
        D::Optional(what) => format!("unset ({what})"),
        D::Required => "none (required)".into(),
    }
}

/// The hover text of a key: name and block, type and range, default, doc.
pub fn key_markdown(block: &BlockSchema, key: &KeySchema) -> String {
    let mut ty = key.ty.describe();
    if matches!(key.ty, Ty::Int | Ty::Float | Ty::IntList(_)) && key.range != schema::Range::ANY {
        ty.push_str(&format!(", {}", key.range.describe()));
    }
    format!(
        "**`{}`** in `{}`\n\n{ty}; default {}\n\n{}",
        key.key,
        block.title(),
        default_text(&key.default),
        key.doc
    )
}

fn block_markdown(block: &BlockSchema) -> String {
    let keys: Vec<&str> = block.keys().map(|k| k.key).collect();
    let keys = if keys.is_empty() {
        "no keys".to_string()
    } else {
        format!("keys: {}", diagnostics::backticked_list(keys))
    };
    format!("**`{}`**\n\n{}\n\n{keys}", block.title(), block.doc)
}

fn function_markdown(function: &schema::FunctionSchema) -> String {
    let params: Vec<String> = function
        .parameters()
        .map(|(name, doc)| format!("- `{name}`: {doc}"))
        .collect();
    format!(
        "```oprl\n{}\n```\n\n{}\n\n{}",
        function.signature(),
        function.doc,
        params.join("\n")
    )
}

fn markdown(value: String, index: &LineIndex, (start, end): (usize, usize)) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(index.range(start, end)),
    }
}

/// The hover at `position`: a key's doc, type and default; a block's doc and keys; a function's
/// signature; the options of a value.
pub fn hover(text: &str, position: Position) -> Option<Hover> {
    let index = LineIndex::new(text);
    let offset = index.offset(position);
    let ctx = context::context_at(text, offset);
    let (start, end) = ctx.word?;
    let word = &text[start..end];
    let after = text[end..].trim_start();
    let (block, top) = context::innermost_block(&ctx.frames);
    let found = match &ctx.position {
        At::Key
            if after.starts_with('=')
                || after.starts_with('{')
                || after.starts_with(|c: char| c.is_alphabetic()) =>
        {
            if top {
                let item = schema::top_level(word)?;
                let variants = schema::variants(word);
                let mut text = format!("**`{word}`**\n\n{}", item.doc);
                if let Some(b) = schema::block(word, None) {
                    text = block_markdown(b);
                } else if !variants.is_empty() {
                    text.push_str(&format!(
                        "\n\nvariants: {}",
                        diagnostics::backticked_list(variants)
                    ));
                }
                text
            } else if let Some(key) = block.and_then(|b| b.key(word)) {
                key_markdown(block.expect("the key came from it"), key)
            } else {
                block_markdown(schema::block(word, None)?)
            }
        }
        At::Variant { kind } => block_markdown(schema::block(kind, Some(word))?),
        At::Value { key } => {
            let schema_key = block.and_then(|b| b.key(key));
            match schema_key.map(|k| k.ty) {
                Some(Ty::Block(kind)) => block_markdown(
                    schema::block(kind, Some(word)).or_else(|| schema::block(word, None))?,
                ),
                Some(Ty::Name(options)) if options.contains(&word) => {
                    key_markdown(block?, schema_key?)
                }
                _ => value_markdown(word, after)?,
            }
        }
        _ => value_markdown(word, after)?,
    };
    Some(markdown(found, &index, (start, end)))
}

/// Hover for a name inside an expression: a function, or a block used as a value.
fn value_markdown(word: &str, after: &str) -> Option<String> {
    if after.starts_with('(') {
        return schema::function(word).map(function_markdown);
    }
    if let Some(b) = schema::block(word, None) {
        return Some(block_markdown(b));
    }
    let signal = match word {
        "outcome" => "The outcome reward (episode level), defined by `reward outcome = ...`.",
        "prm" => {
            "The online PRM's implicit step rewards (step level; `token(prm)` for token level)."
        }
        "env.reward" => "The environment's own per-step reward (step level).",
        _ => return None,
    };
    Some(format!("**`{word}`**\n\n{signal}"))
}

fn item(label: &str, kind: CompletionItemKind, detail: String, doc: String) -> CompletionItem {
    CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail),
        documentation: (!doc.is_empty()).then_some({
            Documentation::MarkupContent(MarkupContent {
                kind: MarkupKind::Markdown,
                value: doc,
            })
        }),
        ..CompletionItem::default()
    }
}

fn names(options: &[&str], kind: CompletionItemKind, detail: &str) -> Vec<CompletionItem> {
    options
        .iter()
        .map(|o| item(o, kind, detail.to_string(), String::new()))
        .collect()
}

fn functions(context: schema::FunctionContext) -> Vec<CompletionItem> {
    schema::FUNCTIONS
        .iter()
        .filter(|f| f.context == context)
        .map(|f| {
            item(
                f.name,
                CompletionItemKind::FUNCTION,
                f.signature(),
                f.doc.to_string(),
            )
        })
        .collect()
}

/// The completions at `position`: keys valid in the current block, variants of a kind, the
/// values a key accepts, stdlib modules after `use`, functions and signals in expressions.
pub fn completion(text: &str, position: Position) -> Vec<CompletionItem> {
    let index = LineIndex::new(text);
    let offset = index.offset(position);
    let ctx = context::context_at(text, offset);
    let (block, top) = context::innermost_block(&ctx.frames);
    let mut items = match &ctx.position {
        At::UsePath => names(
            &stdlib::names()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            CompletionItemKind::MODULE,
            "stdlib module",
        ),
        At::Key if top => {
            let mut items: Vec<CompletionItem> = schema::TOP_LEVEL
                .iter()
                .map(|t| {
                    let form = match t.form {
                        schema::Form::Block => "block",
                        schema::Form::Definition => "definition",
                        schema::Form::Assignment => "assignment",
                    };
                    item(
                        t.kind,
                        CompletionItemKind::KEYWORD,
                        form.into(),
                        t.doc.into(),
                    )
                })
                .collect();
            items.push(item(
                "use",
                CompletionItemKind::KEYWORD,
                "import".into(),
                "`use std::presets::NAME` or `use \"file.oprl\"`".into(),
            ));
            items
        }
        At::Key => match block {
            Some(b) => b
                .keys()
                .map(|k| {
                    let kind = match k.ty {
                        Ty::Block(_) => CompletionItemKind::MODULE,
                        _ => CompletionItemKind::PROPERTY,
                    };
                    item(k.key, kind, k.ty.describe(), key_markdown(b, k))
                })
                .collect(),
            None => Vec::new(),
        },
        At::Variant { kind } => schema::BLOCKS
            .iter()
            .filter(|b| b.kind == kind && b.variant.is_some())
            .map(|b| {
                item(
                    b.variant.unwrap_or_default(),
                    CompletionItemKind::CLASS,
                    b.title(),
                    block_markdown(b),
                )
            })
            .collect(),
        At::Value { key } if top => match key.as_str() {
            "advantage" => functions(schema::FunctionContext::Estimator),
            "reward" => {
                let mut items = functions(schema::FunctionContext::Reward);
                if let Some(judge) = schema::block("judge", None) {
                    items.push(item(
                        "judge",
                        CompletionItemKind::CLASS,
                        judge.title(),
                        block_markdown(judge),
                    ));
                }
                items
            }
            _ => Vec::new(),
        },
        At::Value { key } => match block.and_then(|b| b.key(key)).map(|k| k.ty) {
            Some(Ty::Name(options)) => names(options, CompletionItemKind::ENUM_MEMBER, key),
            Some(Ty::Bool) => names(&["true", "false"], CompletionItemKind::KEYWORD, "boolean"),
            Some(Ty::Block(kind)) => schema::BLOCKS
                .iter()
                .filter(|b| b.kind == kind)
                .map(|b| {
                    item(
                        b.variant.unwrap_or(b.kind),
                        CompletionItemKind::CLASS,
                        b.title(),
                        block_markdown(b),
                    )
                })
                .collect(),
            _ => Vec::new(),
        },
        At::Argument { function } => argument_items(function),
        At::ArgumentValue { function, name } => {
            let option =
                schema::function(function).and_then(|f| f.options.iter().find(|k| k.key == name));
            match option.map(|k| k.ty) {
                Some(Ty::Name(options)) => names(options, CompletionItemKind::ENUM_MEMBER, name),
                Some(Ty::Bool) => names(&["true", "false"], CompletionItemKind::KEYWORD, "boolean"),
                _ => Vec::new(),
            }
        }
        At::Operand => {
            let in_call = ctx.frames.iter().any(|f| matches!(f, Frame::Call { .. }));
            if in_call {
                signal_items()
            } else {
                functions(schema::FunctionContext::Estimator)
            }
        }
        At::Other => Vec::new(),
    };
    items.sort_by(|a, b| a.label.cmp(&b.label));
    items
}

fn signal_items() -> Vec<CompletionItem> {
    let mut items = names(schema::SIGNALS, CompletionItemKind::VARIABLE, "signal");
    items.extend(functions(schema::FunctionContext::Signal));
    items
}

/// The arguments of `function(`: its named parameters, and what its first one accepts.
fn argument_items(function: &str) -> Vec<CompletionItem> {
    let Some(f) = schema::function(function) else {
        return Vec::new();
    };
    let mut items: Vec<CompletionItem> = f
        .options
        .iter()
        .map(|k| {
            let detail = match schema::option_default(k) {
                Some(d) => format!("{} = {d}", k.key),
                None => format!("{} = {}", k.key, k.ty.describe()),
            };
            item(k.key, CompletionItemKind::FIELD, detail, k.doc.into())
        })
        .collect();
    match f.context {
        schema::FunctionContext::Reward => items.extend(names(
            schema::VERIFIER_SIGNALS,
            CompletionItemKind::VARIABLE,
            "environment signal",
        )),
        _ => items.extend(signal_items()),
    }
    items
}

/// Where the name at `position` is defined: the file or stdlib module of a `use`; the block or
/// definition a reference names (`outcome`, `prm`, `env.won`), in this file first, then in the
/// files it imports.
pub fn definition(path: &Path, text: &str, position: Position) -> Vec<Location> {
    let index = LineIndex::new(text);
    let offset = index.offset(position);
    let ctx = context::context_at(text, offset);
    let Some((start, end)) = ctx.word.or_else(|| string_at(text, offset)) else {
        return Vec::new();
    };
    let word = text[start..end].trim_matches('"');
    let dir = path.parent().unwrap_or(Path::new("."));
    if ctx.position == At::UsePath || is_use_target(text, start) {
        let target = if word.starts_with("std::") {
            stdlib_file(word)
        } else {
            dir.join(word).canonicalize().ok()
        };
        return target
            .and_then(|p| path_to_uri(&p))
            .map(|uri| vec![Location::new(uri, Range::default())])
            .unwrap_or_default();
    }
    let root = word.split('.').next().unwrap_or(word);
    let compilation = compile_document(path, text);
    let mut locations = Vec::new();
    for (id, file) in compilation.sources.files() {
        let Some(file_path) = (if id == root_source(&compilation).unwrap_or(id) {
            Some(path.to_path_buf())
        } else {
            source_path(&file.origin)
        }) else {
            continue;
        };
        let source_text = if file_path == path {
            text
        } else {
            file.text.as_str()
        };
        let (Some(ast), _) = crate::syntax::parse_file(id, source_text) else {
            continue;
        };
        let file_index = LineIndex::new(source_text);
        for (s, e) in defined_names(&ast, root) {
            if let Some(uri) = path_to_uri(&file_path) {
                locations.push(Location::new(uri, file_index.range(s, e)));
            }
        }
    }
    locations
}

/// The byte ranges where a top-level statement defines `name`: `kind name = ...` defines
/// `name`; a block or assignment of kind `name` defines `name` (`prm`, `env`, `policy`).
fn defined_names(file: &ast::File, name: &str) -> Vec<(usize, usize)> {
    file.statements
        .iter()
        .filter_map(|s| match s {
            Statement::Definition(d) if d.name.name == name => Some(d.name.span),
            Statement::Block(b) if b.kind.name == name => Some(b.kind.span),
            Statement::Assignment(a) if a.key.name == name => Some(a.key.span),
            _ => None,
        })
        .map(|span| (span.start, span.end))
        .collect()
}

/// The string literal containing `offset`, quotes included.
fn string_at(text: &str, offset: usize) -> Option<(usize, usize)> {
    context::tokenize(text)
        .into_iter()
        .find(|t| t.kind == context::TokenKind::Str && t.start <= offset && offset <= t.end)
        .map(|t| (t.start, t.end))
}

/// True when the token starting at `start` follows a `use` keyword.
fn is_use_target(text: &str, start: usize) -> bool {
    text[..start].trim_end().ends_with("use")
        && text[..start]
            .trim_end()
            .rsplit(|c: char| c.is_whitespace())
            .next()
            == Some("use")
}
