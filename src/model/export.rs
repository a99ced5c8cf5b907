//! Writes a [`LanguageModel`] as a Hugging Face model directory that transformers and vLLM
//! load: `config.json` (Llama, Qwen2 or Qwen3, whichever the decoder's options make it),
//! `model.safetensors` under the Hugging Face names the decoder already uses (a GGUF source's
//! q/k rows were un-permuted on load), `tokenizer.json`, `tokenizer_config.json` with the chat
//! template and special tokens, and `generation_config.json`.
//!
//! The small transformer trained from scratch exports as a Llama when it uses rotary
//! positions; learned positions and the patch encoder have no Hugging Face counterpart here
//! and are refused.

use super::chat::ChatTemplate;
use super::checkpoint;
use super::decoder::{param_specs, DecoderConfig, PositionKind, RopeScaling};
use super::error::ModelError;
use super::weights::LanguageModel;
use candle_core::{DType, Result, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// The dtypes an export may write, with the names `config.json` gives them.
const DTYPES: [(DType, &str); 3] = [
    (DType::F32, "float32"),
    (DType::BF16, "bfloat16"),
    (DType::F16, "float16"),
];

/// The `torch_dtype` name of `dtype`, if an export may write it.
pub fn dtype_name(dtype: DType) -> Option<&'static str> {
    DTYPES.iter().find(|d| d.0 == dtype).map(|d| d.1)
}

/// The dtype a `torch_dtype` name (or oprl's short `f32`, `bf16`, `f16`) stands for.
pub fn parse_dtype(name: &str) -> Option<DType> {
    match name {
        "f32" => Some(DType::F32),
        "bf16" => Some(DType::BF16),
        "f16" => Some(DType::F16),
        _ => DTYPES.iter().find(|d| d.1 == name).map(|d| d.0),
    }
}

/// The dtype of a pretrained model's weights: `config.json`'s `torch_dtype` (transformers 4.x)
/// or `dtype` (5.x) for a Hugging Face directory; f32 for a GGUF file (its weights are
/// dequantised) or when the config does not say.
pub fn source_dtype(path: &Path) -> DType {
    let config: Option<Value> = std::fs::read_to_string(path.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    config
        .as_ref()
        .and_then(|c| c.get("torch_dtype").or_else(|| c.get("dtype")))
        .and_then(Value::as_str)
        .and_then(parse_dtype)
        .unwrap_or(DType::F32)
}

fn refuse(reason: impl Into<String>) -> candle_core::Error {
    ModelError::Export {
        reason: reason.into(),
    }
    .into()
}

/// `(architectures[0], model_type)` of a decoder: q/k norms make it Qwen3, q/k/v biases
/// Qwen2, neither Llama.
fn architecture(cfg: &DecoderConfig) -> (&'static str, &'static str) {
    if cfg.qk_norm {
        ("Qwen3ForCausalLM", "qwen3")
    } else if cfg.qkv_bias {
        ("Qwen2ForCausalLM", "qwen2")
    } else {
        ("LlamaForCausalLM", "llama")
    }
}

/// `rope_scaling` as transformers 4.x writes it (5.x and vLLM read that spelling too).
fn rope_scaling_json(scaling: Option<RopeScaling>) -> Value {
    match scaling {
        None => Value::Null,
        Some(RopeScaling::Linear { factor }) => json!({ "rope_type": "linear", "factor": factor }),
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_context,
        }) => json!({
            "rope_type": "llama3",
            "factor": factor,
            "low_freq_factor": low_freq_factor,
            "high_freq_factor": high_freq_factor,
            "original_max_position_embeddings": original_context,
        }),
    }
}

/// The special token ids a model directory declares.
struct SpecialTokens {
    bos: u32,
    eos: u32,
    pad: u32,
    /// Every id that ends a generation (`eos` first).
    stop: Vec<u32>,
}

