//! The Sokoban game itself with gym-sokoban's exact rules: cell codes, push-or-move actions,
//! rewards and the end of an episode.
//!
//! Grids use gym-sokoban's integer codes. `room_fixed` holds what never moves (0 wall, 1 floor,
//! 2 target); `room_state` holds the current scene (0 wall, 1 floor, 2 empty target, 3 box on
//! target, 4 box off target, 5 player). Code 6 (player on a target) only exists in renderings.

use serde::{Deserialize, Serialize};

pub const WALL: u8 = 0;
pub const FLOOR: u8 = 1;
pub const TARGET: u8 = 2;
pub const BOX_ON_TARGET: u8 = 3;
pub const BOX: u8 = 4;
pub const PLAYER: u8 = 5;
/// Rendering-only code: the player standing on a target.
pub const PLAYER_ON_TARGET: u8 = 6;

/// The compact one-character symbol of a rendering code (0..=6): the verl-agent symbols, with
/// `*` for a box on a target so that every symbol is ASCII.
pub fn compact_symbol(code: u8) -> char {
    match code {
        WALL => '#',
        FLOOR => '_',
        TARGET => 'O',
        BOX_ON_TARGET => '*',
        BOX => 'X',
        PLAYER => 'P',
        _ => 'S',
    }
}

pub const PENALTY_FOR_STEP: f64 = -0.1;
pub const REWARD_BOX_ON_TARGET: f64 = 1.0;
pub const PENALTY_BOX_OFF_TARGET: f64 = -1.0;
pub const REWARD_FINISHED: f64 = 10.0;

/// A direction of movement, in gym-sokoban's order (up, down, left, right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    Up,
    Down,
    Left,
    Right,
}

impl Dir {
    pub const ALL: [Dir; 4] = [Dir::Up, Dir::Down, Dir::Left, Dir::Right];

    /// `(row, col)` change.
    pub fn delta(self) -> (isize, isize) {
        match self {
            Dir::Up => (-1, 0),
            Dir::Down => (1, 0),
            Dir::Left => (0, -1),
            Dir::Right => (0, 1),
        }
    }

    /// The lower-case word the model writes.
    pub fn word(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
            Dir::Left => "left",
            Dir::Right => "right",
        }
    }

    /// verl-agent's action number (1..4), which is also gym-sokoban's push action.
    pub fn push_action(self) -> u8 {
        self.index() as u8 + 1
    }

    pub fn index(self) -> usize {
        match self {
            Dir::Up => 0,
            Dir::Down => 1,
            Dir::Left => 2,
            Dir::Right => 3,
        }
    }
}

/// One of gym-sokoban's nine actions (0 no-op, 1-4 push-or-move, 5-8 move only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Noop,
    Push(Dir),
    Move(Dir),
}

impl Action {
    /// Decodes gym-sokoban's action number; `None` outside 0..=8.
    pub fn from_gym(code: u8) -> Option<Action> {
        match code {
            0 => Some(Action::Noop),
            1..=4 => Some(Action::Push(Dir::ALL[code as usize - 1])),
            5..=8 => Some(Action::Move(Dir::ALL[code as usize - 5])),
            _ => None,
        }
    }

    pub fn to_gym(self) -> u8 {
        match self {
            Action::Noop => 0,
            Action::Push(d) => d.index() as u8 + 1,
            Action::Move(d) => d.index() as u8 + 5,
        }
    }
}

/// A level as two grids (gym-sokoban's `room_fixed` and `room_state`), row-major.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Level {
    pub rows: usize,
    pub cols: usize,
    pub fixed: Vec<u8>,
    pub state: Vec<u8>,
}

