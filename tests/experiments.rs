//! Experiments end to end through the `oprl` binary: a short sweep made by
//! `oprl run A B --seeds 2` (2 methods x 2 seeds x 3 iterations on a tiny Sokoban setting, two
//! runs at a time), then `oprl report` and `oprl compare` on it, their files checked against
//! numbers read straight from the runs' `metrics.jsonl`; and a sweep with a failing run
//! (reported with its run directory while the others go on, exit code 1, JSON lines), resumed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TINY: [&str; 14] = [
    "train.iterations=3",
    "train.tasks=2",
    "train.group=2",
    "eval.tasks=4",
    "eval.every=1",
    "env.room=[5,5]",
    "env.max_turns=3",
    "policy.layers=1",
    "policy.width=16",
    "policy.heads=2",
    "policy.mlp=32",
    "policy.sampling.max_new_tokens=2",
    "algorithm.minibatch=2",
    "output.checkpoint_every=0",
];

fn oprl_unchecked(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_oprl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("oprl runs")
}

fn oprl(args: &[&str]) -> std::process::Output {
    let out = oprl_unchecked(args);
    assert!(
        out.status.success(),
        "oprl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A run's `metrics.jsonl`, read independently of oprl.
fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A run's last iteration, its held-out success and score, and `(iteration, held-out success)`
/// of every iteration.
type LastEval = (usize, f64, f64, Vec<(usize, f64)>);

/// Held-out success and score of a run's last iteration (it evaluates every iteration), and
/// `(iteration, held-out success)` of every iteration, from its `metrics.jsonl`.
fn last_eval(run: &Path) -> LastEval {
    let lines = metrics(run);
    let curve: Vec<(usize, f64)> = lines
        .iter()
        .map(|m| {
            (
                m["iteration"].as_u64().unwrap() as usize,
                m["eval_success"].as_f64().unwrap(),
            )
        })
        .collect();
    let last = lines.last().unwrap();
    (
        last["iteration"].as_u64().unwrap() as usize,
        last["eval_success"].as_f64().unwrap(),
        last["eval_score"].as_f64().unwrap(),
        curve,
    )
}

/// Whether any run logged a PRM loss (a PRM update needs a success and a failure in a group).
fn prm_logged(sweep: &Path) -> bool {
    std::fs::read_dir(sweep).unwrap().any(|e| {
        let m = e.unwrap().path().join("metrics.jsonl");
        std::fs::read_to_string(m).is_ok_and(|t| {
            t.lines()
                .any(|l| !serde_json::from_str::<Value>(l).unwrap()["prm_loss"].is_null())
        })
    })
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
    (m, v.sqrt())
}

#[test]
fn run_with_seeds_then_report_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep_dir = tmp.path().join("sweep");
    let sweep = sweep_dir.to_str().unwrap();
    let mut args = vec![
        "run",
        "recipes/sokoban.oprl",
        "recipes/ablations/rloo.oprl",
        "--seeds",
        "2",
        "--jobs",
        "2",
        "--quiet",
        "--out",
        sweep,
    ];
    for o in TINY {
        args.extend(["--set", o]);
    }
    oprl(&args);

    // The index: 2 methods x 2 seeds, all completed, each in its own run directory.
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(sweep_dir.join("sweep.json")).unwrap())
            .unwrap();
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    let mut by_method: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for r in runs {
        assert_eq!(r["status"], "completed", "{r}");
        let dir = sweep_dir.join(r["dir"].as_str().unwrap());
        assert_eq!(metrics(&dir).len(), 3, "{}", dir.display());
        assert!(dir.join("run.log").is_file(), "the child's output is kept");
        let method = r["method"].as_str().unwrap().to_string();
        match by_method.iter_mut().find(|m| m.0 == method) {
            Some(m) => m.1.push(dir),
            None => by_method.push((method, vec![dir])),
        }
    }
    let names: Vec<&str> = by_method.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["sokoban", "rloo"]);
    let seeds: Vec<u64> = runs.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    let s = seeds[0];
    assert_eq!(seeds, [s, s + 1, s, s + 1], "the recipe's seed, then +1");
    let dirs: Vec<&str> = runs.iter().map(|r| r["dir"].as_str().unwrap()).collect();
    assert_eq!(
        dirs,
        [
            format!("sokoban-seed{s}"),
            format!("sokoban-seed{}", s + 1),
            format!("rloo-seed{s}"),
            format!("rloo-seed{}", s + 1)
        ]
    );
    assert_ne!(
        std::fs::read_to_string(by_method[0].1[0].join("metrics.jsonl")).unwrap(),
        std::fs::read_to_string(by_method[0].1[1].join("metrics.jsonl")).unwrap(),
        "different seeds give different runs"
    );

    // report: the page and a PNG + SVG per plot.
    let report_dir = tmp.path().join("report");
    oprl(&["report", sweep, "--out", report_dir.to_str().unwrap()]);
    let html = std::fs::read_to_string(report_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("src=\"http"));
    for name in [
        "success_vs_iterations",
        "success_vs_env_steps",
        "outcome_vs_iterations",
        "eval_success_vs_iterations",
        "adv_episode_std",
        "time_per_iteration",
    ]
    .into_iter()
    .chain(prm_logged(&sweep_dir).then_some("prm_loss"))
    {
        let png = std::fs::read(report_dir.join(format!("plots/{name}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{name}");
        assert!(
            report_dir.join(format!("plots/{name}.svg")).is_file(),
            "{name}"
        );
    }
    // PRM plots only hold the PRM method; the time-per-phase table has both methods.
    assert!(html.contains("Time per phase"));
    assert!(html.contains("--- turn 1 ---"), "a sample episode");

    // compare: one CSV row per method with mean ± std over seeds of the last evaluation.
    let cmp_dir = tmp.path().join("compare");
    let stdout = oprl(&[
        "compare",
        sweep,
        "--target",
        "0.5",
        "--out",
        cmp_dir.to_str().unwrap(),
    ])
    .stdout;
    let md = String::from_utf8(stdout).unwrap();
    assert_eq!(
        md,
        std::fs::read_to_string(cmp_dir.join("compare.md")).unwrap()
    );
    let csv = std::fs::read_to_string(cmp_dir.join("compare.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let mut best_success = f64::MIN;
    for (row, (method, dirs)) in rows.iter().zip(&by_method) {
        assert_eq!(row[0], method);
        assert_eq!(row[1], "sokoban 5x5");
        assert_eq!(row[2], "2");
        let finals: Vec<LastEval> = dirs.iter().map(|d| last_eval(d)).collect();
        assert!(finals.iter().all(|f| f.0 == 3));
        let (sm, ss) = mean_std(&finals.iter().map(|f| 100.0 * f.1).collect::<Vec<_>>());
        let (cm, cs) = mean_std(&finals.iter().map(|f| f.2).collect::<Vec<_>>());
        let num = |s: &str| s.parse::<f64>().unwrap();
        assert!((num(row[3]) - sm).abs() < 1e-9, "{row:?} vs {sm}");
        assert!((num(row[4]) - ss).abs() < 1e-9, "{row:?} vs {ss}");
        assert!((num(row[5]) - cm).abs() < 1e-9, "{row:?} vs {cm}");
        assert!((num(row[6]) - cs).abs() < 1e-9, "{row:?} vs {cs}");
        best_success = best_success.max(sm);
        let md_row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {method} |")))
            .unwrap_or_else(|| panic!("no row for {method} in\n{md}"));
        assert!(md_row.contains(&format!("{sm:.1} ± {ss:.1}")), "{md_row}");
        // Iterations to 50%: the first evaluation after training that reached it.
        let reach = std::fs::read_to_string(cmp_dir.join("iterations_to_target.csv")).unwrap();
        for (dir, f) in dirs.iter().zip(&finals) {
            let name = dir.file_name().unwrap().to_str().unwrap();
            let expected =
                f.3.iter()
                    .find(|(it, s)| *it > 0 && *s >= 0.5)
                    .map_or(String::new(), |(it, _)| it.to_string());
            let line = reach.lines().find(|l| l.starts_with(name)).unwrap();
            assert!(
                line.ends_with(&format!(",{expected}")),
                "{line} vs {expected}"
            );
        }
    }
    assert!(
        md.contains(&format!("**{best_success:.1} ±")),
        "best success in bold:\n{md}"
    );
}

#[test]
fn a_failing_run_is_reported_the_others_go_on_and_resume_finishes_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    // Compiles, but its environment process exits at once: the run fails when it starts.
    let bad = tmp.path().join("broken.oprl");
    std::fs::write(
        &bad,
        format!(
            // An external environment lists no answers: its policy samples free text.
            "use \"{}/recipes/sokoban.oprl\"\nenv external {{ command = \"exit 3\" }}\n\
             policy transformer {{ sampling {{ actions = free }} }}\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let sweep_dir = tmp.path().join("sweep");
    let sweep = sweep_dir.to_str().unwrap();
    let mut args = vec![
        "run",
        bad.to_str().unwrap(),
        "recipes/sokoban.oprl",
        "--json-lines",
        "--out",
        sweep,
    ];
    for o in TINY.iter().filter(|o| !o.starts_with("env.room")) {
        args.extend(["--set", o]);
    }
    args.extend(["--set", "train.iterations=2"]);
    let out = oprl_unchecked(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not all runs succeeded: {stderr}"
    );

    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(sweep_dir.join("sweep.json")).unwrap())
            .unwrap();
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "failed");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(error.contains("exit 3"), "{error}");
    assert_eq!(
        runs[1]["status"], "completed",
        "the failure did not stop it"
    );
    let bad_dir = runs[0]["dir"].as_str().unwrap();
    let good_dir = runs[1]["dir"].as_str().unwrap();
    let failed_line = stderr
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("no failure line in\n{stderr}"));
    assert!(
        failed_line.contains(&format!("{bad_dir} seed"))
            && failed_line.contains(&format!("{bad_dir}/run.log")),
        "{failed_line}"
    );

    // JSON lines: the good run's two iterations (with the run added), then one end object per run.
    let objects: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let iterations: Vec<&Value> = objects.iter().filter(|o| o["status"].is_null()).collect();
    assert_eq!(iterations.len(), 2, "{objects:?}");
    assert!(iterations.iter().all(|o| o["run"] == good_dir));
    let good_metrics = metrics(&sweep_dir.join(good_dir));
    assert_eq!(
        iterations[1]["success_rate"], good_metrics[1]["success_rate"],
        "the metrics line as written"
    );
    let ends: Vec<(&str, &str)> = objects
        .iter()
        .filter(|o| !o["status"].is_null())
        .map(|o| (o["run"].as_str().unwrap(), o["status"].as_str().unwrap()))
        .collect();
    assert_eq!(ends, [(bad_dir, "failed"), (good_dir, "completed")]);

    // Resume runs only what did not complete: the broken run again, not the good one.
    let before = std::fs::read_to_string(sweep_dir.join(good_dir).join("metrics.jsonl")).unwrap();
    let out = oprl_unchecked(&["run", "--resume", sweep, "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("FAILED")).count(),
        1,
        "quiet shows the failure only: {stderr}"
    );
    assert!(!stderr.contains(good_dir), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(sweep_dir.join(good_dir).join("metrics.jsonl")).unwrap(),
        before
    );
}

/// The nine recipes of the comparison compile cleanly at one budget on Sokoban 6x6, and the
/// command in docs/results.md runs exactly them, 3 seeds each, with `oprl run`.
#[test]
fn the_comparison_recipes_compile_and_the_documented_command_runs_them_all() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(root.join("recipes/experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "oprl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "gigpo",
            "ground_truth",
            "grpo",
            "merged",
            "oprl",
            "ppo_gae",
            "prime",
            "rloo",
            "token_level"
        ]
    );
    for name in &names {
        let path = root.join(format!("recipes/experiments/{name}.oprl"));
        let compiled = oprl::compile::compile_path(&path, &[]);
        assert!(
            compiled.diagnostics.is_empty(),
            "{name}:\n{}",
            compiled.render_plain()
        );
        let g = compiled.graph.unwrap();
        assert_eq!(g.recipe, *name);
        assert_eq!(
            (
                g.train.iterations,
                g.train.tasks,
                g.train.group,
                g.train.seed
            ),
            (50, 8, 8, 7),
            "{name}"
        );
        assert_eq!((g.eval.every, g.eval.tasks), (5, 64), "{name}");
        assert_eq!(oprl::experiments::runs::env_label(&g.env), "sokoban 6x6");
    }

    let doc = std::fs::read_to_string(root.join("docs/results.md")).unwrap();
    let line = doc
        .lines()
        .find(|l| l.contains("oprl run recipes/experiments/{"))
        .expect("docs/results.md has the comparison command");
    let inner = &line[line.find('{').unwrap() + 1..line.find('}').unwrap()];
    let mut documented: Vec<&str> = inner.split(',').collect();
    documented.sort();
    assert_eq!(documented, names);
    let next = doc.lines().skip_while(|l| *l != line).nth(1).unwrap();
    assert!(
        next.contains("--seeds 3") && next.contains("--out runs/comparison"),
        "{next}"
    );
}
