//! `oprl env serve|play NAME [--set KEY=VALUE]...`: an environment on its own.
//!
//! - `oprl env serve sokoban|webshop [--set KEY=VALUE]...`: the JSON-lines protocol on
//!   stdin/stdout.
//! - `oprl env play sokoban|webshop|sotopia [--seed N] [--set KEY=VALUE]...`: play in the
//!   terminal ([`sokoban`], [`webshop`], [`sotopia`]).
//!
//! `--set KEY=VALUE` sets a key of the `env NAME { }` block, compiled by the recipe compiler
//! ([`crate::compile::compile_env`]): the same schema, defaults, checks and diagnostics as
//! `--set env.KEY=VALUE` on a recipe (strings are quoted: `--set 'products="items.json"'`).

pub mod sokoban;
pub mod sotopia;
pub mod webshop;

use clap::Subcommand;

use super::{fail, print_diagnostics, EXIT_ERRORS, EXIT_OK, EXIT_USAGE};
use crate::compile::compile_env;
use crate::env::protocol::{serve, Served};
use crate::env::sokoban::SokobanEnv;
use crate::env::webshop::WebshopEnv;
use crate::env::EnvError;
use crate::graph::EnvSpec;

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Serve an environment over the JSON-lines protocol on stdin/stdout (see the README).
    Serve {
        /// Environment name (`sokoban`, `webshop`).
        name: String,
        /// Set a key of the `env` block, checked as a recipe's: `--set room=[7,7]`, `--set prompt=compact`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Play an environment in the terminal (Sokoban: arrows or w/a/s/d, r, n, q; WebShop: one
    /// action per line).
    Play {
        /// Environment name (`sokoban`, `webshop`, `sotopia`).
        name: String,
        /// Set a key of the `env` block, checked as a recipe's: `--set room=[7,7]`, `--set boxes=2`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// First task: Sokoban's level seed, WebShop's and SOTOPIA's train task.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

pub fn run(command: EnvCommand) -> i32 {
    match command {
        EnvCommand::Serve { name, sets } => env_serve(&name, &sets),
        EnvCommand::Play { name, sets, seed } => env_play(&name, &sets, seed),
    }
}

/// Environments `oprl env serve` serves.
pub const SERVED: &[&str] = &["sokoban", "webshop"];

/// Environments `oprl env play` plays.
pub const ENVIRONMENTS: &[&str] = &["sokoban", "webshop", "sotopia"];

/// Why a subcommand could not start; each variant knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum EnvCliError {
    #[error("unknown environment `{name}`; available: {available}")]
    Unknown { name: String, available: String },
    /// The `--set` values did not compile; the diagnostics are already printed.
    #[error("the settings of `env {0}` have errors (see above)")]
    Settings(String),
    #[error(transparent)]
    Env(#[from] EnvError),
}

impl EnvCliError {
    /// 2 for a usage error (name, settings), 1 for a failure while running.
    pub fn exit_code(&self) -> i32 {
        match self {
            EnvCliError::Unknown { .. } | EnvCliError::Settings(_) => EXIT_USAGE,
            EnvCliError::Env(_) => EXIT_ERRORS,
        }
    }
}

/// The spec of environment `name` (one of `known`) with `--set` overrides, compiled by the
/// recipe compiler; its diagnostics (errors and warnings) are printed to stderr.
pub fn env_spec(name: &str, sets: &[String], known: &[&str]) -> Result<EnvSpec, EnvCliError> {
    if !known.contains(&name) {
        return Err(EnvCliError::Unknown {
            name: name.to_string(),
            available: known.join(", "),
        });
    }
    let compilation = compile_env(name, sets);
    print_diagnostics(&compilation);
    compilation
        .env_spec()
        .ok_or_else(|| EnvCliError::Settings(name.to_string()))
}

/// A served instance of a spec.
fn served_env(spec: EnvSpec) -> Result<Box<dyn Served>, EnvCliError> {
    match spec {
        EnvSpec::Sokoban(s) => Ok(Box::new(SokobanEnv::new(s)?)),
        EnvSpec::Webshop(s) => Ok(Box::new(WebshopEnv::new(&s).map_err(EnvError::from)?)),
        EnvSpec::Sotopia(_) | EnvSpec::External(_) => Err(EnvCliError::Unknown {
            name: spec_name(&spec).to_string(),
            available: SERVED.join(", "),
        }),
    }
}

/// The variant name of a spec, as written in `env NAME { }`.
fn spec_name(spec: &EnvSpec) -> &'static str {
    match spec {
        EnvSpec::Sokoban(_) => "sokoban",
        EnvSpec::Webshop(_) => "webshop",
        EnvSpec::Sotopia(_) => "sotopia",
        EnvSpec::External(_) => "external",
    }
}

fn exit(result: Result<(), EnvCliError>) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let code = e.exit_code();
            fail(e, code)
        }
    }
}

