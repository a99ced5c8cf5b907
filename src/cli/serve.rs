//! `oprl serve MODEL [--checkpoint N] [--device cpu|cuda] [--port N] [--host ADDR]`: loads a
//! model (a run directory's policy at its latest or a chosen checkpoint, a Hugging Face
//! directory, or a GGUF file) and serves it over the OpenAI protocol until the process is
//! stopped.

use std::path::PathBuf;
use std::sync::Arc;

use super::{fail, EXIT_OK, EXIT_USAGE};
use crate::openai::server::ChatServer;
use crate::openai::ChatBackend;
use crate::runtime::setup::{load_model, ModelChoice};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A run directory, a Hugging Face model directory or a `.gguf` file.
    pub model: PathBuf,
    /// For a run directory: serve this checkpoint's iteration instead of the latest.
    #[arg(long)]
    pub checkpoint: Option<usize>,
    /// Where the model runs; default: a run's recipe setting, else the CPU.
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on; `0.0.0.0` exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    /// Needs a build with `--features cuda`.
    Cuda,
}

impl From<DeviceArg> for crate::graph::Device {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => crate::graph::Device::Cpu,
            DeviceArg::Cuda => crate::graph::Device::Cuda,
        }
    }
}

/// Prints the base URL and serves until the process is interrupted; exit code 2 when the
/// model cannot be loaded or the port cannot be bound.
pub fn run(args: &ServeArgs) -> i32 {
    let choice = ModelChoice {
        checkpoint: args.checkpoint,
        device: args.device.map(Into::into),
    };
    let backend = match load_model(&args.model, &choice) {
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
        "serving `{id}` at {} (POST /chat/completions, /completions, /tokenize, /detokenize; GET /models); Ctrl-C stops",
        server.base_url()
    );
    server.wait();
    EXIT_OK
}
