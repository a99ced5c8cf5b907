//! GGUF files (llama.cpp's format) as a model source: the decoder's configuration from the
//! `<arch>.*` metadata, the weights dequantised to f32 under their Hugging Face names, the
//! byte-level BPE tokenizer from `tokenizer.ggml.*`, and the chat template.
//!
//! llama.cpp's converter stores the rows of a Llama model's `attn_q` and `attn_k` permuted for
//! its interleaved rotary layout; they are permuted back here, so the decoder's rotate-half
//! RoPE (Hugging Face's) applies unchanged. Qwen2 and Qwen3 files are stored unpermuted.

use super::chat::{ChatTemplate, ChatTemplateError};
use super::decoder::{DecoderConfig, Family, PositionKind};
use super::error::{one_line, ModelError};
use super::tokenizer::{SpecialIds, Tokenizer};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Result, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

/// An opened GGUF file: its metadata and tensor directory (the tensors are read on demand).
pub struct GgufFile {
    path: PathBuf,
    content: Content,
    arch: String,
    family: Family,
}

/// GGUF token types (llama.cpp's `llama_token_type`) that become added tokens.
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// The pre-tokenizer names (`tokenizer.ggml.pre`) this reader knows, for error messages.
const SUPPORTED_PRE: &str = "default, gpt2, smollm, starcoder, llama-bpe, llama3, qwen2";

