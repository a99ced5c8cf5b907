//! Prompt pieces every environment's templates share: filling `{name}` holes, and the window
//! of recent turns shown as history (verl-agent's `SimpleMemory`).

/// Replaces the `{name}` holes of `template` in one left-to-right pass, so that text inside a
/// value is never substituted again; a hole without a value stays as it is.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let hole = after.find('}').and_then(|close| {
            values
                .iter()
                .find(|(name, _)| *name == &after[..close])
                .map(|(_, value)| (close, *value))
        });
        match hole {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The last `history` of `turns`, with the index in `turns` of the first of them.
pub fn recent<T>(turns: &[T], history: usize) -> (usize, &[T]) {
    let start = turns.len().saturating_sub(history);
    (start, &turns[start..])
}

/// verl-agent's `SimpleMemory.fetch`: the last `history` turns as
/// `[Observation n: '...', Action n: '...']` lines numbered from the episode's start, joined
/// by newlines, and how many there are. `pair` gives a turn's observation and action text.
pub fn memory_lines<T>(
    turns: &[T],
    history: usize,
    pair: impl Fn(&T) -> (&str, &str),
) -> (String, usize) {
    let (start, shown) = recent(turns, history);
    let lines: Vec<String> = shown
        .iter()
        .enumerate()
        .map(|(j, turn)| {
            let n = start + j + 1;
            let (observation, action) = pair(turn);
            format!("[Observation {n}: '{observation}', Action {n}: '{action}']")
        })
        .collect();
    (lines.join("\n"), shown.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_does_not_resubstitute_and_keeps_unknown_holes() {
        let text = fill("{a} {b} {c}", &[("a", "{b}"), ("b", "x")]);
        assert_eq!(text, "{b} x {c}");
    }

    #[test]
    fn memory_lines_are_numbered_from_the_episode_start() {
        let turns = [("o1", "a1"), ("o2", "a2"), ("o3", "a3")];
        let (lines, shown) = memory_lines(&turns, 2, |t| (t.0, t.1));
        assert_eq!(shown, 2);
        assert_eq!(
            lines,
            "[Observation 2: 'o2', Action 2: 'a2']\n[Observation 3: 'o3', Action 3: 'a3']"
        );
        assert_eq!(memory_lines(&turns, 0, |t| (t.0, t.1)), (String::new(), 0));
        assert_eq!(recent(&turns, 9), (0, &turns[..]));
    }
}
