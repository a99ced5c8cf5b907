//! The interpreter end to end on small Sokoban settings: it learns, the PRM learns to rank,
//! resume reproduces an uninterrupted run exactly, and every shipped ablation recipe runs.

use std::path::Path;
use std::sync::OnceLock;

use indexmap::IndexMap;
use oprl::graph::*;
use oprl::runtime::{self, IterationMetrics, RunOptions, RunSummary};

/// A Sokoban setting small enough to learn in a CI test: a 5x5 room (3x3 floor), one box, a
/// shallow generator search (levels a few moves from solved), a one-layer transformer.
fn tiny_graph(iterations: usize, seed: u64) -> ExecGraph {
    let ppo = PpoSpec {
        lr: 3e-3,
        clip_low: 0.2,
        clip_high: 0.2,
        dual_clip: 3.0,
        entropy: 0.001,
        kl: None,
        kl_coef: 0.0,
        epochs: 1,
        minibatch: 16,
        grad_clip: 1.0,
        loss_agg: LossAgg::TokenMean,
        weight_decay: 0.0,
    };
    let ops = [
        ("n0_rollout", Op::Rollout),
        ("n1_outcome", Op::OutcomeReward),
        ("n2_prm_score", Op::PrmScore),
        ("n3_prm_update", Op::PrmUpdate),
        ("n4_advantage", Op::Advantage),
        ("n5_policy_update", Op::PolicyUpdate),
    ];
    let mut nodes = IndexMap::new();
    let mut prev: Option<String> = None;
    for (id, op) in ops {
        nodes.insert(
            id.to_string(),
            Node {
                op,
                inputs: prev.iter().cloned().collect(),
            },
        );
        prev = Some(id.to_string());
    }
    ExecGraph {
        recipe: "tiny".into(),
        env: EnvSpec::Sokoban(SokobanSpec {
            room: [5, 5],
            boxes: 1,
            max_turns: 4,
            search_depth: 4,
            observation: ObservationKind::Text,
            prompt: PromptStyle::Compact,
            history: 0,
        }),
        policy: PolicySpec::Transformer(TransformerSpec {
            layers: 1,
            width: 32,
            heads: 2,
            mlp: 64,
            context: 64,
            positions: Positions::Learned,
            tie_embeddings: false,
            patch: 4,
            sampling: SamplingSpec {
                temperature: 1.0,
                top_p: 1.0,
                max_new_tokens: 2,
                stop: vec!["</action>".into()],
                actions: oprl::graph::ActionSpace::Free,
            },
        }),
        reward: RewardSpec::Verifier {
            signal: VerifierSignal::Won,
        },
        prm: Some(PrmSpec {
            init: PrmInit::Policy,
            beta: 0.05,
            score: TrajScore::Mean,
            loss: PrmLoss::Dpo,
            reference: PrmReference::OldPolicy,
            lr: 3e-3,
            grad_clip: 10.0,
            updates: 1,
            text_view: true,
        }),
        advantage: AdvExpr::Add {
            terms: vec![
                AdvExpr::Episode {
                    signal: Signal::Outcome,
                    norm: Norm::Rloo,
                },
                AdvExpr::Step {
                    signal: Signal::Prm,
                    norm: Norm::Zscore,
                    group: StepGroup::Pool,
                    maxabs: false,
                    similarity: None,
                },
            ],
        },
        algorithm: AlgorithmSpec::Ppo { ppo },
        train: TrainSpec {
            iterations,
            tasks: 8,
            group: 4,
            seed,
            device: Device::Cpu,
            threads: 0,
            micro_batch_tokens: 0,
        },
        eval: EvalSpec {
            every: 0,
            tasks: 48,
            temperature: 0.4,
        },
        output: OutputSpec {
            dir: "runs".into(),
            checkpoint_every: 0,
            transcripts: 2,
        },
        nodes,
    }
}

/// Options with no observer: nothing is shown.
fn quiet() -> RunOptions {
    RunOptions::default()
}

/// Quiet options writing the run directory at `out`.
fn quiet_into(out: &Path) -> RunOptions {
    RunOptions {
        out: Some(out.to_path_buf()),
        ..quiet()
    }
}

