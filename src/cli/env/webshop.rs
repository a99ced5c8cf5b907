//! `oprl env play webshop`: shop by hand in the terminal, one action per line, to see exactly
//! the pages, admissible actions and reward a policy gets.

use crate::env::protocol::task_of_seed;
use crate::env::webshop::pages::{Transition, SEP};
use crate::env::webshop::WebshopEnv;
use crate::env::{EnvError, Environment};
use crate::graph::WebshopSpec;
use std::io::{BufRead, Write};

/// What one typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Restart,
    Next,
    /// An action string for the environment (`search[...]`, `click[...]`).
    Act(String),
}

/// Reads a line: `q`, `r`, `n`, a number picking an admissible click, any other text as a
/// search query when the page has a search bar, or a raw `search[..]`/`click[..]` action.
pub fn command_for(line: &str, admissible: &[String]) -> Option<Command> {
    let line = line.trim();
    match line {
        "" => None,
        "q" | ":q" | "quit" => Some(Command::Quit),
        "r" | ":r" => Some(Command::Restart),
        "n" | ":n" => Some(Command::Next),
        _ => {
            if let Ok(n) = line.parse::<usize>() {
                let action = admissible.get(n.checked_sub(1)?)?;
                return (!action.starts_with("search[")).then(|| Command::Act(action.clone()));
            }
            if line.starts_with("search[") || line.starts_with("click[") {
                return Some(Command::Act(line.to_string()));
            }
            admissible
                .iter()
                .any(|a| a.starts_with("search["))
                .then(|| Command::Act(format!("search[{line}]")))
        }
    }
}

/// The text shown for the current state.
pub fn screen(env: &WebshopEnv, goal: usize) -> String {
    let mut out = format!("── goal {goal} ── {}\n", env.goal().instruction_text);
    for part in env.observation_text().split(SEP) {
        out.push_str(&format!("  {part}\n"));
    }
    if let Some(info) = env.reward_info() {
        out.push_str(&format!(
            "reward {:.4}  (type {}, attributes {}/{}, options {}, price {:?})\nn: next goal   r: retry   q: quit\n",
            info.total,
            info.r_type,
            info.num_attr_matches,
            env.goal().attributes.len(),
            info.num_option_matches,
            info.r_price,
        ));
        return out;
    }
    out.push_str("actions:\n");
    for (i, action) in env.admissible_actions().iter().enumerate() {
        out.push_str(&format!("  {:>2}. {action}\n", i + 1));
    }
    out.push_str("type a number, a search query, or search[..]/click[..]; r: restart, n: next goal, q: quit\n> ");
    out
}

/// Runs the loop on any input and output (the terminal, or a script in tests).
pub fn play(
    env: &mut WebshopEnv,
    first_goal: usize,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let goals = env.world().goals.len();
    let mut goal = first_goal % goals.max(1);
    env.reset_to_goal(goal);
    write!(output, "{}", screen(env, goal))?;
    output.flush()?;
    for line in input.lines() {
        let line = line?;
        match command_for(&line, &env.admissible_actions()) {
            Some(Command::Quit) => break,
            Some(Command::Restart) => {
                env.reset_to_goal(goal);
            }
            Some(Command::Next) => {
                goal = (goal + 1) % goals.max(1);
                env.reset_to_goal(goal);
            }
            Some(Command::Act(action)) => {
                let (transition, _) = env.apply_action(&action);
                if transition == Transition::NoOp {
                    writeln!(output, "(no effect: `{action}` is not available here)")?;
                }
            }
            None => writeln!(output, "(not understood)")?,
        }
        write!(output, "{}", screen(env, goal))?;
        output.flush()?;
    }
    Ok(())
}

/// `oprl env play webshop --seed N`: plays on stdin/stdout from the goal of task `N` (train
/// task `N`, or eval task `N - 2^63`, as `oprl env serve` reads a seed).
pub fn play_webshop(spec: &WebshopSpec, seed: u64) -> Result<(), EnvError> {
    let mut env = WebshopEnv::new(spec)?;
    env.reset(task_of_seed(seed))?;
    let goal = env.goal_index();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    play(&mut env, goal, stdin.lock(), stdout.lock())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_map_to_commands() {
        let search_page = vec![
            "search[<your query>]".to_string(),
            "click[search]".to_string(),
        ];
        assert_eq!(command_for("q", &search_page), Some(Command::Quit));
        assert_eq!(
            command_for("red shoes", &search_page),
            Some(Command::Act("search[red shoes]".into()))
        );
        assert_eq!(command_for("1", &search_page), None);
        assert_eq!(
            command_for("2", &search_page),
            Some(Command::Act("click[search]".into()))
        );
        let item = vec![
            "click[back to search]".to_string(),
            "click[buy now]".to_string(),
        ];
        assert_eq!(
            command_for("2", &item),
            Some(Command::Act("click[buy now]".into()))
        );
        assert_eq!(command_for("9", &item), None);
        assert_eq!(command_for("free text", &item), None);
        assert_eq!(
            command_for("click[x]", &item),
            Some(Command::Act("click[x]".into()))
        );
    }
}
