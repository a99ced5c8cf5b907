//! What the server and its model backends share: the backend trait with the job it runs, and
//! the error a request is answered with.

use std::sync::mpsc::Receiver;

use serde_json::{json, Value};

use super::engine::Event;
use crate::model::SampleOptions;

/// One generation a backend runs: a prompt of token ids and how to sample it.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationJob {
    pub prompt: Vec<u32>,
    pub options: SampleOptions,
    /// Seeds the job's sampler (jobs of one call draw from distinct streams of it); `None`: the
    /// backend's own RNG.
    pub seed: Option<u64>,
    /// How many of the most likely alternatives to report with each token.
    pub top_logprobs: usize,
}

/// A model the server answers from: its tokenizer and chat template, and generation.
pub trait ChatBackend: Send + Sync {
    /// The id `/v1/models` lists; requests must name it.
    fn model_id(&self) -> String;
    /// Prompt plus generated tokens at most.
    fn max_model_len(&self) -> usize;
    fn vocab_size(&self) -> usize;
    /// The settings a request leaves out (`max_new_tokens`: the default `max_tokens`; `stop`:
    /// stop strings added to every request's).
    fn defaults(&self) -> SampleOptions;
    /// The prompt ids of a conversation, rendered as the model reads it; errors are the
    /// template's (reported to the client as 400).
    fn chat_prompt(
        &self,
        messages: &[super::ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, String>;
    fn encode(&self, text: &str) -> Vec<u32>;
    fn decode(&self, ids: &[u32]) -> String;
    /// The text of one token as clients see it in log-probs.
    fn token_text(&self, id: u32) -> String;
    /// Starts `jobs`; their events arrive tagged with each job's index. Jobs started together
    /// may run as one batch. Dropping the receiver abandons them.
    fn generate(&self, jobs: Vec<GenerationJob>) -> Receiver<(usize, Event)>;
}

/// A failed request, answered as OpenAI's error object with its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ApiError {
    pub(super) status: u16,
    pub(super) message: String,
    pub(super) param: Option<&'static str>,
    pub(super) code: Option<&'static str>,
}

impl ApiError {
    pub(super) fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// 400: malformed JSON or an invalid field.
    pub(super) fn invalid(message: impl Into<String>, param: &'static str) -> ApiError {
        ApiError {
            param: Some(param),
            ..ApiError::new(400, message)
        }
    }

    /// 422: a well-formed value outside its range.
    pub(super) fn out_of_range(message: impl Into<String>, param: &'static str) -> ApiError {
        ApiError {
            param: Some(param),
            code: Some("out_of_range"),
            ..ApiError::new(422, message)
        }
    }

    pub(super) fn kind(&self) -> &'static str {
        match self.status {
            404 => "not_found_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub(super) fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }})
    }
}