fn metrics(dir: &Path) -> Vec<IterationMetrics> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The CI learning setting as a recipe: a 5x5 room (3x3 floor), one box, a shallow generator
/// search (levels a few moves from solved), five turns, a one-layer transformer.
const TINY_RECIPE: &str = r#"
use std::envs::sokoban
use std::presets::oprl_rloo
env sokoban {
  room = [5, 5]
  boxes = 1
  max_turns = 5
  search_depth = 3
  prompt = compact
  history = 0
}
policy transformer {
  layers = 1
  width = 32
  heads = 2
  mlp = 64
  context = 48
  sampling {
    temperature = 1.0
    max_new_tokens = 2
    stop = ["</action>"]
  }
}
prm {
  beta = 0.05
  lr = 3e-3
}
algorithm ppo {
  lr = 3e-3
  minibatch = 4
}
train {
  iterations = 80
  tasks = 8
  group = 8
  seed = 3
  threads = 1
}
eval {
  every = 20
  tasks = 96
}
"#;

/// One learning run shared by the learning and PRM tests (they run in the same process).
fn learning_run() -> &'static (RunSummary, Vec<IterationMetrics>) {
    static RUN: OnceLock<(RunSummary, Vec<IterationMetrics>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let compiled = oprl::compile::compile_text("tiny.oprl", TINY_RECIPE, Path::new("."), &[]);
        let graph = compiled.graph.expect("the tiny recipe compiles");
        let summary = runtime::run(graph, &quiet_into(&out)).unwrap();
        let m = metrics(&out);
        (summary, m)
    })
}

#[test]
fn held_out_success_rises_well_above_the_untrained_policy() {
    let (summary, _) = learning_run();
    let initial = summary.initial_eval.as_ref().unwrap().success_rate;
    let best = summary.best_eval.as_ref().unwrap().success_rate;
    eprintln!("curve: {:?}", summary.curve);
    assert!(
        best >= initial + 0.15 && best >= 2.0 * initial,
        "held-out success went from {initial} to at best {best}"
    );
}

#[test]
fn prm_pair_accuracy_rises_above_one_half() {
    let (_, m) = learning_run();
    let acc: Vec<(usize, f64, usize)> = m
        .iter()
        .filter_map(|x| Some((x.iteration, x.prm_pair_accuracy?, x.prm_pairs?)))
        .collect();
    eprintln!("pair accuracy: {acc:?}");
    // Ten-iteration moving average of the pre-update PRM's ranking accuracy on fresh pairs.
    let best_window = acc
        .windows(10)
        .map(|w| w.iter().map(|a| a.1).sum::<f64>() / 10.0)
        .fold(0.0, f64::max);
    assert!(
        best_window > 0.6,
        "best 10-iteration pair accuracy {best_window}"
    );
    // Over the second half of training, pair-weighted.
    let late: Vec<_> = acc.iter().filter(|a| a.0 > 30).collect();
    let right: f64 = late.iter().map(|a| a.1 * a.2 as f64).sum();
    let pairs: usize = late.iter().map(|a| a.2).sum();
    assert!(
        right / pairs as f64 > 0.5,
        "late pair accuracy {}",
        right / pairs as f64
    );
}

#[test]
fn resume_reproduces_an_uninterrupted_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let split = tmp.path().join("split");
    let mut graph = tiny_graph(4, 11);
    graph.eval.tasks = 8;
    graph.eval.every = 2;
    graph.train.tasks = 4;
    runtime::run(graph.clone(), &quiet_into(&whole)).unwrap();
    let first = runtime::run(
        graph,
        &RunOptions {
            stop_after: Some(2),
            ..quiet_into(&split)
        },
    )
    .unwrap();
    assert_eq!(first.ending, runtime::Ending::Interrupted);
    assert_eq!(metrics(&split).len(), 2);
    let resumed = runtime::resume(&split, &quiet()).unwrap();
    assert_eq!(resumed.ending, runtime::Ending::Completed);
    let a: Vec<_> = metrics(&whole)
        .iter()
        .map(|m| m.without_timings())
        .collect();
    let b: Vec<_> = metrics(&split)
        .iter()
        .map(|m| m.without_timings())
        .collect();
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    // The evaluations match too, and `oprl eval` on the checkpoint reproduces the last one.
    let eval = runtime::eval_checkpoint(&split, None, None).unwrap();
    assert_eq!(Some(eval.success_rate), a[3].eval_success);
}

