//! Sokoban against the reference vectors in `tests/data/conformance/`: gym-sokoban trajectories
//! replayed step by step, verl-agent renderings, prompt, step traces and action projection;
//! plus reward sums along BFS solutions of generated levels and the external-environment
//! protocol driven against a Python script.

use oprl::env::protocol::ExternalEnv;
use oprl::env::sokoban::game::{Action, Dir, Game, Level};
use oprl::env::sokoban::generator::{generate, GenConfig};
use oprl::env::sokoban::solver::solve;
use oprl::env::sokoban::text::{parse_verl, render_list, render_verl, verl_projection};
use oprl::env::sokoban::SokobanEnv;
use oprl::env::{EnvError, Environment, Split, Task};
use oprl::graph::{ExternalSpec, SokobanSpec};
use serde_json::Value;
use std::path::PathBuf;

fn conformance(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/conformance")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read conformance file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn grid(v: &Value) -> Vec<Vec<i64>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn level_of(entry: &Value) -> Level {
    Level::from_grids(&grid(&entry["room_fixed"]), &grid(&entry["room_state"])).unwrap()
}

fn as_u8_grid(v: &Value) -> Vec<Vec<u8>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Replays `steps` on a fresh game and compares every recorded field.
fn replay(level: &Level, max_steps: usize, steps: &Value, what: &str) -> usize {
    let mut game = Game::new(level.clone(), max_steps);
    let steps = steps.as_array().unwrap();
    for step in steps {
        let t_id = step["t"].as_u64().unwrap();
        let code = step["action"].as_u64().unwrap() as u8;
        let action = Action::from_gym(code).unwrap();
        let t = game.step(action);
        let at = format!("{what}, t={t_id}, action {code}");
        assert!(
            close(t.reward, step["reward"].as_f64().unwrap()),
            "{at}: reward {}",
            t.reward
        );
        assert_eq!(t.done, step["done"].as_bool().unwrap(), "{at}: done");
        assert_eq!(t.solved, step["solved"].as_bool().unwrap(), "{at}: solved");
        assert_eq!(
            t.maxsteps_reached,
            step["maxsteps_reached"].as_bool().unwrap(),
            "{at}"
        );
        assert_eq!(
            t.moved_player,
            step["moved_player"].as_bool().unwrap(),
            "{at}: moved_player"
        );
        assert_eq!(
            t.moved_box,
            step["moved_box"].as_bool().unwrap(),
            "{at}: moved_box"
        );
        assert_eq!(
            t.boxes_on_target,
            step["boxes_on_target"].as_i64().unwrap(),
            "{at}"
        );
        let pos: Vec<usize> = serde_json::from_value(step["player_position"].clone()).unwrap();
        assert_eq!(game.player(), (pos[0], pos[1]), "{at}: player");
        assert_eq!(
            game.level().state_grid(),
            as_u8_grid(&step["room_state"]),
            "{at}: room_state"
        );
    }
    steps.len()
}

#[test]
fn gym_sokoban_trajectories_step_by_step() {
    let data = conformance("sokoban_trajectories.json");
    let mut checked = 0;
    for entry in data["levels"].as_array().unwrap() {
        let id = entry["level_id"].as_u64().unwrap();
        let level = level_of(entry);
        let max_steps = entry["max_steps"].as_u64().unwrap() as usize;
        assert_eq!(
            level.box_count(),
            entry["num_boxes"].as_u64().unwrap() as usize
        );
        let rollout = &entry["random_rollout"];
        checked += replay(
            &level,
            max_steps,
            &rollout["steps"],
            &format!("level {id} rollout"),
        );
        let bfs = &entry["bfs_solution"];
        checked += replay(&level, max_steps, &bfs["steps"], &format!("level {id} bfs"));
        // Our solver finds a plan of the same (shortest) length, and it solves the level.
        let plan = solve(&level, 1_000_000).expect("reference levels are solvable");
        assert_eq!(
            plan.len(),
            bfs["actions"].as_array().unwrap().len(),
            "level {id}"
        );
        let mut game = Game::new(level.clone(), max_steps);
        let last = plan
            .iter()
            .map(|&d| game.step(Action::Push(d)))
            .last()
            .unwrap();
        assert!(last.solved && close(last.reward, 10.9), "level {id}");
        if let Some(edges) = entry.get("edge_sequences").and_then(Value::as_object) {
            for (name, seq) in edges {
                checked += replay(
                    &level,
                    max_steps,
                    &seq["steps"],
                    &format!("level {id} {name}"),
                );
            }
        }
    }
    assert!(checked > 100, "only {checked} steps checked");
}

