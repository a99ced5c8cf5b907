//! The JSON-lines environment protocol, both ways: [`serve`] answers requests on stdin/stdout
//! for any built-in [`Environment`] (`oprl env serve sokoban|webshop`), and [`ExternalEnv`]
//! drives any program that speaks it (`env external { command = "..." }`), so environments can
//! be written in any language.
//!
//! One JSON object per line. Requests:
//! `{"op":"reset","seed":N}` (or with `"split"` and `"index"`), Sokoban's
//! `{"op":"reset","level":{"room_fixed":[[..]],"room_state":[[..]]},"max_steps":N}`,
//! `{"op":"step","action":"TEXT"}`, `{"op":"close"}`.
//! Replies: `{"observation":{"text":..,"prompt":..},"reward":R,"done":B,"info":{"won":B,
//! "valid":B,"score":S,"state_key":K,..}}`, or `{"error":"..."}` for a request that could not
//! be served (the server keeps going).

use super::sokoban::game::Level;
use super::sokoban::{level_seed, SokobanEnv, EVAL_SEED_BASE};
use super::webshop::WebshopEnv;
use super::{EnvError, Environment, EpisodeOutcome, Observation, Split, StepResult, Task};
use crate::graph::ExternalSpec;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Server

/// What the server needs from an environment beyond [`Environment`]: the reset requests and
/// reply fields that only some environments have. The defaults serve a plain environment.
pub trait Served: Environment {
    /// Serves a reset that asks for more than a task (Sokoban: an explicit `level`, or
    /// `max_steps`); `Ok(None)` leaves it to the generic reset of `task`, which is `None` when
    /// the request names no task.
    fn reset_request(
        &mut self,
        _request: &Map<String, Value>,
        _task: Option<Task>,
    ) -> Result<Option<Observation>, String> {
        Ok(None)
    }

    /// Extra `info` fields of a reset reply (Sokoban: the room grids; WebShop: the actions).
    fn reset_info(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// An explicit level in gym-sokoban integer grids.
#[derive(Debug, Deserialize)]
struct LevelGrids {
    room_fixed: Vec<Vec<i64>>,
    room_state: Vec<Vec<i64>>,
}

impl Served for SokobanEnv {
    fn reset_request(
        &mut self,
        request: &Map<String, Value>,
        task: Option<Task>,
    ) -> Result<Option<Observation>, String> {
        let max_steps = match request.get("max_steps") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| format!("`max_steps` must be a whole number, got {v}"))?
                    as usize,
            ),
        };
        let steps = max_steps.unwrap_or(self.spec().max_turns);
        let level = match (request.get("level"), task) {
            (Some(_), Some(_)) => return Err("reset takes `seed` or `level`, not both".into()),
            (Some(grids), None) => {
                let grids =
                    LevelGrids::deserialize(grids).map_err(|e| format!("bad level: {e}"))?;
                Level::from_grids(&grids.room_fixed, &grids.room_state)
                    .map_err(|e| format!("bad level: {e}"))?
            }
            (None, Some(task)) if max_steps.is_some() => {
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

/// The task a reset request names: `split` and `index` when both are given (oprl's client
/// sends them), else the `seed`; `None` when it names neither.
fn requested_task(request: &Map<String, Value>) -> Result<Option<Task>, String> {
    let field = |key: &str| -> Result<Option<u64>, String> {
        match request.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`{key}` must be a whole number, got {v}")),
        }
    };
    let split = match request.get("split") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            Split::deserialize(v)
                .map_err(|_| format!("`split` is \"train\" or \"eval\", got {v}"))?,
        ),
    };
    Ok(match (split, field("index")?, field("seed")?) {
        (Some(split), Some(index), _) => Some(Task { split, index }),
        (_, _, Some(seed)) => Some(task_of_seed(seed)),
        _ => None,
    })
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
        let request = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("malformed request: {e}"))
            .and_then(|v| match v {
                Value::Object(map) => Ok(map),
                other => Err(format!("malformed request: not a JSON object: {other}")),
            });
        let op = request
            .as_ref()
            .ok()
            .and_then(|r| r.get("op"))
            .and_then(Value::as_str);
        let close = op == Some("close");
        let reply = match (&request, op) {
            (Err(message), _) => Err(message.clone()),
            (Ok(_), Some("close")) => Ok(json!({ "closed": true })),
            (Ok(request), Some("reset")) => reset(env, request).inspect(|_| {
                episode = Episode::Running;
            }),
            (Ok(request), Some("step")) => step(env, request, &mut episode),
            (Ok(_), Some(other)) => Err(format!(
                "malformed request: unknown op `{other}`; ops are reset, step, close"
            )),
            (Ok(_), None) => Err("malformed request: no string `op`".into()),
        };
        let reply = reply.unwrap_or_else(|message| json!({ "error": message }));
        serde_json::to_writer(&mut output, &reply)?;
        output.write_all(b"\n")?;
        output.flush()?;
        if close {
            break;
        }
    }
    Ok(())
}

fn reset(env: &mut dyn Served, request: &Map<String, Value>) -> Result<Value, String> {
    let task = requested_task(request)?;
    let observation = match env.reset_request(request, task)? {
        Some(observation) => observation,
        None => {
            let task = task.ok_or("reset needs `seed` (or `split` and `index`)")?;
            env.reset(task).map_err(|e| e.to_string())?
        }
    };
    let mut info = Map::new();
    info.insert("won".into(), json!(false));
    info.insert("valid".into(), json!(true));
    info.extend(env.reset_info());
    info.insert("state_key".into(), json!(env.state_key()));
    Ok(json!({
        "observation": observation_json(env, &observation),
        "reward": 0.0,
        "done": false,
        "info": info,
    }))
}

fn step(
    env: &mut dyn Served,
    request: &Map<String, Value>,
    episode: &mut Episode,
) -> Result<Value, String> {
    let action = request
        .get("action")
        .and_then(Value::as_str)
        .ok_or("malformed request: a step needs a string `action`")?;
    match *episode {
        Episode::NotStarted => return Err("no episode yet: send a reset first".into()),
        Episode::Ended => return Err("the episode has ended: send a reset first".into()),
        Episode::Running => {}
    }
    let result = env.step(action).map_err(|e| e.to_string())?;
    if result.done {
        *episode = Episode::Ended;
    }
    Ok(step_json(env, &result))
}

fn observation_json(env: &dyn Served, observation: &Observation) -> Value {
    json!({ "text": observation.text, "prompt": env.prompt() })
}

fn step_json(env: &dyn Served, result: &StepResult) -> Value {
    let mut info = match &result.info {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => Map::from_iter([("env_info".to_string(), other.clone())]),
    };
    info.insert("won".into(), json!(result.won));
    info.insert("valid".into(), json!(result.valid));
    info.insert("score".into(), json!(env.outcome().score));
    info.insert("state_key".into(), json!(env.state_key()));
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
        let request = |text: &str| -> Map<String, Value> { serde_json::from_str(text).unwrap() };
        // oprl's client sends all three; `split` and `index` win.
        assert_eq!(
            requested_task(&request(r#"{"seed":9,"split":"eval","index":2}"#)).unwrap(),
            Some(Task {
                split: Split::Eval,
                index: 2
            })
        );
        assert_eq!(requested_task(&request(r#"{"op":"reset"}"#)).unwrap(), None);
        assert!(requested_task(&request(r#"{"seed":-1}"#))
            .unwrap_err()
            .contains("whole number"));
        assert!(requested_task(&request(r#"{"split":"dev","index":1}"#))
            .unwrap_err()
            .contains("train"));
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
