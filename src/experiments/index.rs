//! `sweep.json`, the index of a sweep directory: its planned runs and where each stands. Read
//! by [`super::runs`] (a sweep's run directories and method labels), written by
//! [`super::sweep`] (the plan) and [`super::launch`] (every ending).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, ExperimentError};
use crate::runtime;

/// Where a planned run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Completed,
    Interrupted,
    Failed,
}

/// One run of a sweep, as indexed in `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Run directory, relative to the sweep directory: `<recipe>[,key=value...]-seed<seed>`.
    pub dir: String,
    pub recipe: PathBuf,
    /// The method label runs are grouped by: the recipe name plus the swept `key=value`s,
    /// except the seed and keys that change the environment (those make columns instead).
    pub method: String,
    pub seed: u64,
    /// Every override the run is compiled with (the spec's, the swept values', the seed's).
    pub overrides: Vec<String>,
    /// Iterations the run trains for.
    #[serde(default)]
    pub iterations: usize,
    /// The recipe's `train.threads` (0 = oprl chooses); a run gets at most its share of cores.
    #[serde(default)]
    pub threads: usize,
    pub status: RunStatus,
    pub error: Option<String>,
}

/// `sweep.json`: the index of a sweep directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepIndex {
    pub seeds: usize,
    pub jobs: usize,
    pub runs: Vec<PlannedRun>,
}

impl SweepIndex {
    pub fn read(sweep_dir: &Path) -> Result<SweepIndex, ExperimentError> {
        let path = sweep_dir.join("sweep.json");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        serde_json::from_str(&text).map_err(|source| ExperimentError::Json { path, source })
    }

    pub fn write(&self, sweep_dir: &Path) -> Result<(), ExperimentError> {
        let json = serde_json::to_string_pretty(self).expect("the index serialises");
        let path = sweep_dir.join("sweep.json");
        runtime::rundir::write_atomic(&path, json.as_bytes())?;
        Ok(())
    }
}