#[test]
fn verl_agent_renderings_prompt_and_projection() {
    let levels = conformance("sokoban_trajectories.json");
    let render = conformance("sokoban_verl_agent_render.json");
    let level_by_id = |id: u64| {
        levels["levels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["level_id"].as_u64() == Some(id))
            .map(level_of)
    };
    for example in render["examples"].as_array().unwrap() {
        let id = example["level_id"].as_u64().unwrap();
        let actions = example["actions_applied"].as_array().unwrap();
        // Levels outside the public trajectory subset are read back from their rendering.
        let start = match level_by_id(id) {
            Some(level) => level,
            None if actions.is_empty() => {
                parse_verl(example["render"]["tiny_rgb_array"].as_str().unwrap()).unwrap()
            }
            None => panic!("level {id} is needed to replay actions"),
        };
        let mut game = Game::new(start, 100);
        for a in actions {
            let d = Dir::ALL[a.as_u64().unwrap() as usize - 1];
            game.step(Action::Push(d));
        }
        let r = &example["render"];
        assert_eq!(
            render_verl(game.level()),
            r["tiny_rgb_array"].as_str().unwrap(),
            "example {id}"
        );
        let list: Vec<String> = serde_json::from_value(r["list"].clone()).unwrap();
        assert_eq!(render_list(game.level()), list);
        let codes: Vec<u8> = as_u8_grid(&r["state"]).concat();
        assert_eq!(game.level().render_codes(), codes);
        assert_eq!(game.level().state_grid(), as_u8_grid(&r["room_state"]));
        if let Some(prompt) = example.get("full_prompt_SOKOBAN_TEMPLATE_NO_HIS") {
            let mut env = SokobanEnv::new(SokobanSpec::default()).unwrap();
            env.reset_level(game.level().clone(), 100);
            assert_eq!(env.prompt(), prompt.as_str().unwrap());
        }
    }
    for trace in render["step_traces"].as_array().unwrap() {
        let id = trace["level_id"].as_u64().unwrap();
        let mut env = SokobanEnv::new(SokobanSpec::default()).unwrap();
        let initial = trace["initial_obs"].as_str().unwrap();
        let start = level_by_id(id).unwrap_or_else(|| parse_verl(initial).unwrap());
        let obs = env.reset_level(start, 100);
        assert_eq!(obs.text, initial);
        for step in trace["steps"].as_array().unwrap() {
            let action = step["action"].as_u64().unwrap() as u8;
            let r = env.apply(action, true).unwrap();
            let t = step["t"].as_u64().unwrap();
            assert_eq!(
                r.observation.text,
                step["obs"].as_str().unwrap(),
                "trace {id} t={t}"
            );
            assert!(
                close(r.reward, step["reward"].as_f64().unwrap()),
                "trace {id} t={t}"
            );
            assert_eq!(r.done, step["done"].as_bool().unwrap());
            assert_eq!(r.won, step["info"]["won"].as_bool().unwrap());
            assert_eq!(
                r.info["action_is_effective"],
                step["info"]["action_is_effective"]
            );
            assert_eq!(
                env.game().num_env_steps() as u64,
                step["num_env_steps"].as_u64().unwrap()
            );
            assert_eq!(
                env.game().boxes_on_target(),
                step["boxes_on_target"].as_i64().unwrap()
            );
        }
    }
    for case in render["projection_cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected = (
            case["action"].as_u64().unwrap() as u8,
            case["valid"].as_u64().unwrap() == 1,
        );
        assert_eq!(verl_projection(text), expected, "{text:?}");
    }
}

#[test]
fn bfs_solutions_of_generated_levels_pay_as_gym_sokoban() {
    for (rows, cols, boxes) in [(6, 6, 1), (7, 7, 2)] {
        let config = GenConfig::new(rows, cols, boxes, 30);
        for seed in 0..60 {
            let level = generate(&config, seed).unwrap().level;
            let plan = solve(&level, 1_000_000).unwrap();
            let mut game = Game::new(level, 200);
            let rewards: Vec<f64> = plan
                .iter()
                .map(|&d| game.step(Action::Push(d)).reward)
                .collect();
            let last = *rewards.last().unwrap();
            assert!(close(last, 10.9), "seed {seed}: last reward {last}");
            // Every earlier step is -0.1, +0.9 (a box lands) or -1.1 (a box leaves).
            for r in &rewards[..rewards.len() - 1] {
                assert!(
                    [-0.1, 0.9, -1.1].iter().any(|x| close(*r, *x)),
                    "seed {seed}: {r}"
                );
            }
            if boxes == 1 {
                let total: f64 = rewards.iter().sum();
                assert!(
                    close(total, 10.9 - 0.1 * (rewards.len() - 1) as f64),
                    "seed {seed}"
                );
            }
        }
    }
}

const PYTHON_ENV: &str = r#"
import json, sys
# A counter: the episode is won when the count reaches the target.
count, target = 0, 3
for line in sys.stdin:
    req = json.loads(line)
    op = req.get("op")
    if op == "reset":
        count, target = 0, 2 + req["seed"] % 2
        reply = {"observation": {"text": "count 0 of %d" % target}, "info": {"won": False}}
    elif op == "step":
        valid = req["action"].strip() in ("inc", "dec")
        count += {"inc": 1, "dec": -1}.get(req["action"].strip(), 0)
        won = count == target
        reply = {"observation": {"text": "count %d of %d" % (count, target)},
                 "reward": 1.0 if won else -0.1, "done": won,
                 "info": {"won": won, "valid": valid, "state_key": "c%d" % count}}
    elif op == "close":
        break
    else:
        reply = {"error": "unknown op"}
    print(json.dumps(reply), flush=True)
