//! What the model reads and writes: verl-agent's text rendering, prompt templates and action
//! projection, word for word, and the compact variant for small models trained from scratch.

use super::game::{compact_symbol, Dir, Level, LevelError, WALL};
use crate::env::prompt::{fill, memory_lines, recent};

/// verl-agent's `GRID_LOOKUP`: each cell is space, symbol, space, TAB.
pub fn verl_cell(code: u8) -> &'static str {
    match code {
        0 => " # \t",
        1 => " _ \t",
        2 => " O \t",
        3 => " \u{221a} \t",
        4 => " X \t",
        5 => " P \t",
        6 => " S \t",
        _ => "?",
    }
}

/// verl-agent's text observation (`render('tiny_rgb_array')`): rows joined by one newline.
pub fn render_verl(level: &Level) -> String {
    let codes = level.render_codes();
    let mut out = String::with_capacity(codes.len() * 5 + level.rows);
    for (r, row) in codes.chunks(level.cols).enumerate() {
        if r > 0 {
            out.push('\n');
        }
        for &code in row {
            out.push_str(verl_cell(code));
        }
    }
    out
}

/// Reads a verl-agent text observation back into a level (the inverse of [`render_verl`]).
pub fn parse_verl(text: &str) -> Result<Level, LevelError> {
    let rows: Vec<String> = text
        .split('\n')
        .map(|row| {
            row.split('\t')
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(|cell| match cell {
                    "\u{221a}" => "*",
                    other => other,
                })
                .collect()
        })
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    Level::from_picture(&rows)
}

