//! The judge and partner clients over loopback HTTP: against `oprl serve`'s server and against
//! small tiny_http servers that fail in chosen ways (5xx, garbage, malformed bodies, sleeping).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oprl::env::sotopia::embedded::embedded_scenarios;
use oprl::env::sotopia::{parse_action, EndpointPartner, Episode, SotopiaEnv};
use oprl::env::{Environment, Split, Task};
use oprl::graph::{
    EndpointSpec, JudgeBackend, JudgeOutcome, JudgeSpec, PartnerSpec, PromptStyle, Rubric,
    SotopiaSide, SotopiaSpec,
};
use oprl::model::SampleOptions;
use oprl::openai::engine::{Event, Token};
use oprl::openai::GenerationJob;
use oprl::openai::{ApiKey, ChatBackend, ChatClient, ChatMessage, ChatServer};
use oprl::reward::judge::{build_judge, judged_outcome, EpisodeJudge, LlmJudge};

/// What a fixture server answers: status, body, and how long to wait first.
type Reply = (u16, String, Duration);

struct Fixture {
    url: String,
    requests: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    last_auth: Arc<std::sync::Mutex<Option<String>>>,
}

/// A loopback server answering request `n` (from 0) with `reply(n)`, one thread per request.
fn fixture(reply: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Fixture {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let url = format!("http://{}/v1", server.server_addr().to_ip().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let last_auth = Arc::new(std::sync::Mutex::new(None));
    let reply = Arc::new(reply);
    let (r, p, a) = (requests.clone(), peak.clone(), last_auth.clone());
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let n = r.fetch_add(1, Ordering::SeqCst);
            let (reply, in_flight, peak, auth) =
                (reply.clone(), in_flight.clone(), p.clone(), a.clone());
            std::thread::spawn(move || {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                *auth.lock().unwrap() = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.to_string());
                let (status, text, wait) = reply(n);
                std::thread::sleep(wait);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = request
                    .respond(tiny_http::Response::from_string(text).with_status_code(status));
            });
        }
    });
    Fixture {
        url,
        requests,
        peak,
        last_auth,
    }
}

fn completion_body(content: &str) -> String {
    serde_json::json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
        .to_string()
}

fn dims(goal: i64) -> serde_json::Value {
    serde_json::json!({"believability": ["natural", 8], "relationship": ["better", 2], "knowledge": ["some", 4],
        "secret": ["kept", 0], "social_rules": ["fine", 0], "financial_and_material_benefits": ["none", 1], "goal": ["done", goal]})
}

fn judgement_reply(goal1: i64, goal2: i64) -> String {
    let json =
        serde_json::json!({"agent_1_evaluation": dims(goal1), "agent_2_evaluation": dims(goal2)});
    completion_body(&format!("```json\n{json}\n```"))
}

fn client(url: &str, timeout: Duration, retries: usize) -> ChatClient {
    let mut c = ChatClient::new(url, "judge-model", None, 0.0, timeout, retries);
    c.backoff = Duration::from_millis(5);
    c
}

fn episode(index: usize) -> Episode {
    let set = embedded_scenarios();
    let mut ep = Episode::new(&set.combo(index), 0, 20);
    for (i, line) in ["Hello, can we talk about it?", "Sure, go ahead.", "[leave]"]
        .iter()
        .enumerate()
    {
        ep.push(i % 2, parse_action(line)).unwrap();
    }
    ep
}

