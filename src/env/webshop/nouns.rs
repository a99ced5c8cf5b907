//! Title nouns for WebShop's type reward without spaCy: a small rule-based tokenizer and
//! part-of-speech heuristic tuned to product names.
//!
//! WebShop keeps the tokens of a product name that `en_core_web_sm` tags NOUN or PROPN. Product
//! names are mostly Title Case, and the small spaCy model tags almost every capitalised content
//! word PROPN (adjectives included: "Lightweight", "Sexy", "Natural"), so the rules are:
//! 1. tokenise like spaCy's English rules for the cases that occur in names: split on white space,
//!    peel leading `( [ { " '` and trailing `) ] } " ' , . ; : ! ?` punctuation, split the
//!    possessive `'s` and a unit after a number (`5.5ft`, `100%`), and split the infixes `-` or
//!    `/` before a letter, `-` between digits and `,` between letters;
//! 2. closed-class words (prepositions, determiners, conjunctions, pronouns, particles,
//!    auxiliaries), in any case, are not nouns; punctuation and numbers are not nouns;
//! 3. a word starting with a capital letter is a noun (spaCy: PROPN), except a short list of
//!    words the model reliably tags otherwise ("Very", "Back" as adverbs);
//! 4. a lower-case word is a noun unless it is a known adjective (colours, sizes, common
//!    qualities), ends like an adjective or adverb (-able, -ible, -ful, -less, -ous, -ive, -ly)
//!    or is a past participle (-ed);
//! 5. alphanumerics that start with a digit ("20ml", "4pcs") are nouns; pure numbers and number
//!    words are not; of the symbols only `%` and `|` count (as the model tags them NOUN).
//!
//! Tuning was done against spaCy's tags of the 100 shipped names; rules that only fit single
//! names (e.g. capitalised `-ed` words, tagged both ways by the model) were left out.
//!
//! The agreement with spaCy on the shipped product names is measured by a test in this module
//! (see `tests/data/webshop_spacy_nouns.json`).

/// A token of a name with whether the heuristic tags it as a noun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedToken {
    pub text: String,
    pub noun: bool,
}

const LEADING_PUNCT: &[char] = &['(', '[', '{', '"', '\'', '“', '‘', '*', '#', '<'];
const TRAILING_PUNCT: &[char] = &[
    ')', ']', '}', '"', '\'', ',', '.', ';', ':', '!', '?', '”', '’', '*', '>',
];

const CLOSED_CLASS: &[&str] = &[
    // prepositions ("x" as in "12 x 40")
    "x", "for", "with", "of", "in", "on", "by", "from", "to", "at", "about", "into", "onto", "over",
    "under", "without", "within", "between", "against", "per", "via", "through", "up", "out",
    "off", "after", "before", "around", "across", "along", "upon", "than", "like", "as", "inside",
    // determiners and quantifiers
    "the", "a", "an", "this", "that", "these", "those", "each", "every", "all", "some", "any", "no",
    "both", "either", "neither", "another", // conjunctions
    "and", "or", "nor", "but", "&", "+", "so", "yet", "if", "while",
    // pronouns and possessives
    "i", "you", "he", "she", "it", "we", "they", "me", "him", "her", "us", "them", "my", "your",
    "his", "its", "our", "their", "yours", "ours", "theirs", "itself", "yourself",
    // particles and auxiliaries
    "'s", "’s", "'", "not", "is", "are", "be", "was", "were", "been", "can", "will", "do", "does",
    // adverbs the model keeps out of nouns even when capitalised
    "very", "back", "more", "most", "also", "too", "just", "only",
];

const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "thousand",
];