/// Why a pair of grids is not a playable level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("the level has no rows or no columns")]
    Empty,
    #[error("row {row} has {found} cells, expected {expected}")]
    Ragged {
        row: usize,
        found: usize,
        expected: usize,
    },
    #[error(
        "`room_fixed` is {fixed_rows}x{fixed_cols} but `room_state` is {state_rows}x{state_cols}"
    )]
    ShapeMismatch {
        fixed_rows: usize,
        fixed_cols: usize,
        state_rows: usize,
        state_cols: usize,
    },
    #[error("cell ({row}, {col}) has code {code}, which is not valid in {grid}")]
    BadCode {
        grid: &'static str,
        row: usize,
        col: usize,
        code: i64,
    },
    #[error("the level has {0} players, expected exactly one")]
    Players(usize),
    #[error("row {row}, column {col}: `{symbol}` is not a level symbol (use # _ O X * P S)")]
    BadSymbol {
        row: usize,
        col: usize,
        symbol: char,
    },
    #[error("cell ({row}, {col}) is a wall in `room_fixed` but not in `room_state`")]
    WallMismatch { row: usize, col: usize },
}

impl Level {
    /// Builds a level from gym-sokoban integer grids, checking shapes and codes.
    pub fn from_grids(fixed: &[Vec<i64>], state: &[Vec<i64>]) -> Result<Level, LevelError> {
        let (rows, cols) = grid_shape(fixed)?;
        let (state_rows, state_cols) = grid_shape(state)?;
        if (rows, cols) != (state_rows, state_cols) {
            return Err(LevelError::ShapeMismatch {
                fixed_rows: rows,
                fixed_cols: cols,
                state_rows,
                state_cols,
            });
        }
        let mut level = Level {
            rows,
            cols,
            fixed: Vec::with_capacity(rows * cols),
            state: Vec::with_capacity(rows * cols),
        };
        for r in 0..rows {
            for c in 0..cols {
                let f = fixed[r][c];
                let s = state[r][c];
                if !(0..=2).contains(&f) {
                    return Err(LevelError::BadCode {
                        grid: "room_fixed",
                        row: r,
                        col: c,
                        code: f,
                    });
                }
                if !(0..=5).contains(&s) {
                    return Err(LevelError::BadCode {
                        grid: "room_state",
                        row: r,
                        col: c,
                        code: s,
                    });
                }
                if (f == 0) != (s == 0) {
                    return Err(LevelError::WallMismatch { row: r, col: c });
                }
                level.fixed.push(f as u8);
                level.state.push(s as u8);
            }
        }
        let players = level.state.iter().filter(|&&s| s == PLAYER).count();
        if players != 1 {
            return Err(LevelError::Players(players));
        }
        Ok(level)
    }

