//! oprl's own candle models behind the chat protocol: renders chat messages into a prompt,
//! samples a reply with the KV-cache generator, and cuts it at the stop strings.

use std::path::Path;
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::{Batch, LanguageModel, SampleOptions};

use super::server::{ChatBackend, Completion};
use super::{ChatMessage, ChatRequest};

/// How chat messages become one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// oprl's own small models were trained on raw environment prompts: a single message is
    /// the prompt as it is; several are joined with newlines.
    Plain,
    /// ChatML (`<|im_start|>role ... <|im_end|>`), the template of Qwen2 instruct models.
    ChatMl,
}

const CHATML_END: &str = "<|im_end|>";

/// The prompt text for `messages` in `format`.
pub fn render_chat(messages: &[ChatMessage], format: ChatFormat) -> String {
    match format {
        ChatFormat::Plain => messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        ChatFormat::ChatMl => {
            let mut out = String::new();
            for m in messages {
                out.push_str(&format!(
                    "<|im_start|>{}\n{}{CHATML_END}\n",
                    m.role, m.content
                ));
            }
            out.push_str("<|im_start|>assistant\n");
            out
        }
    }
}

/// `text` up to the first occurrence of any stop string (OpenAI replies leave stops out).
pub fn cut_at_stop(text: &str, stops: &[String]) -> (String, bool) {
    let first = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min();
    match first {
        Some(i) => (text[..i].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// A candle [`LanguageModel`] answering chat requests one at a time.
pub struct ModelBackend {
    id: String,
    model: Mutex<LanguageModel>,
    format: ChatFormat,
    defaults: SampleOptions,
    rng: Mutex<ChaCha8Rng>,
}

impl ModelBackend {
    /// `defaults` apply where a request leaves a setting out; `seed` seeds the sampler.
    pub fn new(
        id: impl Into<String>,
        model: LanguageModel,
        format: ChatFormat,
        defaults: SampleOptions,
        seed: u64,
    ) -> ModelBackend {
        ModelBackend {
            id: id.into(),
            model: Mutex::new(model),
            format,
            defaults,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// A Hugging Face model directory (`config.json`, `*.safetensors`, `tokenizer.json`),
    /// served with the ChatML template.
    pub fn from_hf_dir(
        dir: &Path,
        device: &candle_core::Device,
    ) -> candle_core::Result<ModelBackend> {
        let tokenizer = crate::model::hf::tokenizer(dir)?;
        let model = LanguageModel::from_hf(dir, &tokenizer, device)?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "oprl-model".into());
        Ok(ModelBackend::new(
            id,
            model,
            ChatFormat::ChatMl,
            SampleOptions {
                temperature: 0.7,
                top_p: 1.0,
                max_new_tokens: 256,
                stop: vec![CHATML_END.into()],
                admissible_only: false,
            },
            0,
        ))
    }
}

impl ModelBackend {
    pub fn format(&self) -> ChatFormat {
        self.format
    }
}

impl ChatBackend for ModelBackend {
    fn model_id(&self) -> String {
        self.id.clone()
    }

    fn complete(&self, request: &ChatRequest) -> Result<Completion, String> {
        let model = self
            .model
            .lock()
            .map_err(|_| "the model lock is poisoned".to_string())?;
        let mut stop = self.defaults.stop.clone();
        stop.extend(request.stop.clone().unwrap_or_default());
        let max_new = request
            .max_tokens
            .unwrap_or(self.defaults.max_new_tokens)
            .clamp(1, model.context().saturating_sub(1).max(1));
        let opts = SampleOptions {
            temperature: request.temperature.unwrap_or(self.defaults.temperature),
            top_p: request.top_p.unwrap_or(self.defaults.top_p),
            max_new_tokens: max_new,
            stop: stop.clone(),
            admissible_only: false,
        };
        let mut prompt = model
            .tokenizer()
            .encode(&render_chat(&request.messages, self.format));
        // Keep the most recent context, as the runtime does for long episodes.
        let room = model.context().saturating_sub(max_new);
        if prompt.len() > room {
            prompt.drain(..prompt.len() - room);
        }
        let prompt_tokens = prompt.len();
        let generated = {
            let mut rng = match request.seed {
                Some(seed) => ChaCha8Rng::seed_from_u64(seed),
                None => {
                    let mut shared = self
                        .rng
                        .lock()
                        .map_err(|_| "rng lock poisoned".to_string())?;
                    ChaCha8Rng::from_rng(&mut *shared)
                }
            };
            model
                .generate(Batch::new(&[prompt]), &opts, &mut rng)
                .map_err(|e| format!("generation failed: {e}"))?
        };
        let g = generated
            .into_iter()
            .next()
            .ok_or_else(|| "the model returned no generation".to_string())?;
        let (text, at_stop) = cut_at_stop(&g.text, &stop);
        Ok(Completion {
            text,
            prompt_tokens,
            completion_tokens: g.tokens.len(),
            stopped: g.stopped || at_stop,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plain_and_chatml() {
        let m = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        assert_eq!(render_chat(&m[1..], ChatFormat::Plain), "Hi");
        assert_eq!(render_chat(&m, ChatFormat::Plain), "Be brief.\nHi");
        assert_eq!(
            render_chat(&m, ChatFormat::ChatMl),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn cuts_at_the_earliest_stop() {
        let stops = vec!["\n".to_string(), "</a>".to_string()];
        assert_eq!(
            cut_at_stop("yes</a>\nmore", &stops),
            ("yes".to_string(), true)
        );
        assert_eq!(
            cut_at_stop("no stop", &stops),
            ("no stop".to_string(), false)
        );
    }
}