#[test]
fn a_non_finite_loss_stops_with_the_quantity_named_and_keeps_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("nan");
    let mut graph = tiny_graph(3, 5);
    graph.eval.tasks = 0;
    graph.output.checkpoint_every = 1;
    // An infinite PRM learning rate turns the PRM's weights into NaN at its first update, so the
    // next iteration's implicit step rewards are not finite.
    graph.prm.as_mut().unwrap().lr = f64::INFINITY;
    let err = runtime::run(graph, &quiet_into(&out)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("is NaN") || msg.contains("is inf"), "{msg}");
    assert!(msg.contains("iteration"), "{msg}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ending"], "failed");
    // The checkpoint written before the failure is still there and complete.
    assert!(out.join("checkpoints").read_dir().unwrap().count() >= 1);
}

#[test]
fn every_ablation_recipe_runs_a_few_iterations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/ablations");
    let mut recipes: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    recipes.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "oprl"));
    recipes.sort();
    assert!(!recipes.is_empty(), "no recipes in {}", dir.display());
    let tmp = tempfile::tempdir().unwrap();
    let overrides: Vec<String> = [
        "train.iterations = 2",
        "train.tasks = 2",
        "train.group = 2",
        "eval.tasks = 2",
        "eval.every = 1",
        "env.max_turns = 2",
        "policy.layers = 1",
        "policy.width = 16",
        "policy.heads = 2",
        "policy.mlp = 32",
        "policy.sampling.max_new_tokens = 2",
        "algorithm.minibatch = 2",
    ]
    .map(String::from)
    .to_vec();
    for path in recipes {
        let (graph, _) = oprl::compile::compile_file(&path, &overrides)
            .unwrap_or_else(|d| panic!("{} does not compile: {d:?}", path.display()));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let summary = runtime::run(graph, &quiet_into(&tmp.path().join(&name)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(summary.iterations, 2, "{name}");
        let m = metrics(&tmp.path().join(&name));
        assert_eq!(m.len(), 2, "{name}");
        assert!(m.iter().all(|x| x.policy_loss.is_finite()), "{name}");
    }
}

#[test]
fn an_external_environment_trains_through_the_json_lines_protocol() {
    // oprl's own Sokoban server stands in for an environment written in another language: the
    // trainer only sees the protocol.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("external");
    let mut graph = tiny_graph(2, 3);
    graph.eval.tasks = 4;
    graph.env = EnvSpec::External(ExternalSpec {
        command: format!(
            "{} env serve sokoban --set room=[5,5] --set prompt=compact",
            env!("CARGO_BIN_EXE_oprl")
        ),
        timeout_s: 30.0,
        max_turns: 4,
        history: 0,
    });
    let summary = runtime::run(graph, &quiet_into(&out)).unwrap_or_else(|e| panic!("{e}"));
    let m = metrics(&out);
    assert_eq!(m.len(), 2, "{summary:?}");
    assert!(m.iter().all(|it| it.mean_turns > 0.0));
}

#[test]
fn the_visual_recipe_trains_on_pixels_and_keeps_captioned_frames() {
    // recipes/visual_sokoban.oprl at toy sizes, with the PRM reading the text rendering (the
    // paper's choice) and as a copy of the image-reading policy.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/visual_sokoban.oprl");
    let tmp = tempfile::tempdir().unwrap();
    for text_view in [true, false] {
        let overrides: Vec<String> = vec![
            "train.iterations = 2".into(),
            "train.tasks = 2".into(),
            "train.group = 2".into(),
            "eval.tasks = 2".into(),
            "eval.every = 1".into(),
            "env.max_turns = 3".into(),
            "algorithm.minibatch = 2".into(),
            format!("prm.text_view = {text_view}"),
        ];
        let (graph, _) = oprl::compile::compile_file(&path, &overrides)
            .unwrap_or_else(|d| panic!("the visual recipe does not compile: {d:?}"));
        assert!(matches!(
            &graph.env,
            EnvSpec::Sokoban(s) if s.observation == ObservationKind::Image
        ));
        let out = tmp.path().join(format!("visual-{text_view}"));
        let summary = runtime::run(graph, &quiet_into(&out))
            .unwrap_or_else(|e| panic!("text_view = {text_view}: {e}"));
        assert_eq!(summary.iterations, 2);
        let m = metrics(&out);
        assert_eq!(m.len(), 2);
        assert!(m
            .iter()
            .all(|x| x.policy_loss.is_finite() && x.mean_turns > 0.0));
        assert!(m.iter().all(|x| x.prm_loss.is_none_or(f64::is_finite)));
        // The first evaluation episodes as contact sheets: 96x96 frames with a caption strip.
        let sheet = out.join("transcripts/eval-000000-episode0.png");
        let png = oprl::env::image::decode_png(&std::fs::read(&sheet).unwrap()).unwrap();
        let frame_h = 96 + oprl::env::image::CAPTION_HEIGHT;
        let gap = oprl::env::image::SHEET_GAP;
        assert_eq!(png.height, frame_h + 2 * gap);
        assert!(
            png.width >= 2 * 96 + 3 * gap,
            "at least a turn and the final frame"
        );
    }
}

/// `policy.sampling.actions = admissible` (both shipped recipes): every sampled answer is one
/// the environment listed, so no step is invalid, in training and in evaluation, while the runs
/// still learn from their (restricted) log-probs.
#[test]
fn admissible_sampling_never_takes_an_invalid_action() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    for recipe in ["recipes/webshop.oprl", "recipes/sokoban.oprl"] {
        let overrides: Vec<String> = [
            "train.iterations = 2",
            "train.tasks = 2",
            "train.group = 4",
            "eval.tasks = 4",
            "eval.every = 1",
        ]
        .map(String::from)
        .to_vec();
        let (graph, _) = oprl::compile::compile_file(&root.join(recipe), &overrides)
            .unwrap_or_else(|d| panic!("{recipe} does not compile: {d:?}"));
        let PolicySpec::Transformer(policy) = &graph.policy else {
            panic!("{recipe}: a transformer policy")
        };
        assert_eq!(policy.sampling.actions, ActionSpace::Admissible);
        let out = tmp.path().join(recipe.replace('/', "_"));
        runtime::run(graph, &quiet_into(&out)).unwrap_or_else(|e| panic!("{recipe}: {e}"));
        let m = metrics(&out);
        assert_eq!(m.len(), 2, "{recipe}");
        for x in &m {
            assert_eq!(x.invalid_rate, 0.0, "{recipe} iteration {}", x.iteration);
            assert!(x.mean_turns >= 1.0 && x.policy_loss.is_finite(), "{recipe}");
        }
        let evals = std::fs::read_to_string(out.join("eval.jsonl")).unwrap();
        for line in evals.lines() {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(e["invalid_rate"], 0.0, "{recipe}: {line}");
        }
    }
}

