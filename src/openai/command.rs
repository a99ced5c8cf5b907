//! `oprl serve MODEL_OR_RUN_DIR [--port N]`: loads a model (a Hugging Face directory, or the
//! policy of a run directory's latest complete checkpoint) and serves it over the chat
//! protocol until the process is stopped.

use std::path::Path;
use std::sync::Arc;

use crate::graph::PolicySpec;
use crate::model::{LanguageModel, SampleOptions};
use crate::runtime::rundir::RunDir;
use crate::runtime::setup;

use super::model_backend::{ChatFormat, ModelBackend};
use super::server::ChatServer;

/// Loads what `path` names: a run directory (`graph.json`, `checkpoints/iter-N/policy.safetensors`)
/// a Hugging Face model directory (`config.json`, `tokenizer.json`, `*.safetensors`) or a GGUF
/// file.
pub fn load_backend(path: &Path) -> Result<ModelBackend, String> {
    if path.join("graph.json").is_file() {
        return load_run_dir(path);
    }
    if path.join("config.json").is_file() || crate::model::hf::is_gguf(path) {
        let device = candle_core::Device::Cpu;
        return ModelBackend::from_hf_dir(path, &device)
            .map_err(|e| format!("cannot load the model in {}: {e}", path.display()));
    }
    Err(format!(
        "{} is neither a run directory (no graph.json) nor a Hugging Face model directory (no config.json) nor a .gguf file",
        path.display()
    ))
}

fn load_run_dir(path: &Path) -> Result<ModelBackend, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let dir = RunDir::open(path).map_err(|e| err(&e))?;
    let graph = dir.read_graph().map_err(|e| err(&e))?;
    let (iteration, checkpoint) = dir
        .latest_checkpoint()
        .map_err(|e| err(&e))?
        .ok_or_else(|| err(&"the run has no complete checkpoint yet"))?;
    let device = crate::model::device_for(graph.train.device).map_err(|e| err(&e))?;
    let tokenizer = setup::make_tokenizer(&graph).map_err(|e| err(&e))?;
    let mut model = LanguageModel::from_spec(&graph.policy, &tokenizer, &device, graph.train.seed)
        .map_err(|e| err(&e))?;
    let weights = checkpoint.join("policy.safetensors");
    model.load(&weights).map_err(|e| err(&e))?;
    let format = match graph.policy {
        PolicySpec::Transformer(_) => ChatFormat::Plain,
        PolicySpec::Hf(_) => ChatFormat::ChatMl,
    };
    let defaults = SampleOptions {
        temperature: graph.eval.temperature,
        ..setup::sampling_of(&graph.policy)
    };
    Ok(ModelBackend::new(
        format!("{}-iter{iteration}", graph.recipe),
        model,
        format,
        defaults,
        graph.train.seed,
    ))
}

/// `oprl serve`: prints the base URL and serves until the process is interrupted. Returns the
/// exit code (2: the model cannot be loaded or the port cannot be bound).
pub fn serve_command(model_or_run_dir: &Path, host: &str, port: u16) -> i32 {
    let backend = match load_backend(model_or_run_dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let id = super::ChatBackend::model_id(&backend);
    let server = match ChatServer::start(&format!("{host}:{port}"), Arc::new(backend)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    println!(
        "serving `{id}` at {} (POST /chat/completions, GET /models); Ctrl-C stops",
        server.base_url()
    );
    server.wait();
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{ChatBackend, ChatMessage, ChatRequest};

    #[test]
    fn serves_the_latest_checkpoint_of_a_run_directory() {
        let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/sokoban.oprl");
        let sets = [
            "policy.layers=1".to_string(),
            "policy.width=32".to_string(),
            "policy.heads=2".to_string(),
        ];
        let (graph, _) = crate::compile::compile_file(&recipe, &sets).expect("recipe compiles");
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::create_at(tmp.path()).unwrap();
        dir.write_graph(&graph).unwrap();
        let tokenizer = setup::make_tokenizer(&graph).unwrap();
        let model =
            LanguageModel::from_spec(&graph.policy, &tokenizer, &candle_core::Device::Cpu, 11)
                .unwrap();
        let ck = tmp.path().join("checkpoints/iter-000003");
        std::fs::create_dir_all(&ck).unwrap();
        model.save(&ck.join("policy.safetensors")).unwrap();
        std::fs::write(ck.join("state.json"), "{}").unwrap();

        let backend = load_backend(tmp.path()).unwrap();
        assert_eq!(backend.model_id(), format!("{}-iter3", graph.recipe));
        let request = ChatRequest {
            model: backend.model_id(),
            messages: vec![ChatMessage::user("#####\n#_P_#\n")],
            temperature: Some(0.0),
            top_p: None,
            max_tokens: Some(6),
            stop: None,
            seed: Some(1),
        };
        let a = backend.complete(&request).unwrap();
        assert!(a.completion_tokens <= 6);
        // Greedy decoding of the saved weights is reproducible.
        assert_eq!(a.text, backend.complete(&request).unwrap().text);

        let err = load_backend(&tmp.path().join("checkpoints")).err().unwrap();
        assert!(err.contains("neither a run directory"), "{err}");
    }
}
