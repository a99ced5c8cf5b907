//! `oprl serve MODEL_OR_RUN_DIR [--port N] [--host ADDR]`: loads a model (a Hugging Face
//! directory, or the policy of a run directory's latest complete checkpoint) and serves it
//! over the chat protocol until the process is stopped.

use std::path::PathBuf;
use std::sync::Arc;

use super::{fail, EXIT_OK, EXIT_USAGE};
use crate::openai::server::ChatServer;
use crate::openai::ChatBackend;
use crate::runtime::setup::load_backend;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A run directory (the policy of its latest checkpoint) or a Hugging Face model directory.
    pub model: PathBuf,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on; `0.0.0.0` exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// Prints the base URL and serves until the process is interrupted; exit code 2 when the
/// model cannot be loaded or the port cannot be bound.
pub fn run(args: &ServeArgs) -> i32 {
    let backend = match load_backend(&args.model) {
        Ok(b) => b,
        Err(e) => return fail(e, EXIT_USAGE),
    };
    let id = backend.model_id();
    let server = match ChatServer::start(&format!("{}:{}", args.host, args.port), Arc::new(backend))
    {
        Ok(s) => s,
        Err(e) => return fail(e, EXIT_USAGE),
    };
    println!(
        "serving `{id}` at {} (POST /chat/completions, GET /models); Ctrl-C stops",
        server.base_url()
    );
    server.wait();
    EXIT_OK
}
