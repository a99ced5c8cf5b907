//! The OpenAI protocol on both sides: a blocking chat client with timeouts, retries and bounded
//! concurrency (used by the LLM judge and the endpoint partner), and the `oprl serve` server
//! (`server`: HTTP, routes and validation; `replies`: reply and stream shapes; `engine`: the
//! scheduler thread that batches requests through the model; `model_backend`: oprl's models
//! with their chat templates) that answers it from oprl's own models.

pub mod backend;
pub mod client;
pub mod engine;
pub mod model_backend;
mod replies;
pub mod server;

use serde::{Deserialize, Serialize};

pub use backend::{ChatBackend, GenerationJob};
pub use client::{ApiKey, ChatClient, ChatError};
pub use server::ChatServer;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// A string in oprl's requests; clients may also send a list of text parts (joined here)
    /// or `null`.
    #[serde(deserialize_with = "text_or_parts")]
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

/// A `/v1/chat/completions` request body (the fields oprl sends and serves).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub sampling: Sampling,
    /// The newer name of `max_tokens`; wins when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    /// Whether to return each sampled token's log-prob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many of the most likely alternatives to return with each token (needs `logprobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<usize>,
}

/// The sampling fields `/v1/chat/completions` and `/v1/completions` share.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// A string or a list of strings in the protocol; always a list here.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_list"
    )]
    pub stop: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How many choices to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Answer as server-sent events, one chunk per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// `stream_options`: whether the last chunk before `[DONE]` carries the usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// A `/v1/completions` request body: a raw prompt, no chat template.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    #[serde(flatten)]
    pub sampling: Sampling,
    /// How many of the most likely alternatives to return with each token (0: only the
    /// sampled token's log-prob).
    #[serde(default)]
    pub logprobs: Option<usize>,
    /// Whether the prompt is repeated in the reply; oprl does not echo.
    #[serde(default)]
    pub echo: Option<bool>,
}

/// The prompt of a completion request: text, token ids, or a batch of either.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

/// vLLM's `/tokenize` body: a conversation rendered with the chat template, or a raw prompt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TokenizeRequest {
    Chat {
        #[serde(default)]
        model: Option<String>,
        messages: Vec<ChatMessage>,
        #[serde(default = "yes")]
        add_generation_prompt: bool,
    },
    Text {
        #[serde(default)]
        model: Option<String>,
        prompt: String,
    },
}

fn yes() -> bool {
    true
}

/// vLLM's `/detokenize` body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DetokenizeRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub tokens: Vec<u32>,
}

fn text_or_parts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        text: String,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
    }
    Ok(match Option::<Content>::deserialize(d)? {
        None => String::new(),
        Some(Content::Text(s)) => s,
        Some(Content::Parts(parts)) => parts.into_iter().map(|p| p.text).collect(),
    })
}

fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Stop>::deserialize(d)? {
        None => None,
        Some(Stop::One(s)) => Some(vec![s]),
        Some(Stop::Many(v)) => Some(v),
    })
}

/// Runs `f` over `items` with at most `concurrency` calls in flight (std threads), keeping the
/// results in input order. `concurrency = 0` is treated as 1.
pub fn bounded_map<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let workers = concurrency.max(1).min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every index is claimed by exactly one worker"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn bounded_map_keeps_order_and_bounds_concurrency() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u64> = (0..12).collect();
        let out = bounded_map(&items, 3, |x| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(15));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            x * x
        });
        assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) >= 2, "ran in parallel");
    }

    #[test]
    fn stop_may_be_a_string_or_a_list() {
        let one: ChatRequest =
            serde_json::from_str(r#"{"model":"m","messages":[],"stop":"\n"}"#).unwrap();
        assert_eq!(one.sampling.stop, Some(vec!["\n".to_string()]));
        let many: ChatRequest =
            serde_json::from_str(r#"{"model":"m","messages":[],"stop":["a","b"]}"#).unwrap();
        assert_eq!(many.sampling.stop.unwrap().len(), 2);
        let none: ChatRequest = serde_json::from_str(r#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(none.sampling.stop, None);
    }

    #[test]
    fn content_may_be_text_parts_or_null() {
        let r: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null}]}"#,
        )
        .unwrap();
        assert_eq!(r.messages[0].content, "ab");
        assert_eq!(r.messages[1].content, "");
    }

    #[test]
    fn tokenize_takes_messages_or_a_prompt() {
        let chat: TokenizeRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert!(matches!(
            chat,
            TokenizeRequest::Chat {
                add_generation_prompt: true,
                ..
            }
        ));
        let text: TokenizeRequest = serde_json::from_str(r#"{"prompt":"hi"}"#).unwrap();
        assert!(matches!(text, TokenizeRequest::Text { .. }));
    }
}
