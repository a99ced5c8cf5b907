//! The replies of the generating endpoints in OpenAI's shapes: a whole reply, or a stream of
//! chunks that sends each token's text as soon as it can no longer turn into a stop string.

use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use serde_json::{json, Value};

use super::backend::{ApiError, ChatBackend};
use super::engine::{Event, Output, Token};
use super::model_backend::cut_at_stop;

/// The two endpoints that generate differ only in the shape of their replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Chat,
    Completion,
}

/// What a reply reports per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogprobRequest {
    /// Alternatives per token; `None`: no log-probs at all.
    pub top: Option<usize>,
}

/// Everything a generation reply needs besides the tokens.
pub(super) struct ReplyShape {
    pub endpoint: Endpoint,
    pub id: String,
    pub model: String,
    pub created: u64,
    pub logprobs: LogprobRequest,
    pub stop: Vec<String>,
    pub prompt_tokens: usize,
}

/// The whole reply of a finished generation.
pub(super) fn whole_reply(
    shape: &ReplyShape,
    outputs: &[Output],
    backend: &dyn ChatBackend,
) -> Value {
    let choices: Vec<Value> = outputs
        .iter()
        .enumerate()
        .map(|(index, out)| whole_choice(shape, index, out, backend))
        .collect();
    let completion_tokens: usize = outputs.iter().map(|o| o.tokens.len()).sum();
    json!({
        "id": shape.id,
        "object": match shape.endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completion => "text_completion",
        },
        "created": shape.created,
        "model": shape.model,
        "choices": choices,
        "usage": usage(shape.prompt_tokens, completion_tokens),
    })
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// `finish_reason` of a finished choice, and its text without the stop string.
fn finish(text: &str, stopped: bool, stops: &[String]) -> (String, &'static str) {
    let (visible, at_stop) = cut_at_stop(text, stops);
    (visible, if stopped || at_stop { "stop" } else { "length" })
}

fn whole_choice(shape: &ReplyShape, index: usize, out: &Output, texts: &dyn ChatBackend) -> Value {
    let (text, reason) = finish(&out.text, out.stopped, &shape.stop);
    let logprobs = shape
        .logprobs
        .top
        .map(|top| logprobs_of(shape.endpoint, &out.tokens, top, 0, texts))
        .unwrap_or(Value::Null);
    match shape.endpoint {
        Endpoint::Chat => json!({
            "index": index,
            "message": {"role": "assistant", "content": text},
            "logprobs": logprobs,
            "finish_reason": reason,
        }),
        Endpoint::Completion => json!({
            "index": index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": reason,
        }),
    }
}

/// The log-probs of `tokens` in the endpoint's shape: chat's `{"content": [{token, logprob,
/// bytes, top_logprobs}]}`, completions' parallel lists (`text_offset` counted from
/// `offset`, the length of the token texts before them).
fn logprobs_of(
    endpoint: Endpoint,
    tokens: &[Token],
    top: usize,
    offset: usize,
    texts: &dyn ChatBackend,
) -> Value {
    match endpoint {
        Endpoint::Chat => {
            let entry = |id: u32, logprob: f32| {
                let text = texts.token_text(id);
                json!({"token": text, "logprob": logprob, "bytes": text.as_bytes()})
            };
            let content: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    let mut e = entry(t.id, t.logprob);
                    let alternatives: Vec<Value> = t
                        .top
                        .iter()
                        .take(top)
                        .map(|&(id, lp)| entry(id, lp))
                        .collect();
                    e["top_logprobs"] = Value::Array(alternatives);
                    e
                })
                .collect();
            json!({"content": content})
        }
        Endpoint::Completion => {
            let strings: Vec<String> = tokens.iter().map(|t| texts.token_text(t.id)).collect();
            let mut offsets = Vec::with_capacity(tokens.len());
            let mut at = offset;
            for s in &strings {
                offsets.push(at);
                at += s.len();
            }
            let tops: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    let map: serde_json::Map<String, Value> = t
                        .top
                        .iter()
                        .take(top)
                        .map(|&(id, lp)| (texts.token_text(id), json!(lp)))
                        .collect();
                    Value::Object(map)
                })
                .collect();
            json!({
                "tokens": strings,
                "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                "top_logprobs": if top > 0 { Value::Array(tops) } else { Value::Null },
                "text_offset": offsets,
            })
        }
    }
}

/// How much of a growing `text` can be sent: everything but a trailing unfinished character
/// (decoded as U+FFFD until its last byte arrives) and a suffix that may still grow into a
/// stop string (which the reply leaves out).
fn settled_len(text: &str, stops: &[String]) -> usize {
    let end = text.trim_end_matches('\u{FFFD}').len();
    let settled = &text[..end];
    let held = stops
        .iter()
        .flat_map(|s| {
            s.char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .filter(|&i| settled.ends_with(&s[..i]))
                .max()
        })
        .max()
        .unwrap_or(0);
    end - held
}

