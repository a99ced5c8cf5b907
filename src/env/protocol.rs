//! The JSON-lines environment protocol, both ways: `oprl env serve sokoban` answers requests
//! on stdin/stdout, and [`ExternalEnv`] drives any program that speaks it
//! (`env external { command = "..." }`), so environments can be written in any language.
//!
//! One JSON object per line. Requests:
//! `{"op":"reset","seed":N}`, `{"op":"reset","level":{"room_fixed":[[..]],"room_state":[[..]]},
//! "max_steps":N}`, `{"op":"step","action":"TEXT"}`, `{"op":"close"}`.
//! Replies: `{"observation":{"text":..},"reward":R,"done":B,"info":{"won":B,"valid":B,..}}`,
//! or `{"error":"..."}` for a request that could not be served (the server keeps going).

use super::sokoban::game::Level;
use super::sokoban::{level_seed, SokobanEnv};
use super::{EnvError, Environment, EpisodeOutcome, Observation, StepResult, Task};
use crate::graph::{ExternalSpec, ObservationKind, PromptStyle, SokobanSpec};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Server

/// An explicit level in gym-sokoban integer grids.
#[derive(Debug, Deserialize)]
struct LevelGrids {
    room_fixed: Vec<Vec<i64>>,
    room_state: Vec<Vec<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Reset {
        seed: Option<u64>,
        level: Option<LevelGrids>,
        max_steps: Option<usize>,
    },
    Step {
        action: String,
    },
    Close,
}

/// Applies `KEY=VALUE` overrides to a Sokoban spec: `room=6x6` (or `[6,6]`), `boxes`,
/// `max_turns`, `search_depth`, `history`, `observation=text|image`, `prompt=verl|compact`.
pub fn apply_overrides(spec: &mut SokobanSpec, sets: &[String]) -> Result<(), String> {
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| format!("`{set}` is not KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        let number = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("`{key}` needs a whole number, got `{v}`"))
        };
        match key {
            "room" => {
                let cleaned = value.trim_start_matches('[').trim_end_matches(']');
                let parts: Vec<&str> = cleaned.split(['x', ',']).map(str::trim).collect();
                if parts.len() != 2 {
                    return Err(format!("`room` needs ROWSxCOLS, got `{value}`"));
                }
                spec.room = [number(parts[0])?, number(parts[1])?];
            }
            "boxes" => spec.boxes = number(value)?,
            "max_turns" | "max_steps" => spec.max_turns = number(value)?,
            "search_depth" => spec.search_depth = number(value)?,
            "history" => spec.history = number(value)?,
            "observation" => {
                spec.observation = match value {
                    "text" => ObservationKind::Text,
                    "image" => ObservationKind::Image,
                    _ => return Err(format!("`observation` is `text` or `image`, got `{value}`")),
                }
            }
            "prompt" => {
                spec.prompt = match value {
                    "verl" => PromptStyle::Verl,
                    "compact" => PromptStyle::Compact,
                    _ => return Err(format!("`prompt` is `verl` or `compact`, got `{value}`")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown key `{key}`; valid keys: room, boxes, max_turns, search_depth, \
                     history, observation, prompt"
                ))
            }
        }
    }
    Ok(())
}

/// Serves one Sokoban environment over JSON lines until `close` or end of input.
pub fn serve(
    spec: SokobanSpec,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut env = SokobanEnv::new(spec).map_err(std::io::Error::other)?;
    let mut started = false;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let (reply, close) = match serde_json::from_str::<Request>(&line) {
            Err(e) => (json!({ "error": format!("malformed request: {e}") }), false),
            Ok(Request::Close) => (json!({ "closed": true }), true),
            Ok(request) => (
                handle(&mut env, &mut started, request)
                    .unwrap_or_else(|message| json!({ "error": message })),
                false,
            ),
        };
        serde_json::to_writer(&mut output, &reply)?;
        output.write_all(b"\n")?;
        output.flush()?;
        if close {
            break;
        }
    }
    Ok(())
}

/// Serves on the process's stdin and stdout.
pub fn serve_stdio(spec: SokobanSpec) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    serve(spec, stdin.lock(), stdout.lock())
}