const LOWERCASE_ADJECTIVES: &[&str] = &[
    "natural",
    "white",
    "black",
    "red",
    "blue",
    "green",
    "yellow",
    "pink",
    "purple",
    "brown",
    "grey",
    "gray",
    "gold",
    "silver",
    "orange",
    "beige",
    "navy",
    "small",
    "large",
    "big",
    "little",
    "long",
    "short",
    "high",
    "low",
    "new",
    "old",
    "soft",
    "hard",
    "light",
    "dark",
    "heavy",
    "full",
    "free",
    "pure",
    "fresh",
    "dry",
    "wet",
    "hot",
    "cold",
    "warm",
    "cool",
    "clean",
    "easy",
    "best",
    "great",
    "good",
    "premium",
    "organic",
    "extra",
    "mini",
    "wide",
    "thin",
    "thick",
    "slim",
    "sexy",
    "cute",
    "casual",
    "elegant",
    "modern",
    "classic",
    "vintage",
    "rustic",
    "personal",
    "portable",
    "durable",
    "waterproof",
    "lightweight",
    "non-slip",
    "stainless",
    "medium",
    "multi",
    "double",
    "single",
    "sensitive",
    "daily",
    "dual",
    "round",
    "square",
    "flat",
];

/// spaCy-like tokenisation of a product name.
pub fn tokenize(name: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for chunk in name.split_whitespace() {
        let chars: Vec<char> = chunk.chars().collect();
        let mut start = 0;
        let mut end = chars.len();
        let mut prefix = Vec::new();
        while start < end && LEADING_PUNCT.contains(&chars[start]) {
            prefix.push(chars[start].to_string());
            start += 1;
        }
        let mut suffix = Vec::new();
        loop {
            if end > start + 1 && TRAILING_PUNCT.contains(&chars[end - 1]) {
                suffix.push(chars[end - 1].to_string());
                end -= 1;
                continue;
            }
            // a unit after a number ("5.5ft" -> "5.5", "ft"; "100%" -> "100", "%")
            if let Some(unit) = number_unit_suffix(&chars[start..end]) {
                suffix.push(unit.to_string());
                end -= unit.chars().count();
                continue;
            }
            // possessive 's / ’s after at least one letter
            if end >= start + 3
                && chars[end - 1].eq_ignore_ascii_case(&'s')
                && (chars[end - 2] == '\'' || chars[end - 2] == '’')
            {
                suffix.push(chars[end - 2..end].iter().collect());
                end -= 2;
                continue;
            }
            break;
        }
        tokens.extend(prefix);
        tokens.extend(split_infixes(&chars[start..end]));
        tokens.extend(suffix.into_iter().rev());
    }
    tokens
}

/// Units spaCy splits off a number at the end of a chunk (case-sensitive, longest first).
const UNITS: &[&str] = &[
    "mph", "km", "dm", "cm", "mm", "ha", "nm", "yd", "in", "ft", "kg", "mg", "lb", "oz", "mb",
    "MB", "kb", "KB", "gb", "GB", "tb", "TB", "m", "g", "t", "T", "G", "M", "K", "%", "°",
];

