//! The JSON-lines environment protocol, both ways: [`serve`] answers requests on any reader
//! and writer for any built-in [`Environment`] (`oprl env serve sokoban|webshop`), and
//! [`ExternalEnv`] drives any program that speaks it (`env external { command = "..." }`), so
//! environments can be written in any language. Both sides read and write the same typed
//! messages, [`Request`] and [`Reply`].
//!
//! One JSON object per line. Requests:
//! `{"op":"reset","seed":N}` (or with `"split"` and `"index"`), Sokoban's
//! `{"op":"reset","level":{"room_fixed":[[..]],"room_state":[[..]]},"max_steps":N}`,
//! `{"op":"step","action":"TEXT"}`, `{"op":"close"}`.
//! Replies: `{"observation":{"text":..,"prompt":..},"reward":R,"done":B,"info":{"won":B,
//! "valid":B,"score":S,"state_key":K,..}}`, `{"closed":true}`, or `{"error":"..."}` for a
//! request that could not be served (the server keeps going).

use super::prompt::memory_lines;
use super::sokoban::game::Level;
use super::sokoban::{level_seed, SokobanEnv, EVAL_SEED_BASE};
use super::webshop::WebshopEnv;
use super::{EnvError, Environment, EpisodeOutcome, Observation, Split, StepResult, Task};
use crate::graph::ExternalSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Messages

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Reset(ResetRequest),
    Step { action: String },
    Close,
}

/// The ops a [`Request`] may name, for the message about an unknown one.
const OPS: [&str; 3] = ["reset", "step", "close"];

/// What a reset asks for: a task (`split` and `index`, or a protocol `seed`), or for Sokoban an
/// explicit `level` and/or a turn limit `max_steps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResetRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelGrids>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
}

/// An explicit level in gym-sokoban integer grids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelGrids {
    pub room_fixed: Vec<Vec<i64>>,
    pub room_state: Vec<Vec<i64>>,
}

impl ResetRequest {
    /// The request for `task`: its split and index, and its protocol seed for servers that
    /// only read `seed`.
    pub fn of_task(task: Task) -> ResetRequest {
        ResetRequest {
            seed: Some(level_seed(task)),
            split: Some(task.split),
            index: Some(task.index),
            ..ResetRequest::default()
        }
    }

    /// The task this request names: `split` and `index` when both are given (oprl's client
    /// sends them), else the `seed`; `None` when it names neither.
    pub fn task(&self) -> Option<Task> {
        match (self.split, self.index, self.seed) {
            (Some(split), Some(index), _) => Some(Task { split, index }),
            (_, _, Some(seed)) => Some(task_of_seed(seed)),
            _ => None,
        }
    }
}

impl Request {
    /// Reads one request line; the error is the message of the reply.
    pub fn parse(line: &str) -> Result<Request, String> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))?;
        let Value::Object(map) = &value else {
            return Err(format!("malformed request: not a JSON object: {value}"));
        };
        match map.get("op").and_then(Value::as_str) {
            None => return Err("malformed request: no string `op`".into()),
            Some(op) if !OPS.contains(&op) => {
                return Err(format!(
                    "malformed request: unknown op `{op}`; ops are {}",
                    OPS.join(", ")
                ))
            }
            Some(_) => {}
        }
        Request::deserialize(value).map_err(|e| format!("malformed request: {e}"))
    }
}

/// One reply line: the state after a reset or step, `{"closed": true}`, or `{"error": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<ReplyObservation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ReplyInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The observation of a reply, with the full prompt when the environment renders its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyObservation {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// A reply's `info`: what the client reads, plus anything else the environment reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyInfo {
    #[serde(default)]
    pub won: bool,
    #[serde(default = "valid_by_default")]
    pub valid: bool,
    /// The environment's own score so far (absent: `won` as 0 or 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// A key identical exactly when two states are the same (absent: the observation text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_key: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn valid_by_default() -> bool {
    true
}

