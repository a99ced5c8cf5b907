//! Resolution: load the root recipe, its imports (stdlib modules and relative files) and the
//! `--set` overrides, and merge them into one [`Recipe`].
//!
//! Override order (later wins):
//! 1. A file's imports are applied first, in the order of their `use` lines, each import
//!    recursively in the same way. A module is applied once, at its first import.
//! 2. Then the file's own statements, in order.
//! 3. Then the `--set` overrides, in command-line order.
//!
//! Merging: a block of the same kind and variant as an earlier one merges key by key (nested
//! blocks likewise); a block with another variant replaces the earlier block entirely; named
//! definitions and top-level assignments replace earlier ones. Within one file, setting the same
//! key or writing the same block twice is an error.

use super::error::CheckError;
use super::schema::{self, Form};
use super::stdlib;
use crate::diagnostics::{
    backticked_list, did_you_mean, Code, Diagnostic, Origin, SourceFile, SourceId, SourceMap, Span,
};
use crate::syntax::ast::{self, Expr, Ident, Statement, UseTarget};
use crate::syntax::{parse_file, parse_override};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The merged recipe: every top-level item by slot (`env`, `reward.outcome`, `advantage`, ...).
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    pub items: IndexMap<String, Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Block(BlockNode),
    Value(ValueNode),
}

/// A block after merging.
#[derive(Debug, Clone)]
pub struct BlockNode {
    pub kind: Ident,
    pub variant: Option<Ident>,
    pub entries: IndexMap<String, Entry>,
}

impl BlockNode {
    /// The span of `kind variant`, for labels that point at the block.
    pub fn head_span(&self) -> Span {
        match &self.variant {
            Some(v) => self.kind.span.to(v.span),
            None => self.kind.span,
        }
    }

    /// Adds `entry` under `name`. A name already there is overwritten (the later entry wins) and
    /// the "set twice" diagnostic, labelling both, is returned.
    pub fn insert_entry(&mut self, name: String, entry: Entry) -> Option<CheckError> {
        let duplicate = self
            .entries
            .get(&name)
            .map(|first| CheckError::DuplicateKey {
                again: entry.span(),
                first: first.span(),
                key: name.clone(),
            });
        self.entries.insert(name, entry);
        duplicate
    }
}

#[derive(Debug, Clone)]
pub enum Entry {
    Value(ValueNode),
    Block(BlockNode),
}

impl Entry {
    /// The key of a value, the kind of a block: where "set twice" labels point.
    pub fn span(&self) -> Span {
        match self {
            Entry::Value(v) => v.key.span,
            Entry::Block(b) => b.kind.span,
        }
    }
}

/// `key = expr`, or for a definition `kind key = expr`.
#[derive(Debug, Clone)]
pub struct ValueNode {
    pub key: Ident,
    pub expr: Expr,
}

/// What a `use` resolves to, for cycle detection and applying each module once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ModuleKey {
    Root,
    Std(String),
    File(PathBuf),
}

/// Where the root recipe comes from.
pub enum RootSource<'a> {
    Path(&'a Path),
    /// In-memory text with a display name; relative imports resolve from `dir`.
    Text {
        name: &'a str,
        text: &'a str,
        dir: &'a Path,
    },
}

pub struct Resolved {
    pub recipe: Recipe,
    pub root: Option<SourceId>,
}