/// verl-agent's `render('list')`: symbols separated by single spaces, one string per row.
pub fn render_list(level: &Level) -> Vec<String> {
    level
        .render_codes()
        .chunks(level.cols)
        .map(|row| {
            row.iter()
                .map(|&c| verl_cell(c).trim().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The compact rendering: one ASCII character per cell, rows joined by a newline.
pub fn render_compact(level: &Level) -> String {
    render_compact_rows(level, 0)
}

/// The compact observation a model reads: [`render_compact`] without the frame of walls that
/// every generated room has. The frame says nothing about the level, and leaving it out shortens
/// a 6x6 prompt from 42 grid characters to 20 (docs/results.md has what that saves). A level
/// whose border is not all wall keeps it.
pub fn render_compact_observation(level: &Level) -> String {
    render_compact_rows(level, usize::from(has_wall_frame(level)))
}

/// Whether every border cell of the level is a wall (and there is an inside to show).
fn has_wall_frame(level: &Level) -> bool {
    let (rows, cols) = (level.rows, level.cols);
    rows > 2
        && cols > 2
        && (0..rows * cols)
            .filter(|&i| {
                let (r, c) = (i / cols, i % cols);
                r == 0 || c == 0 || r == rows - 1 || c == cols - 1
            })
            .all(|i| level.fixed[i] == WALL)
}

/// The rows and columns of the level `inset` cells in from its border, one character a cell.
fn render_compact_rows(level: &Level, inset: usize) -> String {
    let codes = level.render_codes();
    let mut out = String::with_capacity(codes.len() + level.rows);
    let rows = codes
        .chunks(level.cols)
        .skip(inset)
        .take(level.rows - 2 * inset);
    for (r, row) in rows.enumerate() {
        if r > 0 {
            out.push('\n');
        }
        let inside = &row[inset..level.cols - inset];
        out.extend(inside.iter().map(|&c| compact_symbol(c)));
    }
    out
}

/// verl-agent's `SOKOBAN_TEMPLATE_NO_HIS`, with `{current_observation}` as the only hole.
pub const VERL_TEMPLATE_NO_HISTORY: &str = "
You are an expert agent operating in the Sokoban environment.

# Symbols and Their Meaning
- Walls (`#`): These block movement. You can't move through or push anything into walls.
- Floor (`_`): Open spaces where you can walk and move boxes.
- Targets (`O`): The spots where boxes need to go.
- Boxes (`X`): These are what you need to push onto the targets.
- Player (`P`): That's you! You'll move around the grid to push boxes.
- Box on Target (`\u{221a}`): A box successfully placed on a target.
- Player on Target (`S`): You standing on a target.

# Your Goal
Your goal is to push all the boxes (`X`) onto the target spots (`O`). Once all boxes are on the targets, you win!

# Rules
You can only push boxes. You can't pull them, so plan ahead to avoid getting stuck.
You can't walk through or push boxes into walls (`#`).
To avoid traps, do not push boxes into corners or against walls where they can't be moved again.

# Current Step
Your current observation is:
{current_observation}
Your admissible actions are [\"up\", \"down\", \"left\", \"right\"].

Now it's your turn to make a move (choose ONE action only for the current step).
You should first reason step-by-step about the current situation \u{2014} observe the positions of boxes and targets, plan a path to push a box toward a target, and avoid traps like corners or walls. This reasoning process MUST be enclosed within <think> </think> tags. 
Once you've finished your reasoning, you should choose an admissible action for current step and present it within <action> </action> tags.
";

/// verl-agent's `SOKOBAN_TEMPLATE` (with history).
pub const VERL_TEMPLATE: &str = "
You are an expert agent operating in the Sokoban environment.

# Symbols and Their Meaning
- Walls (`#`): These block movement. You can't move through or push anything into walls.
- Floor (`_`): Open spaces where you can walk and move boxes.
- Targets (`O`): The spots where boxes need to go.
- Boxes (`X`): These are what you need to push onto the targets.
- Player (`P`): That's you! You'll move around the grid to push boxes.
- Box on Target (`\u{221a}`): A box successfully placed on a target.
- Player on Target (`S`): You standing on a target.

# Your Goal
Your goal is to push all the boxes (`X`) onto the target spots (`O`). Once all boxes are on the targets, you win!

# Rules
You can only push boxes. You can't pull them, so plan ahead to avoid getting stuck.
You can't walk through or push boxes into walls (`#`).
To avoid traps, do not push boxes into corners or against walls where they can't be moved again.

# Current Step
Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} observations and the corresponding actions you took: {action_history}
You are now at step {current_step} and your current observation is:
{current_observation}
Your admissible actions are [\"up\", \"down\", \"left\", \"right\"].

Now it's your turn to make a move (choose ONE action only for the current step).
You should first reason step-by-step about the current situation \u{2014} observe the positions of boxes and targets, plan a path to push a box toward a target, and avoid traps like corners or walls. This reasoning process MUST be enclosed within <think> </think> tags. 
Once you've finished your reasoning, you should choose an admissible action for current step and present it within <action> </action> tags.
";

/// verl-agent's `SOKOBAN_VISUAL_TEMPLATE` (VisualSokoban); `<image>` marks where the frame goes.
pub const VERL_VISUAL_TEMPLATE: &str = "
You are an expert agent operating in the Sokoban environment. Your goal is to push all the boxes onto the target spots. Once all boxes are on the targets, you win!

# Rules
You can only push boxes. You can't pull them, so plan ahead to avoid getting stuck.
You can't walk through or push boxes into walls.
To avoid traps, do not push boxes into corners or against walls where they can't be moved again.

# Visual Elements in the Image:
Character: A small, green alien-like figure with two antennae and black eyes. It represents you.
Box: A yellow crate marked with an orange \"X\" across its front. It is the box you need to push.
Target: A black tile outlined in red, with a small red diamond shape in the center. It marks the destination where a box should be pushed.

# Current Step
Your current observation is shown in the image: <image>
Your admissible actions are [\"up\", \"down\", \"left\", \"right\"].

Now it's your turn to make a move (choose ONE action only for the current step).
You should first reason step-by-step about the current situation \u{2014} observe the positions of boxes and targets, plan a path to push a box toward a target, and avoid traps like corners or walls. This reasoning process MUST be enclosed within <think> </think> tags. 
Once you've finished your reasoning, you should choose an admissible action for current step and present it within <action> </action> tags.
";

/// The placeholder that marks where an image goes in a prompt.
pub const IMAGE_PLACEHOLDER: &str = "<image>";

/// verl-agent's `ACTION_LOOKUP` in the environment manager: the label stored in the history.
pub fn verl_action_label(action: u8) -> &'static str {
    match action {
        1 => "Up",
        2 => "Down",
        3 => "Left",
        4 => "Right",
        _ => "Still",
    }
}

/// One past turn: the observation text before the action, and the action (verl-agent number,
/// 0 = still/invalid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub observation: String,
    pub action: u8,
}

/// verl-agent's `SimpleMemory.fetch` lines for the last `history` turns.
pub fn verl_history(turns: &[Turn], history: usize) -> (String, usize) {
    memory_lines(turns, history, |t| {
        (t.observation.as_str(), verl_action_label(t.action))
    })
}

/// verl-agent's step prompt: the no-history template on the first turn or when `history` is 0,
/// the history template afterwards; the visual template when observing images.
pub fn verl_prompt(current: &str, turns: &[Turn], history: usize, image: bool) -> String {
    if image {
        return VERL_VISUAL_TEMPLATE.to_string();
    }
    if turns.is_empty() || history == 0 {
        return fill(
            VERL_TEMPLATE_NO_HISTORY,
            &[("current_observation", current)],
        );
    }
    let (action_history, shown) = verl_history(turns, history);
    let (step_count, shown, current_step) = (
        turns.len().to_string(),
        shown.to_string(),
        (turns.len() + 1).to_string(),
    );
    // Fill the holes in one pass so that text inside an observation is never re-substituted.
    fill(
        VERL_TEMPLATE,
        &[
            ("step_count", step_count.as_str()),
            ("history_length", shown.as_str()),
            ("action_history", action_history.as_str()),
            ("current_step", current_step.as_str()),
            ("current_observation", current),
        ],
    )
}

/// The compact prompt's words.
pub const COMPACT_MOVES: &str = "moves:";
pub const ACTION_OPEN: &str = "<action>";
pub const ACTION_CLOSE: &str = "</action>";

/// The compact prompt: the grid (or `<image>`), the last `history` actions, then `<action>`.
/// The model answers e.g. `up</action>`.
///
/// ```text
/// P_X_
/// ___O
/// moves: up left
/// <action>
/// ```
pub fn compact_prompt(current: &str, turns: &[Turn], history: usize, image: bool) -> String {
    let mut out = String::with_capacity(current.len() + 64);
    out.push_str(if image { IMAGE_PLACEHOLDER } else { current });
    out.push('\n');
    if history > 0 {
        out.push_str(COMPACT_MOVES);
        for t in recent(turns, history).1 {
            out.push(' ');
            out.push_str(compact_action_word(t.action));
        }
        out.push('\n');
    }
    out.push_str(ACTION_OPEN);
    out
}

/// The word the compact history shows for an action (`none` for an invalid one).
pub fn compact_action_word(action: u8) -> &'static str {
    match action {
        1..=4 => Dir::ALL[action as usize - 1].word(),
        _ => "none",
    }
}

/// verl-agent's `sokoban_projection` for one text: `(action, valid)` with action 0..4
/// (0 = still or unparsable). Lower-cases; needs `<action>` and `</action>` (first of each);
/// the first of up/down/left/right/still (in that order) contained between them wins;
/// `valid` is false without a match, or when `<think>` or `</think>` is missing (checked
/// case-sensitively on the original text). `still` parses as action 0 and stays valid, as in
/// verl-agent.
pub fn verl_projection(text: &str) -> (u8, bool) {
    let lower = text.to_lowercase();
    let (Some(start), Some(end)) = (lower.find(ACTION_OPEN), lower.find(ACTION_CLOSE)) else {
        return (0, false);
    };
    let from = start + ACTION_OPEN.len();
    // Python slicing gives an empty string when the close tag comes first.
    let inner = if from <= end { &lower[from..end] } else { "" };
    let pool: [(&str, u8); 5] = [
        ("up", 1),
        ("down", 2),
        ("left", 3),
        ("right", 4),
        ("still", 0),
    ];
    let Some(&(_, action)) = pool.iter().find(|(word, _)| inner.contains(word)) else {
        return (0, false);
    };
    let think = text.contains("<think>") && text.contains("</think>");
    (action, think)
}

/// The compact parser: the earliest of up/down/left/right (any case) before the first
/// `</action>` (or in the whole text without one).
pub fn compact_projection(text: &str) -> Option<Dir> {
    let lower = text.to_lowercase();
    let scope = match lower.find(ACTION_CLOSE) {
        Some(end) => &lower[..end],
        None => &lower[..],
    };
    Dir::ALL
        .iter()
        .filter_map(|&d| scope.find(d.word()).map(|at| (at, d)))
        .min_by_key(|&(at, _)| at)
        .map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verl_text_round_trips() {
        let level = Level::from_picture(&["#####", "#P*_#", "#_XO#", "#####"]).unwrap();
        let text = render_verl(&level);
        assert_eq!(
            text.lines().nth(1).unwrap(),
            " # \t P \t \u{221a} \t _ \t # \t"
        );
        assert_eq!(parse_verl(&text).unwrap(), level);
        assert_eq!(render_compact(&level), "#####\n#P*_#\n#_XO#\n#####");
        assert_eq!(render_compact_observation(&level), "P*_\n_XO");
        // A border with an opening is part of the level: shown whole.
        let open = Level::from_picture(&["#####", "#P*__", "#_XO#", "#####"]).unwrap();
        assert_eq!(render_compact_observation(&open), render_compact(&open));
        assert!(parse_verl(" # \t Q \t").is_err());
    }

    #[test]
    fn history_lines_are_numbered_from_the_whole_episode() {
        let turns: Vec<Turn> = (0..4)
            .map(|i| Turn {
                observation: format!("o{i}"),
                action: i as u8,
            })
            .collect();
        let (lines, shown) = verl_history(&turns, 2);
        assert_eq!(shown, 2);
        assert_eq!(
            lines,
            "[Observation 3: 'o2', Action 3: 'Down']\n[Observation 4: 'o3', Action 4: 'Left']"
        );
        let prompt = verl_prompt("GRID", &turns, 2, false);
        assert!(prompt.contains(
            "Prior to this step, you have already taken 4 step(s). Below are the most recent 2 \
             observations and the corresponding actions you took: [Observation 3: 'o2', Action 3: 'Down']\n"
        ));
        assert!(prompt.contains("You are now at step 5 and your current observation is:\nGRID\n"));
        assert_eq!(
            verl_prompt("GRID", &[], 2, false),
            verl_prompt("GRID", &turns, 0, false)
        );
    }

    #[test]
    fn compact_prompt_and_parsing() {
        let turns = vec![
            Turn {
                observation: String::new(),
                action: 1,
            },
            Turn {
                observation: String::new(),
                action: 0,
            },
            Turn {
                observation: String::new(),
                action: 4,
            },
        ];
        assert_eq!(
            compact_prompt("#P#", &turns, 2, false),
            "#P#\nmoves: none right\n<action>"
        );
        assert_eq!(compact_prompt("#P#", &turns, 0, false), "#P#\n<action>");
        assert_eq!(
            compact_prompt("#P#", &[], 3, true),
            "<image>\nmoves:\n<action>"
        );
        assert_eq!(compact_projection("up</action>"), Some(Dir::Up));
        assert_eq!(compact_projection("Right</action>down"), Some(Dir::Right));
        assert_eq!(compact_projection("go left or down"), Some(Dir::Left));
        assert_eq!(compact_projection("</action>up"), None);
        assert_eq!(compact_projection("stay"), None);
    }

    #[test]
    fn verl_projection_quirks() {
        assert_eq!(
            verl_projection("<think>t</think><action>up</action>"),
            (1, true)
        );
        // Dictionary order, not text order: `up` is tried before `left`.
        assert_eq!(
            verl_projection("<think>t</think><action>left, then up</action>"),
            (1, true)
        );
        assert_eq!(
            verl_projection("<think>t</think><action>still</action>"),
            (0, true)
        );
        assert_eq!(
            verl_projection("<think>t</think><action>jump</action>"),
            (0, false)
        );
        assert_eq!(verl_projection("<action>down</action>"), (2, false));
        assert_eq!(
            verl_projection("<THINK>t</THINK><action>down</action>"),
            (2, false)
        );
        assert_eq!(
            verl_projection("<think>t</think></action>up<action>"),
            (0, false)
        );
        assert_eq!(verl_projection("<think>t</think>up"), (0, false));
        assert_eq!(
            verl_projection("<think></think><ACTION>RIGHT</ACTION>"),
            (4, true)
        );
    }
}
