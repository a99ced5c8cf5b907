//! `oprl serve` over real HTTP on localhost with the real test model (SmolLM2-135M-Instruct,
//! GGUF): transformers' reference case (`tests/data/conformance/smollm2_reference.json`) through
//! the server (tokenize ids, greedy text, per-token log-probs within 2e-3), streaming that
//! concatenates to the plain reply, `n`, stop strings, `/v1/completions`, errors with their
//! statuses, concurrent requests batched to the same answers as sequential ones, and the
//! official `openai` Python client (`tests/openai_client/check.py`, in a venv that
//! `scripts/openai-client-venv.sh` makes and caches; the test fails when it cannot).

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use oprl::model::chat::Message;
use oprl::openai::model_backend::ModelBackend;
use oprl::openai::{ChatBackend, ChatServer};
use serde::Deserialize;
use serde_json::{json, Value};

/// transformers' f32 log-probs against ours (both f32, different summation orders).
const TOLERANCE: f64 = 2e-3;

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    messages: Vec<Message>,
    rendered: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    greedy_text: String,
    greedy_logprobs: Vec<f64>,
    first_top5: Vec<(u32, f64)>,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("data/conformance/smollm2_reference.json")).unwrap()
}

struct Served {
    server: ChatServer,
    model: String,
}

/// One server over the GGUF model per test binary.
fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let backend =
            ModelBackend::from_pretrained(&common::model_path(), &candle_core::Device::Cpu)
                .expect("the GGUF model loads");
        let model = backend.model_id();
        let server = ChatServer::start("127.0.0.1:0", Arc::new(backend)).unwrap();
        Served { server, model }
    })
}

