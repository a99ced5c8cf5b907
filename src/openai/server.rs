//! `oprl serve`'s HTTP side: `/v1/chat/completions` and `/v1/models` on tiny_http, answering
//! from any [`ChatBackend`] (oprl's candle models in practice).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::ChatRequest;

/// A generated reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// `true` when generation stopped at a stop string or end of sequence, `false` when it ran
    /// out of tokens (`finish_reason` "length").
    pub stopped: bool,
}

/// Something that answers chat requests.
pub trait ChatBackend: Send + Sync {
    /// The id `/v1/models` lists and replies carry.
    fn model_id(&self) -> String;
    /// Generates the assistant's reply; errors are reported to the client as HTTP 500.
    fn complete(&self, request: &ChatRequest) -> Result<Completion, String>;
}

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

/// Request-handling threads; the backend decides how much of its work really runs in parallel.
const WORKERS: usize = 4;
/// How often idle workers check for shutdown.
const POLL: Duration = Duration::from_millis(50);
/// Request bodies above this are refused (413).
const MAX_BODY_BYTES: u64 = 8 << 20;

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
                            Ok(Some(request)) => handle(request, backend.as_ref(), &counter),
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

fn json_response(
    status: u16,
    body: serde_json::Value,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .expect("static header is valid");
    tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(header)
}

fn error_body(message: &str, kind: &str) -> serde_json::Value {
    json!({"error": {"message": message, "type": kind}})
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn handle(mut request: tiny_http::Request, backend: &dyn ChatBackend, counter: &AtomicU64) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method = request.method().clone();
    let response = match (method, path.trim_end_matches('/')) {
        (tiny_http::Method::Get, "/v1/models" | "/models") => json_response(
            200,
            json!({"object": "list", "data": [
                {"id": backend.model_id(), "object": "model", "created": 0, "owned_by": "oprl"}
            ]}),
        ),
        (tiny_http::Method::Post, "/v1/chat/completions" | "/chat/completions") => {
            let mut body = String::new();
            let read = request
                .as_reader()
                .take(MAX_BODY_BYTES + 1)
                .read_to_string(&mut body);
            if read.is_err() {
                json_response(
                    400,
                    error_body(
                        "the request body is not UTF-8 text",
                        "invalid_request_error",
                    ),
                )
            } else if body.len() as u64 > MAX_BODY_BYTES {
                json_response(
                    413,
                    error_body("request body too large", "invalid_request_error"),
                )
            } else {
                chat(&body, backend, counter)
            }
        }
        (_, p) => json_response(
            404,
            error_body(
                &format!("no route for {p}; oprl serves /v1/chat/completions and /v1/models"),
                "not_found",
            ),
        ),
    };
    // A client that hung up cannot be answered; nothing else to do.
    let _ = request.respond(response);
}

fn chat(
    body: &str,
    backend: &dyn ChatBackend,
    counter: &AtomicU64,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let request: ChatRequest = match serde_json::from_str(body) {
        Ok(r) => r,
        Err(e) => {
            return json_response(
                400,
                error_body(
                    &format!("invalid chat request: {e}"),
                    "invalid_request_error",
                ),
            )
        }
    };
    if request.messages.is_empty() {
        return json_response(
            400,
            error_body("`messages` is empty", "invalid_request_error"),
        );
    }
    match backend.complete(&request) {
        Ok(c) => {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            json_response(
                200,
                json!({
                    "id": format!("chatcmpl-oprl-{n}"),
                    "object": "chat.completion",
                    "created": unix_time(),
                    "model": backend.model_id(),
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": c.text},
                        "finish_reason": if c.stopped { "stop" } else { "length" },
                    }],
                    "usage": {
                        "prompt_tokens": c.prompt_tokens,
                        "completion_tokens": c.completion_tokens,
                        "total_tokens": c.prompt_tokens + c.completion_tokens,
                    },
                }),
            )
        }
        Err(e) => json_response(500, error_body(&e, "server_error")),
    }
}
