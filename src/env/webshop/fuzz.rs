//! Fuzzy string scores with the semantics WebShop's reward relies on: thefuzz 0.19 on its pure
//! Python backend, i.e. `difflib.SequenceMatcher(None, a, b).ratio()` (matching blocks with the
//! "autojunk" popularity rule), `full_process` and `token_set_ratio`.

use std::collections::HashMap;

/// The number of matched elements in `difflib.SequenceMatcher(None, a, b).get_matching_blocks()`,
/// with `autojunk=True` (elements of `b` that are more than 1% "popular" in a `b` of 200 or more
/// are never used to seed a match).
pub fn matching_characters<T: Eq + std::hash::Hash + Copy>(a: &[T], b: &[T]) -> usize {
    // b2j: element of b -> ascending positions, with popular elements purged.
    let mut b2j: HashMap<T, Vec<usize>> = HashMap::new();
    for (j, &elt) in b.iter().enumerate() {
        b2j.entry(elt).or_default().push(j);
    }
    if b.len() >= 200 {
        let ntest = b.len() / 100 + 1;
        b2j.retain(|_, positions| positions.len() <= ntest);
    }
    let mut total = 0;
    let mut queue = vec![(0usize, a.len(), 0usize, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = find_longest_match(a, b, &b2j, alo, ahi, blo, bhi);
        if k > 0 {
            total += k;
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    total
}

/// difflib's `find_longest_match` without a junk predicate: the longest block of `a[alo..ahi]`
/// equal to `b[blo..bhi]`, earliest in `a` then in `b`, seeded from non-popular elements and then
/// extended over equal neighbours (popular ones included, as difflib does).
fn find_longest_match<T: Eq + std::hash::Hash + Copy>(
    a: &[T],
    b: &[T],
    b2j: &HashMap<T, Vec<usize>>,
    alo: usize,
    ahi: usize,
    blo: usize,
    bhi: usize,
) -> (usize, usize, usize) {
    let (mut besti, mut bestj, mut bestsize) = (alo, blo, 0usize);
    let mut j2len: HashMap<usize, usize> = HashMap::new();
    for (i, elt) in a.iter().enumerate().take(ahi).skip(alo) {
        let mut new_j2len: HashMap<usize, usize> = HashMap::new();
        if let Some(positions) = b2j.get(elt) {
            for &j in positions {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = j
                    .checked_sub(1)
                    .and_then(|p| j2len.get(&p))
                    .copied()
                    .unwrap_or(0)
                    + 1;
                new_j2len.insert(j, k);
                if k > bestsize {
                    besti = i + 1 - k;
                    bestj = j + 1 - k;
                    bestsize = k;
                }
            }
        }
        j2len = new_j2len;
    }
    while besti > alo && bestj > blo && a[besti - 1] == b[bestj - 1] {
        besti -= 1;
        bestj -= 1;
        bestsize += 1;
    }
    while besti + bestsize < ahi
        && bestj + bestsize < bhi
        && a[besti + bestsize] == b[bestj + bestsize]
    {
        bestsize += 1;
    }
    (besti, bestj, bestsize)
}

/// `SequenceMatcher(None, a, b).ratio()` over Unicode code points: `2 * M / (|a| + |b|)`, 1.0 for
/// two empty strings.
pub fn sequence_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let length = a.len() + b.len();
    if length == 0 {
        return 1.0;
    }
    2.0 * matching_characters(&a, &b) as f64 / length as f64
}

/// thefuzz `utils.full_process(s, force_ascii=True)`: drop code points 128..=255 (its
/// `asciionly` table), turn every non-word character into a space, lower-case, strip.
pub fn full_process(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !(128..=255).contains(&(*c as u32)))
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                ' '
            }
        })
        .collect();
    kept.to_lowercase().trim().to_string()
}

/// thefuzz `fuzz.ratio`: 100 for equal strings, 0 if either is empty, else
/// `round(100 * SequenceMatcher.ratio())` with Python's round-half-to-even.
pub fn ratio(s1: &str, s2: &str) -> u32 {
    if s1 == s2 {
        return 100;
    }
    if s1.is_empty() || s2.is_empty() {
        return 0;
    }
    (100.0 * sequence_ratio(s1, s2)).round_ties_even() as u32
}