fn handle(env: &mut SokobanEnv, started: &mut bool, request: Request) -> Result<Value, String> {
    match request {
        Request::Reset {
            seed,
            level,
            max_steps,
        } => {
            let observation = match (seed, level) {
                (Some(_), Some(_)) => return Err("reset takes `seed` or `level`, not both".into()),
                (None, None) => return Err("reset needs `seed` or `level`".into()),
                (Some(seed), None) => {
                    let level =
                        SokobanEnv::level_for_seed(env.spec(), seed).map_err(|e| e.to_string())?;
                    let steps = max_steps.unwrap_or(env.spec().max_turns);
                    env.reset_level(level, steps)
                }
                (None, Some(grids)) => {
                    let level = Level::from_grids(&grids.room_fixed, &grids.room_state)
                        .map_err(|e| format!("bad level: {e}"))?;
                    let steps = max_steps.unwrap_or(env.spec().max_turns);
                    env.reset_level(level, steps)
                }
            };
            *started = true;
            Ok(json!({
                "observation": observation_json(env, &observation),
                "reward": 0.0,
                "done": false,
                "info": {
                    "won": false,
                    "valid": true,
                    "room_state": env.game().level().state_grid(),
                    "room_fixed": env.game().level().fixed_grid(),
                    "state_key": env.state_key(),
                },
            }))
        }
        Request::Step { action } => {
            if !*started {
                return Err("no episode yet: send a reset first".into());
            }
            let result = env.step(&action).map_err(|e| e.to_string())?;
            Ok(step_json(env, &result))
        }
        Request::Close => Ok(json!({ "closed": true })),
    }
}

fn observation_json(env: &SokobanEnv, observation: &Observation) -> Value {
    json!({ "text": observation.text, "prompt": env.prompt() })
}

