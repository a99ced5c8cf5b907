//! `oprl env play sokoban`: play generated levels in the terminal with the arrow keys or
//! w/a/s/d, to feel the task the agent learns. `r` restarts the level, `n` goes to the next
//! seed, `q` or Esc quits.

use crate::env::sokoban::{text, SokobanEnv, NAME};
use crate::env::{EnvError, Environment};
use crate::graph::SokobanSpec;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};
use std::io::Write;

/// What a key press asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Move(&'static str),
    Restart,
    Next,
    Quit,
}

/// Maps a key to a command; other keys are ignored.
pub fn command_for(key: &KeyEvent) -> Option<Command> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Command::Quit);
    }
    Some(match key.code {
        KeyCode::Up | KeyCode::Char('w') | KeyCode::Char('W') => Command::Move("up"),
        KeyCode::Down | KeyCode::Char('s') | KeyCode::Char('S') => Command::Move("down"),
        KeyCode::Left | KeyCode::Char('a') | KeyCode::Char('A') => Command::Move("left"),
        KeyCode::Right | KeyCode::Char('d') | KeyCode::Char('D') => Command::Move("right"),
        KeyCode::Char('r') | KeyCode::Char('R') => Command::Restart,
        KeyCode::Char('n') | KeyCode::Char('N') => Command::Next,
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => Command::Quit,
        _ => return None,
    })
}

/// The screen for the current state (plain text; `\r\n` line ends for raw mode).
pub fn screen(env: &SokobanEnv, seed: u64, last_reward: Option<f64>) -> String {
    let grid = text::render_compact(env.game().level());
    let outcome = env.outcome();
    let mut lines = vec![format!("Sokoban, level seed {seed}"), String::new()];
    lines.extend(grid.lines().map(|l| {
        // Double the width so that cells look square in a terminal.
        l.chars().flat_map(|c| [c, ' ']).collect::<String>()
    }));
    lines.push(String::new());
    lines.push(format!(
        "turn {}/{}   return {:+.1}{}",
        env.turn_count(),
        env.spec().max_turns,
        outcome.env_return,
        last_reward.map_or(String::new(), |r| format!("   last reward {r:+.1}")),
    ));
    if env.is_done() {
        lines.push(if outcome.won {
            "solved! n: next level   r: replay   q: quit".into()
        } else {
            "out of turns. r: retry   n: next level   q: quit".into()
        });
    } else {
        lines.push("arrows / wasd: move   r: restart   n: next   q: quit".into());
    }
    lines.push("# wall  _ floor  O target  X box  * box on target  P you  S you on target".into());
    lines.join("\r\n")
}

/// Plays from `seed` until the player quits. The terminal is restored on every exit path.
pub fn play_sokoban(spec: SokobanSpec, seed: u64) -> Result<(), EnvError> {
    let mut env = SokobanEnv::new(spec)?;
    env.reset_seed(seed)?;
    let io = |e: std::io::Error| EnvError::Failed {
        env: NAME.into(),
        message: format!("terminal: {e}"),
    };
    terminal::enable_raw_mode().map_err(io)?;
    let mut out = std::io::stdout();
    let result = (|| -> Result<(), EnvError> {
        execute!(out, terminal::EnterAlternateScreen, cursor::Hide).map_err(io)?;
        let mut seed = seed;
        let mut last = None;
        loop {
            queue!(
                out,
                terminal::Clear(terminal::ClearType::All),
                cursor::MoveTo(0, 0),
                style::Print(screen(&env, seed, last))
            )
            .map_err(io)?;
            out.flush().map_err(io)?;
            let Event::Key(key) = event::read().map_err(io)? else {
                continue;
            };
            match command_for(&key) {
                Some(Command::Quit) => return Ok(()),
                Some(Command::Restart) => {
                    env.reset_seed(seed)?;
                    last = None;
                }
                Some(Command::Next) => {
                    seed = seed.wrapping_add(1);
                    env.reset_seed(seed)?;
                    last = None;
                }
                Some(Command::Move(word)) if !env.is_done() => {
                    // The compact parser accepts the bare word in every style; go through the
                    // verl-agent action number so both styles behave identically here.
                    let action = text::compact_projection(word)
                        .map(|d| d.push_action())
                        .unwrap_or(0);
                    last = Some(env.apply(action, true)?.reward);
                }
                _ => {}
            }
        }
    })();
    let _ = execute!(out, cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_commands() {
        let key = |code| KeyEvent::new(code, KeyModifiers::NONE);
        assert_eq!(command_for(&key(KeyCode::Up)), Some(Command::Move("up")));
        assert_eq!(
            command_for(&key(KeyCode::Char('a'))),
            Some(Command::Move("left"))
        );
        assert_eq!(
            command_for(&key(KeyCode::Char('d'))),
            Some(Command::Move("right"))
        );
        assert_eq!(
            command_for(&key(KeyCode::Char('s'))),
            Some(Command::Move("down"))
        );
        assert_eq!(command_for(&key(KeyCode::Esc)), Some(Command::Quit));
        assert_eq!(command_for(&key(KeyCode::Char('x'))), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(command_for(&ctrl_c), Some(Command::Quit));
    }

    #[test]
    fn screen_shows_grid_and_status() {
        let mut env = SokobanEnv::new(SokobanSpec::default()).unwrap();
        env.reset_seed(4).unwrap();
        let s = screen(&env, 4, None);
        assert!(s.starts_with("Sokoban, level seed 4\r\n\r\n# # # # # # \r\n"));
        assert!(s.contains("turn 0/15"));
    }
}
