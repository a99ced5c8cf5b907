//! How fast can a recipe's policy learn Sokoban when the credit is perfect? A diagnostic for
//! reading RL curves (docs/results.md): it trains the recipe's model on states of training levels
//! labelled by the BFS solver and reports greedy held-out success as it goes.
//!
//! ```sh
//! cargo run --release --example sokoban_probe -- bc     recipes/sokoban.oprl 3e-4 1000
//! cargo run --release --example sokoban_probe -- oracle recipes/sokoban.oprl 3e-4 1000 \
//!     algorithm.entropy=0.01
//! ```
//!
//! Arguments after the step count are `--set` overrides of the recipe (`KEY=VALUE`).
//!
//! - `bc`: supervised (behaviour cloning): maximise the log-prob of the solver's move.
//! - `oracle`: the policy gradient with perfect step credit: sample one of the four moves from the
//!   policy, advantage +1 if it is a shortest-solution move and -1/3 otherwise, through the
//!   recipe's own PPO loss (entropy bonus included). This is the best any advantage estimator
//!   can give the policy update per sampled step.
//!
//! Each optimiser step sees 64 states: a random training level, a random walk of 0-5 moves, then
//! the states along the solver's shortest solution from there. Every 250 steps it plays 200
//! held-out levels greedily (the most likely of the four moves each turn).

use candle_core::Tensor;
use oprl::algo::ppo::{actor_loss, ActorLossConfig, ActorLossInputs};
use oprl::env::sokoban::{solver, SokobanEnv, ACTION_WORDS};
use oprl::env::{Environment, Split, Task};
use oprl::graph::{EnvSpec, ExecGraph};
use oprl::model::optim::Optimizer;
use oprl::model::tokenizer::Tokenizer;
use oprl::model::{Batch, LanguageModel};
use oprl::runtime::setup;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::error::Error;
use std::path::Path;

const BATCH: usize = 64;
const EVAL_EVERY: usize = 250;
const EVAL_LEVELS: u64 = 200;

type Res<T> = Result<T, Box<dyn Error>>;

/// Prompts and, for each, the token ids of a shortest-solution move.
type Labelled = (Vec<Vec<u32>>, Vec<Vec<u32>>);

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, recipe, lr, steps, overrides @ ..] = args.as_slice() else {
        return Err("usage: sokoban_probe bc|oracle RECIPE LR STEPS [KEY=VALUE ...]".into());
    };
    let oracle = match mode.as_str() {
        "bc" => false,
        "oracle" => true,
        other => return Err(format!("unknown mode `{other}` (bc or oracle)").into()),
    };
    let (lr, steps): (f64, usize) = (lr.parse()?, steps.parse()?);
    let compilation = oprl::compile::compile_path(Path::new(recipe), overrides);
    let graph = match &compilation.graph {
        Some(graph) => graph.clone(),
        None => return Err(compilation.render_plain().into()),
    };
    let EnvSpec::Sokoban(spec) = &graph.env else {
        return Err("the recipe's environment is not Sokoban".into());
    };
    setup::set_threads(1);
    let tokenizer = setup::make_tokenizer(&graph)?;
    let model = setup::make_policy(
        &graph,
        &tokenizer,
        &candle_core::Device::Cpu,
        graph.train.seed,
    )?;
    let mut probe = Probe {
        moves: ACTION_WORDS.iter().map(|w| tokenizer.encode(w)).collect(),
        env: SokobanEnv::new(spec.clone())?,
        rng: StdRng::seed_from_u64(graph.train.seed),
        next_level: 0,
        tokenizer,
        model,
    };
    let mut opt = Optimizer::new(probe.model.vars(), lr, 0.0)?;
    let started = std::time::Instant::now();
    for step in 0..=steps {
        if step % EVAL_EVERY == 0 {
            println!(
                "step {step:5}  states {:6}  held-out greedy success {:5.1}%  {:6.1} s",
                step * BATCH,
                100.0 * probe.greedy_success()?,
                started.elapsed().as_secs_f64()
            );
        }
        let (prompts, best) = probe.labelled_states()?;
        let loss = if oracle {
            probe.oracle_loss(&graph, &prompts, &best)?
        } else {
            let scored = probe.model.score(Batch::new(&prompts), &best, true)?;
            (scored.logprobs.sum_all()? * (-1.0 / BATCH as f64))?
        };
        opt.step(&loss, graph.algorithm.ppo().grad_clip)?;
    }
    Ok(())
}

