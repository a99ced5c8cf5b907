//! oprl's own candle models behind the chat protocol: renders chat messages into a prompt with
//! the model's chat template (the plain format for oprl's small models, which have none) and
//! samples through the batching scheduler of [`super::engine`].

use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::chat::{ChatTemplate, Message};
use crate::model::{LanguageModel, RowSampling, SampleOptions, Tokenizer};

use super::backend::{ChatBackend, GenerationJob};
use super::engine::{self, Engine, Event, Job};
use super::{ChatMessage, ChatRequest};

/// How chat messages become one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// oprl's own small models were trained on raw environment prompts: a single message is
    /// the prompt as it is; several are joined with newlines.
    Plain,
    /// The model's own chat template (pretrained instruct models).
    Template,
}

/// The prompt text of `messages` in the plain format.
pub fn render_plain(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n")
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

/// A reply of [`ModelBackend::complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// `true` when generation stopped at a stop string or end of sequence, `false` when it ran
    /// out of tokens (`finish_reason` "length").
    pub stopped: bool,
}

/// A candle [`LanguageModel`] answering requests, batched by its scheduler thread.
pub struct ModelBackend {
    id: String,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    context: usize,
    defaults: SampleOptions,
    /// Seeds the jobs of requests that bring no seed.
    rng: Mutex<ChaCha8Rng>,
    engine: Engine,
}

impl ModelBackend {
    /// `template` renders chat messages (`None`: the plain format); `defaults` apply where a
    /// request leaves a setting out; `seed` seeds the sampler of requests without a seed.
    pub fn new(
        id: impl Into<String>,
        model: LanguageModel,
        template: Option<ChatTemplate>,
        defaults: SampleOptions,
        seed: u64,
    ) -> ModelBackend {
        ModelBackend {
            id: id.into(),
            tokenizer: model.tokenizer().clone(),
            template,
            context: model.context(),
            defaults,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            engine: Engine::start(model),
        }
    }

    /// A Hugging Face model directory (`config.json`, `*.safetensors`, `tokenizer.json`) or a
    /// GGUF file on `device`, served with its chat template.
    pub fn from_pretrained(
        path: &Path,
        device: &candle_core::Device,
    ) -> candle_core::Result<ModelBackend> {
        let tokenizer = crate::model::hf::tokenizer(path)?;
        let template = crate::model::hf::chat_template(path, &tokenizer)?;
        let model = LanguageModel::from_hf(path, &tokenizer, device)?;
        let id = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "oprl-model".into());
        Ok(ModelBackend::new(
            id,
            model,
            template,
            SampleOptions {
                temperature: 0.7,
                top_p: 1.0,
                max_new_tokens: 256,
                stop: vec![],
                admissible_only: false,
            },
            0,
        ))
    }

    pub fn format(&self) -> ChatFormat {
        match self.template {
            Some(_) => ChatFormat::Template,
            None => ChatFormat::Plain,
        }
    }

    /// One reply to `request` (its first choice), for callers inside oprl (the SOTOPIA model
    /// partner). A prompt too long for the context keeps its most recent tokens, as the runtime
    /// does for long episodes.
    pub fn complete(&self, request: &ChatRequest) -> Result<Completion, String> {
        let s = &request.sampling;
        let max_new = s
            .max_tokens
            .unwrap_or(self.defaults.max_new_tokens)
            .clamp(1, self.context.saturating_sub(1).max(1));
        let mut prompt = self.chat_prompt(&request.messages, true)?;
        let room = self.context.saturating_sub(max_new);
        if prompt.len() > room {
            prompt.drain(..prompt.len() - room);
        }
        let mut stop = self.defaults.stop.clone();
        stop.extend(s.stop.clone().unwrap_or_default());
        let job = GenerationJob {
            prompt,
            options: SampleOptions {
                temperature: s.temperature.unwrap_or(self.defaults.temperature),
                top_p: s.top_p.unwrap_or(self.defaults.top_p),
                max_new_tokens: max_new,
                stop: stop.clone(),
                admissible_only: false,
            },
            seed: s.seed,
            top_logprobs: 0,
        };
        let prompt_tokens = job.prompt.len();
        let events = self.generate(vec![job]);
        let out = engine::collect(&events, 1)?.remove(0);
        let (text, at_stop) = cut_at_stop(&out.text, &stop);
        Ok(Completion {
            text,
            prompt_tokens,
            completion_tokens: out.tokens.len(),
            stopped: out.stopped || at_stop,
        })
    }
}

impl ChatBackend for ModelBackend {
    fn model_id(&self) -> String {
        self.id.clone()
    }

    fn max_model_len(&self) -> usize {
        self.context
    }

    fn vocab_size(&self) -> usize {
        self.tokenizer.vocab_size()
    }

    fn defaults(&self) -> SampleOptions {
        self.defaults.clone()
    }

    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, String> {
        let Some(template) = &self.template else {
            return Ok(self.tokenizer.encode(&render_plain(messages)));
        };
        let messages: Vec<Message> = messages
            .iter()
            .map(|m| Message::new(&m.role, &m.content))
            .collect();
        if add_generation_prompt {
            // The function training builds its prompts with; the server refuses a prompt over
            // the context itself, with the request's own figures, so nothing is cut here.
            return self
                .tokenizer
                .chat_prompt_ids(template, &messages, usize::MAX)
                .map_err(|e| e.to_string());
        }
        let text = template
            .render(&messages, false)
            .map_err(|e| e.to_string())?;
        Ok(self.tokenizer.encode(&text))
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text)
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids)
    }

    fn token_text(&self, id: u32) -> String {
        let text = self.tokenizer.decode(&[id]);
        if text.is_empty() {
            // Special tokens decode to nothing; clients still want to see which one it was.
            self.tokenizer.token_text(id).unwrap_or_default()
        } else {
            text
        }
    }

    fn generate(&self, jobs: Vec<GenerationJob>) -> Receiver<(usize, Event)> {
        let (events, receiver) = mpsc::channel();
        let jobs = jobs
            .into_iter()
            .enumerate()
            .map(|(tag, job)| {
                let rng = match job.seed {
                    // Choices of one seeded request draw from distinct streams of its seed.
                    Some(seed) => {
                        let mut rng = ChaCha8Rng::seed_from_u64(seed);
                        rng.set_stream(tag as u64);
                        rng
                    }
                    None => {
                        let mut shared = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                        ChaCha8Rng::from_rng(&mut *shared)
                    }
                };
                Job {
                    prompt: job.prompt,
                    sampling: RowSampling {
                        options: job.options,
                        rng,
                        top_logprobs: job.top_logprobs,
                    },
                    tag,
                    events: events.clone(),
                }
            })
            .collect();
        self.engine.submit(jobs);
        receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plain() {
        let m = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        assert_eq!(render_plain(&m[1..]), "Hi");
        assert_eq!(render_plain(&m), "Be brief.\nHi");
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
