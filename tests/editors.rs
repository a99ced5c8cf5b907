//! Editor support (editors/): the keyword lists of every editor grammar equal the compiler's,
//! the TextMate grammar passes its `vscode-tmgrammar-test` files, the tree-sitter grammar
//! parses every shipped recipe without an error and passes its corpus and highlight tests, and
//! the Vim syntax highlights a sample recipe as intended.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn set<'a>(words: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    words.into_iter().map(str::to_string).collect()
}

/// The compiler's reserved words.
fn keywords() -> BTreeSet<String> {
    set(oprl::syntax::KEYWORDS.iter().copied())
}

/// Every block kind: the top-level items and the nested blocks of the schema table.
fn block_kinds() -> BTreeSet<String> {
    let mut kinds = set(oprl::syntax::BLOCK_KINDS.iter().copied());
    kinds.extend(
        oprl::compile::schema::BLOCKS
            .iter()
            .map(|b| b.kind.to_string()),
    );
    kinds
}

fn functions() -> BTreeSet<String> {
    set(oprl::compile::schema::FUNCTIONS.iter().map(|f| f.name))
}

/// The words of the first group of plain alternatives in a regex: `\b(a|b|c)\b` (TextMate,
/// Oniguruma) or `\<\(a\|b\)\>` (Vim).
fn alternatives(regex: &str) -> BTreeSet<String> {
    let unescaped = regex
        .replace("\\(", "(")
        .replace("\\)", ")")
        .replace("\\|", "|");
    let is_word_list = |s: &str| {
        !s.is_empty()
            && s.split('|')
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    let mut rest = unescaped.as_str();
    while let Some(open) = rest.find('(') {
        let inner = &rest[open + 1..];
        if let Some(close) = inner.find(')') {
            if is_word_list(&inner[..close]) {
                return set(inner[..close].split('|'));
            }
        }
        rest = inner;
    }
    panic!("no word list in `{regex}`")
}

#[test]
fn textmate_grammar_lists_the_compilers_words() {
    let grammar: serde_json::Value =
        serde_json::from_str(&read("editors/vscode/syntaxes/oprl.tmLanguage.json")).unwrap();
    let regex = |pointer: &str| {
        grammar
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("no {pointer} in the TextMate grammar"))
            .to_string()
    };
    let mut words = alternatives(&regex("/repository/use/begin"));
    words.extend(alternatives(&regex("/repository/boolean/match")));
    assert_eq!(words, keywords(), "TextMate keywords");
    for pointer in [
        "/repository/definition/match",
        "/repository/block-kind/begin",
        "/repository/top-level-assignment/match",
    ] {
        assert_eq!(
            alternatives(&regex(pointer)),
            block_kinds(),
            "TextMate {pointer}"
        );
    }
    assert_eq!(
        alternatives(&regex("/repository/builtin-call/begin")),
        functions(),
        "TextMate builtin functions"
    );
}

#[test]
fn vim_syntax_lists_the_compilers_words() {
    let syntax = read("editors/vim/syntax/oprl.vim");
    let lines = |group: &str| -> Vec<String> {
        syntax
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(group))
            .map(str::to_string)
            .collect()
    };
    let mut words = BTreeSet::new();
    for group in ["oprlKeyword", "oprlBoolean"] {
        for line in lines(group) {
            assert!(line.starts_with("syn keyword"), "{line}");
            words.extend(line.split_whitespace().skip(3).map(str::to_string));
        }
    }
    assert_eq!(words, keywords(), "Vim keywords");
    let kinds = lines("oprlBlockKind");
    assert_eq!(kinds.len(), 2, "the two block-kind patterns");
    for line in kinds {
        assert_eq!(alternatives(&line), block_kinds(), "Vim: {line}");
    }
    let function_lines = lines("oprlFunction");
    assert_eq!(function_lines.len(), 1);
    assert_eq!(
        alternatives(&function_lines[0]),
        functions(),
        "Vim functions"
    );
}

#[test]
fn tree_sitter_grammar_lists_the_compilers_words() {
    // The generated grammar holds every literal token; the words among them are the keywords.
    let grammar: serde_json::Value =
        serde_json::from_str(&read("editors/tree-sitter-oprl/src/grammar.json")).unwrap();
    let mut strings = BTreeSet::new();
    collect_strings(&grammar["rules"], &mut strings);
    let words: BTreeSet<String> = strings
        .into_iter()
        .filter(|s| s.chars().all(|c| c.is_ascii_alphabetic()))
        .collect();
    assert_eq!(words, keywords(), "tree-sitter keyword tokens");
    // The highlight query names block kinds and functions in `#any-of?` predicates.
    let query = read("editors/tree-sitter-oprl/queries/highlights.scm");
    let mut kinds_lists = 0;
    let mut function_lists = 0;
    for predicate in query.split("(#").skip(1) {
        let Some(body) = predicate.split(')').next() else {
            continue;
        };
        let mut parts = body.split_whitespace();
        let name = parts.next().unwrap_or_default();
        if name != "any-of?" && name != "not-any-of?" {
            continue;
        }
        let words: BTreeSet<String> = parts
            .skip(1)
            .map(|w| w.trim_matches('"').to_string())
            .collect();
        if words == block_kinds() {
            kinds_lists += 1;
        } else if words == functions() {
            function_lists += 1;
        } else {
            panic!("highlights.scm lists neither the block kinds nor the functions: {body}");
        }
    }
    assert_eq!(
        (kinds_lists, function_lists),
        (8, 2),
        "any-of lists in highlights.scm"
    );
}