    /// Builds a level from a picture in the compact symbols (see [`compact_symbol`]), one
    /// string per row.
    pub fn from_picture(rows: &[&str]) -> Result<Level, LevelError> {
        let mut fixed = Vec::new();
        let mut state = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            for (c, ch) in row.chars().enumerate() {
                let (f, s) = match ch {
                    '#' => (WALL, WALL),
                    '_' => (FLOOR, FLOOR),
                    'O' => (TARGET, TARGET),
                    'X' => (FLOOR, BOX),
                    '*' => (TARGET, BOX_ON_TARGET),
                    'P' => (FLOOR, PLAYER),
                    'S' => (TARGET, PLAYER),
                    other => {
                        return Err(LevelError::BadSymbol {
                            row: r,
                            col: c,
                            symbol: other,
                        })
                    }
                };
                fixed.push(f as i64);
                state.push(s as i64);
            }
        }
        let cols = rows.first().map_or(0, |r| r.chars().count());
        let split = |v: Vec<i64>| -> Vec<Vec<i64>> {
            if cols == 0 {
                Vec::new()
            } else {
                v.chunks(cols).map(<[i64]>::to_vec).collect()
            }
        };
        let (fixed, state) = (split(fixed), split(state));
        if fixed.len() != rows.len() {
            return Err(LevelError::Ragged {
                row: fixed.len().min(rows.len()),
                found: 0,
                expected: cols,
            });
        }
        Level::from_grids(&fixed, &state)
    }

    /// The grids as nested integer lists (the JSON protocol's form).
    pub fn state_grid(&self) -> Vec<Vec<u8>> {
        self.state.chunks(self.cols).map(<[u8]>::to_vec).collect()
    }

    pub fn fixed_grid(&self) -> Vec<Vec<u8>> {
        self.fixed.chunks(self.cols).map(<[u8]>::to_vec).collect()
    }

    /// The state with code 6 where the player stands on a target (verl-agent's `render('state')`).
    pub fn render_codes(&self) -> Vec<u8> {
        self.state
            .iter()
            .zip(&self.fixed)
            .map(|(&s, &f)| {
                if s == PLAYER && f == TARGET {
                    PLAYER_ON_TARGET
                } else {
                    s
                }
            })
            .collect()
    }

    pub fn player_index(&self) -> usize {
        self.state
            .iter()
            .position(|&s| s == PLAYER)
            .expect("a level always holds one player (checked on construction)")
    }

    pub fn box_count(&self) -> usize {
        self.state
            .iter()
            .filter(|&&s| s == BOX || s == BOX_ON_TARGET)
            .count()
    }

    pub fn target_count(&self) -> usize {
        self.fixed.iter().filter(|&&f| f == TARGET).count()
    }

    /// Targets not covered by a box (an empty target or the player standing on one).
    pub fn uncovered_targets(&self) -> usize {
        self.state
            .iter()
            .zip(&self.fixed)
            .filter(|&(&s, &f)| s == TARGET || (s == PLAYER && f == TARGET))
            .count()
    }

    /// The cell one step from `index` in `dir`, or `None` outside the grid.
    pub fn neighbour(&self, index: usize, dir: Dir) -> Option<usize> {
        let (dr, dc) = dir.delta();
        let r = (index / self.cols) as isize + dr;
        let c = (index % self.cols) as isize + dc;
        if r < 0 || c < 0 || r >= self.rows as isize || c >= self.cols as isize {
            None
        } else {
            Some(r as usize * self.cols + c as usize)
        }
    }
}

fn grid_shape(grid: &[Vec<i64>]) -> Result<(usize, usize), LevelError> {
    let rows = grid.len();
    let cols = grid.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return Err(LevelError::Empty);
    }
    for (r, row) in grid.iter().enumerate() {
        if row.len() != cols {
            return Err(LevelError::Ragged {
                row: r,
                found: row.len(),
                expected: cols,
            });
        }
    }
    Ok((rows, cols))
}

/// What one `Game::step` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub reward: f64,
    pub done: bool,
    /// All boxes on targets.
    pub solved: bool,
    pub maxsteps_reached: bool,
    pub moved_player: bool,
    pub moved_box: bool,
    /// gym-sokoban's `num_boxes - uncovered targets` (negative if a level has more targets).
    pub boxes_on_target: i64,
}

/// A running episode with gym-sokoban's bookkeeping (`num_env_steps`, `boxes_on_target`).
#[derive(Debug, Clone, PartialEq)]
pub struct Game {
    level: Level,
    player: usize,
    num_boxes: usize,
    max_steps: usize,
    num_env_steps: usize,
    /// As gym-sokoban: 0 after a reset whatever the level holds, then updated by every step.
    boxes_on_target: i64,
}

impl Game {
    /// Starts an episode; `num_boxes` is the number of boxes in the level.
    pub fn new(level: Level, max_steps: usize) -> Game {
        let player = level.player_index();
        let num_boxes = level.box_count();
        Game {
            level,
            player,
            num_boxes,
            max_steps,
            num_env_steps: 0,
            boxes_on_target: 0,
        }
    }

    pub fn level(&self) -> &Level {
        &self.level
    }

    pub fn player(&self) -> (usize, usize) {
        (self.player / self.level.cols, self.player % self.level.cols)
    }

    pub fn num_env_steps(&self) -> usize {
        self.num_env_steps
    }

    pub fn num_boxes(&self) -> usize {
        self.num_boxes
    }

