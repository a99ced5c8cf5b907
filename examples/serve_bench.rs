//! How much `oprl serve`'s batching gains: the same requests sent one after another, then all
//! at once, against a server in this process, over real HTTP on localhost.
//!
//! ```sh
//! cargo run -j 1 --example serve_bench -- "$(sh scripts/fetch-test-model.sh)" 16 64
//! ```
//!
//! Arguments: a model (GGUF file, Hugging Face directory or run directory), the number of
//! requests (default 16) and `max_tokens` of each (default 64). Every request is greedy with a
//! different prompt; it prints the total time and the generated tokens per second of both ways,
//! and whether each concurrent answer equals its sequential one.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use oprl::openai::{ChatBackend, ChatServer};
use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(model) = args.get(1) else {
        eprintln!("usage: serve_bench MODEL [REQUESTS] [MAX_TOKENS]");
        std::process::exit(2);
    };
    let requests: usize = args.get(2).map_or(16, |a| a.parse().expect("REQUESTS"));
    let max_tokens: usize = args.get(3).map_or(64, |a| a.parse().expect("MAX_TOKENS"));
    oprl::runtime::setup::configure_threads(None);
    let backend = oprl::runtime::setup::load_backend(Path::new(model)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let id = backend.model_id();
    let server = ChatServer::start("127.0.0.1:0", Arc::new(backend)).expect("the server starts");
    let endpoint = format!("{}/chat/completions", server.base_url());
    let bodies: Vec<Value> = (0..requests)
        .map(|i| {
            json!({
                "model": id,
                "messages": [{"role": "user", "content":
                    format!("Write a short story about a robot named Unit {i}.")}],
                "temperature": 0,
                "max_tokens": max_tokens,
            })
        })
        .collect();
    let ask = |body: &Value| -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        agent
            .post(&endpoint)
            .send_json(body)
            .expect("the request succeeds")
            .body_mut()
            .read_json()
            .expect("a JSON reply")
    };
    // Warm up (first-call allocations) outside the timings.
    ask(&bodies[0]);

    let start = Instant::now();
    let sequential: Vec<Value> = bodies.iter().map(ask).collect();
    let sequential_time = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let concurrent: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies.iter().map(|b| s.spawn(|| ask(b))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let concurrent_time = start.elapsed().as_secs_f64();

    let tokens = |replies: &[Value]| -> u64 {
        replies
            .iter()
            .map(|r| r["usage"]["completion_tokens"].as_u64().unwrap_or(0))
            .sum()
    };
    let same = sequential
        .iter()
        .zip(&concurrent)
        .filter(|(a, b)| a["choices"] == b["choices"])
        .count();
    println!("model {id}: {requests} requests, max_tokens {max_tokens}, greedy");
    for (name, time, replies) in [
        ("one after another", sequential_time, &sequential),
        ("all at once", concurrent_time, &concurrent),
    ] {
        let n = tokens(replies);
        println!(
            "{name:>18}: {time:7.2} s total, {n} tokens, {:7.1} tokens/s",
            n as f64 / time
        );
    }
    println!(
        "speed-up {:.2}x; {same}/{requests} concurrent answers equal their sequential ones",
        sequential_time / concurrent_time
    );
    server.shutdown();
}