"#;

fn external(dir: &tempfile::TempDir, script: &str, timeout_s: f64) -> ExternalSpec {
    let path = dir.path().join("env.py");
    std::fs::write(&path, script).unwrap();
    ExternalSpec {
        command: format!("python3 {}", path.display()),
        timeout_s,
        max_turns: 10,
        history: 2,
    }
}

#[test]
fn external_python_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = ExternalEnv::spawn(external(&dir, PYTHON_ENV, 10.0)).unwrap();
    let obs = env
        .reset(Task {
            split: Split::Train,
            index: 1,
        })
        .unwrap();
    assert_eq!(obs.text, "count 0 of 3");
    let r = env.step("inc").unwrap();
    assert!(!r.done && r.valid && close(r.reward, -0.1));
    assert_eq!(env.state_key(), "c1");
    let r = env.step("jump").unwrap();
    assert!(!r.valid);
    assert!(env
        .prompt()
        .contains("[Observation 2: 'count 1 of 3', Action 2: 'jump']"));
    assert!(env.prompt().ends_with("count 1 of 3\nYour action:"));
    env.step("inc").unwrap();
    let r = env.step("inc").unwrap();
    assert!(r.done && r.won);
    let o = env.outcome();
    assert!(o.won && o.score == 1.0 && close(o.env_return, 0.7));
    // The even seed of the eval split has target 2.
    let obs = env
        .reset(Task {
            split: Split::Eval,
            index: 0,
        })
        .unwrap();
    assert_eq!(obs.text, "count 0 of 2");
}

#[test]
fn silent_or_crashed_external_environments_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let silent = "import sys, time\nfor line in sys.stdin:\n    time.sleep(30)\n";
    let mut env = ExternalEnv::spawn(external(&dir, silent, 0.5)).unwrap();
    let started = std::time::Instant::now();
    let err = env
        .reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap_err();
    assert!(matches!(err, EnvError::Timeout { .. }), "{err}");
    assert!(started.elapsed().as_secs_f64() < 5.0);
    assert!(err.to_string().contains("did not answer within 0.5 s"));
    // Later calls report the dead environment instead of hanging.
    assert!(env.step("x").is_err());

    let crash =
        "import sys\nsys.stdin.readline()\nsys.stderr.write('boom: bad things\\n')\nsys.exit(3)\n";
    let mut env = ExternalEnv::spawn(external(&dir, crash, 5.0)).unwrap();
    let err = env
        .reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("boom: bad things"), "{message}");

    // A process that dies mid-episode is restarted at the next reset.
    let dies_on_step = "import json, sys\nfor line in sys.stdin:\n    if json.loads(line)['op'] == 'step':\n        sys.exit(3)\n    print(json.dumps({'observation': {'text': 'ready'}}), flush=True)\n";
    let mut env = ExternalEnv::spawn(external(&dir, dies_on_step, 5.0)).unwrap();
    let task = Task {
        split: Split::Train,
        index: 0,
    };
    assert_eq!(env.reset(task).unwrap().text, "ready");
    let err = env.step("go").unwrap_err().to_string();
    assert!(err.contains("exited (exit status: 3)"), "{err}");
    assert_eq!(env.reset(task).unwrap().text, "ready");

    let garbage = "import sys\nfor line in sys.stdin:\n    print('not json', flush=True)\n";
    let mut env = ExternalEnv::spawn(external(&dir, garbage, 5.0)).unwrap();
    let err = env
        .reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap_err();
    assert!(matches!(err, EnvError::Malformed { .. }), "{err}");
}

#[test]
fn external_env_drives_oprl_env_serve_like_the_in_process_env() {
    let spec = ExternalSpec {
        command: format!(
            "\"{}\" env serve sokoban --set prompt=compact --set history=2",
            env!("CARGO_BIN_EXE_oprl")
        ),
        timeout_s: 30.0,
        max_turns: 15,
        history: 2,
    };
    let mut remote = ExternalEnv::spawn(spec).unwrap();
    let mut local = SokobanEnv::new(oprl::graph::SokobanSpec {
        prompt: oprl::graph::PromptStyle::Compact,
        ..SokobanSpec::default()
    })
    .unwrap();
    for task in [
        Task {
            split: Split::Train,
            index: 3,
        },
        Task {
            split: Split::Eval,
            index: 3,
        },
    ] {
        assert_eq!(remote.reset(task).unwrap(), local.reset(task).unwrap());
        assert_eq!(remote.prompt(), local.prompt());
        for answer in [
            "up</action>",
            "left</action>",
            "nothing",
            "down</action>",
            "right</action>",
        ] {
            let (r, l) = (remote.step(answer).unwrap(), local.step(answer).unwrap());
            assert_eq!(
                (r.reward, r.done, r.valid, r.won),
                (l.reward, l.done, l.valid, l.won)
            );
            assert_eq!(r.observation, l.observation);
            assert_eq!(remote.prompt(), local.prompt());
            assert_eq!(remote.state_key(), local.state_key());
            if l.done {
                break;
            }
        }
        assert_eq!(remote.outcome(), local.outcome());
    }
}