/// llama.cpp's split of Llama 3 and Qwen2 text before byte-level BPE.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl GgufFile {
    /// Reads the header (metadata and tensor directory) of `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let error = |reason: String| -> candle_core::Error {
            ModelError::Gguf {
                path: path.display().to_string(),
                reason,
            }
            .into()
        };
        let mut file = std::fs::File::open(path).map_err(|e| error(e.to_string()))?;
        let content = Content::read(&mut file)
            .map_err(|e| error(format!("not a GGUF file: {}", one_line(&e))))?;
        let arch = match content.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(error("no `general.architecture` in the metadata".into())),
        };
        let family = Family::parse(&arch).ok_or_else(|| {
            error(format!(
                "architecture `{arch}` is not supported (supported: {})",
                Family::SUPPORTED
            ))
        })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            content,
            arch,
            family,
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> candle_core::Error {
        ModelError::Gguf {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
        .into()
    }

    fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    /// An unsigned integer of the architecture's metadata (`<arch>.<key>`).
    fn arch_uint(&self, key: &str) -> Result<Option<usize>> {
        let full = format!("{}.{key}", self.arch);
        self.meta(&full)
            .map(|v| {
                as_int(v)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.error(format!("`{full}` is not an unsigned integer")))
            })
            .transpose()
    }

    fn required_uint(&self, key: &str) -> Result<usize> {
        self.arch_uint(key)?
            .ok_or_else(|| self.error(format!("no `{}.{key}` in the metadata", self.arch)))
    }

    fn arch_float(&self, key: &str) -> Result<Option<f64>> {
        let full = format!("{}.{key}", self.arch);
        self.meta(&full)
            .map(|v| match v {
                Value::F32(x) => Ok(*x as f64),
                Value::F64(x) => Ok(*x),
                _ => Err(self.error(format!("`{full}` is not a number"))),
            })
            .transpose()
    }

    fn string(&self, key: &str) -> Option<&str> {
        match self.meta(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The decoder this file describes.
    pub fn decoder_config(&self) -> Result<DecoderConfig> {
        let hidden = self.required_uint("embedding_length")?;
        let heads = self.required_uint("attention.head_count")?;
        let head_dim = match self.arch_uint("attention.key_length")? {
            Some(d) => d,
            None => hidden.checked_div(heads).unwrap_or(0),
        };
        if let Some(rotary) = self.arch_uint("rope.dimension_count")? {
            if rotary != head_dim {
                return Err(self.error(format!(
                    "rotary embedding over {rotary} of {head_dim} head dimensions is not supported"
                )));
            }
        }
        if let Some(kind) = self.string(&format!("{}.rope.scaling.type", self.arch)) {
            if kind != "none" {
                return Err(self.error(format!("rope scaling `{kind}` is not supported")));
            }
        }
        if self.has_tensor("rope_freqs.weight") {
            return Err(self.error(
                "per-frequency rope factors (`rope_freqs.weight`, Llama 3.1+) are not supported; \
                 load the model's Hugging Face directory instead",
            ));
        }
        let embed = self
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| self.error("no `token_embd.weight` tensor"))?;
        Ok(DecoderConfig {
            vocab: embed.shape.dims()[0],
            hidden,
            layers: self.required_uint("block_count")?,
            heads,
            kv_heads: self.arch_uint("attention.head_count_kv")?.unwrap_or(heads),
            head_dim,
            mlp: self.required_uint("feed_forward_length")?,
            context: self.required_uint("context_length")?,
            positions: PositionKind::Rope {
                theta: self.arch_float("rope.freq_base")?.unwrap_or(10000.0),
            },
            rms_eps: self
                .arch_float("attention.layer_norm_rms_epsilon")?
                .ok_or_else(|| self.error("no RMSNorm epsilon in the metadata"))?,
            qkv_bias: self.has_tensor("blk.0.attn_q.bias"),
            tie_embeddings: !self.has_tensor("output.weight"),
            vision: None,
            qk_norm: self.has_tensor("blk.0.attn_q_norm.weight"),
            rope_scaling: None,
        })
    }

    /// Every tensor dequantised to f32, under its Hugging Face name, with Llama's q/k rows
    /// permuted back to the rotate-half layout.
    pub fn weights(&self, cfg: &DecoderConfig) -> Result<HashMap<String, Tensor>> {
        let mut file = std::fs::File::open(&self.path).map_err(|e| self.error(e))?;
        let mut out = HashMap::with_capacity(self.content.tensor_infos.len());
        for name in self.content.tensor_infos.keys() {
            let hf = hf_name(name).ok_or_else(|| {
                self.error(format!("tensor `{name}` has no counterpart in the decoder"))
            })?;
            let q = self
                .content
                .tensor(&mut file, name, &Device::Cpu)
                .map_err(|e| self.error(format!("tensor `{name}`: {}", one_line(&e))))?;
            let mut t = q.dequantize(&Device::Cpu)?;
            if self.family == Family::Llama {
                if hf.ends_with("self_attn.q_proj.weight") || hf.ends_with("self_attn.q_proj.bias")
                {
                    t = unpermute_rotary_rows(&t, cfg.heads)?;
                } else if hf.ends_with("self_attn.k_proj.weight")
                    || hf.ends_with("self_attn.k_proj.bias")
                {
                    t = unpermute_rotary_rows(&t, cfg.kv_heads)?;
                }
            }
            out.insert(hf, t);
        }
        Ok(out)
    }

    /// The byte-level BPE tokenizer in `tokenizer.ggml.*`, with control tokens as special
    /// added tokens and the declared bos/eos/padding ids.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        match self.string("tokenizer.ggml.model") {
            Some("gpt2") => {}
            Some(other) => {
                return Err(self.error(format!(
                    "tokenizer model `{other}` is not supported (supported: gpt2, byte-level BPE)"
                )))
            }
            None => return Err(self.error("no `tokenizer.ggml.model` in the metadata")),
        }
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let merges = self
            .strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| self.error(format!("merge `{m}` is not two tokens")))
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| self.error(format!("tokenizer: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(self.pre_tokenizer()?));
        inner.with_decoder(Some(ByteLevel::default()));
        let types = match self.meta("tokenizer.ggml.token_type") {
            Some(Value::Array(v)) => v.iter().map(as_int).collect::<Option<Vec<_>>>(),
            _ => None,
        }
        .unwrap_or_default();
        let added = |kind: i64| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, &t)| t == kind)
                .map(|(s, _)| AddedToken::from(s.clone(), kind == TOKEN_CONTROL).normalized(false))
                .collect()
        };
        inner
            .add_special_tokens(added(TOKEN_CONTROL))
            .and_then(|_| inner.add_tokens(added(TOKEN_USER_DEFINED)))
            .map_err(|e| self.error(format!("tokenizer: {e}")))?;
        let id = |key: &str| {
            self.meta(&format!("tokenizer.ggml.{key}_token_id"))
                .and_then(as_int)
                .and_then(|n| u32::try_from(n).ok())
        };
        let declared = SpecialIds {
            bos: id("bos"),
            eos: id("eos"),
            pad: id("padding"),
        };
        Ok(Tokenizer::from_hf(inner, declared))
    }

    /// The string array under `key`.
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.meta(key) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.error(format!("`{key}` holds a non-string"))),
                })
                .collect(),
            _ => Err(self.error(format!("no string array `{key}` in the metadata"))),
        }
    }

    /// llama.cpp's pre-tokenizer for `tokenizer.ggml.pre`, as a Hugging Face pre-tokenizer.
    fn pre_tokenizer(&self) -> Result<PreTokenizerWrapper> {
        let byte_level = |regex: bool| {
            ByteLevel::default()
                .add_prefix_space(false)
                .use_regex(regex)
        };
        let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
            let s = Split::new(
                SplitPattern::Regex(pattern.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| self.error(format!("pre-tokenizer: {e}")))?;
            Ok(Sequence::new(vec![s.into(), byte_level(false).into()]).into())
        };
        match self.string("tokenizer.ggml.pre").unwrap_or("default") {
            "default" | "gpt2" | "gpt-2" => Ok(byte_level(true).into()),
            // Digits one by one, then GPT-2's split.
            "smollm" | "starcoder" | "refact" | "codeshell" => {
                Ok(Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into())
            }
            "llama-bpe" | "llama3" => split(LLAMA3_SPLIT),
            "qwen2" => split(QWEN2_SPLIT),
            other => Err(self.error(format!(
                "pre-tokenizer `{other}` is not supported (supported: {SUPPORTED_PRE})"
            ))),
        }
    }

    /// The chat template in `tokenizer.chat_template`, with the declared bos/eos tokens.
    pub fn chat_template(
        &self,
        tokenizer: &Tokenizer,
    ) -> std::result::Result<Option<ChatTemplate>, ChatTemplateError> {
        let Some(source) = self.string("tokenizer.chat_template") else {
            return Ok(None);
        };
        let text = |id: u32| tokenizer.token_text(id).unwrap_or_default();
        ChatTemplate::new(source, text(tokenizer.bos_id()), text(tokenizer.eos_id())).map(Some)
    }
}

