//! Printers: the resolved recipe (`oprl check --resolved`: every key of every block with its
//! value, defaults marked) and the execution graph as text and Graphviz DOT.

use super::checked::{CheckedBlock, CheckedRecipe, CheckedReward, FieldValue};
use super::schema::DefaultValue;
use crate::graph::{AdvExpr, ExecGraph, Signal, StepGroup};
use crate::syntax::ast::format_float;
use std::fmt::Write;

/// The recipe in recipe syntax with every default filled in. It checks to the same graph.
pub fn resolved_recipe(recipe: &CheckedRecipe) -> String {
    let mut out = String::from(
        "# resolved recipe: every key with its value; `# default` marks values no file wrote\n",
    );
    if let Some(env) = &recipe.env {
        write_block(&mut out, "env", env, 0);
    }
    if let Some(policy) = &recipe.policy {
        write_block(&mut out, "policy", policy, 0);
    }
    match &recipe.reward {
        Some(CheckedReward::Verifier { signal, .. }) => {
            let _ = writeln!(out, "reward outcome = verifier(env.{})", signal.name());
        }
        Some(CheckedReward::Judge { block, .. }) => {
            out.push_str("reward outcome = ");
            write_block(&mut out, "judge", block, 0);
        }
        None => {}
    }
    if recipe.needs_prm() {
        write_block(&mut out, "prm", &recipe.prm, 0);
    }
    match (&recipe.advantage, recipe.algorithm.variant()) {
        (Some((_, expr)), Some("ppo")) => {
            let _ = writeln!(out, "advantage = {expr}");
        }
        (_, Some(variant)) if variant != "ppo" => {
            let _ = writeln!(out, "# advantage: computed by `algorithm {variant}`");
        }
        _ => {}
    }
    write_block(&mut out, "algorithm", &recipe.algorithm, 0);
    write_block(&mut out, "train", &recipe.train, 0);
    write_block(&mut out, "eval", &recipe.eval, 0);
    write_block(&mut out, "output", &recipe.output, 0);
    out
}

fn write_block(out: &mut String, kind: &str, block: &CheckedBlock, depth: usize) {
    let indent = "  ".repeat(depth);
    if block.schema.keys().next().is_none() {
        let head = block
            .variant()
            .map_or(kind.to_string(), |v| format!("{kind} {v}"));
        let _ = writeln!(out, "{head} {{ }}");
        return;
    }
    match block.variant() {
        Some(v) => {
            let _ = writeln!(out, "{kind} {v} {{");
        }
        None => {
            let _ = writeln!(out, "{kind} {{");
        }
    }
    for key in block.schema.keys() {
        let inner = "  ".repeat(depth + 1);
        match block.fields.get(key.key) {
            Some(field) => {
                let marker = if field.span.is_none() {
                    "  # default"
                } else {
                    ""
                };
                match &field.value {
                    FieldValue::Value(v) => {
                        let _ = writeln!(out, "{inner}{} = {}{marker}", key.key, v.to_recipe());
                    }
                    FieldValue::Block(b) => {
                        out.push_str(&inner);
                        write_block(out, key.key, b, depth + 1);
                    }
                }
            }
            None => {
                let meaning = match key.default {
                    DefaultValue::Optional(m) | DefaultValue::Derived(m) => m,
                    _ => "unset",
                };
                let _ = writeln!(out, "{inner}# {}: unset ({meaning})", key.key);
            }
        }
    }
    let _ = writeln!(out, "{indent}}}");
}

/// A one-line description of an advantage expression in recipe syntax.
pub fn advantage_text(expr: &AdvExpr) -> String {
    match expr {
        AdvExpr::Episode { signal, norm } => {
            format!("episode({}, norm = {})", signal_text(signal), norm.name())
        }
        AdvExpr::Step {
            signal,
            norm,
            group,
            maxabs,
            similarity,
        } => {
            let mut s = format!("step({}, norm = {}", signal_text(signal), norm.name());
            if *group == StepGroup::AnchorState {
                s.push_str(", group = anchor_state");
            }
            if *maxabs {
                s.push_str(", maxabs = true");
            }
            if let Some(t) = similarity {
                s.push_str(&format!(", similarity = {}", format_float(*t)));
            }
            s + ")"
        }
        AdvExpr::Token { signal, norm } => {
            format!("token({}, norm = {})", signal_text(signal), norm.name())
        }
        AdvExpr::Scale { factor, expr } => {
            format!("{} * {}", format_float(*factor), advantage_text(expr))
        }
        AdvExpr::Add { terms } => terms
            .iter()
            .map(advantage_text)
            .collect::<Vec<_>>()
            .join(" + "),
        AdvExpr::Gae => "gae (critic)".into(),
        AdvExpr::Prime => "prime (leave-one-out returns)".into(),
    }
}