/// thefuzz `fuzz.token_set_ratio(s1, s2)` (full processing, ASCII forced): compares the sorted
/// token intersection with each side's intersection-plus-remainder and keeps the best ratio.
pub fn token_set_ratio(s1: &str, s2: &str) -> u32 {
    let p1 = full_process(s1);
    let p2 = full_process(s2);
    if p1.is_empty() || p2.is_empty() {
        return 0;
    }
    let tokens1: std::collections::BTreeSet<&str> = p1.split_whitespace().collect();
    let tokens2: std::collections::BTreeSet<&str> = p2.split_whitespace().collect();
    let join = |set: Vec<&str>| set.join(" ");
    let sect = join(tokens1.intersection(&tokens2).copied().collect());
    let diff12 = join(tokens1.difference(&tokens2).copied().collect());
    let diff21 = join(tokens2.difference(&tokens1).copied().collect());
    let combined12 = format!("{sect} {diff12}").trim().to_string();
    let combined21 = format!("{sect} {diff21}").trim().to_string();
    let sect = sect.trim().to_string();
    ratio(&sect, &combined12)
        .max(ratio(&sect, &combined21))
        .max(ratio(&combined12, &combined21))
}

/// Python's `repr` of a `str` (the form thefuzz sees when it is handed a tuple): single quotes
/// unless the text holds a single quote and no double quote; backslash escapes for the quote,
/// backslash, `\t`, `\n`, `\r` and other control characters.
pub fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a 2-tuple of strings, e.g. `('size', '10')`.
pub fn python_pair_repr(first: &str, second: &str) -> String {
    format!("({}, {})", python_str_repr(first), python_str_repr(second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_examples_computed_by_hand() {
        // "machine wash" (12) vs "machine washable" (16): 12 matched -> 24/28 = 85.71 -> 86.
        assert_eq!(ratio("machine wash", "machine washable"), 86);
        // 'abcd' vs 'bcde': one block of 3 -> 6/8 = 75.
        assert_eq!(ratio("abcd", "bcde"), 75);
        assert_eq!(ratio("", "x"), 0);
        assert_eq!(ratio("same", "same"), 100);
    }

    #[test]
    fn ratio_rounds_half_to_even() {
        assert_eq!(ratio("abc", "abcxxxxxxxxxx"), 38); // 6/16 = 37.5 -> 38 (even)
        assert_eq!(ratio("a", "abcdefghijklmnop"), 12); // 2/17 = 11.76
                                                        // 1 matched of 1 + 15 chars: 2/16 = 12.5 -> 12 (even), where round-half-up would say 13.
        assert_eq!(ratio("a", "axxxxxxxxxxxxxx"), 12);
    }

    #[test]
    fn autojunk_ignores_popular_seeds() {
        // Values checked against Python's difflib. b has 200 'x' then 'y': 'x' is popular
        // (> 201 // 100 + 1 occurrences), so it never seeds a match; a block can still grow over
        // it from a seed, or from the (alo, blo) corner when nothing seeded at all.
        let b: Vec<char> = std::iter::repeat_n('x', 200).chain(['y']).collect();
        let count = |a: &str, b: &[char]| matching_characters(&a.chars().collect::<Vec<_>>(), b);
        assert_eq!(count("x", &b), 1);
        assert_eq!(count("zx", &b), 0);
        assert_eq!(count("y", &b), 1);
        assert_eq!(count("xxy", &b), 3);
        let b2: Vec<char> = std::iter::repeat_n('a', 150)
            .chain(std::iter::repeat_n('x', 100))
            .collect();
        assert_eq!(count("qx", &b2), 0);
        assert_eq!(count("ax", &b2), 1);
    }

    #[test]
    fn token_set_ratio_examples() {
        assert_eq!(token_set_ratio("breathable mesh", "breathable"), 100);
        assert_eq!(token_set_ratio("machine washable", "machine wash"), 86);
        assert_eq!(
            token_set_ratio("memory foam cushioning", "memory foam insole"),
            76
        );
        assert_eq!(token_set_ratio("Black", "black"), 100);
        assert_eq!(token_set_ratio("10", "black"), 0);
        assert_eq!(token_set_ratio("10", &python_pair_repr("size", "10")), 100);
        assert_eq!(token_set_ratio("!!", "a"), 0);
    }

    #[test]
    fn full_process_drops_latin1_and_punctuation() {
        assert_eq!(full_process(" Café-Crème, 10oz "), "caf crme  10oz");
        assert_eq!(python_pair_repr("size", "it's"), "('size', \"it's\")");
    }
}
