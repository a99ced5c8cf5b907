//! The run directory: resolved graph, `metrics.jsonl`, evaluations, transcripts, atomic
//! checkpoints and the final summary, and how to find the last complete checkpoint again.
//!
//! ```text
//! runs/<recipe>-<YYYYmmdd-HHMMSS>/
//!   recipe.oprl            the recipe source (when run from a file)
//!   graph.json             the resolved execution graph (what `--resume` and `eval` read)
//!   metrics.jsonl          one line per iteration
//!   eval.jsonl             one line per evaluation
//!   transcripts/           a few full evaluation episodes as text
//!   checkpoints/iter-NNNNNN/  policy, PRM, critic, optimisers, `state.json` (written last)
//!   summary.json           written when the run stops
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::metrics::IterationMetrics;
use super::RuntimeError;
use crate::graph::ExecGraph;

/// Checkpoints kept on disk (older ones are removed after a new one is complete).
const KEEP_CHECKPOINTS: usize = 3;

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// UTC `YYYYmmdd-HHMMSS` for `secs` since the Unix epoch.
pub fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

impl RunDir {
    /// A new `<parent>/<recipe>-<timestamp>` directory (suffixed `-2`, `-3`... if taken).
    pub fn create_new(parent: &Path, recipe: &str) -> Result<RunDir, RuntimeError> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = format!("{recipe}-{}", timestamp(secs));
        let mut root = parent.join(&base);
        let mut n = 2;
        while root.exists() {
            root = parent.join(format!("{base}-{n}"));
            n += 1;
        }
        RunDir::create_at(&root)
    }

    /// A run directory at exactly `root`; refuses one that already holds a run.
    pub fn create_at(root: &Path) -> Result<RunDir, RuntimeError> {
        if root.join("graph.json").exists() {
            return Err(RuntimeError::RunDir {
                path: root.to_path_buf(),
                message:
                    "already holds a run; use `--resume` to continue it or pick another `--out`"
                        .into(),
            });
        }
        for sub in ["checkpoints", "transcripts"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
        }
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    /// An existing run directory (it must hold `graph.json`).
    pub fn open(root: &Path) -> Result<RunDir, RuntimeError> {
        if !root.join("graph.json").is_file() {
            return Err(RuntimeError::RunDir {
                path: root.to_path_buf(),
                message: "is not a run directory (no `graph.json`)".into(),
            });
        }
        Ok(RunDir {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn write_graph(&self, graph: &ExecGraph) -> Result<(), RuntimeError> {
        let json = serde_json::to_string_pretty(graph).map_err(RuntimeError::Json)?;
        write_atomic(&self.path("graph.json"), json.as_bytes())
    }

    pub fn read_graph(&self) -> Result<ExecGraph, RuntimeError> {
        let p = self.path("graph.json");
        let text = fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        serde_json::from_str(&text).map_err(|e| RuntimeError::RunDir {
            path: p,
            message: format!("holds an unreadable graph: {e}"),
        })
    }

    /// Appends one JSON line to `name`.
    pub fn append_line<T: serde::Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), RuntimeError> {
        let p = self.path(name);
        let mut line = serde_json::to_string(value).map_err(RuntimeError::Json)?;
        line.push('\n');
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| io(&p, e))?;
        f.write_all(line.as_bytes()).map_err(|e| io(&p, e))
    }

    pub fn read_metrics(&self) -> Result<Vec<IterationMetrics>, RuntimeError> {
        let p = self.path("metrics.jsonl");
        if !p.exists() {
            return Ok(Vec::new());
        }
        let text = fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| RuntimeError::RunDir {
                    path: p.clone(),
                    message: format!("holds an unreadable metrics line: {e}"),
                })
            })
            .collect()
    }

    /// Drops the lines of `name` (JSON objects with an `iteration` field) after `iteration`:
    /// on resume, what an interrupted run logged past its last checkpoint is redone.
    pub fn truncate_lines_after(&self, name: &str, iteration: usize) -> Result<(), RuntimeError> {
        let p = self.path(name);
        if !p.exists() {
            return Ok(());
        }
        let text = fs::read_to_string(&p).map_err(|e| io(&p, e))?;
        let mut kept = String::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let it = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("iteration").and_then(|i| i.as_u64()));
            if matches!(it, Some(i) if i as usize <= iteration) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        write_atomic(&p, kept.as_bytes())
    }

    pub fn checkpoint_dir(&self, iteration: usize) -> PathBuf {
        self.path("checkpoints")
            .join(format!("iter-{iteration:06}"))
    }

    /// A fresh temporary directory to write checkpoint `iteration` into before it is renamed.
    pub fn checkpoint_staging(&self, iteration: usize) -> Result<PathBuf, RuntimeError> {
        let p = self
            .path("checkpoints")
            .join(format!(".staging-{iteration:06}"));
        if p.exists() {
            fs::remove_dir_all(&p).map_err(|e| io(&p, e))?;
        }
        fs::create_dir_all(&p).map_err(|e| io(&p, e))?;
        Ok(p)
    }

    /// Moves a fully written staging directory into place and prunes old checkpoints.
    pub fn commit_checkpoint(
        &self,
        staging: &Path,
        iteration: usize,
    ) -> Result<PathBuf, RuntimeError> {
        let dest = self.checkpoint_dir(iteration);
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(|e| io(&dest, e))?;
        }
        fs::rename(staging, &dest).map_err(|e| io(&dest, e))?;
        let all = self.checkpoints()?;
        if all.len() > KEEP_CHECKPOINTS {
            for (_, old) in &all[..all.len() - KEEP_CHECKPOINTS] {
                fs::remove_dir_all(old).map_err(|e| io(old, e))?;
            }
        }
        Ok(dest)
    }

    /// Complete checkpoints (those with `state.json`), oldest first.
    pub fn checkpoints(&self) -> Result<Vec<(usize, PathBuf)>, RuntimeError> {
        let dir = self.path("checkpoints");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("iter-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if entry.path().join("state.json").is_file() {
                    out.push((n, entry.path()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn latest_checkpoint(&self) -> Result<Option<(usize, PathBuf)>, RuntimeError> {
        Ok(self.checkpoints()?.pop())
    }

    /// The complete checkpoint of `iteration`, or the last one; an error when there is none.
    pub fn checkpoint(&self, iteration: Option<usize>) -> Result<(usize, PathBuf), RuntimeError> {
        let missing = |message: String| RuntimeError::RunDir {
            path: self.root.clone(),
            message,
        };
        let checkpoints = self.checkpoints()?;
        match iteration {
            Some(n) => checkpoints
                .into_iter()
                .find(|c| c.0 == n)
                .ok_or_else(|| missing(format!("has no complete checkpoint for iteration {n}"))),
            None => checkpoints
                .into_iter()
                .last()
                .ok_or_else(|| missing("has no complete checkpoint yet".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_dates() {
        assert_eq!(timestamp(0), "19700101-000000");
        // 2000-02-29 12:34:56 UTC = 951827696
        assert_eq!(timestamp(951_827_696), "20000229-123456");
        // 2026-11-29 17:15:05 UTC
        assert_eq!(timestamp(1_795_972_505), "20261129-171505");
    }

    #[test]
    fn checkpoints_are_found_only_when_complete_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create_at(&tmp.path().join("r")).unwrap();
        for it in [1, 2, 3, 4] {
            let s = run.checkpoint_staging(it).unwrap();
            write_atomic(&s.join("state.json"), b"{}").unwrap();
            run.commit_checkpoint(&s, it).unwrap();
        }
        // an incomplete one is ignored
        fs::create_dir_all(run.checkpoint_dir(9)).unwrap();
        let found: Vec<usize> = run.checkpoints().unwrap().iter().map(|c| c.0).collect();
        assert_eq!(found, vec![2, 3, 4]);
        assert_eq!(run.latest_checkpoint().unwrap().unwrap().0, 4);
    }

    #[test]
    fn truncation_keeps_lines_up_to_the_iteration() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create_at(&tmp.path().join("r")).unwrap();
        for i in 1..=5 {
            run.append_line(
                "metrics.jsonl",
                &IterationMetrics {
                    iteration: i,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        run.truncate_lines_after("metrics.jsonl", 3).unwrap();
        let its: Vec<usize> = run
            .read_metrics()
            .unwrap()
            .iter()
            .map(|m| m.iteration)
            .collect();
        assert_eq!(its, vec![1, 2, 3]);
    }
}