fn collect_strings(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("STRING") {
                if let Some(s) = map.get("value").and_then(|v| v.as_str()) {
                    out.insert(s.to_string());
                }
            }
            map.values().for_each(|v| collect_strings(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Every shipped `.oprl` file: recipes and stdlib modules.
fn shipped_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "oprl") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("recipes"), &mut files);
    walk(&root().join("stdlib"), &mut files);
    assert!(files.len() >= 20, "found only {} files", files.len());
    files
}

fn tree_sitter_parser() -> tree_sitter::Parser {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_oprl::LANGUAGE.into())
        .expect("the generated parser's ABI matches the tree-sitter runtime");
    parser
}

/// The `ERROR` and `MISSING` nodes of a tree, as `kind at line:column`.
fn error_nodes(tree: &tree_sitter::Tree) -> Vec<String> {
    let mut errors = Vec::new();
    let mut cursor = tree.walk();
    loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            let p = node.start_position();
            errors.push(format!("{} at {}:{}", node.kind(), p.row + 1, p.column + 1));
        }
        if node.has_error() && cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return errors;
            }
        }
    }
}

#[test]
fn tree_sitter_parses_every_shipped_file_without_errors() {
    let mut parser = tree_sitter_parser();
    for path in shipped_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let tree = parser.parse(&text, None).expect("a tree");
        assert_eq!(
            error_nodes(&tree),
            Vec::<String>::new(),
            "{}: {}",
            path.display(),
            tree.root_node().to_sexp()
        );
    }
}

/// Collapses whitespace so that S-expressions compare regardless of layout.
fn normalise_sexp(s: &str) -> String {
    s.replace('(', " ( ")
        .replace(')', " ) ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One test of a corpus file in the `tree-sitter test` format.
struct CorpusCase {
    name: String,
    input: String,
    expected: String,
}

fn corpus_cases(text: &str) -> Vec<CorpusCase> {
    let is_rule = |l: &str, c: char| l.len() >= 3 && l.chars().all(|x| x == c);
    let lines: Vec<&str> = text.lines().collect();
    let mut cases = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_rule(lines[i], '=') {
            i += 1;
            continue;
        }
        let name = lines[i + 1].trim().to_string();
        i += 3;
        let start = i;
        while i < lines.len() && !is_rule(lines[i], '-') {
            i += 1;
        }
        let input = lines[start..i].join("\n");
        i += 1;
        let start = i;
        while i < lines.len() && !is_rule(lines[i], '=') {
            i += 1;
        }
        let expected = lines[start..i].join("\n");
        cases.push(CorpusCase {
            name,
            input,
            expected,
        });
    }
    cases
}

#[test]
fn tree_sitter_corpus() {
    let mut parser = tree_sitter_parser();
    let dir = root().join("editors/tree-sitter-oprl/test/corpus");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        for case in corpus_cases(&std::fs::read_to_string(&path).unwrap()) {
            let tree = parser.parse(&case.input, None).unwrap();
            assert_eq!(
                normalise_sexp(&tree.root_node().to_sexp()),
                normalise_sexp(&case.expected),
                "{}: {}",
                path.display(),
                case.name
            );
            count += 1;
        }
    }
    assert!(count >= 8, "only {count} corpus cases");
}

/// The captures of `queries/highlights.scm` on a text: (byte range, capture name), in query
/// order, keeping only predicates that hold.
fn highlight_captures(text: &str) -> Vec<(usize, usize, String)> {
    use tree_sitter::StreamingIterator;
    let language: tree_sitter::Language = tree_sitter_oprl::LANGUAGE.into();
    let query = tree_sitter::Query::new(&language, tree_sitter_oprl::HIGHLIGHTS_QUERY)
        .expect("highlights.scm is a valid query");
    let tree = tree_sitter_parser().parse(text, None).unwrap();
    let mut cursor = tree_sitter::QueryCursor::new();
    let mut captures = Vec::new();
    let mut matches = cursor.matches(&query, tree.root_node(), text.as_bytes());
    while let Some(m) = matches.next() {
        for c in m.captures {
            let name = query.capture_names()[c.index as usize].to_string();
            captures.push((c.node.start_byte(), c.node.end_byte(), name));
        }
    }
    captures
}

