//! `oprl export SOURCE --out DIR [--checkpoint N] [--dtype D]`: a run's trained policy (or a
//! Hugging Face directory or GGUF file) as a Hugging Face model directory that transformers
//! and vLLM load; a sentence on stderr says what was written.

use std::path::PathBuf;

use candle_core::DType;

use super::{fail, EXIT_ERRORS, EXIT_OK};
use crate::model::export::parse_dtype;
use crate::runtime::export::export;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A run directory, a Hugging Face model directory or a .gguf file.
    pub source: PathBuf,
    /// The Hugging Face directory to write (created; files in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// The run's checkpoint to export, by iteration (default: the last).
    #[arg(long)]
    pub checkpoint: Option<usize>,
    /// Weight dtype: f32, bf16 or f16 (default: the pretrained model's own; f32 for a GGUF
    /// file or a model trained from scratch).
    #[arg(long, value_parser = dtype_arg)]
    pub dtype: Option<DType>,
}

fn dtype_arg(name: &str) -> Result<DType, String> {
    parse_dtype(name).ok_or_else(|| format!("`{name}` is not f32, bf16 or f16"))
}

pub fn run(args: &ExportArgs) -> i32 {
    match export(&args.source, args.checkpoint, args.dtype, &args.out) {
        Ok(e) => {
            let what = match e.iteration {
                Some(it) => format!("the policy of iteration {it}"),
                None => "the model".to_string(),
            };
            eprintln!(
                "exported {what} as a Hugging Face {} model ({}) to {}",
                e.model_type,
                e.dtype,
                e.out.display()
            );
            EXIT_OK
        }
        Err(e) => fail(e, EXIT_ERRORS),
    }
}
