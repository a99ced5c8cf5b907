//! GiGPO's step groups as verl-agent's `gigpo/core_gigpo.py` (langfengQ/verl-agent@796ed310)
//! builds them: within each task group, steps taken on the same anchor state (an identical
//! current observation, or with similarity grouping a difflib-similar one) form a group, and a
//! step's advantage is normalised within its group. The rest of GiGPO (discounted step
//! returns, the episode term, `A = A_E + w * A_S`) is the advantage language's
//! `step(outcome) + w * step(discounted(env.reward, gamma), group = anchor_state)`, evaluated
//! by [`super::evaluate_advantage`].

use super::stats::group_members;
use super::{check_len, AlgoError};
use std::collections::HashMap;
use std::hash::Hash;

/// The step group of every row: the smallest row index of the rows of the same task group
/// (`index`) whose anchor is identical (`similarity = None`) or, with `Some(threshold)`,
/// difflib-similar ([`similar_step_groups`]). verl-agent's `build_step_group`.
pub fn step_groups<G: Hash + Eq, S: AsRef<str>>(
    index: &[G],
    anchors: &[S],
    similarity: Option<f64>,
) -> Result<Vec<usize>, AlgoError> {
    match similarity {
        None => {
            let keys: Vec<&str> = anchors.iter().map(AsRef::as_ref).collect();
            anchor_step_groups(index, &keys)
        }
        Some(threshold) => similar_step_groups(index, anchors, threshold),
    }
}

/// verl-agent's `build_step_group` with exact matching: within each task group (`index`), rows
/// with identical anchor observations share a step group. Each group is named by its smallest
/// row index (verl-agent draws uuid4 names; the partition is the same).
pub fn anchor_step_groups<G: Hash + Eq, A: Hash + Eq>(
    index: &[G],
    anchors: &[A],
) -> Result<Vec<usize>, AlgoError> {
    check_len("anchor observations", anchors.len(), index.len())?;
    let mut out = vec![0usize; index.len()];
    for rows in group_members(index) {
        let mut first: HashMap<&A, usize> = HashMap::new();
        for &i in &rows {
            out[i] = *first.entry(&anchors[i]).or_insert(i);
        }
    }
    Ok(out)
}

/// Similarity grouping: within each task group, rows are clustered greedily in batch order; a
/// row joins the first cluster whose first observation is similar
/// (`difflib_ratio >= threshold`), or starts a new one. Groups are named by their smallest row.
pub fn similar_step_groups<G: Hash + Eq, S: AsRef<str>>(
    index: &[G],
    anchors: &[S],
    threshold: f64,
) -> Result<Vec<usize>, AlgoError> {
    check_len("anchor observations", anchors.len(), index.len())?;
    let mut out = vec![0usize; index.len()];
    for rows in group_members(index) {
        let mut reps: Vec<usize> = Vec::new();
        for &i in &rows {
            let found = reps
                .iter()
                .copied()
                .find(|&r| difflib_ratio(anchors[i].as_ref(), anchors[r].as_ref()) >= threshold);
            out[i] = match found {
                Some(r) => r,
                None => {
                    reps.push(i);
                    i
                }
            };
        }
    }
    Ok(out)
}

