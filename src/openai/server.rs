//! `oprl serve`'s HTTP side on tiny_http: OpenAI's `/v1/chat/completions`, `/v1/completions`
//! and `/v1/models`, and vLLM's `/tokenize` and `/detokenize`, answering from any
//! [`ChatBackend`] (oprl's candle models in practice). Replies are plain JSON or, with
//! `stream`, server-sent events; errors are OpenAI error objects.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::backend::{ApiError, ChatBackend, GenerationJob};
use super::engine;
use super::replies::{whole_reply, Endpoint, LogprobRequest, ReplyShape, Stream};
use super::{ChatRequest, CompletionRequest, DetokenizeRequest, Prompt, Sampling, TokenizeRequest};
use crate::model::SampleOptions;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
}

/// A running server; stops when [`ChatServer::shutdown`] is called or it is dropped.
pub struct ChatServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// Request-handling threads: each holds one request (a streamed one for its whole
/// generation), so this many requests can be in the model's batches at once.
const WORKERS: usize = 64;
/// How often idle workers check for shutdown.
const POLL: Duration = Duration::from_millis(50);
/// Request bodies above this are refused (413).
pub const MAX_BODY_BYTES: u64 = 8 << 20;
/// Most choices one request may ask for (`n`, times the prompts of a completion request).
pub const MAX_CHOICES: usize = 16;
/// Most alternatives per token (`top_logprobs`, completions' `logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