fn url(path: &str) -> String {
    format!("http://{}{path}", served().server.addr())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` and returns the status and the body text.
fn post_raw(path: &str, body: &str) -> (u16, String) {
    let mut r = agent()
        .post(&url(path))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    (status, text)
}

fn post(path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = post_raw(path, &body.to_string());
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

fn ok(path: &str, body: &Value) -> Value {
    let (status, v) = post(path, body);
    assert_eq!(status, 200, "{v}");
    v
}

/// The `data:` payloads of a server-sent-events body, which must end with `[DONE]`.
fn events(body: &str) -> Vec<Value> {
    let data: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an event: {e:?}"))
        })
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn chat_body(case: &Case, extra: Value) -> Value {
    let mut body = json!({
        "model": served().model,
        "messages": case.messages,
        "temperature": 0,
        "max_tokens": 32,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= TOLERANCE, "{what}: {got} vs {want}");
}

#[test]
fn tokenize_gives_the_reference_ids_and_detokenize_inverts() {
    for case in reference().cases {
        let v = ok(
            "/tokenize",
            &json!({"messages": case.messages, "add_generation_prompt": true}),
        );
        let ids: Vec<u32> = serde_json::from_value(v["tokens"].clone()).unwrap();
        assert_eq!(ids, case.prompt_ids);
        assert_eq!(v["count"], case.prompt_ids.len());
        assert_eq!(v["max_model_len"], 8192);
        let v = ok("/tokenize", &json!({"prompt": case.rendered}));
        assert_eq!(v["tokens"], json!(case.prompt_ids));
        let v = ok("/detokenize", &json!({"tokens": case.greedy_ids}));
        assert_eq!(v["prompt"], case.greedy_text);
    }
}

#[test]
fn the_reference_case_holds_through_the_server() {
    for case in reference().cases {
        let v = ok(
            "/v1/chat/completions",
            &chat_body(&case, json!({"logprobs": true, "top_logprobs": 5})),
        );
        let choice = &v["choices"][0];
        assert_eq!(choice["message"]["content"], case.greedy_text);
        assert_eq!(choice["finish_reason"], "stop");
        let content = choice["logprobs"]["content"].as_array().unwrap();
        assert_eq!(content.len(), case.greedy_ids.len());
        for (i, (entry, want)) in content.iter().zip(&case.greedy_logprobs).enumerate() {
            close(
                entry["logprob"].as_f64().unwrap(),
                *want,
                &format!("token {i}"),
            );
            let text = entry["token"].as_str().unwrap();
            assert_eq!(entry["bytes"], json!(text.as_bytes()));
            assert_eq!(entry["top_logprobs"].as_array().unwrap().len(), 5);
        }
        let top = content[0]["top_logprobs"].as_array().unwrap();
        for (got, (id, want)) in top.iter().zip(&case.first_top5) {
            close(
                got["logprob"].as_f64().unwrap(),
                *want,
                &format!("top id {id}"),
            );
            let text = ok("/detokenize", &json!({"tokens": [id]}))["prompt"].clone();
            assert_eq!(got["token"], text, "top id {id}");
        }
        assert_eq!(v["usage"]["prompt_tokens"], case.prompt_ids.len());
        assert_eq!(v["usage"]["completion_tokens"], case.greedy_ids.len());
    }
}

#[test]
fn streamed_chunks_concatenate_to_the_plain_reply() {
    let case = &reference().cases[0];
    for extra in [
        json!({}),
        json!({"stop": ["equals 8"]}),
        json!({"max_tokens": 3}),
    ] {
        let plain = ok("/v1/chat/completions", &chat_body(case, extra.clone()));
        let mut streamed = chat_body(case, extra.clone());
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        streamed["logprobs"] = json!(true);
        let (status, body) = post_raw("/v1/chat/completions", &streamed.to_string());
        assert_eq!(status, 200, "{body}");
        let chunks = events(&body);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, plain["choices"][0]["message"]["content"], "{extra}");
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        let reasons: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .map(|c| &c["finish_reason"])
            .filter(|r| !r.is_null())
            .collect();
        assert_eq!(reasons, vec![&plain["choices"][0]["finish_reason"]]);
        // The usage chunk comes last, with no choices.
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"], plain["usage"]);
        let logged: usize = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
            .map(Vec::len)
            .sum();
        assert_eq!(logged, plain["usage"]["completion_tokens"]);
    }
    let plain = ok(
        "/v1/chat/completions",
        &chat_body(case, json!({"stop": "equals 8"})),
    );
    assert_eq!(plain["choices"][0]["message"]["content"], "3+5 ");
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");
}

#[test]
fn n_choices_greedy_and_seeded() {
    let case = &reference().cases[0];
    let v = ok("/v1/chat/completions", &chat_body(case, json!({"n": 3})));
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["message"]["content"], case.greedy_text);
    }
    assert_eq!(v["usage"]["prompt_tokens"], case.prompt_ids.len());
    assert_eq!(v["usage"]["completion_tokens"], 3 * case.greedy_ids.len());
    let sampled = json!({"n": 4, "temperature": 1.0, "seed": 11, "max_tokens": 12});
    let a = ok("/v1/chat/completions", &chat_body(case, sampled.clone()));
    let b = ok("/v1/chat/completions", &chat_body(case, sampled));
    assert_eq!(
        a["choices"], b["choices"],
        "a seed makes a request reproducible"
    );
    let texts: std::collections::BTreeSet<&str> = a["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap())
        .collect();
    assert!(texts.len() > 1, "the choices of one seed differ: {texts:?}");
}

#[test]
fn completions_take_a_raw_prompt() {
    let case = &reference().cases[0];
    let body = json!({
        "model": served().model, "prompt": case.rendered, "temperature": 0, "max_tokens": 32,
        "logprobs": 2,
    });
    let v = ok("/v1/completions", &body);
    assert_eq!(v["object"], "text_completion");
    let choice = &v["choices"][0];
    assert_eq!(choice["text"], case.greedy_text);
    let lp = &choice["logprobs"];
    let logprobs = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(logprobs.len(), case.greedy_ids.len());
    for (got, want) in logprobs.iter().zip(&case.greedy_logprobs) {
        close(got.as_f64().unwrap(), *want, "completion token");
    }
    assert_eq!(lp["tokens"].as_array().unwrap().len(), logprobs.len());
    assert_eq!(lp["top_logprobs"][0].as_object().unwrap().len(), 2);
    assert_eq!(lp["text_offset"][0], 0);
    // Token ids as the prompt, streamed.
    let mut body = body;
    body["prompt"] = json!(case.prompt_ids);
    body["stream"] = json!(true);
    let (status, text) = post_raw("/v1/completions", &body.to_string());
    assert_eq!(status, 200, "{text}");
    let streamed: String = events(&text)
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, case.greedy_text);
}

#[test]
fn models_lists_the_served_model() {
    let v: Value = agent()
        .get(&url("/v1/models"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(v["data"][0]["id"], served().model);
}

#[test]
fn errors_are_openai_error_objects_with_their_status() {
    let case = &reference().cases[0];
    let model = &served().model;
    let expect = |path: &str, body: String, status: u16, param: Option<&str>| {
        let (got, text) = post_raw(path, &body);
        assert_eq!(got, status, "{path} {body:.200}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string() && e.get("code").is_some(), "{v}");
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{v}");
        }
    };
    let chat = "/v1/chat/completions";
    let with = |extra: Value| chat_body(case, extra).to_string();
    expect(chat, "{not json".into(), 400, None);
    expect(chat, json!({"model": model}).to_string(), 400, None);
    expect(
        chat,
        json!({"model": model, "messages": []}).to_string(),
        400,
        Some("messages"),
    );
    expect(chat, with(json!({"temperature": "hot"})), 400, None);
    expect(
        chat,
        with(json!({"top_logprobs": 2})),
        400,
        Some("top_logprobs"),
    );
    expect(chat, with(json!({"model": "gpt-4"})), 404, Some("model"));
    expect("/v1/nothing", "{}".into(), 404, None);
    expect(
        chat,
        with(json!({"temperature": 5})),
        422,
        Some("temperature"),
    );
    expect(chat, with(json!({"top_p": 0})), 422, Some("top_p"));
    expect(chat, with(json!({"n": 0})), 422, Some("n"));
    expect(chat, with(json!({"n": 1000})), 422, Some("n"));
    expect(
        chat,
        with(json!({"max_tokens": 0})),
        422,
        Some("max_tokens"),
    );
    expect(
        chat,
        with(json!({"logprobs": true, "top_logprobs": 99})),
        422,
        None,
    );
    let long = "word ".repeat(9000);
    let too_long = json!({"model": model, "messages": [{"role": "user", "content": long}]});
    expect(chat, too_long.to_string(), 400, Some("messages"));
    let huge = format!(
        r#"{{"model": "{model}", "messages": [], "pad": "{}"}}"#,
        "x".repeat(9 << 20)
    );
    expect(chat, huge, 413, None);
    expect(
        "/detokenize",
        json!({"tokens": [1 << 30]}).to_string(),
        422,
        Some("tokens"),
    );
    let prompt = json!({"model": model, "prompt": "", "max_tokens": 4});
    expect("/v1/completions", prompt.to_string(), 400, Some("prompt"));
    // max_tokens beyond the context is capped, not refused; the server still answers.
    let v = ok(chat, &chat_body(case, json!({"max_tokens": 1_000_000})));
    assert_eq!(v["choices"][0]["message"]["content"], case.greedy_text);
}

#[test]
fn concurrent_requests_are_batched_to_the_sequential_answers() {
    let prompts: Vec<String> = (0..8)
        .map(|i| format!("Count from {i} to {} in words.", i + 3))
        .collect();
    let body = |p: &String, max: usize| {
        json!({"model": served().model, "messages": [{"role": "user", "content": p}],
               "temperature": 0, "max_tokens": max})
    };
    // Different lengths, so rows leave the batch at different steps.
    let sequential: Vec<Value> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| ok("/v1/chat/completions", &body(p, 6 + 2 * i))["choices"][0].clone())
        .collect();
    let concurrent: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let b = body(p, 6 + 2 * i);
                s.spawn(move || ok("/v1/chat/completions", &b)["choices"][0].clone())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(concurrent, sequential);
}

/// The Python interpreter of a venv with the pinned `openai` client.
fn openai_python() -> PathBuf {
    const SCRIPT: &str = "scripts/openai-client-venv.sh";
    let out = std::process::Command::new("sh")
        .arg(SCRIPT)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("`sh {SCRIPT}` did not start: {e}"));
    assert!(
        out.status.success(),
        "`sh {SCRIPT}` could not make the venv with the openai client (it needs python3 with \
         venv and network access to PyPI on first use):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[test]
fn the_official_openai_client_works() {
    let python = openai_python();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(python)
        .arg(format!("{root}/tests/openai_client/check.py"))
        .arg(served().server.base_url())
        .arg(&served().model)
        .arg(format!(
            "{root}/tests/data/conformance/smollm2_reference.json"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tests/openai_client/check.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