#[test]
fn judge_retries_server_errors_then_parses_the_evaluation() {
    let f = fixture(|n| {
        if n < 2 {
            (503, "busy".into(), Duration::ZERO)
        } else {
            (200, judgement_reply(8, 3), Duration::ZERO)
        }
    });
    let judge = LlmJudge::new(client(&f.url, Duration::from_secs(5), 2), 1);
    let j = judge.judge(&episode(0)).unwrap();
    assert_eq!(f.requests.load(Ordering::SeqCst), 3);
    assert_eq!((j.agents[0].goal, j.agents[1].goal), (8.0, 3.0));
    let spec = JudgeSpec {
        backend: JudgeBackend::Embedded,
        rubric: Rubric::Sotopia,
        outcome: JudgeOutcome::Goal,
        threshold: 6.0,
    };
    let out = judged_outcome(&j, &episode(0), &spec);
    assert!(out.success && out.score == 8.0);
    let overall = JudgeSpec {
        outcome: JudgeOutcome::Overall,
        ..spec
    };
    // (8 + 2 + 4 + 0 + 0 + 1 + 8) / 7
    assert!((judged_outcome(&j, &episode(0), &overall).score - 23.0 / 7.0).abs() < 1e-12);
}

#[test]
fn judge_that_keeps_failing_names_endpoint_status_and_last_reply() {
    let f = fixture(|_| {
        (
            500,
            "{\"error\": \"model overloaded\"}".into(),
            Duration::ZERO,
        )
    });
    let judge = LlmJudge::new(client(&f.url, Duration::from_secs(5), 2), 1);
    let err = judge.judge(&episode(0)).unwrap_err().to_string();
    assert_eq!(f.requests.load(Ordering::SeqCst), 3);
    assert!(
        err.contains(&format!("{}/chat/completions", f.url)),
        "{err}"
    );
    assert!(err.contains("failed after 3 attempt(s)"), "{err}");
    assert!(err.contains("last HTTP status 500"), "{err}");
    assert!(err.contains("model overloaded"), "{err}");
}

#[test]
fn garbage_and_out_of_range_replies_are_retried_then_reported() {
    let f = fixture(|n| match n {
        0 => (
            200,
            completion_body("I would rather not answer in JSON."),
            Duration::ZERO,
        ),
        _ => (200, judgement_reply(11, 3), Duration::ZERO),
    });
    let judge = LlmJudge::new(client(&f.url, Duration::from_secs(5), 1), 1);
    let err = judge.judge(&episode(0)).unwrap_err().to_string();
    assert_eq!(f.requests.load(Ordering::SeqCst), 2);
    assert!(err.contains("goal = 11 is outside 0..10"), "{err}");
    assert!(err.contains("last reply"), "{err}");
}

#[test]
fn malformed_bodies_and_client_errors() {
    let f = fixture(|_| (200, "<html>oops</html>".into(), Duration::ZERO));
    let err = client(&f.url, Duration::from_secs(5), 1)
        .complete(&[ChatMessage::user("hi")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("malformed chat-completions reply") && err.contains("<html>oops</html>"),
        "{err}"
    );
    assert_eq!(f.requests.load(Ordering::SeqCst), 2);
    // 401 is not worth retrying.
    let f = fixture(|_| (401, "bad key".into(), Duration::ZERO));
    let err = client(&f.url, Duration::from_secs(5), 3)
        .complete(&[ChatMessage::user("hi")])
        .unwrap_err()
        .to_string();
    assert_eq!(f.requests.load(Ordering::SeqCst), 1);
    assert!(
        err.contains("after 1 attempt(s)") && err.contains("401") && err.contains("bad key"),
        "{err}"
    );
}

#[test]
fn a_sleeping_server_times_out() {
    let f = fixture(|_| (200, completion_body("late"), Duration::from_secs(3)));
    let start = Instant::now();
    let err = client(&f.url, Duration::from_millis(300), 1)
        .complete(&[ChatMessage::user("hi")])
        .unwrap_err()
        .to_string();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        err.contains("timeout") && err.contains("after 2 attempt(s)"),
        "{err}"
    );
}