    pub fn max_steps(&self) -> usize {
        self.max_steps
    }

    pub fn boxes_on_target(&self) -> i64 {
        self.boxes_on_target
    }

    /// verl-agent's `won`: the tracked count of boxes on targets equals the number of boxes.
    pub fn won(&self) -> bool {
        self.boxes_on_target == self.num_boxes as i64
    }

    /// gym-sokoban's `_check_if_all_boxes_on_target`: no target is left uncovered.
    pub fn all_boxes_on_target(&self) -> bool {
        self.level.uncovered_targets() == 0
    }

    /// Applies one gym-sokoban action. Like gym-sokoban, steps after `done` are still applied.
    pub fn step(&mut self, action: Action) -> Transition {
        self.num_env_steps += 1;
        let (moved_player, moved_box) = match action {
            Action::Noop => (false, false),
            Action::Push(dir) => self.push(dir),
            Action::Move(dir) => (self.walk(dir), false),
        };
        let mut reward = PENALTY_FOR_STEP;
        let current = self.num_boxes as i64 - self.level.uncovered_targets() as i64;
        if current > self.boxes_on_target {
            reward += REWARD_BOX_ON_TARGET;
        } else if current < self.boxes_on_target {
            reward += PENALTY_BOX_OFF_TARGET;
        }
        let solved = self.all_boxes_on_target();
        if solved {
            reward += REWARD_FINISHED;
        }
        self.boxes_on_target = current;
        let maxsteps_reached = self.max_steps == self.num_env_steps;
        Transition {
            reward,
            done: solved || maxsteps_reached,
            solved,
            maxsteps_reached,
            moved_player,
            moved_box,
            boxes_on_target: current,
        }
    }

    /// Pushes the adjacent box if the cell beyond it is free, otherwise tries to walk.
    fn push(&mut self, dir: Dir) -> (bool, bool) {
        let Some(next) = self.level.neighbour(self.player, dir) else {
            return (false, false);
        };
        let Some(beyond) = self.level.neighbour(next, dir) else {
            return (false, false);
        };
        let has_box = matches!(self.level.state[next], BOX | BOX_ON_TARGET);
        let free_beyond = matches!(self.level.state[beyond], FLOOR | TARGET);
        if has_box && free_beyond {
            self.level.state[beyond] = if self.level.fixed[beyond] == TARGET {
                BOX_ON_TARGET
            } else {
                BOX
            };
            self.place_player(next);
            (true, true)
        } else {
            (self.walk(dir), false)
        }
    }

    /// Walks onto a floor or empty target; never pushes.
    fn walk(&mut self, dir: Dir) -> bool {
        match self.level.neighbour(self.player, dir) {
            Some(next) if matches!(self.level.state[next], FLOOR | TARGET) => {
                self.place_player(next);
                true
            }
            _ => false,
        }
    }