/// Loads the root and its imports, applies overrides. `fragment` skips nothing here; it is
/// only passed through for symmetry with checking.
pub fn resolve(
    root: RootSource,
    overrides: &[String],
    sources: &mut SourceMap,
    diagnostics: &mut Vec<Diagnostic>,
) -> Resolved {
    let mut resolver = Resolver {
        sources,
        diagnostics,
        applied: HashSet::new(),
        recipe: Recipe::default(),
    };
    let root_id = match root {
        RootSource::Path(path) => match read_source(path) {
            Ok(text) => Some(resolver.sources.add(SourceFile::new(
                path.display().to_string(),
                Origin::File(path.to_path_buf()),
                text,
            ))),
            Err(e) => {
                let id = resolver.sources.add(SourceFile::new(
                    path.display().to_string(),
                    Origin::File(path.to_path_buf()),
                    "",
                ));
                resolver.diagnostics.push(
                    Diagnostic::new(
                        Code::FileNotFound,
                        format!("cannot read `{}`: {}", path.display(), io_reason(&e)),
                    )
                    .label(Span::new(id, 0, 0), "this file")
                    .help("check the path"),
                );
                None
            }
        },
        RootSource::Text { name, text, dir } => Some(resolver.sources.add(SourceFile::new(
            name,
            Origin::File(dir.join(name)),
            text,
        ))),
    };
    if let Some(id) = root_id {
        let key = match &resolver.sources.get(id).origin {
            Origin::File(p) => ModuleKey::File(canonical(p)),
            _ => ModuleKey::Root,
        };
        let mut chain = vec![(key.clone(), None)];
        resolver.load(key, id, &mut chain);
        for text in overrides {
            resolver.apply_override(text);
        }
    }
    Resolved {
        recipe: resolver.recipe,
        root: root_id,
    }
}

/// The most bytes a recipe file may have: a recipe is a page of text, and the cap keeps
/// `use "/dev/zero"` from reading forever.
const MAX_SOURCE_BYTES: u64 = 1 << 20;

/// Reads a recipe file: a regular file of UTF-8 text, at most [`MAX_SOURCE_BYTES`].
fn read_source(path: &Path) -> std::io::Result<String> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if metadata.len() > MAX_SOURCE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "larger than 1 MiB",
        ));
    }
    std::fs::read_to_string(path)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        std::io::ErrorKind::InvalidInput => e.to_string(),
        _ => e.to_string().to_lowercase(),
    }
}

/// The directory relative paths in a source are resolved from.
pub fn base_dir(sources: &SourceMap, id: SourceId) -> PathBuf {
    match &sources.get(id).origin {
        Origin::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        Origin::Stdlib(_) | Origin::Cli => PathBuf::from("."),
    }
}

struct Resolver<'a> {
    sources: &'a mut SourceMap,
    diagnostics: &'a mut Vec<Diagnostic>,
    applied: HashSet<ModuleKey>,
    recipe: Recipe,
}