impl ChatServer {
    /// Listens on `addr` (e.g. `127.0.0.1:0` for a free port) and serves `backend`.
    pub fn start(addr: &str, backend: Arc<dyn ChatBackend>) -> Result<ChatServer, ServeError> {
        let server = tiny_http::Server::http(addr).map_err(|e| ServeError::Bind {
            addr: addr.to_string(),
            message: e.to_string(),
        })?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| ServeError::Bind {
                addr: addr.to_string(),
                message: "not an IP address".into(),
            })?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let workers = (0..WORKERS)
            .map(|_| {
                let (server, stop, backend, counter) = (
                    server.clone(),
                    stop.clone(),
                    backend.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        match server.recv_timeout(POLL) {
                            Ok(Some(request)) => handle(request, &backend, &counter),
                            Ok(None) => {}
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        Ok(ChatServer {
            addr: local,
            stop,
            workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`, the base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Blocks until the server stops (for `oprl serve`, until the process is interrupted).
    pub fn wait(mut self) {
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    pub fn shutdown(mut self) {
        self.stop_workers();
    }

    fn stop_workers(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// What a route answers.
enum Reply {
    Json(Value),
    /// Server-sent events: each item one `data:` line, then `data: [DONE]`.
    Events(Box<dyn Iterator<Item = Value>>),
}

type Routed = Result<Reply, ApiError>;

fn handle(mut request: tiny_http::Request, shared: &Arc<dyn ChatBackend>, counter: &AtomicU64) {
    let backend = shared.as_ref();
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let path = path.trim_end_matches('/');
    let post = *request.method() == tiny_http::Method::Post;
    let get = *request.method() == tiny_http::Method::Get;
    let id = || counter.fetch_add(1, Ordering::SeqCst);
    let reply = match path {
        "/v1/models" | "/models" if get => Ok(Reply::Json(models(backend))),
        "/health" | "/v1/health" if get => Ok(Reply::Json(json!({}))),
        "/v1/chat/completions" | "/chat/completions" if post => {
            read_json(&mut request).and_then(|r| chat(r, shared, id()))
        }
        "/v1/completions" | "/completions" if post => {
            read_json(&mut request).and_then(|r| completions(r, shared, id()))
        }
        "/tokenize" | "/v1/tokenize" if post => {
            read_json(&mut request).and_then(|r| tokenize(r, backend))
        }
        "/detokenize" | "/v1/detokenize" if post => {
            read_json(&mut request).and_then(|r| detokenize(r, backend))
        }
        "/v1/models"
        | "/models"
        | "/health"
        | "/v1/health"
        | "/v1/chat/completions"
        | "/chat/completions"
        | "/v1/completions"
        | "/completions"
        | "/tokenize"
        | "/v1/tokenize"
        | "/detokenize"
        | "/v1/detokenize" => Err(ApiError::new(
            405,
            format!("{path} does not take {}", request.method()),
        )),
        p => match p.strip_prefix("/v1/models/") {
            Some(name) if get && name == backend.model_id() => Ok(Reply::Json(model(backend))),
            _ => Err(ApiError {
                code: Some("not_found"),
                ..ApiError::new(
                    404,
                    format!(
                        "no route for {p}; oprl serves /v1/chat/completions, /v1/completions, \
                         /v1/models, /tokenize and /detokenize"
                    ),
                )
            }),
        },
    };
    match reply {
        Ok(Reply::Json(body)) => respond_json(request, 200, &body),
        Ok(Reply::Events(events)) => respond_events(request, events),
        Err(e) => respond_json(request, e.status, &e.body()),
    }
}

fn respond_json(request: tiny_http::Request, status: u16, body: &Value) {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .expect("static header is valid");
    let response = tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(header);
    // A client that hung up cannot be answered; nothing else to do.
    let _ = request.respond(response);
}

/// Writes the events as they come, one HTTP chunk each, so every token reaches the client at
/// once; a client that hangs up drops the iterator and with it the generation.
fn respond_events(request: tiny_http::Request, events: Box<dyn Iterator<Item = Value>>) {
    let mut w = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let lines = events
        .map(|e| format!("data: {e}\n\n"))
        .chain(std::iter::once("data: [DONE]\n\n".to_string()));
    let mut write = |bytes: &[u8]| w.write_all(bytes).and_then(|()| w.flush());
    if write(head.as_bytes()).is_err() {
        return;
    }
    for line in lines {
        let chunk = format!("{:x}\r\n{line}\r\n", line.len());
        if write(chunk.as_bytes()).is_err() {
            return;
        }
    }
    let _ = write(b"0\r\n\r\n");
}

/// The body as `T`: 413 when too large, 400 when not JSON of that shape.
fn read_json<T: DeserializeOwned>(request: &mut tiny_http::Request) -> Result<T, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            format!("the request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    if request
        .body_length()
        .is_some_and(|n| n as u64 > MAX_BODY_BYTES)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::new(400, format!("cannot read the request body: {e}")))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(too_large());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(400, format!("invalid request body: {e}")))
}

fn model(backend: &dyn ChatBackend) -> Value {
    json!({
        "id": backend.model_id(),
        "object": "model",
        "created": 0,
        "owned_by": "oprl",
        "max_model_len": backend.max_model_len(),
    })
}

fn models(backend: &dyn ChatBackend) -> Value {
    json!({"object": "list", "data": [model(backend)]})
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 404 unless `model` names the served model.
fn check_model(model: Option<&str>, backend: &dyn ChatBackend) -> Result<(), ApiError> {
    match model {
        Some(m) if m != backend.model_id() => Err(ApiError {
            param: Some("model"),
            code: Some("model_not_found"),
            ..ApiError::new(
                404,
                format!(
                    "the model `{m}` does not exist; this server serves `{}`",
                    backend.model_id()
                ),
            )
        }),
        _ => Ok(()),
    }
}

/// The checked sampling settings of a request, before its prompts are known.
struct Settings {
    temperature: f64,
    top_p: f64,
    max_tokens: Option<usize>,
    stop: Vec<String>,
    seed: Option<u64>,
    n: usize,
    stream: bool,
    include_usage: bool,
}

fn settings(
    s: &Sampling,
    max_tokens: Option<usize>,
    backend: &dyn ChatBackend,
) -> Result<Settings, ApiError> {
    let defaults = backend.defaults();
    let temperature = s.temperature.unwrap_or(defaults.temperature);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::out_of_range(
            format!("temperature must be within [0, 2], got {temperature}"),
            "temperature",
        ));
    }
    let top_p = s.top_p.unwrap_or(defaults.top_p);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::out_of_range(
            format!("top_p must be within (0, 1], got {top_p}"),
            "top_p",
        ));
    }
    if max_tokens == Some(0) {
        return Err(ApiError::out_of_range(
            "max_tokens must be at least 1",
            "max_tokens",
        ));
    }
    let n = s.n.unwrap_or(1);
    if n == 0 || n > MAX_CHOICES {
        return Err(ApiError::out_of_range(
            format!("n must be within [1, {MAX_CHOICES}], got {n}"),
            "n",
        ));
    }
    let mut stop = defaults.stop;
    stop.extend(s.stop.iter().flatten().filter(|s| !s.is_empty()).cloned());
    Ok(Settings {
        temperature,
        top_p,
        max_tokens,
        stop,
        seed: s.seed,
        n,
        stream: s.stream.unwrap_or(false),
        include_usage: s.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

impl Settings {
    /// The job of one choice for `prompt`: `max_tokens` (else the backend's default) capped
    /// by what the context leaves after the prompt.
    fn job(
        &self,
        prompt: Vec<u32>,
        top_logprobs: usize,
        backend: &dyn ChatBackend,
    ) -> Result<GenerationJob, ApiError> {
        let context = backend.max_model_len();
        if prompt.is_empty() {
            return Err(ApiError::invalid("the prompt is empty", "prompt"));
        }
        if prompt.len() >= context {
            return Err(ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid(
                    format!(
                        "the prompt has {} tokens; this model's context is {context} tokens",
                        prompt.len()
                    ),
                    "messages",
                )
            });
        }
        let wanted = self
            .max_tokens
            .unwrap_or_else(|| backend.defaults().max_new_tokens.max(1));
        Ok(GenerationJob {
            options: SampleOptions {
                temperature: self.temperature,
                top_p: self.top_p,
                max_new_tokens: wanted.min(context - prompt.len()),
                stop: self.stop.clone(),
                admissible_only: false,
            },
            prompt,
            seed: self.seed,
            top_logprobs,
        })
    }
}

fn chat(request: ChatRequest, shared: &Arc<dyn ChatBackend>, id: u64) -> Routed {
    let backend = shared.as_ref();
    check_model(Some(&request.model), backend)?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid("`messages` is empty", "messages"));
    }
    let max_tokens = request
        .max_completion_tokens
        .or(request.sampling.max_tokens);
    let settings = settings(&request.sampling, max_tokens, backend)?;
    let top = request.top_logprobs.unwrap_or(0);
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::out_of_range(
            format!("top_logprobs must be within [0, {MAX_TOP_LOGPROBS}], got {top}"),
            "top_logprobs",
        ));
    }
    let wants_logprobs = request.logprobs.unwrap_or(false);
    if request.top_logprobs.is_some() && !wants_logprobs {
        return Err(ApiError::invalid(
            "top_logprobs needs logprobs set to true",
            "top_logprobs",
        ));
    }
    let prompt = backend
        .chat_prompt(&request.messages, true)
        .map_err(|e| ApiError::invalid(e, "messages"))?;
    let job = settings.job(prompt, top, backend)?;
    let shape = ReplyShape {
        endpoint: Endpoint::Chat,
        id: format!("chatcmpl-oprl-{id}"),
        model: backend.model_id(),
        created: unix_time(),
        logprobs: LogprobRequest {
            top: wants_logprobs.then_some(top),
        },
        stop: settings.stop.clone(),
        prompt_tokens: job.prompt.len(),
    };
    run(vec![job; settings.n], shape, &settings, shared)
}

fn completions(request: CompletionRequest, shared: &Arc<dyn ChatBackend>, id: u64) -> Routed {
    let backend = shared.as_ref();
    check_model(Some(&request.model), backend)?;
    if request.echo == Some(true) {
        return Err(ApiError::invalid("oprl does not echo prompts", "echo"));
    }
    let settings = settings(&request.sampling, request.sampling.max_tokens, backend)?;
    let top = request.logprobs.unwrap_or(0);
    if top > MAX_TOP_LOGPROBS {
        return Err(ApiError::out_of_range(
            format!("logprobs must be within [0, {MAX_TOP_LOGPROBS}], got {top}"),
            "logprobs",
        ));
    }
    let prompts: Vec<Vec<u32>> = match request.prompt {
        Prompt::Text(t) => vec![backend.encode(&t)],
        Prompt::Texts(ts) => ts.iter().map(|t| backend.encode(t)).collect(),
        Prompt::Ids(ids) => vec![ids],
        Prompt::IdLists(lists) => lists,
    };
    if prompts.is_empty() {
        return Err(ApiError::invalid("`prompt` is empty", "prompt"));
    }
    if prompts.len() * settings.n > MAX_CHOICES {
        return Err(ApiError::out_of_range(
            format!("at most {MAX_CHOICES} choices (prompts times n) per request"),
            "n",
        ));
    }
    let vocab = backend.vocab_size();
    if prompts.iter().flatten().any(|&t| t as usize >= vocab) {
        return Err(ApiError::out_of_range(
            format!("a prompt token id is not below the vocabulary size {vocab}"),
            "prompt",
        ));
    }
    let prompt_tokens = prompts.iter().map(Vec::len).sum();
    let mut jobs = Vec::with_capacity(prompts.len() * settings.n);
    for prompt in prompts {
        let job = settings.job(prompt, top, backend)?;
        jobs.extend(std::iter::repeat_n(job, settings.n));
    }
    let shape = ReplyShape {
        endpoint: Endpoint::Completion,
        id: format!("cmpl-oprl-{id}"),
        model: backend.model_id(),
        created: unix_time(),
        logprobs: LogprobRequest {
            top: request.logprobs,
        },
        stop: settings.stop.clone(),
        prompt_tokens,
    };
    run(jobs, shape, &settings, shared)
}

/// Starts `jobs` (one per choice) and answers with the whole reply or its stream.
fn run(
    jobs: Vec<GenerationJob>,
    shape: ReplyShape,
    settings: &Settings,
    backend: &Arc<dyn ChatBackend>,
) -> Routed {
    let count = jobs.len();
    let events = backend.generate(jobs);
    if settings.stream {
        return Ok(Reply::Events(Box::new(Stream::new(
            events,
            count,
            shape,
            settings.include_usage,
            backend.clone(),
        ))));
    }
    let outputs = engine::collect(&events, count).map_err(|e| ApiError::new(500, e))?;
    Ok(Reply::Json(whole_reply(&shape, &outputs, backend.as_ref())))
}

fn tokenize(request: TokenizeRequest, backend: &dyn ChatBackend) -> Routed {
    let tokens = match request {
        TokenizeRequest::Chat {
            model,
            messages,
            add_generation_prompt,
        } => {
            check_model(model.as_deref(), backend)?;
            backend
                .chat_prompt(&messages, add_generation_prompt)
                .map_err(|e| ApiError::invalid(e, "messages"))?
        }
        TokenizeRequest::Text { model, prompt } => {
            check_model(model.as_deref(), backend)?;
            backend.encode(&prompt)
        }
    };
    Ok(Reply::Json(json!({
        "count": tokens.len(),
        "max_model_len": backend.max_model_len(),
        "tokens": tokens,
    })))
}

fn detokenize(request: DetokenizeRequest, backend: &dyn ChatBackend) -> Routed {
    check_model(request.model.as_deref(), backend)?;
    let vocab = backend.vocab_size();
    if let Some(bad) = request.tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(ApiError::out_of_range(
            format!("token id {bad} is not below the vocabulary size {vocab}"),
            "tokens",
        ));
    }
    Ok(Reply::Json(
        json!({"prompt": backend.decode(&request.tokens)}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_openai_error_objects() {
        let e = ApiError::out_of_range("too hot", "temperature");
        assert_eq!(
            e.body(),
            json!({"error": {"message": "too hot", "type": "invalid_request_error",
                "param": "temperature", "code": "out_of_range"}})
        );
        assert_eq!(ApiError::new(404, "x").kind(), "not_found_error");
    }
}
