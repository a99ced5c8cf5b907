//! A blocking OpenAI-compatible chat-completions client: base URL, model, an API key read from
//! an environment variable (never logged, never written), timeout, retries with exponential
//! backoff, and replies validated by the caller so a garbage answer is retried too.

use std::time::Duration;

use crate::graph::EndpointSpec;

use super::{ChatMessage, ChatRequest, Sampling};

/// An API key. Its `Debug` never shows the key, so it cannot leak into logs or error messages.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<hidden>)")
    }
}

/// Why a chat request failed, after all its attempts. Names the endpoint, the last HTTP status
/// and the last reply (shortened), never the API key.
#[derive(Debug)]
pub enum ChatError {
    MissingKey {
        var: String,
        endpoint: String,
    },
    Failed {
        endpoint: String,
        attempts: usize,
        status: Option<u16>,
        last_reply: Option<String>,
        reason: String,
    },
}

/// Replies are quoted up to this many characters in error messages.
const REPLY_QUOTE_CHARS: usize = 400;

fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(REPLY_QUOTE_CHARS).collect();
    if text.chars().count() > REPLY_QUOTE_CHARS {
        out.push_str("...");
    }
    out
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatError::MissingKey { var, endpoint } => write!(
                f,
                "the API key for {endpoint} should be in the environment variable `{var}`, which is not set"
            ),
            ChatError::Failed {
                endpoint,
                attempts,
                status,
                last_reply,
                reason,
            } => {
                write!(f, "{endpoint} failed after {attempts} attempt(s): {reason}")?;
                match status {
                    Some(s) => write!(f, "; last HTTP status {s}")?,
                    None => write!(f, "; no HTTP status")?,
                }
                match last_reply {
                    Some(r) => write!(f, "; last reply: {:?}", shorten(r)),
                    None => write!(f, "; no reply"),
                }
            }
        }
    }
}

impl std::error::Error for ChatError {}

/// One failed attempt.
struct AttemptFailure {
    status: Option<u16>,
    reply: Option<String>,
    reason: String,
    /// Worth trying again (timeouts, connection errors, 408/429/5xx, malformed replies).
    retryable: bool,
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A chat-completions client for one endpoint and model.
#[derive(Debug, Clone)]
pub struct ChatClient {
    base_url: String,
    pub model: String,
    api_key: Option<ApiKey>,
    pub temperature: f64,
    pub timeout: Duration,
    /// Extra attempts after the first.
    pub retries: usize,
    /// Wait before the first retry; doubled before each further one (capped at 30 s).
    pub backoff: Duration,
    pub max_tokens: Option<usize>,
    agent: ureq::Agent,
}

impl ChatClient {
    /// A client for `spec`, reading the API key from the environment variable it names.
    pub fn from_spec(spec: &EndpointSpec) -> Result<ChatClient, ChatError> {
        let api_key = match &spec.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) => Some(ApiKey::new(key)),
                Err(_) => {
                    return Err(ChatError::MissingKey {
                        var: var.clone(),
                        endpoint: spec.url.clone(),
                    })
                }
            },
        };
        Ok(ChatClient::new(
            &spec.url,
            &spec.model,
            api_key,
            spec.temperature,
            Duration::from_secs_f64(spec.timeout_s.max(0.001)),
            spec.retries,
        ))
    }

    pub fn new(
        base_url: &str,
        model: &str,
        api_key: Option<ApiKey>,
        temperature: f64,
        timeout: Duration,
        retries: usize,
    ) -> ChatClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        ChatClient {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key,
            temperature,
            timeout,
            retries,
            backoff: Duration::from_millis(500),
            max_tokens: None,
            agent,
        }
    }

    /// `BASE/chat/completions`.
    pub fn endpoint(&self) -> String {
        format!("{}/chat/completions", self.base_url)
    }

    /// The assistant's reply text.
    pub fn complete(&self, messages: &[ChatMessage]) -> Result<String, ChatError> {
        self.complete_parsed(messages, |text| Ok(text.to_string()))
    }

    /// The assistant's reply passed through `parse`; a reply `parse` rejects counts as a failed
    /// attempt and is retried like a server error.
    pub fn complete_parsed<T>(
        &self,
        messages: &[ChatMessage],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ChatError> {
        let request = ChatRequest {
            model: self.model.clone(),
            messages: messages.to_vec(),
            sampling: Sampling {
                temperature: Some(self.temperature),
                max_tokens: self.max_tokens,
                ..Sampling::default()
            },
            ..ChatRequest::default()
        };
        let attempts = self.retries + 1;
        let mut last: Option<AttemptFailure> = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                std::thread::sleep(backoff_delay(self.backoff, attempt));
            }
            let failure = match self.attempt(&request) {
                Ok(text) => match parse(&text) {
                    Ok(value) => return Ok(value),
                    Err(why) => AttemptFailure {
                        status: Some(200),
                        reply: Some(text),
                        reason: format!("unusable reply: {why}"),
                        retryable: true,
                    },
                },
                Err(f) => f,
            };
            let retryable = failure.retryable;
            last = Some(failure);
            if !retryable {
                return Err(self.failed(attempt + 1, last));
            }
        }
        Err(self.failed(attempts, last))
    }

    fn failed(&self, attempts: usize, last: Option<AttemptFailure>) -> ChatError {
        let last = last.unwrap_or(AttemptFailure {
            status: None,
            reply: None,
            reason: "no attempt was made".into(),
            retryable: false,
        });
        ChatError::Failed {
            endpoint: self.endpoint(),
            attempts,
            status: last.status,
            last_reply: last.reply,
            reason: last.reason,
        }
    }

    fn attempt(&self, request: &ChatRequest) -> Result<String, AttemptFailure> {
        let mut builder = self.agent.post(&self.endpoint());
        if let Some(key) = &self.api_key {
            builder = builder.header("Authorization", &format!("Bearer {}", key.0));
        }
        let mut response = builder
            .send_json(request)
            .map_err(|e| self.transport_failure(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| AttemptFailure {
                status: Some(status),
                ..self.transport_failure(e)
            })?;
        if !(200..300).contains(&status) {
            return Err(AttemptFailure {
                status: Some(status),
                reply: Some(body),
                reason: format!("HTTP error {status}"),
                retryable: status == 408 || status == 429 || status >= 500,
            });
        }
        reply_content(&body).map_err(|why| AttemptFailure {
            status: Some(status),
            reply: Some(body.clone()),
            reason: format!("malformed chat-completions reply: {why}"),
            retryable: true,
        })
    }

    fn transport_failure(&self, e: ureq::Error) -> AttemptFailure {
        let reason = match &e {
            ureq::Error::Timeout(_) => format!(
                "no answer within {:.1} s (timeout)",
                self.timeout.as_secs_f64()
            ),
            ureq::Error::Io(io) => format!("connection error: {io}"),
            other => format!("request error: {other}"),
        };
        AttemptFailure {
            status: None,
            reply: None,
            reason,
            retryable: !matches!(e, ureq::Error::BadUri(_)),
        }
    }

    /// The model ids `BASE/models` lists (one attempt).
    pub fn list_models(&self) -> Result<Vec<String>, ChatError> {
        let url = format!("{}/models", self.base_url);
        let fail = |status, reply, reason: String| ChatError::Failed {
            endpoint: url.clone(),
            attempts: 1,
            status,
            last_reply: reply,
            reason,
        };
        let mut builder = self.agent.get(&url);
        if let Some(key) = &self.api_key {
            builder = builder.header("Authorization", &format!("Bearer {}", key.0));
        }
        let mut response = builder
            .call()
            .map_err(|e| fail(None, None, self.transport_failure(e).reason))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| fail(Some(status), None, e.to_string()))?;
        let parsed: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| fail(Some(status), Some(body.clone()), e.to_string()))?;
        let ids = parsed["data"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| fail(Some(status), Some(body.clone()), "no `data` list".into()))?;
        Ok(ids)
    }
}