fn step_json(env: &SokobanEnv, result: &StepResult) -> Value {
    let mut info = result.info.clone();
    if let Value::Object(map) = &mut info {
        map.insert("won".into(), json!(result.won));
        map.insert("valid".into(), json!(result.valid));
        map.insert("state_key".into(), json!(env.state_key()));
    }
    json!({
        "observation": observation_json(env, &result.observation),
        "reward": result.reward,
        "done": result.done,
        "info": info,
    })
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
    info: Value,
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
            info: Value::Null,
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
    fn request(&mut self, request: &Value) -> Result<Value, EnvError> {
        if let Some(reason) = &self.broken {
            return Err(EnvError::Failed {
                env: self.name(),
                message: format!("the environment is no longer running ({reason})"),
            });
        }
        let mut line = request.to_string();
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
                let value: Value =
                    serde_json::from_str(&line).map_err(|e| EnvError::Malformed {
                        env: self.name(),
                        message: format!("reply is not JSON ({e}): {line}"),
                    })?;
                if let Some(error) = value.get("error") {
                    let message = error
                        .as_str()
                        .map_or_else(|| error.to_string(), String::from);
                    return Err(EnvError::Failed {
                        env: self.name(),
                        message,
                    });
                }
                Ok(value)
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

    fn read_observation(&mut self, reply: &Value) -> Result<(), EnvError> {
        let obs = reply.get("observation");
        let text = obs
            .and_then(|o| o.get("text"))
            .and_then(Value::as_str)
            .ok_or_else(|| EnvError::Malformed {
                env: self.name(),
                message: format!("reply has no `observation.text`: {reply}"),
            })?;
        self.observation = Observation {
            text: text.to_string(),
            image: None,
        };
        self.env_prompt = obs
            .and_then(|o| o.get("prompt"))
            .and_then(Value::as_str)
            .map(String::from);
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
        let request = json!({
            "op": "reset",
            "seed": level_seed(task),
            "split": task.split,
            "index": task.index,
        });
        let reply = self.request(&request)?;
        self.read_observation(&reply)?;
        self.turns.clear();
        self.info = reply.get("info").cloned().unwrap_or(Value::Null);
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
        let reply = self.request(&json!({ "op": "step", "action": action_text }))?;
        let malformed = |what: &str| EnvError::Malformed {
            env: self.spec.command.clone(),
            message: format!("step reply has no {what}: {reply}"),
        };
        let reward = reply
            .get("reward")
            .and_then(Value::as_f64)
            .ok_or_else(|| malformed("numeric `reward`"))?;
        let env_done = reply
            .get("done")
            .and_then(Value::as_bool)
            .ok_or_else(|| malformed("boolean `done`"))?;
        self.read_observation(&reply)?;
        let info = reply.get("info").cloned().unwrap_or_else(|| json!({}));
        let won = info.get("won").and_then(Value::as_bool).unwrap_or(false);
        let valid = info.get("valid").and_then(Value::as_bool).unwrap_or(true);
        self.turns.push((before, action_text.trim().to_string()));
        self.env_return += reward;
        self.won = won;
        self.done = env_done || self.turns.len() >= self.spec.max_turns;
        self.info = info.clone();
        Ok(StepResult {
            observation: self.observation.clone(),
            reward,
            done: self.done,
            valid,
            won,
            info,
        })
    }

    fn prompt(&self) -> String {
        if let Some(prompt) = &self.env_prompt {
            return prompt.clone();
        }
        let mut out = String::new();
        if self.spec.history > 0 && !self.turns.is_empty() {
            let start = self.turns.len().saturating_sub(self.spec.history);
            out.push_str("Recent steps:\n");
            for (i, (obs, act)) in self.turns.iter().enumerate().skip(start) {
                let n = i + 1;
                out.push_str(&format!(
                    "[Observation {n}: '{obs}', Action {n}: '{act}']\n"
                ));
            }
        }
        out.push_str("Current observation:\n");
        out.push_str(&self.observation.text);
        out.push_str("\nYour action:");
        out
    }

    fn outcome(&self) -> EpisodeOutcome {
        let score = self
            .info
            .get("score")
            .and_then(Value::as_f64)
            .unwrap_or(if self.won { 1.0 } else { 0.0 });
        EpisodeOutcome {
            won: self.won,
            score,
            env_return: self.env_return,
        }
    }

    fn state_key(&self) -> String {
        self.info
            .get("state_key")
            .and_then(Value::as_str)
            .map_or_else(|| self.observation.text.clone(), String::from)
    }

    fn observation(&self) -> Observation {
        self.observation.clone()
    }
}

impl Drop for ExternalEnv {
    fn drop(&mut self) {
        if self.broken.is_none() {
            if let Some(stdin) = self.stdin.as_mut() {
                let _ = stdin.write_all(b"{\"op\":\"close\"}\n");
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
    use crate::env::sokoban::default_spec;

    fn run(spec: SokobanSpec, requests: &[&str]) -> Vec<Value> {
        let input = requests.join("\n");
        let mut out = Vec::new();
        serve(spec, input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn server_plays_an_explicit_level() {
        let replies = run(
            default_spec(),
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
            default_spec(),
            &[
                r#"{"op":"reset","seed":7}"#,
                r#"{"op":"reset","seed":7}"#,
                r#"{"op":"reset"}"#,
            ],
        );
        assert_eq!(replies[0]["observation"], replies[1]["observation"]);
        let expected = SokobanEnv::level_for_seed(&default_spec(), 7).unwrap();
        assert_eq!(
            replies[0]["info"]["room_state"],
            json!(expected.state_grid())
        );
        assert!(replies[2]["error"].as_str().unwrap().contains("seed"));
    }

    #[test]
    fn overrides() {
        let mut spec = default_spec();
        apply_overrides(
            &mut spec,
            &[
                "room=7x8".into(),
                "boxes=2".into(),
                "prompt=compact".into(),
                "history = 0".into(),
            ],
        )
        .unwrap();
        assert_eq!(spec.room, [7, 8]);
        assert_eq!(spec.boxes, 2);
        assert_eq!(spec.prompt, PromptStyle::Compact);
        assert_eq!(spec.history, 0);
        apply_overrides(&mut spec, &["room=[5,6]".into()]).unwrap();
        assert_eq!(spec.room, [5, 6]);
        assert!(apply_overrides(&mut spec, &["colour=red".into()])
            .unwrap_err()
            .contains("valid keys"));
        assert!(apply_overrides(&mut spec, &["boxes".into()]).is_err());
        assert!(apply_overrides(&mut spec, &["boxes=two".into()]).is_err());
    }
}
