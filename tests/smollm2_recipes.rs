//! The shipped SmolLM2 recipes end to end on the real pretrained model
//! (`recipes/sokoban_smollm2.oprl`, `recipes/sotopia_smollm2.oprl`), each as shipped (two
//! iterations, sized for a 2-core CPU): the policy's prompts are rendered through the model's
//! chat template, both iterations log finite losses, and a checkpoint is written. The model is
//! fetched by `scripts/fetch-test-model.sh` when missing (see `common/test_model.rs`).

mod common;

use oprl::env::{Split, Task};
use oprl::graph::ExecGraph;
use oprl::model::chat::Message;
use oprl::runtime::{self, rollout, setup, IterationMetrics, RunOptions};
use rand::SeedableRng;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// One recipe at a time: each trains a policy and a PRM of 135M parameters.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn compile(name: &str) -> ExecGraph {
    common::test_model::recipe_model();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("recipes/{name}.oprl"));
    oprl::compile::compile_file(&path, &[])
        .unwrap_or_else(|d| panic!("{name} does not compile: {d:?}"))
        .0
}

/// The SmolLM2 template's rendering of `messages` with the generation prompt, written out by
/// hand: its default system message when the chat has none, `<|im_start|>role\n...<|im_end|>\n`
/// per message, then the assistant's header.
fn smollm2_chat(messages: &[Message]) -> String {
    let mut out = String::new();
    if messages[0].role != "system" {
        out.push_str("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n");
    }
    for m in messages {
        out.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    out + "<|im_start|>assistant\n"
}

/// Plays one turn of each of two groups with the recipe's own environment, tokenizer and
/// model, and checks that every recorded prompt is the environment's chat through SmolLM2's
/// template, with one `<|im_start|>` opening it (no BOS added in front).
fn check_prompts(graph: &ExecGraph) {
    let tokenizer = setup::make_tokenizer(graph).unwrap();
    assert!(
        tokenizer.chat_template().is_some(),
        "the GGUF ships its template"
    );
    let device = candle_core::Device::Cpu;
    let policy = setup::make_policy(graph, &tokenizer, &device, graph.train.seed).unwrap();
    let mut envs = setup::make_envs(&graph.env, 2).unwrap();
    let tasks: Vec<Task> = (0..2)
        .map(|index| Task {
            split: Split::Train,
            index,
        })
        .collect();
    let mut expected = Vec::new();
    for (env, task) in envs.iter_mut().zip(&tasks) {
        env.reset(*task).unwrap();
        expected.push(tokenizer.encode(&smollm2_chat(&env.messages())));
    }
    let opts = setup::sampling_of(&graph.policy);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut stats = rollout::RolloutStats::default();
    let trajectories = rollout::rollout(
        &mut envs,
        &tasks,
        &[0, 1],
        &policy,
        &tokenizer,
        &opts,
        1,
        rollout::RetryPolicy::default(),
        &mut rng,
        &mut stats,
    )
    .unwrap();
    let im_start = tokenizer.encode("<|im_start|>");
    assert_eq!(im_start.len(), 1, "<|im_start|> is one special token");
    for (t, expected) in trajectories.iter().zip(&expected) {
        let prompt = &t.steps[0].prompt;
        assert_eq!(prompt, expected);
        assert_eq!(prompt[0], im_start[0]);
        assert_ne!(prompt[1], im_start[0]);
        // The same ids as the shared function gives (what `oprl serve` renders).
        let template = tokenizer.chat_template().unwrap();
        let shared = tokenizer.chat_prompt_ids(template, &messages_of(graph, t.task), usize::MAX);
        assert_eq!(prompt, &shared.unwrap());
    }
}

/// The chat of a fresh episode of `task`.
fn messages_of(graph: &ExecGraph, task: Task) -> Vec<Message> {
    let mut env = setup::make_envs(&graph.env, 1).unwrap().remove(0);
    env.reset(task).unwrap();
    env.messages()
}

fn run_recipe(name: &str) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let graph = compile(name);
    check_prompts(&graph);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join(name);
    let start = Instant::now();
    let summary = runtime::run(
        graph,
        &RunOptions {
            out: Some(out.clone()),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("{name}: 2 iterations in {:.1?}", start.elapsed());
    assert_eq!(summary.iterations, 2, "{name}: {summary:?}");
    let metrics: Vec<IterationMetrics> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 2, "{name}");
    for m in &metrics {
        eprintln!("{name}: iteration {} in {:.1} s", m.iteration, m.time_total);
        assert!(m.policy_loss.is_finite(), "{name}: {m:?}");
        assert!(m.prm_loss.is_none_or(f64::is_finite), "{name}: {m:?}");
        assert!(m.mean_turns > 0.0, "{name}: {m:?}");
    }
    let checkpoints = out.join("checkpoints").read_dir().unwrap().count();
    assert!(checkpoints >= 1, "{name}: no checkpoint");
}

#[test]
#[ignore = "14+ minutes and ~10 GB on 2 cores: too slow for CI until the SmolLM2 recipes train with LoRA; run with `cargo test --test smollm2_recipes -- --ignored`"]
fn the_sokoban_smollm2_recipe_trains_two_iterations() {
    run_recipe("sokoban_smollm2");
}

#[test]
#[ignore = "14+ minutes and ~10 GB on 2 cores: too slow for CI until the SmolLM2 recipes train with LoRA; run with `cargo test --test smollm2_recipes -- --ignored`"]
fn the_sotopia_smollm2_recipe_trains_two_iterations() {
    run_recipe("sotopia_smollm2");
}