struct Probe {
    tokenizer: Tokenizer,
    model: LanguageModel,
    /// The token ids of up, down, left, right.
    moves: Vec<Vec<u32>>,
    env: SokobanEnv,
    rng: StdRng,
    next_level: u64,
}

impl Probe {
    /// The log-probs of the four moves at each prompt, row-major (`[prompt][move]`).
    fn move_logprobs(&self, prompts: &[Vec<u32>]) -> Res<Vec<f32>> {
        let rows: Vec<Vec<u32>> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), 4))
            .collect();
        let moves: Vec<Vec<u32>> = prompts.iter().flat_map(|_| self.moves.clone()).collect();
        Ok(self
            .model
            .score(Batch::new(&rows), &moves, false)?
            .logprobs
            .sum(1)?
            .to_vec1()?)
    }

    /// Greedy success over the held-out levels.
    fn greedy_success(&mut self) -> Res<f64> {
        let mut won = 0;
        for index in 0..EVAL_LEVELS {
            self.env.reset(Task {
                split: Split::Eval,
                index,
            })?;
            while !self.env.is_done() {
                let lp = self.move_logprobs(&[self.tokenizer.encode(&self.env.prompt())])?;
                let best = (0..4).max_by(|&a, &b| lp[a].total_cmp(&lp[b])).unwrap_or(0);
                self.env.step(ACTION_WORDS[best])?;
            }
            won += usize::from(self.env.outcome().won);
        }
        Ok(won as f64 / EVAL_LEVELS as f64)
    }

    /// `BATCH` prompts and, for each, the token ids of a shortest-solution move.
    fn labelled_states(&mut self) -> Res<Labelled> {
        let (mut prompts, mut best) = (Vec::new(), Vec::new());
        while prompts.len() < BATCH {
            self.next_level += 1;
            let task = Task {
                split: Split::Train,
                index: self.next_level,
            };
            self.env.reset(task)?;
            for _ in 0..self.rng.random_range(0..6) {
                if self.env.is_done() {
                    break;
                }
                self.env.step(ACTION_WORDS[self.rng.random_range(0..4)])?;
            }
            if self.env.is_done() {
                continue;
            }
            let solution = solver::solve(self.env.game().level(), 100_000).unwrap_or_default();
            for dir in solution {
                if self.env.is_done() || prompts.len() == BATCH {
                    break;
                }
                prompts.push(self.tokenizer.encode(&self.env.prompt()));
                best.push(self.tokenizer.encode(dir.word()));
                self.env.step(dir.word())?;
            }
        }
        Ok((prompts, best))
    }

    /// The recipe's PPO loss on one on-policy sample per state with perfect step credit.
    fn oracle_loss(
        &mut self,
        graph: &ExecGraph,
        prompts: &[Vec<u32>],
        best: &[Vec<u32>],
    ) -> Res<Tensor> {
        let lp = self.move_logprobs(prompts)?;
        let mut taken = Vec::with_capacity(prompts.len());
        let mut advantages = Vec::with_capacity(prompts.len());
        for (i, best) in best.iter().enumerate() {
            let weights: Vec<f64> = lp[4 * i..4 * i + 4]
                .iter()
                .map(|&l| (l as f64).exp())
                .collect();
            let mut u = self.rng.random::<f64>() * weights.iter().sum::<f64>();
            let mut k = 0;
            while k < 3 && u > weights[k] {
                u -= weights[k];
                k += 1;
            }
            advantages.push(if self.moves[k] == *best {
                1.0f32
            } else {
                -1.0 / 3.0
            });
            taken.push(self.moves[k].clone());
        }
        let scored = self.model.score(Batch::new(prompts), &taken, true)?;
        let advantages = Tensor::from_vec(advantages, (prompts.len(), 1), self.model.device())?;
        let old = scored.logprobs.detach();
        let inputs = ActorLossInputs {
            log_prob: &scored.logprobs,
            old_log_prob: &old,
            advantages: &advantages,
            mask: &scored.mask,
            entropy: Some(&scored.entropy),
            ref_log_prob: None,
        };
        Ok(actor_loss(&inputs, &ActorLossConfig::from_spec(graph.algorithm.ppo()))?.loss)
    }
}
