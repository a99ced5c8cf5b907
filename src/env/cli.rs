//! The `oprl env ...` subcommands as library functions: each prints its own errors and returns
//! the process exit code, so `main.rs` only parses arguments.
//!
//! - `oprl env serve sokoban [--set KEY=VALUE]...`: the JSON-lines protocol on stdin/stdout.
//! - `oprl env play sokoban|sotopia [--seed N] [--set KEY=VALUE]...`: play in the terminal.

use super::protocol::{apply_overrides, serve_stdio};
use super::sokoban::{default_spec, play::play_sokoban};
use crate::graph::SokobanSpec;

/// Environments these subcommands know.
pub const ENVIRONMENTS: &[&str] = &["sokoban"];

fn sokoban_spec(name: &str, sets: &[String]) -> Result<SokobanSpec, String> {
    if name != "sokoban" {
        return Err(format!(
            "unknown environment `{name}`; available: {}",
            ENVIRONMENTS.join(", ")
        ));
    }
    let mut spec = default_spec();
    apply_overrides(&mut spec, sets)?;
    Ok(spec)
}

/// `oprl env serve NAME [--set KEY=VALUE]...`
pub fn env_serve(name: &str, sets: &[String]) -> i32 {
    let spec = match sokoban_spec(name, sets) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    match serve_stdio(spec) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `oprl env play NAME [--seed N] [--set KEY=VALUE]...`
pub fn env_play(name: &str, sets: &[String], seed: u64) -> i32 {
    if name == "sotopia" {
        return super::sotopia::play::play_command(sets, seed);
    }
    let spec = match sokoban_spec(name, sets) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("error: {message}");
            return 2;
        }
    };
    match play_sokoban(spec, seed) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_overrides_are_checked() {
        let spec = sokoban_spec("sokoban", &["boxes=2".into()]).unwrap();
        assert_eq!(spec.boxes, 2);
        let err = sokoban_spec("chess", &[]).unwrap_err();
        assert!(err.contains("unknown environment `chess`; available: sokoban"));
        assert_eq!(env_serve("chess", &[]), 2);
        assert_eq!(env_play("sokoban", &["room=big".into()], 0), 2);
    }
}