fn config_json(cfg: &DecoderConfig, dtype: &str, special: &SpecialTokens) -> Result<Value> {
    let PositionKind::Rope { theta } = cfg.positions else {
        return Err(refuse(
            "the model uses learned positions, which no Hugging Face Llama/Qwen architecture \
             has (train it with `positions = \"rope\"` to export it)",
        ));
    };
    if cfg.vision.is_some() {
        return Err(refuse(
            "the model reads images through oprl's own patch encoder, which has no Hugging \
             Face counterpart",
        ));
    }
    let (arch, model_type) = architecture(cfg);
    let mut config = json!({
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": cfg.vocab,
        "hidden_size": cfg.hidden,
        "intermediate_size": cfg.mlp,
        "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.context,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.rms_eps,
        "rope_theta": theta,
        "rope_scaling": rope_scaling_json(cfg.rope_scaling),
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
        "torch_dtype": dtype,
        "bos_token_id": special.bos,
        "eos_token_id": special.eos,
        "pad_token_id": special.pad,
    });
    let extra = match model_type {
        "llama" => json!({ "attention_bias": false, "mlp_bias": false, "pretraining_tp": 1 }),
        "qwen2" => json!({ "use_sliding_window": false, "sliding_window": null }),
        _ => json!({
            "attention_bias": cfg.qkv_bias,
            "use_sliding_window": false,
            "sliding_window": null,
        }),
    };
    if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
        c.extend(e);
    }
    Ok(config)
}

/// The decoder's weights under their Hugging Face names in `dtype`: the value head (not part of
/// the language model) and a tied head are left out.
fn hf_weights(model: &LanguageModel, dtype: DType) -> Result<HashMap<String, Tensor>> {
    let mut weights = model.merged_weights()?;
    param_specs(model.config(), false)
        .into_iter()
        .map(|p| {
            let t = weights
                .remove(&p.name)
                .ok_or_else(|| refuse(format!("the model has no weight {}", p.name)))?;
            Ok((p.name, t.to_dtype(dtype)?))
        })
        .collect()
}

/// Writes `model` (with `chat_template`, if it has one) as a Hugging Face directory `out`,
/// weights in `dtype` (f32, bf16 or f16); returns the `model_type` written. The directory is
/// created; files in it are replaced.
pub fn write_hf_dir(
    model: &LanguageModel,
    chat_template: Option<&ChatTemplate>,
    dtype: DType,
    out: &Path,
) -> Result<&'static str> {
    let dtype_str = dtype_name(dtype).ok_or_else(|| {
        refuse(format!(
            "dtype {dtype:?} cannot be exported (f32, bf16 or f16)"
        ))
    })?;
    let tokenizer = model.tokenizer();
    let special = SpecialTokens {
        bos: tokenizer.bos_id(),
        eos: tokenizer.eos_id(),
        pad: tokenizer.pad_id(),
        stop: tokenizer.stop_ids(),
    };
    let config = config_json(model.config(), dtype_str, &special)?;
    let weights = hf_weights(model, dtype)?;
    std::fs::create_dir_all(out)
        .map_err(|e| refuse(format!("cannot create {}: {e}", out.display())))?;
    checkpoint::save_json(&config, &out.join("config.json"))?;
    checkpoint::save_tensors(&weights, &out.join("model.safetensors"))?;
    let tokenizer_json = tokenizer.to_hf_json()?;
    std::fs::write(out.join("tokenizer.json"), tokenizer_json)
        .map_err(|e| refuse(format!("cannot write tokenizer.json: {e}")))?;
    let text = |id: u32| tokenizer.token_text(id).map_or(Value::Null, Value::from);
    let mut tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": text(special.bos),
        "eos_token": text(special.eos),
        "pad_token": text(special.pad),
        "model_max_length": model.config().context,
        "clean_up_tokenization_spaces": false,
        "add_bos_token": false,
        "add_eos_token": false,
    });
    if let (Some(t), Value::Object(c)) = (chat_template, &mut tokenizer_config) {
        c.insert("chat_template".into(), t.source().into());
    }
    checkpoint::save_json(&tokenizer_config, &out.join("tokenizer_config.json"))?;
    let eos: Value = match special.stop.as_slice() {
        [one] => (*one).into(),
        many => many.into(),
    };
    let generation = json!({
        "bos_token_id": special.bos,
        "eos_token_id": eos,
        "pad_token_id": special.pad,
    });
    checkpoint::save_json(&generation, &out.join("generation_config.json"))?;
    Ok(architecture(model.config()).1)
}
