//! A breadth-first solver over push-or-move actions (verl-agent's four actions), used to prove
//! generated levels solvable and to compute shortest solutions.

use super::game::{Dir, Level, BOX, BOX_ON_TARGET, TARGET, WALL};
use std::collections::{HashMap, VecDeque};

/// A search state: the player cell and the sorted box cells.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Node {
    player: u16,
    boxes: Vec<u16>,
}

/// The shortest action sequence that puts every box on a target, exploring at most
/// `max_states` states. `Some(vec![])` if the level is already solved; `None` if it is
/// unsolvable or the search ran out of states.
pub fn solve(level: &Level, max_states: usize) -> Option<Vec<Dir>> {
    let targets: Vec<u16> = (0..level.fixed.len())
        .filter(|&i| level.fixed[i] == TARGET)
        .map(|i| i as u16)
        .collect();
    let mut boxes: Vec<u16> = (0..level.state.len())
        .filter(|&i| matches!(level.state[i], BOX | BOX_ON_TARGET))
        .map(|i| i as u16)
        .collect();
    boxes.sort_unstable();
    let solved = |boxes: &[u16]| targets.iter().all(|t| boxes.binary_search(t).is_ok());
    let start = Node {
        player: level.player_index() as u16,
        boxes,
    };
    if solved(&start.boxes) {
        return Some(Vec::new());
    }
    // Parent links: state -> (previous state, action taken).
    let mut parent: HashMap<Node, Option<(Node, Dir)>> = HashMap::new();
    parent.insert(start.clone(), None);
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for dir in Dir::ALL {
            let Some(next) = successor(level, &node, dir) else {
                continue;
            };
            if parent.contains_key(&next) {
                continue;
            }
            parent.insert(next.clone(), Some((node.clone(), dir)));
            if solved(&next.boxes) {
                return Some(backtrack(&parent, next));
            }
            if parent.len() >= max_states {
                return None;
            }
            queue.push_back(next);
        }
    }
    None
}

fn backtrack(parent: &HashMap<Node, Option<(Node, Dir)>>, mut node: Node) -> Vec<Dir> {
    let mut plan = Vec::new();
    while let Some(Some((previous, dir))) = parent.get(&node) {
        plan.push(*dir);
        node = previous.clone();
    }
    plan.reverse();
    plan
}

/// gym-sokoban's push-or-move from `node`; `None` when the player does not move.
fn successor(level: &Level, node: &Node, dir: Dir) -> Option<Node> {
    let next = level.neighbour(node.player as usize, dir)?;
    if level.fixed[next] == WALL {
        return None;
    }
    let mut out = node.clone();
    if let Ok(slot) = node.boxes.binary_search(&(next as u16)) {
        let beyond = level.neighbour(next, dir)?;
        if level.fixed[beyond] == WALL || node.boxes.binary_search(&(beyond as u16)).is_ok() {
            return None;
        }
        out.boxes[slot] = beyond as u16;
        out.boxes.sort_unstable();
    }
    out.player = next as u16;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::sokoban::game::{Action, Game};

    fn picture(rows: &[&str]) -> Level {
        Level::from_picture(rows).unwrap()
    }

    #[test]
    fn shortest_plan_and_reward_sum() {
        // Box at (2,3), target at (3,4). Pushing right first then down takes 5 steps
        // (right, right, up, right, down); pushing down first takes 7.
        let level = picture(&["######", "#____#", "#P_X_#", "#___O#", "######"]);
        let plan = solve(&level, 10_000).unwrap();
        assert_eq!(plan.len(), 5);
        let mut game = Game::new(level, 100);
        let mut total = 0.0;
        let mut last = 0.0;
        for (i, d) in plan.iter().enumerate() {
            let t = game.step(Action::Push(*d));
            total += t.reward;
            last = t.reward;
            assert_eq!(t.done, i + 1 == plan.len());
        }
        assert!((last - 10.9).abs() < 1e-9);
        assert!((total - 10.5).abs() < 1e-9);
        assert!(game.won());
    }

    #[test]
    fn unsolvable_levels_give_none() {
        // The box sits in a corner away from the target.
        let level = picture(&["#####", "#X_O#", "#_P_#", "#####"]);
        assert_eq!(solve(&level, 10_000), None);
    }
}