/// The delay before attempt `attempt` (1 = first retry): `base * 2^(attempt-1)`, at most 30 s.
pub fn backoff_delay(base: Duration, attempt: usize) -> Duration {
    let factor = 1u32 << (attempt.saturating_sub(1)).min(16) as u32;
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// `choices[0].message.content` of a chat-completions reply body.
pub fn reply_content(body: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    value["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no `choices[0].message.content` string".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff_delay(base, 1), Duration::from_millis(100));
        assert_eq!(backoff_delay(base, 2), Duration::from_millis(200));
        assert_eq!(backoff_delay(base, 4), Duration::from_millis(800));
        assert_eq!(backoff_delay(base, 30), MAX_BACKOFF);
    }

    #[test]
    fn key_never_shows_in_debug_output() {
        let client = ChatClient::new(
            "http://127.0.0.1:9/v1/",
            "m",
            Some(ApiKey::new("sk-very-secret")),
            0.0,
            Duration::from_secs(1),
            0,
        );
        let shown = format!("{client:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert_eq!(client.endpoint(), "http://127.0.0.1:9/v1/chat/completions");
    }

    #[test]
    fn missing_key_variable_is_named() {
        let spec = EndpointSpec {
            url: "http://x/v1".into(),
            model: "m".into(),
            api_key_env: Some("OPRL_TEST_SURELY_UNSET_KEY_VAR".into()),
            temperature: 0.0,
            timeout_s: 1.0,
            retries: 0,
            concurrency: 1,
        };
        let err = ChatClient::from_spec(&spec).unwrap_err().to_string();
        assert!(
            err.contains("OPRL_TEST_SURELY_UNSET_KEY_VAR") && err.contains("http://x/v1"),
            "{err}"
        );
    }

    #[test]
    fn reads_reply_content() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}"#;
        assert_eq!(reply_content(body).unwrap(), "hi");
        assert!(reply_content("{}").is_err());
        assert!(reply_content("<html>").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn unreachable_endpoint_fails_with_a_clear_message() {
        // Port 9 (discard) on loopback is closed on test machines: connection refused.
        let mut client = ChatClient::new(
            "http://127.0.0.1:9/v1",
            "m",
            None,
            0.0,
            Duration::from_secs(2),
            2,
        );
        client.backoff = Duration::from_millis(1);
        let err = client
            .complete(&[ChatMessage::user("hi")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("http://127.0.0.1:9/v1/chat/completions failed after 3 attempt(s)"),
            "{err}"
        );
        assert!(err.contains("no HTTP status"), "{err}");
    }
}
