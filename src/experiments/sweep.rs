//! Seeds and sweeps, planned: expands recipes x swept values x seeds into the runs of a sweep
//! directory, each with its own run directory, its method label (what `oprl compare` groups
//! by) and its overrides, compiling every configuration before anything runs, into the runs
//! of `sweep.json` ([`super::index`]). [`super::launch`] runs the plan.

use std::path::{Path, PathBuf};

use super::index::{PlannedRun, RunStatus};
use super::runs::env_label;
use super::ExperimentError;
use crate::compile;
use crate::graph::ExecGraph;
use crate::text::QuoteScan;
/// One `--sweep KEY=V1,V2,...`: the values are recipe syntax, each applied as `--set KEY=V`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweptKey {
    pub key: String,
    pub values: Vec<String>,
}

/// Splits `text` at commas outside brackets, braces, parentheses and string quotes, so that
/// `room=[6,6],[8,8]` has two values.
pub fn split_values(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quotes = QuoteScan::default();
    let mut current = String::new();
    for c in text.chars() {
        if quotes.feed(c) {
            current.push(c);
            continue;
        }
        match c {
            '[' | '{' | '(' => depth += 1,
            ']' | '}' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    out
}

impl SweptKey {
    /// Parses `KEY=V1,V2,...`.
    pub fn parse(text: &str) -> Result<SweptKey, ExperimentError> {
        let bad = || ExperimentError::BadSweep(text.to_string());
        let (key, values) = text.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        let values = split_values(values);
        if key.is_empty() || values.iter().any(|v| v.is_empty()) {
            return Err(bad());
        }
        Ok(SweptKey {
            key: key.to_string(),
            values,
        })
    }
}

/// What a multi-run `oprl run` was asked to do.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub recipes: Vec<PathBuf>,
    /// `--set` overrides applied to every run.
    pub overrides: Vec<String>,
    /// Seeds per configuration: the recipe's `train.seed`, +1, +2, ...
    pub seeds: usize,
    /// Swept keys; several give their cartesian product.
    pub sweeps: Vec<SweptKey>,
    /// Runs at a time.
    pub jobs: usize,
    /// The sweep directory.
    pub out: PathBuf,
    /// The `oprl` executable that runs the children (default: this process's).
    pub exe: Option<PathBuf>,
}

/// Every combination of one value per swept key, as `(key, value)` lists, in order.
pub fn combinations(sweeps: &[SweptKey]) -> Vec<Vec<(String, String)>> {
    let mut combos = vec![Vec::new()];
    for s in sweeps {
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                s.values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((s.key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// A name safe in a path: letters, digits, `-`, `_`, `.`, `=`, others become `_`.
pub fn path_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Compiles `recipe` with `overrides`; a recipe with errors comes back with its diagnostics.
pub fn compile_graph(recipe: &Path, overrides: &[String]) -> Result<ExecGraph, ExperimentError> {
    let mut compilation = compile::compile_path(recipe, overrides);
    match compilation.graph.take() {
        Some(graph) if !compilation.has_errors() => Ok(graph),
        _ => Err(ExperimentError::Recipe {
            recipe: recipe.to_path_buf(),
            overrides: overrides.to_vec(),
            compilation: Box::new(compilation),
        }),
    }
}

/// The key whose swept values are seeds rather than configurations.
const SEED_KEY: &str = "train.seed";

/// `recipe,key=value,...` over the swept pairs that `keep` accepts.
fn label(recipe: &str, combo: &[(String, String)], keep: impl Fn(&str) -> bool) -> String {
    let mut out = recipe.to_string();
    for (k, v) in combo.iter().filter(|(k, _)| keep(k)) {
        out.push_str(&format!(",{k}={v}"));
    }
    out
}

/// The swept keys whose values give pairwise different environments (by
/// [`env_label`], with the other swept keys at their first value): they are
/// columns of the comparison, not part of the method label.
fn environment_keys(
    recipe: &Path,
    overrides: &[String],
    sweeps: &[SweptKey],
) -> Result<Vec<String>, ExperimentError> {
    let mut keys = Vec::new();
    for (i, s) in sweeps.iter().enumerate() {
        if s.values.len() < 2 || s.key == SEED_KEY {
            continue;
        }
        let mut labels = Vec::new();
        for v in &s.values {
            let mut o = overrides.to_vec();
            for (j, other) in sweeps.iter().enumerate() {
                let value = if i == j { v } else { &other.values[0] };
                o.push(format!("{}={value}", other.key));
            }
            labels.push(env_label(&compile_graph(recipe, &o)?.env));
        }
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() == labels.len() {
            keys.push(s.key.clone());
        }
    }
    Ok(keys)
}

/// Expands a spec into its runs (recipe, then swept values, then seed order), compiling each
/// configuration so a bad value stops the sweep before anything runs. Two runs with the same
/// directory (two recipes with one file name, or overlapping seeds) are an error.
pub fn plan(spec: &SweepSpec) -> Result<Vec<PlannedRun>, ExperimentError> {
    let mut out: Vec<PlannedRun> = Vec::new();
    for recipe in &spec.recipes {
        let env_keys = environment_keys(recipe, &spec.overrides, &spec.sweeps)?;
        for combo in combinations(&spec.sweeps) {
            let mut overrides = spec.overrides.clone();
            overrides.extend(combo.iter().map(|(k, v)| format!("{k}={v}")));
            let base = compile_graph(recipe, &overrides)?;
            let method = label(&base.recipe, &combo, |k| {
                k != SEED_KEY && !env_keys.iter().any(|e| e == k)
            });
            let name = label(&base.recipe, &combo, |k| k != SEED_KEY);
            for i in 0..spec.seeds.max(1) {
                let seed = base.train.seed + i as u64;
                let dir = path_safe(&format!("{name}-seed{seed}"));
                if let Some(first) = out.iter().find(|r| r.dir == dir) {
                    return Err(ExperimentError::DuplicateRun {
                        dir,
                        first: first.recipe.clone(),
                        second: recipe.clone(),
                    });
                }
                let mut run_overrides = overrides.clone();
                run_overrides.push(format!("{SEED_KEY}={seed}"));
                out.push(PlannedRun {
                    dir,
                    recipe: recipe.clone(),
                    method: method.clone(),
                    seed,
                    overrides: run_overrides,
                    iterations: base.train.iterations,
                    threads: base.train.threads,
                    status: RunStatus::Pending,
                    error: None,
                });
            }
        }
    }
    Ok(out)
}

/// Candle threads for each of `jobs` concurrent runs on `cores` cores.
pub fn threads_per_job(cores: usize, jobs: usize) -> usize {
    (cores / jobs.max(1)).max(1)
}

/// The threads one run gets: the recipe's `train.threads` when set, but never more than its
/// `share` of the cores.
pub fn run_threads(recipe_threads: usize, share: usize) -> usize {
    if recipe_threads > 0 {
        recipe_threads.min(share)
    } else {
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_at_top_level_commas_only() {
        assert_eq!(split_values("4,8, 16"), vec!["4", "8", "16"]);
        assert_eq!(split_values("[6,6],[8,8]"), vec!["[6,6]", "[8,8]"]);
        assert_eq!(
            split_values(r#""a,b",rloo(x, y)"#),
            vec![r#""a,b""#, "rloo(x, y)"]
        );
    }

    #[test]
    fn sweep_keys_parse_and_reject_empty_values() {
        let s = SweptKey::parse("train.group=4,8").unwrap();
        assert_eq!(s.key, "train.group");
        assert_eq!(s.values, vec!["4", "8"]);
        assert!(SweptKey::parse("train.group").is_err());
        assert!(SweptKey::parse("train.group=4,").is_err());
        assert!(SweptKey::parse("=4").is_err());
    }

    #[test]
    fn combinations_are_the_cartesian_product_in_order() {
        let a = SweptKey::parse("a=1,2").unwrap();
        let b = SweptKey::parse("b=x,y,z").unwrap();
        let c = combinations(&[a, b]);
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[0],
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert_eq!(
            c[5],
            vec![("a".into(), "2".into()), ("b".into(), "z".into())]
        );
        assert_eq!(combinations(&[]), vec![Vec::new()]);
    }

    fn spec(recipes: &[&str], seeds: usize, sweeps: &[&str]) -> SweepSpec {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        SweepSpec {
            recipes: recipes.iter().map(|r| root.join(r)).collect(),
            overrides: vec!["train.seed=3".into()],
            seeds,
            sweeps: sweeps.iter().map(|s| SweptKey::parse(s).unwrap()).collect(),
            jobs: 1,
            out: PathBuf::from("unused"),
            exe: None,
        }
    }

    #[test]
    fn plan_names_runs_by_recipe_swept_values_and_seed() {
        let runs = plan(&spec(
            &["recipes/sokoban.oprl", "recipes/ablations/rloo.oprl"],
            2,
            &["train.group=4,8"],
        ))
        .unwrap();
        let dirs: Vec<&str> = runs.iter().map(|r| r.dir.as_str()).collect();
        assert_eq!(
            dirs,
            [
                "sokoban_train.group=4-seed3",
                "sokoban_train.group=4-seed4",
                "sokoban_train.group=8-seed3",
                "sokoban_train.group=8-seed4",
                "rloo_train.group=4-seed3",
                "rloo_train.group=4-seed4",
                "rloo_train.group=8-seed3",
                "rloo_train.group=8-seed4",
            ]
        );
        assert_eq!(runs[2].method, "sokoban,train.group=8");
        assert_eq!(runs[2].seed, 3);
        assert_eq!(
            runs[3].overrides,
            ["train.seed=3", "train.group=8", "train.seed=4"]
        );
        assert!(runs.iter().all(|r| r.status == RunStatus::Pending));
    }

    #[test]
    fn environment_keys_make_columns_and_swept_seeds_are_seeds() {
        let runs = plan(&spec(
            &["recipes/sokoban.oprl"],
            1,
            &["env.room=[5,5],[6,6]", "train.seed=10,20"],
        ))
        .unwrap();
        let got: Vec<(&str, &str, u64)> = runs
            .iter()
            .map(|r| (r.dir.as_str(), r.method.as_str(), r.seed))
            .collect();
        assert_eq!(
            got,
            [
                ("sokoban_env.room=_5_5_-seed10", "sokoban", 10),
                ("sokoban_env.room=_5_5_-seed20", "sokoban", 20),
                ("sokoban_env.room=_6_6_-seed10", "sokoban", 10),
                ("sokoban_env.room=_6_6_-seed20", "sokoban", 20),
            ]
        );
    }

    #[test]
    fn overlapping_runs_and_bad_values_stop_the_plan() {
        let dup = plan(&spec(&["recipes/sokoban.oprl"], 2, &["train.seed=1,2"]));
        assert!(
            matches!(&dup, Err(ExperimentError::DuplicateRun { dir, .. }) if dir == "sokoban-seed2"),
            "{dup:?}"
        );
        let bad = plan(&spec(&["recipes/sokoban.oprl"], 1, &["train.group=4,0"]));
        assert!(
            matches!(&bad, Err(ExperimentError::Recipe { overrides, .. }) if overrides.contains(&"train.group=0".to_string())),
            "{bad:?}"
        );
    }

    #[test]
    fn threads_are_divided_among_jobs() {
        assert_eq!(threads_per_job(16, 4), 4);
        assert_eq!(threads_per_job(2, 3), 1);
        assert_eq!(threads_per_job(8, 0), 8);
        assert_eq!(run_threads(0, 4), 4, "oprl chooses: the share");
        assert_eq!(run_threads(1, 4), 1, "the recipe asks for fewer");
        assert_eq!(run_threads(8, 2), 2, "never more than the share");
        assert_eq!(
            path_safe("rloo,train.group=[4]-seed7"),
            "rloo_train.group=_4_-seed7"
        );
    }
}