/// E0412 decides before a run which environments list their answers; the environments decide
/// at run time (`Environment::action_choices`). The two must agree for every environment and
/// prompt, or a recipe the compiler accepts would silently sample free text.
#[test]
fn the_admissible_rule_agrees_with_the_environments() {
    use oprl::diagnostics::Code;
    for (env, sets) in [
        ("sokoban", "prompt=compact"),
        ("sokoban", "prompt=verl"),
        ("webshop", "prompt=compact"),
        ("webshop", "prompt=verl"),
        ("sotopia", "max_turns=20"),
    ] {
        let spec = oprl::compile::compile_env(env, &[sets.to_string()])
            .env_spec()
            .unwrap_or_else(|| panic!("env {env} {sets} compiles"));
        let mut live = runtime::setup::make_env(&spec).unwrap();
        live.reset(oprl::env::Task {
            split: oprl::env::Split::Train,
            index: 0,
        })
        .unwrap();
        let lists = live.action_choices().is_some();

        let recipe = format!(
            "use std::envs::{env}\nuse std::presets::rloo\nenv {env} {{ {} }}\n\
             policy transformer {{ sampling {{ actions = admissible }} }}\n",
            sets.replace('=', " = ")
        );
        let compiled = oprl::compile::compile_text("rule.oprl", &recipe, Path::new("."), &[]);
        let flagged = compiled
            .diagnostics
            .iter()
            .any(|d| d.code == Code::NoListedAnswers);
        assert_eq!(
            flagged,
            !lists,
            "env {env} {sets}: {}",
            compiled.render_plain()
        );
        // Unflagged means the whole recipe compiles: no other error hid the rule.
        assert_eq!(compiled.graph.is_some(), lists, "env {env} {sets}");
    }
}