#[test]
fn the_api_key_is_sent_but_never_shown() {
    let f = fixture(|_| (403, "forbidden".into(), Duration::ZERO));
    let var = "OPRL_SOTOPIA_HTTP_TEST_KEY";
    std::env::set_var(var, "sk-test-secret-123");
    let spec = EndpointSpec {
        url: f.url.clone(),
        model: "m".into(),
        api_key_env: Some(var.into()),
        temperature: 0.0,
        timeout_s: 5.0,
        retries: 0,
        concurrency: 1,
    };
    let c = ChatClient::from_spec(&spec).unwrap();
    let err = c.complete(&[ChatMessage::user("hi")]).unwrap_err();
    assert_eq!(
        f.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-test-secret-123")
    );
    assert!(!err.to_string().contains("sk-test-secret-123"));
    assert!(!format!("{err:?} {c:?}").contains("sk-test-secret-123"));
    let _ = ApiKey::new("unused");
}

#[test]
fn a_batch_is_judged_with_bounded_concurrency() {
    let f = fixture(|_| (200, judgement_reply(7, 2), Duration::from_millis(150)));
    let spec = JudgeSpec {
        backend: JudgeBackend::Endpoint(EndpointSpec {
            url: f.url.clone(),
            model: "m".into(),
            api_key_env: None,
            temperature: 0.0,
            timeout_s: 5.0,
            retries: 0,
            concurrency: 2,
        }),
        rubric: Rubric::Sotopia,
        outcome: JudgeOutcome::Goal,
        threshold: 6.0,
    };
    let (judge, concurrency) = build_judge(&spec, None).unwrap();
    assert_eq!(concurrency, 2);
    let episodes: Vec<Episode> = (0..6).map(episode).collect();
    let js = judge.judge_batch(&episodes, concurrency).unwrap();
    assert_eq!(js.len(), 6);
    assert!(js.iter().all(|j| j.agents[0].goal == 7.0));
    assert_eq!(f.requests.load(Ordering::SeqCst), 6);
    assert_eq!(f.peak.load(Ordering::SeqCst), 2);
}

/// A backend that answers like a cooperative chat model: SOTOPIA-style JSON for agent
/// prompts, a judgement for evaluation prompts.
struct Cooperative;

/// Its tokens are the bytes of the text.
impl ChatBackend for Cooperative {
    fn model_id(&self) -> String {
        "cooperative".into()
    }
    fn max_model_len(&self) -> usize {
        1 << 16
    }
    fn vocab_size(&self) -> usize {
        256
    }
    fn defaults(&self) -> SampleOptions {
        SampleOptions {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens: 4096,
            stop: vec![],
            admissible_only: false,
        }
    }
    fn chat_prompt(&self, messages: &[ChatMessage], _: bool) -> Result<Vec<u32>, String> {
        let last = messages.last().ok_or("no messages")?;
        Ok(self.encode(&last.content))
    }
    fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }
    fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&ids.iter().map(|&b| b as u8).collect::<Vec<_>>()).into_owned()
    }
    fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
    }
    fn generate(&self, jobs: Vec<GenerationJob>) -> std::sync::mpsc::Receiver<(usize, Event)> {
        let (events, receiver) = std::sync::mpsc::channel();
        for (tag, job) in jobs.into_iter().enumerate() {
            let prompt = self.decode(&job.prompt);
            let reply = if prompt.contains("evaluate how well participants achieve their goals") {
                serde_json::json!({"agent_1_evaluation": dims(9), "agent_2_evaluation": dims(5)})
                    .to_string()
            } else {
                r#"{"action_type": "speak", "argument": "Yes, that works for me."}"#.to_string()
            };
            for (i, byte) in reply.bytes().enumerate() {
                let last = i + 1 == reply.len();
                let step = Event::Step {
                    token: Token {
                        id: byte.into(),
                        logprob: 0.0,
                        top: vec![],
                    },
                    text: reply[..=i].to_string(),
                    finished: last.then_some(true),
                };
                let _ = events.send((tag, step));
            }
        }
        receiver
    }
}