/// The checked decoder config and the dequantised weights (HF names) of the GGUF file `path`.
pub fn read_model(
    path: &Path,
    device: &Device,
) -> Result<(DecoderConfig, HashMap<String, Tensor>)> {
    let file = GgufFile::open(path)?;
    let cfg = file.decoder_config()?;
    cfg.validate().map_err(|e| file.error(e))?;
    let weights = file
        .weights(&cfg)?
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_device(device)?)))
        .collect::<Result<_>>()?;
    Ok((cfg, weights))
}

fn as_int(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(n) => Some(n.into()),
        Value::I8(n) => Some(n.into()),
        Value::U16(n) => Some(n.into()),
        Value::I16(n) => Some(n.into()),
        Value::U32(n) => Some(n.into()),
        Value::I32(n) => Some(n.into()),
        Value::U64(n) => i64::try_from(n).ok(),
        Value::I64(n) => Some(n),
        _ => None,
    }
}

/// The Hugging Face name of a llama.cpp tensor name.
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = part.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes llama.cpp's permutation of a q or k projection over `heads` heads: within each head
/// it stores row `2i + j` where Hugging Face has row `j * head_dim / 2 + i`.
fn unpermute_rotary_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    let rest = t.elem_count() / rows;
    let half = rows / heads / 2;
    t.reshape((heads, half, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, LanguageModel};

    #[test]
    fn tensor_names_map_onto_the_decoder() {
        assert_eq!(
            hf_name("blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_name("blk.3.attn_k_norm.weight").as_deref(),
            Some("model.layers.3.self_attn.k_norm.weight")
        );
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermuting_inverts_the_converters_permutation() {
        // llama.cpp's converter: reshape(heads, 2, hd/2, in).swapaxes(1, 2).
        let (heads, hd, cols) = (3, 4, 2);
        let hf: Vec<f32> = (0..heads * hd * cols).map(|v| v as f32).collect();
        let hf = Tensor::from_vec(hf, (heads * hd, cols), &Device::Cpu).unwrap();
        let stored = hf
            .reshape((heads, 2, hd / 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((heads * hd, cols))
            .unwrap();
        assert_ne!(
            stored.to_vec2::<f32>().unwrap(),
            hf.to_vec2::<f32>().unwrap()
        );
        let back = unpermute_rotary_rows(&stored, heads).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), hf.to_vec2::<f32>().unwrap());
    }

    /// llama.cpp's converter (`convert_hf_to_gguf.py`), for a tiny model of architecture
    /// `arch`: names, q/k row permutation (Llama only), metadata; no output tensor when the
    /// embeddings are tied.
    fn write_gguf(model: &LanguageModel, arch: &str, path: &Path) {
        use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
        let cfg = model.config();
        let permute = |t: &Tensor, heads: usize| {
            let (rows, cols) = t.dims2().unwrap();
            t.reshape((heads, 2, rows / heads / 2, cols))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape((rows, cols))
                .unwrap()
        };
        let parts = [
            ("input_layernorm", "attn_norm"),
            ("self_attn.q_proj", "attn_q"),
            ("self_attn.k_proj", "attn_k"),
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("self_attn.q_norm", "attn_q_norm"),
            ("self_attn.k_norm", "attn_k_norm"),
            ("post_attention_layernorm", "ffn_norm"),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.down_proj", "ffn_down"),
        ];
        let mut tensors = vec![];
        for (name, var) in model.named_vars() {
            let mut t = var.as_tensor().clone();
            let gguf = match name.as_str() {
                "model.embed_tokens.weight" => "token_embd.weight".to_string(),
                "model.norm.weight" => "output_norm.weight".to_string(),
                "lm_head.weight" => "output.weight".to_string(),
                _ => {
                    let rest = name.strip_prefix("model.layers.").unwrap();
                    let (layer, rest) = rest.split_once('.').unwrap();
                    let (part, kind) = rest.rsplit_once('.').unwrap();
                    let to = parts.iter().find(|(hf, _)| *hf == part).unwrap().1;
                    if arch == "llama" && to == "attn_q" {
                        t = permute(&t, cfg.heads);
                    } else if arch == "llama" && to == "attn_k" {
                        t = permute(&t, cfg.kv_heads);
                    }
                    format!("blk.{layer}.{to}.{kind}")
                }
            };
            tensors.push((gguf, QTensor::quantize(&t, GgmlDType::F32).unwrap()));
        }
        let theta = match cfg.positions {
            PositionKind::Rope { theta } => theta,
            PositionKind::Learned => unreachable!("these families have rotary positions"),
        };
        let u = |n: usize| Value::U32(n as u32);
        let metadata = [
            ("block_count", u(cfg.layers)),
            ("context_length", u(cfg.context)),
            ("embedding_length", u(cfg.hidden)),
            ("feed_forward_length", u(cfg.mlp)),
            ("attention.head_count", u(cfg.heads)),
            ("attention.head_count_kv", u(cfg.kv_heads)),
            ("attention.key_length", u(cfg.head_dim)),
            ("rope.dimension_count", u(cfg.head_dim)),
            ("rope.freq_base", Value::F32(theta as f32)),
            (
                "attention.layer_norm_rms_epsilon",
                Value::F32(cfg.rms_eps as f32),
            ),
        ];
        let mut metadata: Vec<(String, Value)> = metadata
            .into_iter()
            .map(|(k, v)| (format!("{arch}.{k}"), v))
            .collect();
        metadata.push(("general.architecture".into(), Value::String(arch.into())));
        let mut file = std::fs::File::create(path).unwrap();
        gguf_file::write(
            &mut file,
            &metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .collect::<Vec<_>>(),
            &tensors
                .iter()
                .map(|(k, v)| (k.as_str(), v))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }

    #[test]
    fn unreadable_files_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"not a model").unwrap();
        let tok = Tokenizer::chars("ab");
        let err = LanguageModel::from_hf(&path, &tok, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("GGUF file "), "{err}");
        assert!(err.contains("not a GGUF file"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_gguf_gives_the_model_it_was_converted_from() {
        let tok = Tokenizer::chars("abcdefgh ");
        // (architecture, tied embeddings, q/k/v biases, q/k norm, head size)
        let cases = [
            ("llama", true, false, false, 4),
            ("llama", false, false, false, 4),
            ("qwen2", false, true, false, 4),
            ("qwen3", true, false, true, 8),
        ];
        for (arch, tie, bias, qk_norm, head_dim) in cases {
            let cfg = DecoderConfig {
                vocab: tok.vocab_size(),
                hidden: 24,
                layers: 2,
                heads: 6,
                kv_heads: 2,
                head_dim,
                mlp: 40,
                context: 32,
                positions: PositionKind::Rope { theta: 100000.0 },
                // Exact in f32, as GGUF stores it.
                rms_eps: 1.0 / 65536.0,
                qkv_bias: bias,
                tie_embeddings: tie,
                vision: None,
                qk_norm,
                rope_scaling: None,
            };
            let original = LanguageModel::random(cfg.clone(), &tok, &Device::Cpu, 7).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tiny.gguf");
            write_gguf(&original, arch, &path);
            let loaded = LanguageModel::from_hf(&path, &tok, &Device::Cpu).unwrap();
            assert_eq!(loaded.config(), &cfg, "{arch}");
            let prompts = [tok.encode("abc deg"), tok.encode("hh a")];
            let a = original.logits(Batch::new(&prompts), false).unwrap();
            let b = loaded.logits(Batch::new(&prompts), false).unwrap();
            let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{arch}, tied: {tie}");
        }
    }
}
