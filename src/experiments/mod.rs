//! Experiments users can trust: many runs of recipes (seeds, sweeps), and what is read back
//! from their run directories (HTML reports with plots, paper-style comparison tables, a
//! throughput benchmark).
//!
//! One job per file:
//! - [`sweep`]: plans seeds x swept values x recipes, each into its own run directory of a
//!   sweep directory.
//! - [`index`]: `sweep.json`, the index of a sweep directory.
//! - [`launch`]: runs a plan as child `oprl run` processes, one or N at a time, and resumes it,
//!   telling a [`launch::SweepObserver`] what happens (the command line shows it).
//! - [`runs`]: loads run directories (or sweep directories) back and groups them by method.
//! - [`stats`]: mean, std, min and max over seeds, per iteration.
//! - [`plots`]: draws learning curves with bands as SVG text and PNG files.
//! - [`report`]: `oprl report`, the self-contained HTML page and its plot files.
//! - [`compare`]: `oprl compare`, the method x environment table (Markdown, CSV) and the
//!   iterations each run took to reach a target success rate.
//! - [`bench`]: `oprl bench`, a few iterations with the per-phase time breakdown.
//!
//! The commands themselves (arguments, printing, exit codes) are in [`crate::cli`].

pub mod bench;
pub mod compare;
pub mod index;
pub mod launch;
pub mod plots;
pub mod report;
pub mod runs;
pub mod stats;
pub mod sweep;

use std::path::{Path, PathBuf};

/// Why an experiment command failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{recipe}: the recipe has errors{}", with_overrides(.overrides))]
    Recipe {
        recipe: PathBuf,
        overrides: Vec<String>,
        /// The compilation, for its diagnostics.
        compilation: Box<crate::compile::Compilation>,
    },
    #[error("`--sweep {0}`: expected KEY=V1,V2,... with at least one value")]
    BadSweep(String),
    #[error("{0} is not a run directory (no graph.json), a sweep directory (no sweep.json), or a directory of run directories")]
    NotARun(PathBuf),
    #[error("no runs given")]
    NoRuns,
    #[error("plot `{name}`: {message}")]
    Plot { name: String, message: String },
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("{run}: {message}")]
    RunFailed { run: String, message: String },
    #[error("two runs would share the run directory `{dir}` ({} and {}): rename one recipe file, or make the seeds not overlap", .first.display(), .second.display())]
    DuplicateRun {
        dir: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{0} already holds a sweep (sweep.json): continue it with `oprl run --resume {0}`, or pick another `--out`")]
    SweepExists(PathBuf),
    #[error("`--seeds 0`: give at least one seed")]
    NoSeeds,
}

fn with_overrides(overrides: &[String]) -> String {
    if overrides.is_empty() {
        String::new()
    } else {
        format!(" with `--set {}`", overrides.join("` `--set "))
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExperimentError + '_ {
    move |source| ExperimentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path`, creating its parent directories.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExperimentError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::fs::write(path, bytes).map_err(io_err(path))
}