/// A tiny Llama-architecture model directory: config.json, drawn f32 weights (safetensors)
/// and a word-level tokenizer.json that knows the Sokoban moves.
fn write_tiny_llama(dir: &Path) {
    use candle_core::{Device, Tensor};
    use rand::{Rng, SeedableRng};
    let (vocab, hidden, mlp, heads, kv_heads, head_dim) = (16, 32, 48, 4, 2, 8);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"model_type": "llama", "vocab_size": {vocab}, "hidden_size": {hidden},
            "intermediate_size": {mlp}, "num_hidden_layers": 1, "num_attention_heads": {heads},
            "num_key_value_heads": {kv_heads}, "head_dim": {head_dim},
            "max_position_embeddings": 128, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": true}}"#
        ),
    )
    .unwrap();
    let words = [
        "up",
        "down",
        "left",
        "right",
        "<action>",
        "</action>",
        "#",
        "_",
        "P",
        "X",
    ];
    let mut entries = vec![
        r#""<|endoftext|>": 0"#.to_string(),
        r#""<|im_end|>": 1"#.to_string(),
        r#""<unk>": 2"#.to_string(),
    ];
    entries.extend(
        words
            .iter()
            .enumerate()
            .map(|(i, w)| format!(r#""{w}": {}"#, i + 3)),
    );
    let special = |id: usize, s: &str| {
        format!(
            r#"{{"id": {id}, "content": "{s}", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}}"#
        )
    };
    std::fs::write(
        dir.join("tokenizer.json"),
        format!(
            r#"{{"version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{}, {}], "normalizer": null,
            "pre_tokenizer": {{"type": "WhitespaceSplit"}}, "post_processor": null,
            "decoder": null,
            "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "<unk>"}}}}"#,
            special(0, "<|endoftext|>"),
            special(1, "<|im_end|>"),
            entries.join(", ")
        ),
    )
    .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut shapes = vec![
        ("model.embed_tokens.weight".to_string(), vec![vocab, hidden]),
        ("model.norm.weight".to_string(), vec![hidden]),
    ];
    let p = "model.layers.0";
    for (name, shape) in [
        ("input_layernorm", vec![hidden]),
        ("post_attention_layernorm", vec![hidden]),
        ("self_attn.q_proj", vec![heads * head_dim, hidden]),
        ("self_attn.k_proj", vec![kv_heads * head_dim, hidden]),
        ("self_attn.v_proj", vec![kv_heads * head_dim, hidden]),
        ("self_attn.o_proj", vec![hidden, heads * head_dim]),
        ("mlp.gate_proj", vec![mlp, hidden]),
        ("mlp.up_proj", vec![mlp, hidden]),
        ("mlp.down_proj", vec![hidden, mlp]),
    ] {
        shapes.push((format!("{p}.{name}.weight"), shape));
    }
    let tensors: std::collections::HashMap<String, Tensor> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let norm = shape.len() == 1;
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let x = 0.2 * (rng.random::<f32>() * 2.0 - 1.0);
                    if norm {
                        1.0 + x
                    } else {
                        x
                    }
                })
                .collect();
            (name, Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
        })
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

#[test]
fn a_lora_run_over_a_bf16_base_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_tiny_llama(&model);
    let mut graph = tiny_graph(3, 17);
    let PolicySpec::Transformer(t) = &graph.policy else {
        unreachable!("the tiny graph trains a transformer")
    };
    graph.policy = PolicySpec::Hf(HfSpec {
        path: model.display().to_string(),
        sampling: t.sampling.clone(),
        dtype: WeightDtype::Bf16,
        lora: Some(LoraSpec {
            rank: 2,
            alpha: 4.0,
            dropout: 0.1,
            targets: vec![Projection::Q, Projection::V, Projection::Down],
        }),
    });
    // A frozen reference too: base plus the initial adapters.
    if let Some(prm) = &mut graph.prm {
        prm.reference = PrmReference::Frozen;
    }
    graph.train.tasks = 2;
    graph.algorithm = AlgorithmSpec::Ppo {
        ppo: PpoSpec {
            minibatch: 8,
            ..graph.algorithm.ppo().clone()
        },
    };
    let whole = tmp.path().join("whole");
    let split = tmp.path().join("split");
    runtime::run(graph.clone(), &quiet_into(&whole)).unwrap();
    let first = runtime::run(
        graph,
        &RunOptions {
            stop_after: Some(1),
            ..quiet_into(&split)
        },
    )
    .unwrap();
    assert_eq!(first.ending, runtime::Ending::Interrupted);
    runtime::resume(&split, &quiet()).unwrap();
    let strip =
        |dir: &Path| -> Vec<_> { metrics(dir).iter().map(|m| m.without_timings()).collect() };
    let a = strip(&whole);
    assert_eq!(a.len(), 3);
    assert_eq!(a, strip(&split));
    // The checkpoints hold the adapters, not the base.
    let ck = std::fs::read_dir(split.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let saved =
        candle_core::safetensors::load(ck.join("policy.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert!(saved
        .keys()
        .all(|k| k.contains(".lora_") || k == oprl::model::weights::LORA_DROPOUT_DRAWS));
    assert_eq!(saved.len(), 3 * 2 + 1);
}
