//! Atomic checkpoint files: safetensors and JSON written to a temporary file in the same
//! directory, then renamed over the target, so a crash never leaves a half-written checkpoint.

use super::error::ModelError;
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The JSON file that sits next to a safetensors checkpoint: `<path>.json`.
pub fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".tmp{}", std::process::id()));
    PathBuf::from(name)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    ModelError::Checkpoint {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
    .into()
}

/// Runs `write` on a temporary path next to `path`, then renames it into place.
fn atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(path, e))?;
    }
    let tmp = tmp_path(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

/// Saves named tensors as safetensors, atomically.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    atomically(path, |tmp| candle_core::safetensors::save(tensors, tmp))
}

/// Loads every tensor of a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(io_error(path, "no such file"));
    }
    candle_core::safetensors::load(path, device).map_err(|e| io_error(path, e))
}

/// Saves a value as pretty JSON, atomically.
pub fn save_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| io_error(path, e))?;
    atomically(path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| io_error(path, e))
    })
}

/// Reads a JSON value.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    serde_json::from_str(&text).map_err(|e| io_error(path, e))
}