/// A streamed reply: pulls the generation's events and turns them into chunks.
pub(super) struct Stream {
    events: Receiver<(usize, Event)>,
    shape: ReplyShape,
    include_usage: bool,
    backend: Arc<dyn ChatBackend>,
    choices: Vec<StreamChoice>,
    open: usize,
    ready: VecDeque<Value>,
    /// Whether the usage chunk (if asked for) is still to come.
    usage_due: bool,
}

#[derive(Default)]
struct StreamChoice {
    /// Bytes of text already sent.
    sent: usize,
    tokens: usize,
    /// Completions' `text_offset` of the next token: the length of the token texts so far.
    offset: usize,
}

impl Stream {
    pub(super) fn new(
        events: Receiver<(usize, Event)>,
        count: usize,
        shape: ReplyShape,
        include_usage: bool,
        backend: Arc<dyn ChatBackend>,
    ) -> Stream {
        let mut stream = Stream {
            events,
            shape,
            include_usage,
            backend,
            choices: (0..count).map(|_| StreamChoice::default()).collect(),
            open: count,
            ready: VecDeque::new(),
            usage_due: include_usage,
        };
        if stream.shape.endpoint == Endpoint::Chat {
            for index in 0..count {
                let chunk = stream.chunk(
                    index,
                    json!({"role": "assistant", "content": ""}),
                    None,
                    None,
                );
                stream.ready.push_back(chunk);
            }
        }
        stream
    }

    /// One chunk of choice `index`: its new text (chat: a `delta`), log-probs, finish reason.
    fn chunk(
        &self,
        index: usize,
        delta: Value,
        logprobs: Option<Value>,
        reason: Option<&str>,
    ) -> Value {
        let choice = match self.shape.endpoint {
            Endpoint::Chat => json!({
                "index": index,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": reason,
            }),
            Endpoint::Completion => json!({
                "index": index,
                "text": delta.get("content").cloned().unwrap_or(json!("")),
                "logprobs": logprobs,
                "finish_reason": reason,
            }),
        };
        let mut chunk = json!({
            "id": self.shape.id,
            "object": match self.shape.endpoint {
                Endpoint::Chat => "chat.completion.chunk",
                Endpoint::Completion => "text_completion",
            },
            "created": self.shape.created,
            "model": self.shape.model,
            "choices": [choice],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn step(&mut self, index: usize, token: Token, text: &str, finished: Option<bool>) {
        let stops = &self.shape.stop;
        let sent = self.choices[index].sent;
        let (end, reason) = match finished {
            Some(stopped) => {
                let (visible, reason) = finish(text, stopped, stops);
                (visible.len(), Some(reason))
            }
            None => (settled_len(text, stops), None),
        };
        let new_text = text
            .get(sent..end.max(sent))
            .unwrap_or_default()
            .to_string();
        let offset = self.choices[index].offset;
        let logprobs = self.shape.logprobs.top.map(|top| {
            logprobs_of(
                self.shape.endpoint,
                std::slice::from_ref(&token),
                top,
                offset,
                self.backend.as_ref(),
            )
        });
        self.choices[index].offset += self.backend.token_text(token.id).len();
        self.choices[index].tokens += 1;
        self.choices[index].sent = sent + new_text.len();
        if !new_text.is_empty() || logprobs.is_some() {
            let chunk = self.chunk(index, json!({"content": new_text}), logprobs, None);
            self.ready.push_back(chunk);
        }
        if let Some(reason) = reason {
            let chunk = self.chunk(index, json!({}), None, Some(reason));
            self.ready.push_back(chunk);
            self.open -= 1;
        }
    }
}

impl Iterator for Stream {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(chunk);
            }
            if self.open == 0 {
                if !std::mem::take(&mut self.usage_due) {
                    return None;
                }
                let completion_tokens = self.choices.iter().map(|c| c.tokens).sum();
                let mut chunk = self.chunk(0, json!({}), None, None);
                chunk["choices"] = json!([]);
                chunk["usage"] = usage(self.shape.prompt_tokens, completion_tokens);
                return Some(chunk);
            }
            match self.events.recv() {
                Ok((
                    index,
                    Event::Step {
                        token,
                        text,
                        finished,
                    },
                )) => self.step(index, token, &text, finished),
                Ok((_, Event::Failed(e))) => {
                    self.open = 0;
                    self.usage_due = false;
                    return Some(ApiError::new(500, e).body());
                }
                Err(_) => {
                    self.open = 0;
                    self.usage_due = false;
                    return Some(ApiError::new(500, "the model's scheduler stopped").body());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_text_holds_back_stop_prefixes_and_unfinished_characters() {
        let stops = vec!["</a>".to_string(), "\n\n".to_string()];
        assert_eq!(settled_len("go left", &stops), 7);
        assert_eq!(settled_len("go left</", &stops), 7);
        assert_eq!(settled_len("go left\n", &stops), 7);
        assert_eq!(settled_len("go <b>", &stops), 6);
        assert_eq!(settled_len("caf\u{FFFD}", &[]), 3);
    }
}