fn signal_text(signal: &Signal) -> String {
    match signal {
        Signal::Outcome => "outcome".into(),
        Signal::Prm => "prm".into(),
        Signal::EnvReward => "env.reward".into(),
        Signal::Discounted { signal, gamma } => format!(
            "discounted({}, {})",
            signal_text(signal),
            format_float(*gamma)
        ),
        Signal::Sum { terms } => terms
            .iter()
            .map(|(w, s)| {
                if *w == 1.0 {
                    signal_text(s)
                } else {
                    format!("{} * {}", format_float(*w), signal_text(s))
                }
            })
            .collect::<Vec<_>>()
            .join(" + "),
    }
}

/// What a node does, with the parameters that matter, for text and DOT labels.
fn node_detail(graph: &ExecGraph, op: crate::graph::Op) -> String {
    use crate::graph::{EnvSpec, Op, PolicySpec, RewardSpec};
    match op {
        Op::Rollout => {
            let env = match &graph.env {
                EnvSpec::Sokoban(s) => {
                    format!("sokoban {}x{}, {} box(es)", s.room[0], s.room[1], s.boxes)
                }
                EnvSpec::Webshop(_) => "webshop".into(),
                EnvSpec::Sotopia(_) => "sotopia".into(),
                EnvSpec::External(_) => "external".into(),
            };
            let policy = match &graph.policy {
                PolicySpec::Transformer(t) => format!("transformer {}x{}", t.layers, t.width),
                PolicySpec::Hf(h) => format!("hf {}", h.path),
            };
            format!(
                "{env}; {policy}; {} tasks x {} group",
                graph.train.tasks, graph.train.group
            )
        }
        Op::OutcomeReward => match &graph.reward {
            RewardSpec::Verifier { signal } => format!("verifier {}", signal.name()),
            RewardSpec::Judge(j) => format!("judge, success if > {}", format_float(j.threshold)),
        },
        Op::PrmScore => graph.prm.as_ref().map_or(String::new(), |p| {
            format!("beta {}, ref {}", format_float(p.beta), p.reference.name())
        }),
        Op::PrmUpdate => graph.prm.as_ref().map_or(String::new(), |p| {
            format!("{}, lr {}", p.loss.name(), format_float(p.lr))
        }),
        Op::ValueEstimate => "critic".into(),
        Op::Advantage => advantage_text(&graph.advantage),
        Op::PolicyUpdate => format!(
            "{}, lr {}, clip {}",
            graph.algorithm.name(),
            format_float(graph.algorithm.ppo().lr),
            format_float(graph.algorithm.ppo().clip_low)
        ),
        Op::CriticUpdate => graph
            .algorithm
            .critic()
            .map_or(String::new(), |c| format!("lr {}", format_float(c.lr))),
    }
}

/// The graph as text: one line per node.
pub fn graph_text(graph: &ExecGraph) -> String {
    let mut out = format!("recipe {}\n", graph.recipe);
    for (id, node) in &graph.nodes {
        let inputs = if node.inputs.is_empty() {
            String::new()
        } else {
            format!(" <- {}", node.inputs.join(", "))
        };
        let _ = writeln!(
            out,
            "{id}{inputs}\n    {}: {}",
            node.op.name(),
            node_detail(graph, node.op)
        );
    }
    out
}

/// Escapes a string for a DOT double-quoted id.
fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The graph as Graphviz DOT.
pub fn graph_dot(graph: &ExecGraph) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        dot_escape(&graph.recipe)
    );
    for (id, node) in &graph.nodes {
        let label = format!(
            "{}\\n{}",
            node.op.name(),
            dot_escape(&node_detail(graph, node.op))
        );
        let _ = writeln!(out, "  \"{id}\" [label=\"{label}\"];");
    }
    for (id, node) in &graph.nodes {
        for input in &node.inputs {
            let _ = writeln!(out, "  \"{input}\" -> \"{id}\";");
        }
    }
    out.push_str("}\n");
    out
}