#[test]
fn serve_answers_models_chat_and_errors_and_drives_partner_and_judge() {
    let server = ChatServer::start("127.0.0.1:0", Arc::new(Cooperative)).unwrap();
    let url = server.base_url();
    let mut c = client(&url, Duration::from_secs(5), 0);
    c.model = "cooperative".into();
    assert_eq!(c.list_models().unwrap(), vec!["cooperative".to_string()]);

    // A partner over HTTP plays a whole episode inside the environment.
    let spec = SotopiaSpec {
        scenarios: None,
        hard_only: false,
        partner: PartnerSpec::SelfPlay,
        side: SotopiaSide::First,
        max_turns: 6,
    };
    let mut env = SotopiaEnv::new(
        Arc::new(embedded_scenarios()),
        None,
        &spec,
        PromptStyle::Compact,
        Box::new(EndpointPartner::new(c.clone())),
    );
    env.reset(Task {
        split: Split::Train,
        index: 0,
    })
    .unwrap();
    let mut done = false;
    for line in [
        "Could you lend me the ladder, please?",
        "Thanks a lot!",
        "I will bring it back tonight.",
    ] {
        done = env.step(line).unwrap().done;
    }
    assert!(done);
    let ep = env.episode().unwrap().clone();
    assert_eq!(ep.turns[1].action.argument, "Yes, that works for me.");

    // The judge over HTTP.
    let j = LlmJudge::new(c, 1).judge(&ep).unwrap();
    assert_eq!((j.agents[0].goal, j.agents[1].goal), (9.0, 5.0));

    // Protocol errors.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .post(&format!("{url}/chat/completions"))
        .send("{not json")
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = agent.get(&format!("{url}/nothing")).call().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    server.shutdown();
    // After shutdown nothing answers.
    assert!(client(&url, Duration::from_millis(500), 0)
        .list_models()
        .is_err());
}

