//! The front end's integration tests, one binary: UI fixtures (`tests/ui/**/*.oprl`, one
//! snapshot each: the source and its diagnostics without colour at width 80), the lowered
//! graph of every shipped recipe (YAML snapshots), every stdlib module, the keyword list,
//! and a property test that random and mutated recipes never make the front end panic.
//!
//! A fixture's leading `# set: PATH=VALUE` lines become `--set` overrides.

mod common;

use oprl::compile::{self, Compilation};
use oprl::diagnostics::Code;
use oprl::graph::{ExecGraph, PolicySpec};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/ui/x.oprl` from an absolute path, so snapshots do not depend on the checkout.
fn relative(path: &Path) -> PathBuf {
    path.strip_prefix(manifest_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `graph` with the checkout's directory written as `<repo>` in a pretrained model's path
/// (lowering makes recipe paths absolute), so snapshots do not depend on the checkout.
fn portable(graph: &ExecGraph) -> ExecGraph {
    let mut graph = graph.clone();
    if let PolicySpec::Hf(h) = &mut graph.policy {
        let root = manifest_dir().display().to_string();
        h.path = h.path.replace(&root, "<repo>");
    }
    graph
}

fn fixture_overrides(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# set: "))
        .map(|s| s.trim().to_string())
        .collect()
}

fn compile_fixture(path: &Path) -> (String, Compilation) {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let overrides = fixture_overrides(&text);
    let compilation = compile::compile_path(&relative(path), &overrides);
    (text, compilation)
}

#[test]
fn ui_fixtures() {
    insta::glob!("ui/**/*.oprl", |path| {
        let (text, compilation) = compile_fixture(path);
        let rendered = compilation.render_plain();
        let diagnostics = if rendered.is_empty() {
            "(no diagnostics)\n".to_string()
        } else {
            rendered
        };
        let codes: Vec<&str> = compilation
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect();
        insta::assert_snapshot!(format!(
            "{text}\n--- codes: {} ---\n{diagnostics}",
            codes.join(" ")
        ));
    });
}

/// Every code has at least one fixture that produces it, and there are at least 40 fixtures.
#[test]
fn every_code_has_a_fixture() {
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for path in fixtures(&manifest_dir().join("tests/ui")) {
        count += 1;
        let (_, compilation) = compile_fixture(&path);
        for d in &compilation.diagnostics {
            seen.insert(d.code);
        }
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
    assert!(count >= 40, "only {count} fixtures");
}

fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("tests/ui exists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(fixtures(&path));
        } else if path.extension().is_some_and(|e| e == "oprl") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every recipe in `recipes/` and `recipes/ablations/`, with the test model the SmolLM2 recipes
/// name fetched when missing.
fn shipped_recipes() -> Vec<PathBuf> {
    common::test_model::recipe_model();
    let root = manifest_dir().join("recipes");
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("ablations")] {
        for entry in std::fs::read_dir(&dir).expect("recipes/ exists") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "oprl") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn shipped_recipes_check_clean_and_their_graphs_are_snapshotted() {
    let recipes = shipped_recipes();
    assert!(recipes.len() >= 12, "{recipes:?}");
    for path in recipes {
        let compilation = compile::compile_path(&path, &[]);
        assert!(
            compilation.diagnostics.is_empty(),
            "{}:\n{}",
            path.display(),
            compilation.render_plain()
        );
        let graph = compilation.graph.as_ref().expect("a clean recipe lowers");
        let name = relative(&path)
            .display()
            .to_string()
            .replace(['/', '.'], "_");
        insta::assert_yaml_snapshot!(name, portable(graph));

        // The resolved recipe is itself a recipe that compiles to the same graph.
        let resolved = compilation.resolved().expect("checked");
        let again = compile::compile_text(
            &format!("{}.oprl", graph.recipe),
            &resolved,
            path.parent().unwrap(),
            &[],
        );
        // Defaults of keys that other settings make irrelevant are printed too, so the
        // resolved form may warn (W0002); it must not fail.
        assert!(
            !again.has_errors(),
            "resolved {}:\n{resolved}\n{}",
            path.display(),
            again.render_plain()
        );
        assert_eq!(
            again.graph.as_ref(),
            Some(graph),
            "resolved {} differs",
            path.display()
        );
    }
}

#[test]
fn every_stdlib_module_checks() {
    let on_disk = fixtures(&manifest_dir().join("stdlib")).len();
    assert_eq!(
        on_disk,
        compile::stdlib::MODULES.len(),
        "a stdlib file is not embedded (see src/compile/stdlib.rs)"
    );
    for (path, _) in compile::stdlib::MODULES {
        let compilation = compile::check_stdlib_module(path).expect("embedded");
        assert!(
            compilation.diagnostics.is_empty(),
            "{path}:\n{}",
            compilation.render_plain()
        );
    }
}

#[test]
fn set_overrides_are_checked_with_cli_labels() {
    let path = manifest_dir().join("recipes/sokoban.oprl");
    let compilation = compile::compile_path(&path, &["train.group=1".to_string()]);
    let d = compilation
        .diagnostics
        .iter()
        .find(|d| d.code == Code::GroupTooSmall)
        .expect("group rule");
    assert_eq!(
        compilation.sources.get(d.labels[0].span.source).name,
        "<cli>"
    );
    assert!(d.labels.len() == 2, "{d:?}");

    let compilation = compile::compile_path(&path, &["train.gruop=4".to_string()]);
    let d = &compilation.diagnostics[0];
    assert_eq!(d.code, Code::UnknownKey);
    assert!(d.help.as_deref().unwrap().contains("did you mean `group`?"));

    let compilation = compile::compile_path(
        &path,
        &[
            "train.group=4".to_string(),
            "policy.sampling.temperature=0.7".to_string(),
        ],
    );
    assert!(
        compilation.diagnostics.is_empty(),
        "{}",
        compilation.render_plain()
    );
    let graph = compilation.graph.unwrap();
    assert_eq!(graph.train.group, 4);
    let oprl::graph::PolicySpec::Transformer(t) = graph.policy else {
        panic!()
    };
    assert_eq!(t.sampling.temperature, 0.7);
}

#[test]
fn keywords_and_block_kinds_match_the_grammar() {
    let grammar = std::fs::read_to_string(manifest_dir().join("grammar/oprl.pest")).unwrap();
    for keyword in oprl::syntax::KEYWORDS {
        assert!(
            grammar.contains(&format!("\"{keyword}\"")),
            "{keyword} is not in the grammar"
        );
    }
    let kinds: Vec<&str> = compile::schema::TOP_LEVEL.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, oprl::syntax::BLOCK_KINDS);
}

#[test]
fn explain_has_a_long_form_for_every_code() {
    for code in Code::ALL {
        let text = oprl::cli::explanation(code.as_str()).unwrap();
        assert!(text.starts_with(code.as_str()) && text.len() > 80, "{text}");
    }
    assert!(oprl::cli::explanation("E0000").is_none());
}

#[test]
fn dot_output_is_well_formed() {
    let compilation = compile::compile_path(&manifest_dir().join("recipes/sokoban.oprl"), &[]);
    let dot = compile::graph_dot(compilation.graph.as_ref().unwrap());
    assert!(dot.starts_with("digraph \"sokoban\" {") && dot.trim_end().ends_with('}'));
    assert_eq!(dot.matches('{').count(), dot.matches('}').count());
    assert_eq!(
        dot.matches(" -> ").count(),
        compilation
            .graph
            .unwrap()
            .nodes
            .values()
            .map(|n| n.inputs.len())
            .sum::<usize>()
    );
}

/// With Graphviz installed, `dot` accepts the graph of every shipped recipe.
#[test]
fn graphviz_accepts_every_recipe_graph() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if Command::new("dot").arg("-V").output().is_err() {
        eprintln!("graphviz is not installed: skipping");
        return;
    }
    for path in shipped_recipes() {
        let compilation = compile::compile_path(&path, &[]);
        let dot = compile::graph_dot(compilation.graph.as_ref().unwrap());
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Pieces that recipes are made of, for the generator below.
const TOKENS: &[&str] = &[
    "env",
    "sokoban",
    "policy",
    "transformer",
    "hf",
    "reward",
    "outcome",
    "=",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "+",
    "-",
    "*",
    "/",
    "use",
    "std::presets::oprl",
    "\"x.oprl\"",
    "advantage",
    "episode",
    "step",
    "token",
    "prm",
    "env.reward",
    "norm",
    "zscore",
    "rloo",
    "1",
    "0",
    "3e-4",
    "1e999",
    "\"s\\q\"",
    "true",
    "train",
    "group",
    "#c\n",
    "\n",
    "judge",
    "verifier",
    "env.won",
    "discounted",
    "algorithm",
    "prime",
    "ppo_gae",
    "\"",
    "99999999999999999999",
];

/// Every environment spec's `Default` is its schema defaults, as an empty `env` block compiles.
#[test]
fn environment_defaults_are_the_schema_defaults() {
    use oprl::graph::{EnvSpec, SokobanSpec, SotopiaSpec, WebshopSpec};
    for (name, spec) in [
        ("sokoban", EnvSpec::Sokoban(SokobanSpec::default())),
        ("webshop", EnvSpec::Webshop(WebshopSpec::default())),
        ("sotopia", EnvSpec::Sotopia(SotopiaSpec::default())),
    ] {
        assert_eq!(compile::compile_env(name, &[]).env_spec(), Some(spec));
    }
}

/// Run directories keep graph.json: names and shapes it was saved with still read.
#[test]
fn old_graph_json_still_reads() {
    use oprl::graph::{from_name, AlgorithmSpec, KlKind, LossAgg, Op};
    let agg: LossAgg = serde_json::from_str("\"seq-mean-token-sum\"").unwrap();
    assert_eq!(agg, LossAgg::SeqMeanTokenSum);
    assert_eq!(
        serde_json::to_string(&agg).unwrap(),
        "\"seq_mean_token_sum\""
    );
    assert_eq!(from_name::<KlKind>("low_var_kl"), Some(KlKind::K3));
    assert_eq!(Op::PrmScore.name(), "prm_score");
    // The algorithm was a struct with `critic` and `prime` set to null when unused.
    let algorithm = compile_snippet("").graph.expect("compiles").algorithm;
    let mut old = serde_json::to_value(&algorithm).unwrap();
    old["critic"] = serde_json::Value::Null;
    old["prime"] = serde_json::Value::Null;
    assert_eq!(
        serde_json::from_value::<AlgorithmSpec>(old).unwrap(),
        algorithm
    );
}

/// A Sokoban recipe with the RLOO preset and `extra` appended.
fn compile_snippet(extra: &str) -> Compilation {
    let recipe = format!(
        "use std::envs::sokoban\nuse std::presets::rloo\npolicy transformer {{ }}\n{extra}\n"
    );
    compile::compile_text("r.oprl", &recipe, Path::new("."), &[])
}

/// GiGPO's similarity grouping: `step(..., similarity = t)`, checked by its schema row.
#[test]
fn step_similarity_is_a_checked_option_of_step() {
    use oprl::graph::{AdvExpr, StepGroup};
    let graph = compile_snippet("advantage = step(prm, group = anchor_state, similarity = 0.9)");
    assert!(matches!(
        graph.graph.expect("compiles").advantage,
        AdvExpr::Step {
            group: StepGroup::AnchorState,
            similarity: Some(t),
            ..
        } if t == 0.9
    ));
    let codes = |advantage: &str| -> Vec<Code> {
        let compiled = compile_snippet(&format!("advantage = {advantage}"));
        compiled.diagnostics.iter().map(|d| d.code).collect()
    };
    assert_eq!(
        codes("step(prm, group = anchor_state, similarity = 1.5)"),
        [Code::OutOfRange]
    );
    assert_eq!(
        codes("step(prm, similarity = 0.9)"),
        [Code::SimilarityWithoutAnchorState]
    );
}

fn compile_never_panics(text: &str) {
    let dir = std::env::temp_dir();
    let c = compile::compile_text("fuzz.oprl", text, &dir, &[]);
    // Rendering must not panic either, whatever the spans.
    let _ = c.render_plain();
    let _ = oprl::diagnostics::render_json(&c.diagnostics, &c.sources);
    let _ = c.resolved();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_token_soup_never_panics(tokens in proptest::collection::vec(0..TOKENS.len(), 0..60)) {
        let text = tokens.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" ");
        compile_never_panics(&text);
    }

    #[test]
    fn random_overrides_never_panic(tokens in proptest::collection::vec(0..TOKENS.len(), 0..12)) {
        let value = tokens.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" ");
        let path = manifest_dir().join("recipes/sokoban.oprl");
        for over in [format!("train.group={value}"), format!("advantage={value}"), value.clone()] {
            let c = compile::compile_path(&path, &[over]);
            let _ = c.render_plain();
        }
    }

    #[test]
    fn random_bytes_never_panic(text in "\\PC{0,200}") {
        compile_never_panics(&text);
    }

    #[test]
    fn mutated_recipes_never_panic(
        recipe in 0usize..4,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..3, 0..TOKENS.len()), 1..6),
    ) {
        let names = ["sokoban", "visual_sokoban", "webshop", "sotopia"];
        let mut text = std::fs::read_to_string(manifest_dir().join(format!("recipes/{}.oprl", names[recipe]))).unwrap();
        for (at, kind, token) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) { i -= 1; }
            match kind {
                0 => text.insert_str(i, TOKENS[token]),
                1 => { let end = (i + 8).min(text.len()); let mut e = end; while !text.is_char_boundary(e) { e -= 1; } text.replace_range(i..e, ""); }
                _ => { let end = (i + 3).min(text.len()); let mut e = end; while !text.is_char_boundary(e) { e -= 1; } text.replace_range(i..e, TOKENS[token]); }
            }
        }
        compile_never_panics(&text);
    }
}