impl Resolver<'_> {
    fn load(
        &mut self,
        key: ModuleKey,
        source: SourceId,
        chain: &mut Vec<(ModuleKey, Option<Span>)>,
    ) {
        let (file, errors) = parse_file(source, &self.sources.get(source).text.clone());
        self.diagnostics.extend(errors);
        let Some(file) = file else {
            self.applied.insert(key);
            return;
        };
        let mut imported_here: HashMap<ModuleKey, Span> = HashMap::new();
        for statement in &file.statements {
            if let Statement::Use(u) = statement {
                let Some((import_key, import_source)) = self.resolve_use(source, &u.target, chain)
                else {
                    continue;
                };
                if let Some(first) = imported_here.get(&import_key) {
                    self.diagnostics.push(
                        Diagnostic::new(Code::DuplicateImport, "module imported twice")
                            .label(u.span, "imported again here")
                            .label(*first, "first imported here")
                            .help("remove the second `use`"),
                    );
                    continue;
                }
                imported_here.insert(import_key.clone(), u.span);
                if self.applied.contains(&import_key) {
                    continue;
                }
                let Some(import_source) = import_source else {
                    continue;
                };
                chain.push((import_key.clone(), Some(u.span)));
                self.load(import_key, import_source, chain);
                chain.pop();
            }
        }
        let mut written_here: HashMap<String, Span> = HashMap::new();
        for statement in file.statements {
            self.apply_statement(statement, &mut written_here);
        }
        self.applied.insert(key);
    }

    /// Finds the module a `use` names. Returns its key, and its source unless it was already
    /// applied; `None` after reporting an error.
    fn resolve_use(
        &mut self,
        from: SourceId,
        target: &UseTarget,
        chain: &[(ModuleKey, Option<Span>)],
    ) -> Option<(ModuleKey, Option<SourceId>)> {
        let (key, name, origin, text) = match target {
            UseTarget::Module { segments, span } => {
                let names: Vec<&str> = segments.iter().map(|s| s.name.as_str()).collect();
                let full = names.join("::");
                let text = (names[0] == "std")
                    .then(|| stdlib::lookup(&names[1..]))
                    .flatten();
                let Some(text) = text else {
                    let all = stdlib::names();
                    let mut d =
                        Diagnostic::new(Code::UnknownModule, format!("no stdlib module `{full}`"))
                            .label(*span, "not in the standard library");
                    d = match did_you_mean(&full, all.iter().map(String::as_str)) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(format!(
                            "the modules are {}",
                            backticked_list(all.iter().map(String::as_str))
                        )),
                    };
                    self.diagnostics.push(d);
                    return None;
                };
                (
                    ModuleKey::Std(full.clone()),
                    full.clone(),
                    Origin::Stdlib(full),
                    text.to_string(),
                )
            }
            UseTarget::File { path, span } => {
                if matches!(self.sources.get(from).origin, Origin::Stdlib(_)) {
                    self.diagnostics.push(
                        Diagnostic::new(Code::FileNotFound, "a stdlib module cannot import a file")
                            .label(*span, "file import in the standard library")
                            .help("stdlib modules may only `use std::...`"),
                    );
                    return None;
                }
                let resolved = base_dir(self.sources, from).join(path);
                let key = ModuleKey::File(canonical(&resolved));
                if self.applied.contains(&key) && !chain.iter().any(|(k, _)| *k == key) {
                    return Some((key, None));
                }
                match read_source(&resolved) {
                    Ok(text) => (key, display_path(&resolved), Origin::File(resolved), text),
                    Err(e) => {
                        self.diagnostics.push(
                            Diagnostic::new(
                                Code::FileNotFound,
                                format!("cannot import `{path}`: {}", io_reason(&e)),
                            )
                            .label(*span, format!("looked for `{}`", display_path(&resolved)))
                            .help(
                                "paths in `use` are relative to the file that contains the `use`",
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        if let Some(pos) = chain.iter().position(|(k, _)| *k == key) {
            let mut names: Vec<String> =
                chain[pos..].iter().map(|(k, _)| self.key_name(k)).collect();
            names.push(self.key_name(&key));
            self.diagnostics.push(
                Diagnostic::new(Code::ImportCycle, "import cycle")
                    .label(target.span(), "this import closes the cycle")
                    .help(format!("the chain is {}", names.join(" -> "))),
            );
            return None;
        }
        if self.applied.contains(&key) {
            return Some((key, None));
        }
        let id = self.sources.add(SourceFile::new(name, origin, text));
        Some((key, Some(id)))
    }

    fn key_name(&self, key: &ModuleKey) -> String {
        match key {
            ModuleKey::Root => "<root>".into(),
            ModuleKey::Std(s) => s.clone(),
            ModuleKey::File(p) => p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    fn apply_statement(&mut self, statement: Statement, written_here: &mut HashMap<String, Span>) {
        let (slot, item, span) = match statement {
            Statement::Use(_) => return,
            Statement::Block(b) => {
                if !self.check_top_level(&b.kind, Form::Block) {
                    return;
                }
                let span = b.kind.span;
                (b.kind.name.clone(), Item::Block(self.block_node(b)), span)
            }
            Statement::Definition(d) => {
                if !self.check_top_level(&d.kind, Form::Definition) {
                    return;
                }
                let span = d.kind.span.to(d.name.span);
                (
                    format!("{}.{}", d.kind.name, d.name.name),
                    Item::Value(ValueNode {
                        key: d.name,
                        expr: d.value,
                    }),
                    span,
                )
            }
            Statement::Assignment(a) => {
                if !self.check_top_level(&a.key, Form::Assignment) {
                    return;
                }
                let span = a.key.span;
                (
                    a.key.name.clone(),
                    Item::Value(ValueNode {
                        key: a.key,
                        expr: a.value,
                    }),
                    span,
                )
            }
        };
        if let Some(first) = written_here.get(&slot) {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::DuplicateBlock,
                    format!("`{slot}` is written twice in this file"),
                )
                .label(span, "written again here")
                .label(*first, "first written here")
                .help("merge the two into one"),
            );
        }
        written_here.insert(slot.clone(), span);
        merge_item(&mut self.recipe.items, slot, item);
    }

    /// Checks that a top-level statement has a kind the language knows, in the right form.
    fn check_top_level(&mut self, kind: &Ident, form: Form) -> bool {
        match schema::top_level(&kind.name) {
            Some(t) if t.form == form => return true,
            Some(t) => {
                let how = match t.form {
                    Form::Block => format!("write `{} ... {{ ... }}`", t.kind),
                    Form::Definition => format!("write `{} outcome = ...`", t.kind),
                    Form::Assignment => format!("write `{} = ...`", t.kind),
                };
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::UnknownBlockKind,
                        format!("`{}` is not written this way", kind.name),
                    )
                    .label(kind.span, "wrong form")
                    .help(how),
                );
                return false;
            }
            None => {}
        }
        let mut d = Diagnostic::new(
            Code::UnknownBlockKind,
            format!("unknown top-level item `{}`", kind.name),
        );
        let owners: Vec<String> = schema::BLOCKS
            .iter()
            .filter(|b| b.key(&kind.name).is_some() || b.kind == kind.name)
            .map(|b| b.kind.to_string())
            .fold(Vec::new(), |mut v, k| {
                if !v.contains(&k) {
                    v.push(k);
                }
                v
            });
        d = if form == Form::Definition {
            d.label(kind.span, "only `reward` has named definitions")
                .help("write `reward outcome = ...`")
        } else if let Some(s) = did_you_mean(&kind.name, schema::TOP_LEVEL.iter().map(|t| t.kind)) {
            d.label(kind.span, "not a top-level item")
                .help(format!("did you mean `{s}`?"))
        } else if !owners.is_empty() {
            d.label(kind.span, "not a top-level item").help(format!(
                "`{}` belongs inside {}",
                kind.name,
                backticked_list(owners.iter().map(String::as_str))
            ))
        } else {
            d.label(kind.span, "not a top-level item").help(format!(
                "the top-level items are {}",
                backticked_list(schema::TOP_LEVEL.iter().map(|t| t.kind))
            ))
        };
        self.diagnostics.push(d);
        false
    }

    /// Converts a block, reporting keys and nested blocks written twice.
    fn block_node(&mut self, block: ast::Block) -> BlockNode {
        let mut node = BlockNode {
            kind: block.kind,
            variant: block.variant,
            entries: IndexMap::new(),
        };
        for statement in block.body {
            let (name, entry) = match statement {
                Statement::Use(_) => continue,
                Statement::Assignment(a) => (
                    a.key.name.clone(),
                    Entry::Value(ValueNode {
                        key: a.key.clone(),
                        expr: a.value,
                    }),
                ),
                Statement::Block(b) => (b.kind.name.clone(), Entry::Block(self.block_node(b))),
                Statement::Definition(d) => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::UnknownBlockKind,
                            format!(
                                "named definition `{} {}` inside a block",
                                d.kind.name, d.name.name
                            ),
                        )
                        .label(d.kind.span.to(d.name.span), "only allowed at the top level")
                        .help("inside a block, write `key = value`"),
                    );
                    continue;
                }
            };
            self.diagnostics
                .extend(node.insert_entry(name, entry).map(Diagnostic::from));
        }
        node
    }

    fn apply_override(&mut self, text: &str) {
        let id = self
            .sources
            .add(SourceFile::new("<cli>", Origin::Cli, text));
        let o = match parse_override(id, text) {
            Ok(o) => o,
            Err(errors) => {
                self.diagnostics.extend(errors);
                return;
            }
        };
        let path_span = o.path.first().map(|f| f.span).unwrap_or(o.span).to(o
            .path
            .last()
            .map(|l| l.span)
            .unwrap_or(o.span));
        let first = &o.path[0];
        let bad = |message: String, help: String| {
            Diagnostic::new(Code::UnknownOverridePath, message)
                .label(path_span, "in this override")
                .help(help)
        };
        let Some(top) = schema::top_level(&first.name) else {
            let help = match did_you_mean(&first.name, schema::TOP_LEVEL.iter().map(|t| t.kind)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "paths start with {}",
                    backticked_list(schema::TOP_LEVEL.iter().map(|t| t.kind))
                ),
            };
            self.diagnostics.push(bad(
                format!("`{}` is not a top-level item", first.name),
                help,
            ));
            return;
        };
        match top.form {
            Form::Assignment => {
                if o.path.len() != 1 {
                    self.diagnostics.push(bad(
                        format!("`{}` has no keys", first.name),
                        format!("write `--set {}=...`", first.name),
                    ));
                    return;
                }
                merge_item(
                    &mut self.recipe.items,
                    first.name.clone(),
                    Item::Value(ValueNode {
                        key: first.clone(),
                        expr: o.value,
                    }),
                );
            }
            Form::Definition => {
                if o.path.len() != 2 {
                    self.diagnostics.push(bad(
                        format!("`{}` needs a name", first.name),
                        format!("write `--set {}.outcome=...`", first.name),
                    ));
                    return;
                }
                let slot = format!("{}.{}", first.name, o.path[1].name);
                merge_item(
                    &mut self.recipe.items,
                    slot,
                    Item::Value(ValueNode {
                        key: o.path[1].clone(),
                        expr: o.value,
                    }),
                );
            }
            Form::Block => {
                if o.path.len() < 2 {
                    self.diagnostics.push(bad(
                        format!("`--set {}` would replace a whole block", first.name),
                        format!("set one key, as in `--set {}.KEY=VALUE`", first.name),
                    ));
                    return;
                }
                if !self.recipe.items.contains_key(&first.name) {
                    if !schema::variants(&first.name).is_empty() {
                        self.diagnostics.push(bad(
                            format!("the recipe has no `{}` block to override", first.name),
                            format!(
                                "write the block in the recipe first, e.g. `{} {} {{ }}`",
                                first.name,
                                schema::variants(&first.name)[0]
                            ),
                        ));
                        return;
                    }
                    let node = BlockNode {
                        kind: first.clone(),
                        variant: None,
                        entries: IndexMap::new(),
                    };
                    self.recipe
                        .items
                        .insert(first.name.clone(), Item::Block(node));
                }
                let Some(Item::Block(block)) = self.recipe.items.get_mut(&first.name) else {
                    self.diagnostics.push(bad(
                        format!("`{}` is not a block", first.name),
                        "set the whole value".into(),
                    ));
                    return;
                };
                let mut node = block;
                for segment in &o.path[1..o.path.len() - 1] {
                    let entry = node.entries.entry(segment.name.clone()).or_insert_with(|| {
                        Entry::Block(BlockNode {
                            kind: segment.clone(),
                            variant: None,
                            entries: IndexMap::new(),
                        })
                    });
                    match entry {
                        Entry::Block(b) => node = b,
                        Entry::Value(_) => {
                            let d = bad(
                                format!("`{}` is a value, not a block", segment.name),
                                format!("set `{}` as a whole", segment.name),
                            );
                            self.diagnostics.push(d);
                            return;
                        }
                    }
                }
                let key = o.path[o.path.len() - 1].clone();
                node.entries.insert(
                    key.name.clone(),
                    Entry::Value(ValueNode { key, expr: o.value }),
                );
            }
        }
    }
}

fn display_path(path: &Path) -> String {
    path.display().to_string()
}

/// Applies `item` over whatever `slot` held (see the module doc for the rules).
fn merge_item(items: &mut IndexMap<String, Item>, slot: String, item: Item) {
    match (items.get_mut(&slot), item) {
        (Some(Item::Block(old)), Item::Block(new)) if same_variant(old, &new) => {
            merge_block(old, new)
        }
        (_, item) => {
            items.insert(slot, item);
        }
    }
}

fn same_variant(a: &BlockNode, b: &BlockNode) -> bool {
    a.variant.as_ref().map(|v| &v.name) == b.variant.as_ref().map(|v| &v.name)
}

fn merge_block(old: &mut BlockNode, new: BlockNode) {
    // The newest head span wins so that labels point at the file that last touched the block.
    old.kind = new.kind;
    old.variant = new.variant;
    for (name, entry) in new.entries {
        match (old.entries.get_mut(&name), entry) {
            (Some(Entry::Block(o)), Entry::Block(n)) if same_variant(o, &n) => merge_block(o, n),
            (_, entry) => {
                old.entries.insert(name, entry);
            }
        }
    }
}