/// `oprl serve`'s backend with a real (untrained) candle model: the protocol works end to end,
/// the partner gets text, and the judge reports the unusable reply with endpoint and text.
#[test]
fn a_real_candle_model_behind_the_server() {
    use oprl::graph::{Positions, SamplingSpec, TransformerSpec};
    use oprl::model::{small_config, LanguageModel, SampleOptions, Tokenizer};
    use oprl::openai::model_backend::ModelBackend;
    let alphabet: String = (32u8..127).map(char::from).chain(['\n']).collect();
    let tokenizer =
        Tokenizer::chars_with_words(&alphabet, &["[leave]".to_string(), "[none]".to_string()]);
    let spec = TransformerSpec {
        layers: 1,
        width: 32,
        heads: 2,
        mlp: 64,
        context: 4096,
        positions: Positions::Rope,
        tie_embeddings: true,
        patch: 4,
        sampling: SamplingSpec {
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 16,
            stop: vec![],
            actions: oprl::graph::ActionSpace::Free,
        },
    };
    let model = LanguageModel::random(
        small_config(&spec, tokenizer.vocab_size()),
        &tokenizer,
        &candle_core::Device::Cpu,
        3,
    )
    .unwrap();
    let opts = SampleOptions {
        temperature: 1.0,
        top_p: 1.0,
        max_new_tokens: 16,
        stop: vec!["\n".into()],
        admissible_only: false,
    };
    let backend = ModelBackend::new("tiny-policy", model, None, opts, 1);
    let server = ChatServer::start("127.0.0.1:0", Arc::new(backend)).unwrap();
    let mut c = client(&server.base_url(), Duration::from_secs(60), 1);
    c.model = "tiny-policy".into();
    assert_eq!(c.list_models().unwrap(), vec!["tiny-policy".to_string()]);

    let spec = SotopiaSpec {
        scenarios: None,
        hard_only: false,
        partner: PartnerSpec::SelfPlay,
        side: SotopiaSide::Second,
        max_turns: 4,
    };
    let partner = EndpointPartner::new(c.clone()).with_style(PromptStyle::Compact);
    let mut env = SotopiaEnv::new(
        Arc::new(embedded_scenarios()),
        None,
        &spec,
        PromptStyle::Compact,
        Box::new(partner),
    );
    env.reset(Task {
        split: Split::Train,
        index: 1,
    })
    .unwrap();
    // The model opened (agent 0); whatever it wrote was recorded as a turn.
    assert_eq!(env.episode().unwrap().turns.len(), 1);
    while !env.step("Sounds good to me.").unwrap().done {}
    assert_eq!(env.episode().unwrap().turns.len(), 4);

    // A seeded request is reproducible.
    let ask = |seed| {
        let body = serde_json::json!({"model": "tiny-policy", "messages": [{"role": "user", "content": "Hi"}], "seed": seed, "max_tokens": 8});
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        agent
            .post(&format!("{}/chat/completions", server.base_url()))
            .send_json(&body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let a: serde_json::Value = serde_json::from_str(&ask(5)).unwrap();
    let b: serde_json::Value = serde_json::from_str(&ask(5)).unwrap();
    assert_eq!(a["choices"][0]["message"], b["choices"][0]["message"]);
    assert!(a["usage"]["completion_tokens"].as_u64().unwrap() <= 8);

    // An untrained model cannot judge: the error says where and what it answered.
    let mut judge_client = c;
    judge_client.max_tokens = Some(12);
    let err = LlmJudge::new(judge_client, 1)
        .judge(&env.episode().unwrap().clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&server.base_url())
            && err.contains("attempt(s)")
            && err.contains("last reply"),
        "{err}"
    );
    server.shutdown();
}

/// `recipes/sotopia.oprl` at CI size (two iterations of 2 x 2 four-turn conversations, a
/// one-layer model), with `extra` overrides after the sizes.
fn tiny_sotopia_graph(extra: &[&str]) -> oprl::graph::ExecGraph {
    let recipe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/sotopia.oprl");
    let sets: Vec<String> = [
        "train.iterations = 2",
        "train.tasks = 2",
        "train.group = 2",
        "train.threads = 1",
        "eval.tasks = 2",
        "eval.every = 1",
        "env.max_turns = 4",
        "policy.layers = 1",
        "policy.width = 16",
        "policy.heads = 2",
        "policy.mlp = 32",
        "policy.context = 512",
        "policy.sampling.max_new_tokens = 2",
        "algorithm.minibatch = 2",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    oprl::compile::compile_file(&recipe, &sets)
        .unwrap_or_else(|d| panic!("the sotopia recipe does not compile: {d:?}"))
        .0
}

fn quiet_run(out: &std::path::Path) -> oprl::runtime::RunOptions {
    oprl::runtime::RunOptions {
        out: Some(out.to_path_buf()),
        ..Default::default()
    }
}

fn metrics_of(dir: &std::path::Path) -> Vec<oprl::runtime::IterationMetrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn endpoint_judge(url: &str) -> String {
    format!("reward.outcome = judge {{ endpoint = \"{url}\" model = \"judge-model\" retries = 1 }}")
}

#[test]
fn the_sotopia_recipe_trains_with_self_chat_and_the_embedded_judge() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let summary = oprl::runtime::run(tiny_sotopia_graph(&[]), &quiet_run(&out)).unwrap();
    assert_eq!(summary.iterations, 2);
    let m = metrics_of(&out);
    assert_eq!(m.len(), 2);
    for it in &m {
        let (goal, overall) = (it.judge_goal.unwrap(), it.judge_overall.unwrap());
        assert!((0.0..=10.0).contains(&goal), "{it:?}");
        // The seven dimensions' ranges bound their mean: (-5 - 10 - 10 - 5) / 7 .. (3 x 10 + 2 x 5) / 7.
        assert!((-30.0 / 7.0..=40.0 / 7.0).contains(&overall), "{it:?}");
        // The outcome is the goal score, so its mean is the judged goal mean.
        assert!((it.mean_outcome - goal).abs() < 1e-12, "{it:?}");
        // Only the policy's own turns are recorded: at most half of the four turns.
        assert!(it.mean_turns >= 1.0 && it.mean_turns <= 2.0, "{it:?}");
        assert!(it.eval_goal.is_some() && it.eval_overall.is_some());
        assert!(it.policy_loss.is_finite());
    }
    let initial = summary.initial_eval.unwrap();
    assert_eq!(initial.tasks, 2);
    assert!(initial.goal.is_some() && initial.overall.is_some());
    // The transcripts show the partner's turns, generated by the policy itself.
    let text = std::fs::read_to_string(out.join("transcripts/eval-000002.txt")).unwrap();
    assert!(text.contains("--- turn 2 ---"), "{text}");
}

#[test]
fn judged_metrics_are_the_judges_scores_of_the_policys_side() {
    // Every evaluation gives agent 1 (the policy, `side = first`) goal 7 and agent 2 goal 2.
    let f = fixture(|_| (200, judgement_reply(7, 2), Duration::ZERO));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let graph = tiny_sotopia_graph(&[&endpoint_judge(&f.url), "eval.every = 2"]);
    oprl::runtime::run(graph, &quiet_run(&out)).unwrap();
    let m = metrics_of(&out);
    assert_eq!(m.len(), 2);
    for it in &m {
        assert_eq!(it.judge_goal, Some(7.0));
        // (believability 8 + relationship 2 + knowledge 4 + secret 0 + social rules 0
        //  + financial 1 + goal 7) / 7
        assert!((it.judge_overall.unwrap() - 22.0 / 7.0).abs() < 1e-12);
        assert_eq!(it.mean_outcome, 7.0);
        // 7 > threshold 6.
        assert_eq!(it.success_rate, 1.0);
    }
    assert_eq!(m[1].eval_goal, Some(7.0));
    assert_eq!(m[1].eval_success, Some(1.0));
    // Two iterations of 4 episodes, evaluations of 2 episodes at iterations 0 and 2: each of
    // the 12 conversations is judged, and retried at most once (`retries = 1`) when a loopback
    // connection drops on a loaded machine (seen once in CI: 13 requests).
    let requests = f.requests.load(Ordering::SeqCst);
    let conversations = 2 * 4 + 2 * 2;
    assert!(
        (conversations..=2 * conversations).contains(&requests),
        "{requests} judge requests for {conversations} conversations"
    );
}

#[test]
fn a_failing_judge_fails_the_run_naming_the_endpoint_and_keeps_the_checkpoint() {
    // The first iteration's four episodes are judged; then the judge breaks down.
    let f = fixture(|n| {
        if n < 4 {
            (200, judgement_reply(5, 5), Duration::ZERO)
        } else {
            (
                500,
                "{\"error\": \"judge overloaded\"}".into(),
                Duration::ZERO,
            )
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let graph = tiny_sotopia_graph(&[
        &endpoint_judge(&f.url),
        "train.iterations = 3",
        "eval.every = 0",
        "output.checkpoint_every = 1",
    ]);
    let err = oprl::runtime::run(graph, &quiet_run(&out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}/chat/completions", f.url)),
        "{err}"
    );
    assert!(err.contains("last HTTP status 500"), "{err}");
    assert!(err.contains("judge overloaded"), "{err}");
    assert!(err.contains("last checkpoint is kept"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ending"], "failed");
    assert_eq!(summary["iterations"], 1);
    assert!(summary["error"]
        .as_str()
        .unwrap()
        .contains("judge overloaded"));
    // Iteration 1's checkpoint survives, complete, and the metrics stop with it.
    let ck = out.join("checkpoints/iter-000001");
    assert!(ck.join("state.json").is_file() && ck.join("policy.safetensors").is_file());
    assert_eq!(metrics_of(&out).len(), 1);
}