impl Default for ReplyInfo {
    fn default() -> Self {
        ReplyInfo {
            won: false,
            valid: true,
            score: None,
            state_key: None,
            extra: Map::new(),
        }
    }
}

impl Reply {
    fn error(message: String) -> Reply {
        Reply {
            error: Some(message),
            ..Reply::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server

/// What the server needs from an environment beyond [`Environment`]: the reset requests and
/// reply fields that only some environments have. The defaults serve a plain environment.
pub trait Served: Environment {
    /// Serves a reset that asks for more than a task (Sokoban: an explicit `level`, or
    /// `max_steps`); `Ok(None)` leaves it to the generic reset of the request's task.
    fn reset_request(&mut self, _request: &ResetRequest) -> Result<Option<Observation>, String> {
        Ok(None)
    }

    /// Extra `info` fields of a reset reply (Sokoban: the room grids; WebShop: the actions).
    fn reset_info(&self) -> Map<String, Value> {
        Map::new()
    }
}

impl Served for SokobanEnv {
    fn reset_request(&mut self, request: &ResetRequest) -> Result<Option<Observation>, String> {
        let steps = request
            .max_steps
            .map_or(self.spec().max_turns, |n| n as usize);
        let level = match (&request.level, request.task()) {
            (Some(_), Some(_)) => return Err("reset takes `seed` or `level`, not both".into()),
            (Some(grids), None) => Level::from_grids(&grids.room_fixed, &grids.room_state)
                .map_err(|e| format!("bad level: {e}"))?,
            (None, Some(task)) if request.max_steps.is_some() => {
                SokobanEnv::level_for_seed(self.spec(), level_seed(task))
                    .map_err(|e| e.to_string())?
            }
            (None, _) => return Ok(None),
        };
        Ok(Some(self.reset_level(level, steps)))
    }

    fn reset_info(&self) -> Map<String, Value> {
        let level = self.game().level();
        let mut info = Map::new();
        info.insert("room_state".into(), json!(level.state_grid()));
        info.insert("room_fixed".into(), json!(level.fixed_grid()));
        info
    }
}

impl Served for WebshopEnv {
    fn reset_info(&self) -> Map<String, Value> {
        let mut info = Map::new();
        info.insert("available_actions".into(), json!(self.admissible_actions()));
        info.insert("goal_asin".into(), json!(self.goal().asin));
        info
    }
}

/// The task a protocol seed names: train task `i` is seed `i`, eval task `i` is seed `2^63 + i`
/// (the inverse of [`level_seed`]).
pub fn task_of_seed(seed: u64) -> Task {
    if seed >= EVAL_SEED_BASE {
        Task {
            split: Split::Eval,
            index: seed - EVAL_SEED_BASE,
        }
    } else {
        Task {
            split: Split::Train,
            index: seed,
        }
    }
}

/// Where a served session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    NotStarted,
    Running,
    Ended,
}

/// Serves one environment over JSON lines until `close` or end of input.
pub fn serve(
    env: &mut dyn Served,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut episode = Episode::NotStarted;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let request = Request::parse(&line);
        let close = request == Ok(Request::Close);
        let reply = match request {
            Err(message) => Err(message),
            Ok(Request::Close) => Ok(Reply {
                closed: Some(true),
                ..Reply::default()
            }),
            Ok(Request::Reset(request)) => reset(env, &request).inspect(|_| {
                episode = Episode::Running;
            }),
            Ok(Request::Step { action }) => step(env, &action, &mut episode),
        };
        serde_json::to_writer(&mut output, &reply.unwrap_or_else(Reply::error))?;
        output.write_all(b"\n")?;
        output.flush()?;
        if close {
            break;
        }
    }
    Ok(())
}

fn reset(env: &mut dyn Served, request: &ResetRequest) -> Result<Reply, String> {
    let observation = match env.reset_request(request)? {
        Some(observation) => observation,
        None => {
            let task = request
                .task()
                .ok_or("reset needs `seed` (or `split` and `index`)")?;
            env.reset(task).map_err(|e| e.to_string())?
        }
    };
    let info = ReplyInfo {
        won: false,
        valid: true,
        score: None,
        state_key: Some(env.state_key()),
        extra: env.reset_info(),
    };
    Ok(state_reply(env, &observation, 0.0, false, info))
}

fn step(env: &mut dyn Served, action: &str, episode: &mut Episode) -> Result<Reply, String> {
    match *episode {
        Episode::NotStarted => return Err("no episode yet: send a reset first".into()),
        Episode::Ended => return Err("the episode has ended: send a reset first".into()),
        Episode::Running => {}
    }
    let result = env.step(action).map_err(|e| e.to_string())?;
    if result.done {
        *episode = Episode::Ended;
    }
    let mut extra = match result.info {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("env_info".to_string(), other)]),
    };
    // The typed fields below say these.
    for key in ["won", "valid", "score", "state_key"] {
        extra.remove(key);
    }
    let info = ReplyInfo {
        won: result.won,
        valid: result.valid,
        score: Some(env.outcome().score),
        state_key: Some(env.state_key()),
        extra,
    };
    Ok(state_reply(
        env,
        &result.observation,
        result.reward,
        result.done,
        info,
    ))
}