fn number_unit_suffix(chars: &[char]) -> Option<&'static str> {
    let text: String = chars.iter().collect();
    UNITS.iter().copied().find(|unit| {
        text.len() > unit.len()
            && text.ends_with(unit)
            && text[..text.len() - unit.len()]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Splits infixes as spaCy does: `-` or `/` between a letter or digit and a letter, `-` between
/// digits, `,` between letters.
fn split_infixes(chars: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let inner = i > 0 && i + 1 < chars.len();
        let (before, after) = if inner {
            (chars[i - 1], chars[i + 1])
        } else {
            (' ', ' ')
        };
        let is_infix = inner
            && (((c == '-' || c == '/') && before.is_alphanumeric() && after.is_alphabetic())
                || (c == '-' && before.is_ascii_digit() && after.is_ascii_digit())
                || (c == ',' && before.is_alphabetic() && after.is_alphabetic()));
        if is_infix {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(c.to_string());
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_number(token: &str) -> bool {
    let has_digit = token.chars().any(|c| c.is_ascii_digit());
    has_digit
        && token
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '/'))
}

/// Whether one token is tagged as a noun (spaCy NOUN or PROPN) by the heuristic.
pub fn is_noun(token: &str) -> bool {
    let lower = token.to_lowercase();
    if !token.chars().any(|c| c.is_alphanumeric()) {
        // spaCy's small model tags these symbols NOUN in product names.
        return token == "%" || token == "|";
    }
    if CLOSED_CLASS.contains(&lower.as_str()) || NUMBER_WORDS.contains(&lower.as_str()) {
        return false;
    }
    if is_number(token) {
        return false;
    }
    let first = token.chars().next().unwrap_or(' ');
    if first.is_ascii_digit() {
        return true;
    }
    if first.is_uppercase() {
        return true;
    }
    if LOWERCASE_ADJECTIVES.contains(&lower.as_str()) {
        return false;
    }
    const NON_NOUN_ENDINGS: &[&str] = &["able", "ible", "ful", "less", "ous", "ive", "ly", "ed"];
    !NON_NOUN_ENDINGS
        .iter()
        .any(|e| lower.len() > e.len() + 2 && lower.ends_with(e))
}

/// Tokens of a name with their noun flag.
pub fn tag(name: &str) -> Vec<TaggedToken> {
    tokenize(name)
        .into_iter()
        .map(|t| TaggedToken {
            noun: is_noun(&t),
            text: t,
        })
        .collect()
}

/// The lower-cased noun tokens of a name, in order (WebShop's `purchased_type_parse`).
pub fn title_nouns(name: &str) -> Vec<String> {
    tag(name)
        .into_iter()
        .filter(|t| t.noun)
        .map(|t| t.text.to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_name() {
        assert_eq!(
            title_nouns("Lightweight Running Shoes for Men"),
            vec!["lightweight", "running", "shoes", "men"]
        );
    }

    #[test]
    fn tokenizer_splits_like_spacy() {
        assert_eq!(
            tokenize("Women's V-Neck (M-3XL)"),
            vec!["Women", "'s", "V", "-", "Neck", "(", "M-3XL", ")"]
        );
        assert_eq!(
            tokenize("w/Proteins 3-Piece, Table/2"),
            vec!["w", "/", "Proteins", "3", "-", "Piece", ",", "Table/2"]
        );
    }

    /// Agreement with spaCy (en_core_web_sm 3.8.0) on the 100 shipped product names: token-level
    /// noun/non-noun agreement on the tokens where both tokenisations agree, and the mean Jaccard
    /// overlap of the noun sets. Printed with `cargo test --lib webshop::nouns -- --nocapture`.
    #[test]
    fn agreement_with_spacy_on_shipped_names() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/webshop_spacy_nouns.json"
        );
        let data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let names = data["names"].as_array().unwrap();
        let (mut agree, mut compared, mut same_tokens, mut jaccard) =
            (0usize, 0usize, 0usize, 0.0f64);
        let mut exact_sets = 0usize;
        for entry in names {
            let name = entry["name"].as_str().unwrap();
            let reference: Vec<(String, bool)> = entry["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let pos = t[1].as_str().unwrap();
                    (
                        t[0].as_str().unwrap().to_string(),
                        matches!(pos, "NOUN" | "PROPN" | "PNOUN"),
                    )
                })
                .collect();
            let ours = tag(name);
            if ours.len() == reference.len()
                && ours.iter().zip(&reference).all(|(a, b)| a.text == b.0)
            {
                same_tokens += 1;
                for (a, b) in ours.iter().zip(&reference) {
                    compared += 1;
                    agree += usize::from(a.noun == b.1);
                }
            }
            let ours_set: std::collections::BTreeSet<String> =
                title_nouns(name).into_iter().collect();
            let ref_set: std::collections::BTreeSet<String> = entry["nouns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            let inter = ours_set.intersection(&ref_set).count() as f64;
            let union = ours_set.union(&ref_set).count().max(1) as f64;
            jaccard += inter / union;
            exact_sets += usize::from(ours_set == ref_set);
        }
        let n = names.len() as f64;
        let token_agreement = agree as f64 / compared as f64;
        let mean_jaccard = jaccard / n;
        println!(
            "spaCy agreement on {} names: identical tokenisation {}/{}, token noun-tag agreement {:.4} ({agree}/{compared}), noun-set Jaccard {:.4}, identical noun sets {}/{}",
            names.len(), same_tokens, names.len(), token_agreement, mean_jaccard, exact_sets, names.len()
        );
        assert!(token_agreement > 0.9, "token agreement {token_agreement}");
        assert!(mean_jaccard > 0.85, "noun-set Jaccard {mean_jaccard}");
    }
}