/// The most specific capture at a byte: the smallest node; patterns never overlap on one node.
fn capture_at(captures: &[(usize, usize, String)], offset: usize) -> Option<String> {
    captures
        .iter()
        .filter(|(s, e, _)| *s <= offset && offset < *e)
        .min_by_key(|(s, e, _)| e - s)
        .map(|(_, _, n)| n.clone())
}

/// Runs the highlight tests: `# ^ capture` asserts the capture at the caret's column on the
/// nearest line above that is not an assertion; `# <- capture` asserts it at the line's
/// first column.
#[test]
fn tree_sitter_highlight_tests() {
    let dir = root().join("editors/tree-sitter-oprl/test/highlight");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let captures = highlight_captures(&text);
        let mut line_start = 0;
        let mut target: Option<usize> = None;
        let mut failures = Vec::new();
        for (number, line) in text.split('\n').enumerate() {
            let trimmed = line.trim_start();
            let assertion = trimmed
                .strip_prefix('#')
                .map(str::trim_start)
                .filter(|rest| rest.starts_with('^') || rest.starts_with("<-"));
            match (assertion, target) {
                (Some(rest), Some(target_start)) => {
                    let column = if rest.starts_with("<-") {
                        0
                    } else {
                        line.find('^').unwrap()
                    };
                    let expected = rest.trim_start_matches(['^', '<', '-']).trim();
                    let actual = capture_at(&captures, target_start + column);
                    if actual.as_deref() != Some(expected) {
                        failures.push(format!(
                            "{}:{}: expected `{expected}`, got {actual:?}",
                            path.display(),
                            number + 1
                        ));
                    }
                    checked += 1;
                }
                _ => target = Some(line_start),
            }
            line_start += line.len() + 1;
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
    assert!(checked >= 20, "only {checked} highlight assertions");
}

/// Runs a command if its program exists; `None` (with a note) when it does not.
fn run_if_present(program: &str, command: &mut Command) -> Option<std::process::Output> {
    match command.output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: `{program}` is not installed");
            None
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

#[test]
fn textmate_grammar_tests() {
    let vscode = root().join("editors/vscode");
    let bin = vscode.join("node_modules/.bin/vscode-tmgrammar-test");
    if !bin.exists() {
        eprintln!("skipped: run `npm ci` in editors/vscode to install vscode-tmgrammar-test");
        return;
    }
    let Some(output) = run_if_present(
        "node",
        Command::new(&bin)
            .arg("tests/**/*.oprl")
            .current_dir(&vscode),
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "vscode-tmgrammar-test failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("run successfuly") || stdout.contains("run successfully"),
        "{stdout}"
    );
}

#[test]
fn vim_highlights_a_recipe() {
    let script = tempfile::NamedTempFile::new().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    // For each `line:col`, write the syntax group there.
    let probes = [
        (3, 1, "oprlKeyword"),    // use
        (3, 5, "oprlModulePath"), // std::envs::sotopia
        (3, 8, "oprlPathSep"),    // ::
        (6, 1, "oprlBlockKind"),  // policy
        (6, 8, "oprlVariant"),    // transformer
        (7, 3, "oprlKey"),        // layers
        (7, 10, "oprlOperator"),  // =
        (7, 12, "oprlInteger"),   // 2
        (11, 3, "oprlBlockKind"), // sampling
        (16, 1, "oprlBlockKind"), // prm
        (17, 8, "oprlFloat"),     // 3e-4
        (20, 11, "oprlVariant"),  // ppo
        (1, 1, "oprlComment"),
    ];
    let calls: Vec<String> = probes
        .iter()
        .map(|(l, c, _)| format!("call add(g:out, synIDattr(synID({l}, {c}, 1), 'name'))"))
        .collect();
    std::fs::write(
        script.path(),
        format!(
            "let g:out = []\n{}\ncall writefile(g:out, '{}')\nqa!\n",
            calls.join("\n"),
            out.path().display()
        ),
    )
    .unwrap();
    let vim_dir = root().join("editors/vim");
    let Some(output) = run_if_present(
        "vim",
        Command::new("vim")
            .args(["-Es", "-N", "-u", "NONE", "-i", "NONE"])
            .arg("-c")
            .arg(format!("set rtp^={}", vim_dir.display()))
            .args(["-c", "filetype plugin on", "-c", "syntax on", "-c"])
            .arg(format!(
                "edit {}",
                root().join("tests/fixtures/editor_sample.oprl").display()
            ))
            .arg("-c")
            .arg(format!("source {}", script.path().display())),
    ) else {
        return;
    };
    assert!(output.status.success(), "vim failed: {output:?}");
    let groups = std::fs::read_to_string(out.path()).unwrap();
    let groups: Vec<&str> = groups.lines().collect();
    let expected: Vec<&str> = probes.iter().map(|(_, _, g)| *g).collect();
    assert_eq!(groups, expected);
}
