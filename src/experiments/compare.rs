//! `oprl compare`: the paper's kind of table (method x environment, success rate in percent and
//! score as mean ± std over seeds, the best mean of each column in bold) as Markdown and CSV,
//! and the iterations each run took to reach a target success rate.

use std::fmt::Write as _;

use super::runs::{by_method, RunData};
use crate::runtime::metrics::{mean, std};

/// One cell: a method on an environment, over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub method: String,
    pub env: String,
    pub seeds: usize,
    /// Final success rates in percent, one per seed.
    pub success: Vec<f64>,
    pub score: Vec<f64>,
}

/// The comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub methods: Vec<String>,
    pub envs: Vec<String>,
    pub cells: Vec<Cell>,
    pub target: f64,
    /// `(run directory name, method, seed, iterations to reach the target)`.
    pub reach: Vec<(String, String, u64, Option<usize>)>,
}

impl Comparison {
    /// Builds the table from loaded runs (runs with no iteration yet are left out of cells).
    pub fn new(runs: &[RunData], target: f64) -> Comparison {
        let mut envs: Vec<String> = Vec::new();
        for r in runs {
            if !envs.contains(&r.env) {
                envs.push(r.env.clone());
            }
        }
        let groups = by_method(runs);
        let methods = groups.iter().map(|g| g.0.clone()).collect();
        let mut cells = Vec::new();
        for (method, group) in &groups {
            for env in &envs {
                let finals: Vec<(f64, f64)> = group
                    .iter()
                    .filter(|r| &r.env == env)
                    .filter_map(|r| r.final_success_and_score())
                    .collect();
                if finals.is_empty() {
                    continue;
                }
                cells.push(Cell {
                    method: method.clone(),
                    env: env.clone(),
                    seeds: finals.len(),
                    success: finals.iter().map(|f| 100.0 * f.0).collect(),
                    score: finals.iter().map(|f| f.1).collect(),
                });
            }
        }
        let reach = runs
            .iter()
            .map(|r| {
                let name = r.dir.file_name().map_or_else(
                    || r.dir.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                (name, r.method.clone(), r.seed, r.iterations_to(target))
            })
            .collect();
        Comparison {
            methods,
            envs,
            cells,
            target,
            reach,
        }
    }

    pub fn cell(&self, method: &str, env: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.method == method && c.env == env)
    }

    /// The method with the highest mean of `pick` on `env`.
    fn best(&self, env: &str, pick: fn(&Cell) -> &Vec<f64>) -> Option<&str> {
        self.cells
            .iter()
            .filter(|c| c.env == env)
            .max_by(|a, b| mean(pick(a)).total_cmp(&mean(pick(b))))
            .map(|c| c.method.as_str())
    }

    /// The Markdown table and the iterations-to-target table.
    pub fn markdown(&self) -> String {
        let mut md = String::from("| method |");
        let mut rule = String::from("| --- |");
        for env in &self.envs {
            let _ = write!(md, " {env} success (%) | {env} score | seeds |");
            rule.push_str(" ---: | ---: | ---: |");
        }
        md.push('\n');
        md.push_str(&rule);
        md.push('\n');
        for method in &self.methods {
            let _ = write!(md, "| {method} |");
            for env in &self.envs {
                match self.cell(method, env) {
                    Some(c) => {
                        let bold = |best: Option<&str>, text: String| {
                            if best == Some(method.as_str()) {
                                format!("**{text}**")
                            } else {
                                text
                            }
                        };
                        let s = bold(
                            self.best(env, |c| &c.success),
                            format!("{:.1} ± {:.1}", mean(&c.success), std(&c.success)),
                        );
                        let sc = bold(
                            self.best(env, |c| &c.score),
                            format!("{:.3} ± {:.3}", mean(&c.score), std(&c.score)),
                        );
                        let _ = write!(md, " {s} | {sc} | {} |", c.seeds);
                    }
                    None => md.push_str(" – | – | 0 |"),
                }
            }
            md.push('\n');
        }
        let _ = write!(
            md,
            "\nIterations to reach {:.0}% success:\n\n| run | method | seed | iterations |\n| --- | --- | ---: | ---: |\n",
            100.0 * self.target
        );
        for (name, method, seed, it) in &self.reach {
            let it = it.map_or("not reached".to_string(), |n| n.to_string());
            let _ = writeln!(md, "| {name} | {method} | {seed} | {it} |");
        }
        md
    }

    /// One CSV line per cell.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "method,environment,seeds,success_mean,success_std,score_mean,score_std\n",
        );
        for c in &self.cells {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                csv_field(&c.method),
                csv_field(&c.env),
                c.seeds,
                mean(&c.success),
                std(&c.success),
                mean(&c.score),
                std(&c.score)
            );
        }
        out
    }

    /// One CSV line per run: iterations to reach the target (empty when never reached).
    pub fn reach_csv(&self) -> String {
        let mut out = format!("run,method,seed,iterations_to_{}\n", self.target);
        for (name, method, seed, it) in &self.reach {
            let it = it.map_or(String::new(), |n| n.to_string());
            let _ = writeln!(out, "{},{},{seed},{it}", csv_field(name), csv_field(method));
        }
        out
    }
}

/// A CSV field, quoted when it holds a comma, quote or newline.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("rloo"), "rloo");
        assert_eq!(csv_field("oprl,train.group=4"), "\"oprl,train.group=4\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
