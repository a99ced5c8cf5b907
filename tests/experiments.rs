//! Experiments end to end through the `oprl` binary: a short sweep (2 methods x 2 seeds x 3
//! iterations on a tiny Sokoban setting, two runs at a time), then `oprl report` and
//! `oprl compare` on it, their files checked against numbers read straight from the runs'
//! `eval.jsonl`.

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

fn oprl(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_oprl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("oprl runs");
    assert!(
        out.status.success(),
        "oprl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Held-out success and score of a run's last evaluation, read independently of oprl.
fn last_eval(run: &Path) -> (usize, f64, f64, Vec<(usize, f64)>) {
    let text = std::fs::read_to_string(run.join("eval.jsonl")).unwrap();
    let evals: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let curve: Vec<(usize, f64)> = evals
        .iter()
        .map(|e| {
            (
                e["iteration"].as_u64().unwrap() as usize,
                e["success_rate"].as_f64().unwrap(),
            )
        })
        .collect();
    let last = evals.last().unwrap();
    (
        last["iteration"].as_u64().unwrap() as usize,
        last["success_rate"].as_f64().unwrap(),
        last["mean_score"].as_f64().unwrap(),
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
fn sweep_then_report_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep_dir = tmp.path().join("sweep");
    let sweep = sweep_dir.to_str().unwrap();
    let mut args = vec![
        "sweep",
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
        let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 3, "{}", dir.display());
        let method = r["method"].as_str().unwrap().to_string();
        match by_method.iter_mut().find(|m| m.0 == method) {
            Some(m) => m.1.push(dir),
            None => by_method.push((method, vec![dir])),
        }
    }
    let names: Vec<&str> = by_method.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names, ["sokoban", "rloo"]);
    let seeds: Vec<u64> = runs.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds[0] + 1, seeds[1], "consecutive seeds");
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
        let finals: Vec<(usize, f64, f64, Vec<(usize, f64)>)> =
            dirs.iter().map(|d| last_eval(d)).collect();
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
