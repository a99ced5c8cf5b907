//! `oprl export`: the policy a run directory trained (a checkpoint, the last by default), or a
//! Hugging Face directory or GGUF file as it is, written as a Hugging Face model directory
//! (see [`crate::model::export`]).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::rundir::RunDir;
use super::{setup, RuntimeError};
use crate::graph::PolicySpec;
use crate::model::chat::ChatTemplate;
use crate::model::{export, hf, LanguageModel, Tokenizer};

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub out: PathBuf,
    /// The checkpoint's iteration, for a run directory.
    pub iteration: Option<usize>,
    /// `config.json`'s `torch_dtype`.
    pub dtype: &'static str,
    /// `model_type`.
    pub model_type: &'static str,
}

/// A model to export, with what it was built from.
struct Source {
    model: LanguageModel,
    chat_template: Option<ChatTemplate>,
    iteration: Option<usize>,
    /// The dtype of the pretrained weights the model started from (f32 for a model trained
    /// from scratch or read from GGUF).
    dtype: DType,
}

/// Exports the model at `source` (a run directory, a Hugging Face directory or a `.gguf`
/// file) into the Hugging Face directory `out`, in `dtype` (default: the source's).
/// `checkpoint` picks a run directory's checkpoint (default: the last).
pub fn export(
    source: &Path,
    checkpoint: Option<usize>,
    dtype: Option<DType>,
    out: &Path,
) -> Result<Exported, RuntimeError> {
    let src = if source.join("graph.json").is_file() {
        from_run_dir(source, checkpoint)?
    } else if checkpoint.is_some() {
        return Err(RuntimeError::Config(format!(
            "`--checkpoint` picks a checkpoint of a run directory, and {} is none (no graph.json)",
            source.display()
        )));
    } else if source.join("config.json").is_file() || hf::is_gguf(source) {
        from_pretrained(source)?
    } else {
        return Err(RuntimeError::Config(format!(
            "{} is neither a run directory (no graph.json) nor a Hugging Face model directory \
             (no config.json) nor a .gguf file",
            source.display()
        )));
    };
    let dtype = dtype.unwrap_or(src.dtype);
    let model_type = export::write_hf_dir(&src.model, src.chat_template.as_ref(), dtype, out)?;
    Ok(Exported {
        out: out.to_path_buf(),
        iteration: src.iteration,
        dtype: export::dtype_name(dtype).unwrap_or("float32"),
        model_type,
    })
}

fn from_run_dir(root: &Path, checkpoint: Option<usize>) -> Result<Source, RuntimeError> {
    let dir = RunDir::open(root)?;
    let graph = dir.read_graph()?;
    let (iteration, path) = dir.checkpoint(checkpoint)?;
    let tokenizer = setup::make_tokenizer(&graph)?;
    let mut model = setup::make_policy(&graph, &tokenizer, &Device::Cpu, graph.train.seed)?;
    model.load(&path.join("policy.safetensors"))?;
    let (chat_template, dtype) = match &graph.policy {
        PolicySpec::Hf(h) => {
            let origin = Path::new(&h.path);
            (
                hf::chat_template(origin, &tokenizer)?,
                export::source_dtype(origin),
            )
        }
        PolicySpec::Transformer(_) => (None, DType::F32),
    };
    Ok(Source {
        model,
        chat_template,
        iteration: Some(iteration),
        dtype,
    })
}

fn from_pretrained(path: &Path) -> Result<Source, RuntimeError> {
    let tokenizer: Tokenizer = hf::tokenizer(path)?;
    let model = LanguageModel::from_hf(path, &tokenizer, &Device::Cpu)?;
    Ok(Source {
        chat_template: hf::chat_template(path, &tokenizer)?,
        model,
        iteration: None,
        dtype: export::source_dtype(path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Batch;

    /// A run directory of the Sokoban recipe with a one-layer transformer (`positions` as
    /// given) and a saved checkpoint at iteration 3; returns the saved model.
    fn run_dir(root: &Path, positions: &str) -> LanguageModel {
        let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/sokoban.oprl");
        let sets = [
            "policy.layers=1".to_string(),
            "policy.width=32".to_string(),
            "policy.heads=2".to_string(),
            format!("policy.positions={positions}"),
        ];
        let (graph, _) = crate::compile::compile_file(&recipe, &sets).expect("recipe compiles");
        let dir = RunDir::create_at(root).unwrap();
        dir.write_graph(&graph).unwrap();
        let tokenizer = setup::make_tokenizer(&graph).unwrap();
        let model = LanguageModel::from_spec(&graph.policy, &tokenizer, &Device::Cpu, 11).unwrap();
        let ck = root.join("checkpoints/iter-000003");
        std::fs::create_dir_all(&ck).unwrap();
        model.save(&ck.join("policy.safetensors")).unwrap();
        std::fs::write(ck.join("state.json"), "{}").unwrap();
        model
    }

    #[test]
    fn a_small_transformer_exports_as_a_llama_that_reads_back_identically() {
        let tmp = tempfile::tempdir().unwrap();
        let trained = run_dir(&tmp.path().join("run"), "rope");
        let out = tmp.path().join("hf");
        let e = export(&tmp.path().join("run"), None, None, &out).unwrap();
        assert_eq!(
            (e.iteration, e.dtype, e.model_type),
            (Some(3), "float32", "llama")
        );
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            assert!(out.join(file).is_file(), "{file} is missing");
        }

        let tokenizer = hf::tokenizer(&out).unwrap();
        let text = "#####\n#_P_#\n<action>up</action> ?";
        let ids = trained.tokenizer().encode(text);
        assert_eq!(tokenizer.encode(text), ids);
        assert_eq!(tokenizer.decode(&ids), trained.tokenizer().decode(&ids));
        let t = trained.tokenizer();
        assert_eq!(
            (tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id()),
            (t.bos_id(), t.eos_id(), t.pad_id())
        );

        let back = LanguageModel::from_hf(&out, &tokenizer, &Device::Cpu).unwrap();
        assert_eq!(back.config(), trained.config());
        let prompts = [ids];
        let a = trained.logits(Batch::new(&prompts), false).unwrap();
        let b = back.logits(Batch::new(&prompts), false).unwrap();
        let diff: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0);

        let e = export(&tmp.path().join("run"), Some(3), Some(DType::BF16), &out).unwrap();
        assert_eq!(e.dtype, "bfloat16");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["torch_dtype"], "bfloat16");
        assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    }

    #[test]
    fn what_has_no_hugging_face_form_is_refused_clearly() {
        let tmp = tempfile::tempdir().unwrap();
        run_dir(&tmp.path().join("run"), "learned");
        let out = tmp.path().join("hf");
        let err = export(&tmp.path().join("run"), None, None, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("learned positions"), "{err}");
        let err = export(&tmp.path().join("run"), Some(7), None, &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no complete checkpoint for iteration 7"),
            "{err}"
        );
        let err = export(&tmp.path().join("run/checkpoints"), None, None, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither a run directory"), "{err}");
    }
}