/// `oprl env serve NAME [--set KEY=VALUE]...`
pub fn env_serve(name: &str, sets: &[String]) -> i32 {
    exit((|| {
        let mut env = served_env(env_spec(name, sets, SERVED)?)?;
        serve(
            env.as_mut(),
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )
        .map_err(EnvError::from)?;
        Ok(())
    })())
}

/// `oprl env play NAME [--seed N] [--set KEY=VALUE]...`
pub fn env_play(name: &str, sets: &[String], seed: u64) -> i32 {
    if name == "sotopia" {
        // SOTOPIA's play settings include the partner and the judge, beyond the env block.
        return sotopia::play_command(sets, seed);
    }
    exit((|| {
        match env_spec(name, sets, ENVIRONMENTS)? {
            EnvSpec::Sokoban(spec) => sokoban::play_sokoban(spec, seed)?,
            EnvSpec::Webshop(spec) => webshop::play_webshop(&spec, seed)?,
            other => unreachable!("`{}` is not in ENVIRONMENTS", spec_name(&other)),
        }
        Ok(())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Code;
    use crate::graph::{PromptStyle, WebshopOutcome};

    #[test]
    fn names_and_overrides_are_checked() {
        let EnvSpec::Sokoban(spec) =
            env_spec("sokoban", &["boxes=2".into(), "room=[7, 8]".into()], SERVED).unwrap()
        else {
            panic!("not sokoban")
        };
        assert_eq!((spec.boxes, spec.room), (2, [7, 8]));
        let err = env_spec("chess", &[], SERVED).unwrap_err();
        assert!(err
            .to_string()
            .contains("unknown environment `chess`; available: sokoban, webshop"));
        assert_eq!(env_serve("chess", &[]), 2);
        assert_eq!(
            env_serve("sotopia", &[]),
            2,
            "sotopia is played, not served"
        );
        assert_eq!(env_play("sokoban", &["room=big".into()], 0), 2);
        assert_eq!(env_serve("webshop", &["max_turns=0".into()]), 2);
    }

    #[test]
    fn settings_go_through_the_compiler() {
        // Defaults are the schema's, with `env.` optional on keys.
        let EnvSpec::Webshop(spec) = compile_env(
            "webshop",
            &[
                "prompt=compact".into(),
                "env.max_turns = 15".into(),
                "outcome=binary10".into(),
            ],
        )
        .env_spec()
        .unwrap() else {
            panic!("not webshop")
        };
        assert_eq!(
            (spec.prompt, spec.max_turns, spec.outcome),
            (PromptStyle::Compact, 15, WebshopOutcome::Binary10)
        );
        assert_eq!(
            (spec.catalogue_size, spec.history, spec.test_goals),
            (1000, 2, 500)
        );
        // Each mistake gets the compiler's own diagnostic code.
        for (set, code) in [
            ("room=[7,7]", Code::UnknownKey),
            ("history=two", Code::TypeMismatch),
            ("max_turns=0", Code::OutOfRange),
            ("prompt=long", Code::UnknownValue),
            ("prompt", Code::BadOverride),
            ("products=\"/no/such/file.json\"", Code::MissingFile),
        ] {
            let c = compile_env("webshop", &[set.to_string()]);
            assert!(c.env_spec().is_none(), "{set}");
            let codes: Vec<Code> = c.diagnostics.iter().map(|d| d.code).collect();
            assert!(codes.contains(&code), "{set}: {codes:?}");
        }
        let c = compile_env("webshop", &["colour=red".into()]);
        let text = c.render_plain();
        assert!(text.contains("E0"), "{text}");
        assert!(text.contains("<cli>"), "{text}");
    }
}