    fn place_player(&mut self, to: usize) {
        let from = self.player;
        self.level.state[from] = self.level.fixed[from];
        self.level.state[to] = PLAYER;
        self.player = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    fn level(rows: &[&str]) -> Level {
        Level::from_picture(rows).unwrap()
    }

    #[test]
    fn walking_onto_floor_and_target_and_into_walls() {
        // One box and one target, so the tracked count starts consistent.
        let mut g = Game::new(level(&["#####", "#P_O#", "#_X_#", "#####"]), 100);
        let t = g.step(Action::Push(Dir::Up));
        assert!(!t.moved_player && !t.moved_box);
        assert_close(t.reward, -0.1);
        let t = g.step(Action::Push(Dir::Right));
        assert!(t.moved_player && !t.moved_box);
        assert_eq!(g.player(), (1, 2));
        // Player onto the target: state shows 5 there, fixed keeps 2, rendering shows 6.
        let t = g.step(Action::Move(Dir::Right));
        assert!(t.moved_player);
        assert_eq!(g.level().state[5 + 3], PLAYER);
        assert_eq!(g.level().render_codes()[5 + 3], PLAYER_ON_TARGET);
        // Leaving restores the target.
        g.step(Action::Push(Dir::Left));
        assert_eq!(g.level().state[5 + 3], TARGET);
        assert_eq!(g.num_env_steps(), 4);
    }

    #[test]
    fn push_onto_target_then_off_it() {
        // Two boxes so that pushing one onto a target does not end the episode.
        let mut g = Game::new(level(&["#######", "#PXO__#", "#__X_O#", "#######"]), 100);
        let t = g.step(Action::Push(Dir::Right));
        assert!(t.moved_player && t.moved_box);
        assert_eq!(g.level().state[7 + 3], BOX_ON_TARGET);
        assert_close(t.reward, 0.9);
        assert_eq!(t.boxes_on_target, 1);
        assert!(!t.done);
        let t = g.step(Action::Push(Dir::Right));
        assert_eq!(g.level().state[7 + 4], BOX);
        // The player now stands on the target the box left.
        assert_eq!(g.level().render_codes()[7 + 3], PLAYER_ON_TARGET);
        assert_close(t.reward, -1.1);
        assert_eq!(t.boxes_on_target, 0);
    }

    #[test]
    fn blocked_pushes_fall_back_to_a_non_move() {
        // Box against a wall: the player cannot push and cannot walk into the box.
        let mut g = Game::new(level(&["#####", "#_PX#", "#####"]), 100);
        let t = g.step(Action::Push(Dir::Right));
        assert!(!t.moved_player && !t.moved_box);
        // Box against a box: no chain pushes.
        let mut g = Game::new(level(&["######", "#PXX_#", "#_O_O#", "######"]), 100);
        let t = g.step(Action::Push(Dir::Right));
        assert!(!t.moved_player && !t.moved_box);
        assert_eq!(g.player(), (1, 1));
        // A move action never pushes.
        let mut g = Game::new(level(&["######", "#PX_O#", "######"]), 100);
        let t = g.step(Action::Move(Dir::Right));
        assert!(!t.moved_player && !t.moved_box);
        let t = g.step(Action::Noop);
        assert!(!t.moved_player);
        assert_close(t.reward, -0.1);
        assert_eq!(g.num_env_steps(), 2);
    }

    #[test]
    fn solving_pays_ten_point_nine_and_ends() {
        let mut g = Game::new(level(&["######", "#PX_O#", "######"]), 100);
        let t = g.step(Action::Push(Dir::Right));
        assert_close(t.reward, -0.1);
        let t = g.step(Action::Push(Dir::Right));
        assert_close(t.reward, 10.9);
        assert!(t.done && t.solved && g.won());
    }

    #[test]
    fn max_steps_is_an_equality_check() {
        let mut g = Game::new(level(&["######", "#PX_O#", "######"]), 2);
        assert!(!g.step(Action::Noop).done);
        let t = g.step(Action::Noop);
        assert!(t.done && t.maxsteps_reached && !t.solved);
        // gym-sokoban keeps stepping afterwards and `done` turns false again.
        assert!(!g.step(Action::Noop).done);
    }

    #[test]
    fn grids_are_checked() {
        let ok = Level::from_grids(
            &[vec![0, 0, 0], vec![0, 1, 0]],
            &[vec![0, 0, 0], vec![0, 5, 0]],
        );
        assert!(ok.is_ok());
        let e = Level::from_grids(
            &[vec![0, 0], vec![0, 1, 0]],
            &[vec![0, 0, 0], vec![0, 5, 0]],
        );
        assert!(matches!(e, Err(LevelError::Ragged { .. })));
        let e = Level::from_grids(&[vec![0, 1, 0]], &[vec![0, 1, 0]]);
        assert_eq!(e, Err(LevelError::Players(0)));
        let e = Level::from_grids(&[vec![0, 7, 0]], &[vec![0, 5, 0]]);
        assert!(matches!(e, Err(LevelError::BadCode { .. })));
    }
}
