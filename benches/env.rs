//! Environment throughput: Sokoban steps per second (text and image observations, through the
//! `Environment` interface with text parsing) and level generations per second.
//! gym-sokoban does about 13k steps/s and 330 levels/s in Python.
//!
//! Run on a quiet machine: `cargo bench --bench env`.

use oprl::env::sokoban::generator::{generate, GenConfig};
use oprl::env::sokoban::SokobanEnv;
use oprl::env::{Environment, Split, Task};
use oprl::graph::{ObservationKind, PromptStyle, SokobanSpec};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `f` repeatedly for at least `budget`; returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut count = 0usize;
    while start.elapsed() < budget {
        count += f();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// Random walks through the interface: every step parses the model text, moves, renders.
fn steps_per_second(spec: SokobanSpec, answers: &[&str]) -> f64 {
    let mut env = SokobanEnv::new(spec).unwrap();
    let mut task = 0u64;
    let mut i = 0usize;
    rate(Duration::from_secs(2), || {
        env.reset(Task {
            split: Split::Train,
            index: task % 64,
        })
        .unwrap();
        task += 1;
        let mut steps = 0;
        loop {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = env.step(answers[(i >> 33) % answers.len()]).unwrap();
            black_box(&r);
            steps += 1;
            if r.done {
                break;
            }
        }
        steps
    })
}

fn main() {
    let verl_answers = [
        "<think>go</think><action>up</action>",
        "<think>go</think><action>down</action>",
        "<think>go</think><action>left</action>",
        "<think>go</think><action>right</action>",
    ];
    let compact_answers = [
        "up</action>",
        "down</action>",
        "left</action>",
        "right</action>",
    ];
    // Reset cost (a generation) is excluded from step rates by long episodes.
    let long = |observation, prompt| SokobanSpec {
        max_turns: 200,
        observation,
        prompt,
        ..SokobanSpec::default()
    };
    // Pre-generate nothing: resets hit the same 64 seeds, the generation is part of the cost
    // once per 200 steps.
    let text = steps_per_second(
        long(ObservationKind::Text, PromptStyle::Verl),
        &verl_answers,
    );
    println!("sokoban steps/s, text observation (verl parse + render):   {text:>12.0}");
    let compact = steps_per_second(
        long(ObservationKind::Text, PromptStyle::Compact),
        &compact_answers,
    );
    println!("sokoban steps/s, text observation (compact):               {compact:>12.0}");
    let image = steps_per_second(
        long(ObservationKind::Image, PromptStyle::Verl),
        &verl_answers,
    );
    println!("sokoban steps/s, image observation (96x96 RGB):            {image:>12.0}");

    let mut env = SokobanEnv::new(SokobanSpec::default()).unwrap();
    env.reset_seed(1).unwrap();
    let prompts = rate(Duration::from_secs(1), || {
        black_box(env.prompt());
        1
    });
    println!("sokoban verl prompts built/s:                              {prompts:>12.0}");

    for (rows, cols, boxes) in [(6, 6, 1), (6, 6, 2), (8, 8, 2)] {
        let config = GenConfig::new(rows, cols, boxes, 30);
        let mut seed = 0u64;
        let levels = rate(Duration::from_secs(2), || {
            black_box(generate(&config, seed).unwrap());
            seed += 1;
            1
        });
        println!(
            "level generations/s, {rows}x{cols}, {boxes} box(es), depth 30:       {levels:>12.0}"
        );
    }
    println!("(gym-sokoban reference: ~13,000 steps/s, ~330 levels/s)");
}