fn state_reply(
    env: &dyn Served,
    observation: &Observation,
    reward: f64,
    done: bool,
    info: ReplyInfo,
) -> Reply {
    Reply {
        observation: Some(ReplyObservation {
            text: observation.text.clone(),
            prompt: Some(env.prompt()),
        }),
        reward: Some(reward),
        done: Some(done),
        info: Some(info),
        ..Reply::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// How many bytes of an external environment's stderr are kept for error messages.
const STDERR_TAIL: usize = 2000;

/// An environment in another process, speaking the protocol on its stdin/stdout.
pub struct ExternalEnv {
    spec: ExternalSpec,
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Set once the process is unusable (timed out or exited); every later call fails with it.
    broken: Option<String>,
    observation: Observation,
    env_prompt: Option<String>,
    turns: Vec<(String, String)>,
    info: ReplyInfo,
    env_return: f64,
    won: bool,
    done: bool,
}

impl ExternalEnv {
    /// Starts `spec.command` through the shell.
    pub fn spawn(spec: ExternalSpec) -> Result<ExternalEnv, EnvError> {
        let mut command = if cfg!(windows) {
            let mut c = Command::new("cmd");
            c.arg("/C").arg(&spec.command);
            c
        } else {
            let mut c = Command::new("sh");
            c.arg("-c").arg(&spec.command);
            c
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| EnvError::Failed {
                env: spec.command.clone(),
                message: format!("cannot start: {e}"),
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let mut pipe = stderr_pipe;
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut tail = sink.lock().unwrap_or_else(|p| p.into_inner());
                tail.push_str(&String::from_utf8_lossy(&buf[..n]));
                if tail.len() > STDERR_TAIL * 2 {
                    let mut cut = tail.len() - STDERR_TAIL;
                    while !tail.is_char_boundary(cut) {
                        cut += 1;
                    }
                    tail.drain(..cut);
                }
            }
        });
        Ok(ExternalEnv {
            stdin: child.stdin.take(),
            child,
            spec,
            replies,
            stderr,
            broken: None,
            observation: Observation {
                text: String::new(),
                image: None,
            },
            env_prompt: None,
            turns: Vec::new(),
            info: ReplyInfo::default(),
            env_return: 0.0,
            won: false,
            done: false,
        })
    }

    fn name(&self) -> String {
        self.spec.command.clone()
    }

    fn stderr_tail(&self) -> String {
        let tail = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let tail = tail.trim();
        if tail.is_empty() {
            String::new()
        } else {
            let start = tail.len().saturating_sub(STDERR_TAIL);
            let start = (start..tail.len())
                .find(|&i| tail.is_char_boundary(i))
                .unwrap_or(0);
            format!("; its stderr ends with:\n{}", &tail[start..])
        }
    }

    /// Marks the process unusable and kills it.
    fn break_with(&mut self, message: String) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.broken = Some(message.clone());
        message
    }

    /// Sends one request and waits for its reply line.
    fn request(&mut self, request: &Request) -> Result<Reply, EnvError> {
        if let Some(reason) = &self.broken {
            return Err(EnvError::Failed {
                env: self.name(),
                message: format!("the environment is no longer running ({reason})"),
            });
        }
        let mut line = serde_json::to_string(request).expect("requests serialise");
        line.push('\n');
        let sent = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()),
            None => Err(std::io::Error::other("stdin closed")),
        };
        let timeout = Duration::from_secs_f64(self.spec.timeout_s.max(0.001));
        let reply = match sent {
            Ok(()) => self.replies.recv_timeout(timeout),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        match reply {
            Ok(line) => {
                let reply: Reply =
                    serde_json::from_str(&line).map_err(|e| EnvError::Malformed {
                        env: self.name(),
                        message: format!("reply is not a protocol reply ({e}): {line}"),
                    })?;
                match reply.error {
                    Some(message) => Err(EnvError::Failed {
                        env: self.name(),
                        message,
                    }),
                    None => Ok(reply),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                self.break_with(format!("no reply within {} s", self.spec.timeout_s));
                Err(EnvError::Timeout {
                    env: self.name(),
                    seconds: self.spec.timeout_s,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Give the process a moment to finish so its status and stderr are complete.
                let status = wait_briefly(&mut self.child);
                std::thread::sleep(Duration::from_millis(20));
                let message = format!(
                    "the process exited ({}) without replying{}",
                    status.unwrap_or_else(|| "still running, stdout closed".into()),
                    self.stderr_tail()
                );
                let message = self.break_with(message);
                Err(EnvError::Failed {
                    env: self.name(),
                    message,
                })
            }
        }
    }

    fn read_observation(&mut self, reply: &mut Reply) -> Result<(), EnvError> {
        let observation = reply
            .observation
            .take()
            .ok_or_else(|| EnvError::Malformed {
                env: self.name(),
                message: "reply has no `observation.text`".into(),
            })?;
        self.observation = Observation {
            text: observation.text,
            image: None,
        };
        self.env_prompt = observation.prompt;
        Ok(())
    }
}

fn wait_briefly(child: &mut Child) -> Option<String> {
    for _ in 0..50 {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

impl Environment for ExternalEnv {
    fn reset(&mut self, task: Task) -> Result<Observation, EnvError> {
        // A process that died or went silent is replaced by a fresh one at the next episode.
        if self.broken.is_some() {
            let fresh = ExternalEnv::spawn(self.spec.clone())?;
            drop(std::mem::replace(self, fresh));
        }
        let mut reply = self.request(&Request::Reset(ResetRequest::of_task(task)))?;
        self.read_observation(&mut reply)?;
        self.turns.clear();
        self.info = reply.info.unwrap_or_default();
        self.env_return = 0.0;
        self.won = false;
        self.done = false;
        Ok(self.observation.clone())
    }

    fn step(&mut self, action_text: &str) -> Result<StepResult, EnvError> {
        if self.done {
            return Err(EnvError::Failed {
                env: self.name(),
                message: "step called after the episode ended; reset first".into(),
            });
        }
        let before = self.observation.text.clone();
        let mut reply = self.request(&Request::Step {
            action: action_text.to_string(),
        })?;
        let malformed = |what: &str| EnvError::Malformed {
            env: self.spec.command.clone(),
            message: format!("step reply has no {what}"),
        };
        let reward = reply.reward.ok_or_else(|| malformed("numeric `reward`"))?;
        let env_done = reply.done.ok_or_else(|| malformed("boolean `done`"))?;
        self.read_observation(&mut reply)?;
        let info = reply.info.unwrap_or_default();
        let (won, valid) = (info.won, info.valid);
        self.turns.push((before, action_text.trim().to_string()));
        self.env_return += reward;
        self.won = won;
        self.done = env_done || self.turns.len() >= self.spec.max_turns;
        let info_value = serde_json::to_value(&info).unwrap_or_default();
        self.info = info;
        Ok(StepResult {
            observation: self.observation.clone(),
            reward,
            done: self.done,
            valid,
            won,
            info: info_value,
        })
    }

    fn prompt(&self) -> String {
        if let Some(prompt) = &self.env_prompt {
            return prompt.clone();
        }
        let mut out = String::new();
        if self.spec.history > 0 && !self.turns.is_empty() {
            let (lines, _) =
                memory_lines(&self.turns, self.spec.history, |(observation, action)| {
                    (observation.as_str(), action.as_str())
                });
            out.push_str("Recent steps:\n");
            out.push_str(&lines);
            out.push('\n');
        }
        out.push_str("Current observation:\n");
        out.push_str(&self.observation.text);
        out.push_str("\nYour action:");
        out
    }

    fn outcome(&self) -> EpisodeOutcome {
        let score = self.info.score.unwrap_or(if self.won { 1.0 } else { 0.0 });
        EpisodeOutcome {
            won: self.won,
            score,
            env_return: self.env_return,
        }
    }

    fn state_key(&self) -> String {
        self.info
            .state_key
            .clone()
            .unwrap_or_else(|| self.observation.text.clone())
    }

    fn observation(&self) -> Observation {
        self.observation.clone()
    }
}

impl Drop for ExternalEnv {
    fn drop(&mut self) {
        if self.broken.is_none() {
            if let Some(stdin) = self.stdin.as_mut() {
                let close = serde_json::to_string(&Request::Close).expect("requests serialise");
                let _ = writeln!(stdin, "{close}");
                let _ = stdin.flush();
            }
        }
        // Closing stdin lets a well-behaved environment exit on its own.
        self.stdin = None;
        if wait_briefly(&mut self.child).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::SokobanSpec;

    fn run(spec: SokobanSpec, requests: &[&str]) -> Vec<Value> {
        let input = requests.join("\n");
        let mut out = Vec::new();
        let mut env = SokobanEnv::new(spec).unwrap();
        serve(&mut env, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn server_plays_an_explicit_level() {
        let replies = run(
            SokobanSpec::default(),
            &[
                r#"{"op":"step","action":"<action>up</action>"}"#,
                r#"this is not json"#,
                r#"{"op":"reset","level":{"room_fixed":[[0,0,0,0,0,0],[0,1,1,1,2,0],[0,0,0,0,0,0]],"room_state":[[0,0,0,0,0,0],[0,5,4,1,2,0],[0,0,0,0,0,0]]},"max_steps":5}"#,
                r#"{"op":"step","action":"<think>a</think><action>right</action>"}"#,
                r#"{"op":"step","action":"<think>b</think><action>right</action>"}"#,
                r#"{"op":"step","action":"<action>right</action>"}"#,
                r#"{"op":"close"}"#,
                r#"{"op":"reset","seed":1}"#,
            ],
        );
        assert_eq!(replies.len(), 7, "nothing is served after close");
        assert!(replies[0]["error"]
            .as_str()
            .unwrap()
            .contains("reset first"));
        assert!(replies[1]["error"].as_str().unwrap().contains("malformed"));
        assert_eq!(
            replies[2]["observation"]["text"],
            " # \t # \t # \t # \t # \t # \t\n # \t P \t X \t _ \t O \t # \t\n # \t # \t # \t # \t # \t # \t"
        );
        assert_eq!(replies[3]["reward"].as_f64(), Some(-0.1));
        assert_eq!(replies[3]["done"], false);
        assert_eq!(replies[3]["info"]["valid"], true);
        assert_eq!(
            replies[3]["info"]["room_state"],
            json!([[0, 0, 0, 0, 0, 0], [0, 1, 5, 4, 2, 0], [0, 0, 0, 0, 0, 0]])
        );
        assert_eq!(replies[4]["reward"].as_f64(), Some(10.9));
        assert_eq!(replies[4]["done"], true);
        assert_eq!(replies[4]["info"]["won"], true);
        assert!(replies[5]["error"].as_str().unwrap().contains("ended"));
        assert_eq!(replies[6]["closed"], true);
    }

    #[test]
    fn server_resets_by_seed_deterministically() {
        let replies = run(
            SokobanSpec::default(),
            &[
                r#"{"op":"reset","seed":7}"#,
                r#"{"op":"reset","seed":7}"#,
                r#"{"op":"reset"}"#,
            ],
        );
        assert_eq!(replies[0]["observation"], replies[1]["observation"]);
        let expected = SokobanEnv::level_for_seed(&SokobanSpec::default(), 7).unwrap();
        assert_eq!(
            replies[0]["info"]["room_state"],
            json!(expected.state_grid())
        );
        assert!(replies[2]["error"].as_str().unwrap().contains("seed"));
    }

    #[test]
    fn seeds_and_tasks_correspond() {
        for task in [
            Task {
                split: Split::Train,
                index: 0,
            },
            Task {
                split: Split::Train,
                index: 41,
            },
            Task {
                split: Split::Eval,
                index: 41,
            },
        ] {
            assert_eq!(task_of_seed(level_seed(task)), task);
        }
        assert_eq!(task_of_seed(EVAL_SEED_BASE + 3).split, Split::Eval);
        let reset = |text: &str| match Request::parse(text).unwrap() {
            Request::Reset(reset) => reset,
            other => panic!("not a reset: {other:?}"),
        };
        // oprl's client sends all three; `split` and `index` win.
        let eval_2 = Task {
            split: Split::Eval,
            index: 2,
        };
        assert_eq!(
            reset(r#"{"op":"reset","seed":9,"split":"eval","index":2}"#).task(),
            Some(eval_2)
        );
        assert_eq!(reset(r#"{"op":"reset"}"#).task(), None);
        assert!(Request::parse(r#"{"op":"reset","seed":-1}"#)
            .unwrap_err()
            .contains("-1"));
        assert!(Request::parse(r#"{"op":"reset","split":"dev","index":1}"#)
            .unwrap_err()
            .contains("train"));
        // What the client writes is what the server reads.
        let sent = serde_json::to_string(&Request::Reset(ResetRequest::of_task(eval_2))).unwrap();
        assert_eq!(reset(&sent).task(), Some(eval_2));
        assert_eq!(
            serde_json::to_string(&Request::Close).unwrap(),
            r#"{"op":"close"}"#
        );
    }

    #[test]
    fn server_rejects_unknown_ops_and_steps_without_action() {
        let replies = run(
            SokobanSpec::default(),
            &[
                r#"{"op":"jump"}"#,
                r#"[1,2]"#,
                r#"{"op":"reset","seed":2,"max_steps":1}"#,
                r#"{"op":"step"}"#,
                r#"{"op":"step","action":"<action>up</action>"}"#,
                r#"{"op":"step","action":"<action>up</action>"}"#,
            ],
        );
        assert!(replies[0]["error"]
            .as_str()
            .unwrap()
            .contains("unknown op `jump`"));
        assert!(replies[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a JSON object"));
        let expected = SokobanEnv::level_for_seed(&SokobanSpec::default(), 2).unwrap();
        assert_eq!(
            replies[2]["info"]["room_state"],
            json!(expected.state_grid())
        );
        assert!(replies[3]["error"].as_str().unwrap().contains("`action`"));
        // `max_steps = 1` ends the episode after one turn.
        assert_eq!(replies[4]["done"], true);
        assert_eq!(replies[4]["info"]["score"].as_f64(), Some(0.0));
        assert!(replies[5]["error"].as_str().unwrap().contains("ended"));
    }
}
