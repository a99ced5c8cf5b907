//! How long `oprl check` takes on the shipped recipes: compiles each recipe N times (parse,
//! resolve with stdlib imports, check, lower) and prints the median and the 90th percentile.
//! Run with `cargo bench --bench check`; set `OPRL_BENCH_ITERS` to change N (default 200).

use std::path::Path;
use std::time::Instant;

fn main() {
    let iterations: usize = std::env::var("OPRL_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for recipe in [
        "recipes/sokoban.oprl",
        "recipes/sotopia.oprl",
        "recipes/ablations/gigpo.oprl",
    ] {
        let path = root.join(recipe);
        // Warm the file cache and the lazily built parser tables.
        let warm = oprl::compile::compile_path(&path, &[]);
        assert!(
            warm.graph.is_some(),
            "{recipe} must check clean:\n{}",
            warm.render_plain()
        );
        let mut times: Vec<f64> = (0..iterations)
            .map(|_| {
                let start = Instant::now();
                let compilation = oprl::compile::compile_path(&path, &[]);
                std::hint::black_box(&compilation.graph);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        let median = times[times.len() / 2];
        let p90 = times[(times.len() * 9 / 10).min(times.len() - 1)];
        println!("check {recipe}: median {median:.3} ms, p90 {p90:.3} ms, min {:.3} ms over {iterations} runs", times[0]);
    }
}