/// Python's `difflib.SequenceMatcher(None, a, b).ratio()` over Unicode scalar values:
/// `2 M / (len a + len b)` with `M` the total size of the matching blocks found by recursively
/// taking the longest common block, including the "autojunk" rule (for `len b >= 200`, elements
/// of `b` occurring more than `len b / 100 + 1` times are not used to seed matches).
pub fn difflib_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let mut b2j: HashMap<char, Vec<usize>> = HashMap::new();
    for (j, &c) in b.iter().enumerate() {
        b2j.entry(c).or_default().push(j);
    }
    if b.len() >= 200 {
        let ntest = b.len() / 100 + 1;
        b2j.retain(|_, js| js.len() <= ntest);
    }
    let mut matched = 0usize;
    let mut queue = vec![(0usize, a.len(), 0usize, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest_match(&a, &b, &b2j, alo, ahi, blo, bhi);
        if k > 0 {
            matched += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    2.0 * matched as f64 / total as f64
}

/// difflib's `find_longest_match` without a junk predicate: the earliest longest block seeded
/// from `b2j`, then extended over equal neighbours (autojunked elements may extend a block).
#[allow(clippy::too_many_arguments)]
fn longest_match(
    a: &[char],
    b: &[char],
    b2j: &HashMap<char, Vec<usize>>,
    alo: usize,
    ahi: usize,
    blo: usize,
    bhi: usize,
) -> (usize, usize, usize) {
    let (mut besti, mut bestj, mut best) = (alo, blo, 0usize);
    let mut j2len: HashMap<usize, usize> = HashMap::new();
    for (i, c) in a.iter().enumerate().take(ahi).skip(alo) {
        let mut next: HashMap<usize, usize> = HashMap::new();
        if let Some(js) = b2j.get(c) {
            for &j in js {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = if j > 0 {
                    j2len.get(&(j - 1)).copied().unwrap_or(0)
                } else {
                    0
                } + 1;
                next.insert(j, k);
                if k > best {
                    besti = i + 1 - k;
                    bestj = j + 1 - k;
                    best = k;
                }
            }
        }
        j2len = next;
    }
    while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
        besti -= 1;
        bestj -= 1;
        best += 1;
    }
    while besti + best < ahi && bestj + best < bhi && a[besti + best] == b[bestj + best] {
        best += 1;
    }
    (besti, bestj, best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_groups_stay_inside_task_groups() {
        let index = [0, 0, 1, 0, 1];
        let obs = ["x", "y", "x", "x", "x"];
        assert_eq!(
            anchor_step_groups(&index, &obs).unwrap(),
            vec![0, 1, 2, 0, 2]
        );
        assert_eq!(
            step_groups(&index, &obs, None).unwrap(),
            vec![0, 1, 2, 0, 2]
        );
        // identical observations are similar at any threshold
        assert_eq!(
            step_groups(&index, &obs, Some(1.0)).unwrap(),
            vec![0, 1, 2, 0, 2]
        );
    }

    #[test]
    fn difflib_ratio_by_hand() {
        // "abcd" vs "bcde": longest block "bcd" (3): 2*3/8
        assert!((difflib_ratio("abcd", "bcde") - 0.75).abs() < 1e-12);
        assert_eq!(difflib_ratio("", ""), 1.0);
        assert_eq!(difflib_ratio("abc", "xyz"), 0.0);
        // blocks "a" then "c" after the longest "b"? "abxc" vs "abyc": "ab" + "c" = 3 -> 6/8
        assert!((difflib_ratio("abxc", "abyc") - 0.75).abs() < 1e-12);
    }

    /// A deterministic text grid (cells joined by " \t ", rows by newlines) with some cells
    /// replaced by `P`.
    fn grid(n: usize, changed: &[(usize, usize)]) -> String {
        (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| {
                        if changed.contains(&(i, j)) {
                            "P".to_string()
                        } else {
                            "#_PXO"[(i * 7 + j * 3) % 5..][..1].to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" \t ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Ratios printed by CPython 3.11's difflib for the same strings; the long ones exercise
    /// the autojunk rule (b of 200+ elements), which makes near-identical grids look dissimilar.
    #[test]
    fn difflib_ratio_matches_cpython_including_autojunk() {
        let cases: [(String, String, f64); 4] = [
            (grid(6, &[]), grid(6, &[(2, 3)]), 0.9923664122137404),
            (
                grid(10, &[]),
                grid(10, &[(2, 3), (7, 7)]),
                0.23218997361477572,
            ),
            (
                "ab".repeat(150) + "xyz",
                "ab".repeat(140) + &"q".repeat(30) + "xyz",
                0.9188311688311688,
            ),
            ("é漢字".repeat(70), "漢字é".repeat(69) + "z", 0.0),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                difflib_ratio(&a, &b),
                want,
                "{} vs {} chars",
                a.len(),
                b.len()
            );
            assert_eq!(difflib_ratio(&b, &a), want);
        }
    }

    #[test]
    fn similar_groups_greedy() {
        let obs: Vec<String> = ["abcdefghij", "abcdefghiX", "zzzzzzzzzz", "abcdefghij"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // ratio of the first two = 18/20 = 0.9
        assert_eq!(
            similar_step_groups(&[0, 0, 0, 0], &obs, 0.9).unwrap(),
            vec![0, 0, 2, 0]
        );
        assert_eq!(
            similar_step_groups(&[0, 0, 0, 0], &obs, 0.95).unwrap(),
            vec![0, 1, 2, 0]
        );
    }
}
