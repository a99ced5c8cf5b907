//! Sampling restricted to a list of answers: the token sequences of the answers an environment
//! accepts on this turn (a WebShop page's buttons, Sokoban's moves). At each position only the
//! tokens that continue some answer keep their logits; the rest are masked out of the softmax,
//! in generation and again when the same actions are scored, so `log pi` always means the log-prob
//! under the restricted distribution the action was drawn from.

use super::tokenizer::Tokenizer;

/// The answers one turn may take, as token sequences (deduplicated, none empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceSet {
    answers: Vec<Vec<u32>>,
    /// Ids that end an answer which longer answers extend (the tokenizer's stop ids).
    end: Vec<u32>,
}

impl ChoiceSet {
    /// The answers as `tokenizer` encodes them, keeping those of at most `max_tokens` tokens (a
    /// longer one could never be generated whole). `None` when no answer is left: the turn is
    /// then sampled freely.
    pub fn from_texts(
        tokenizer: &Tokenizer,
        texts: &[String],
        max_tokens: usize,
    ) -> Option<ChoiceSet> {
        let answers = texts
            .iter()
            .map(|t| tokenizer.encode(t))
            .filter(|ids| !ids.is_empty() && ids.len() <= max_tokens)
            .collect();
        ChoiceSet::new(answers, tokenizer.stop_ids())
    }

    /// A set of token answers; `None` if none is non-empty.
    pub fn new(mut answers: Vec<Vec<u32>>, end: Vec<u32>) -> Option<ChoiceSet> {
        answers.retain(|a| !a.is_empty());
        answers.sort();
        answers.dedup();
        (!answers.is_empty()).then_some(ChoiceSet { answers, end })
    }

    pub fn answers(&self) -> &[Vec<u32>] {
        &self.answers
    }

    /// The ids allowed after `prefix` (sorted): the next token of every answer that extends it,
    /// and the end ids when `prefix` is itself an answer. Empty when `prefix` left the answers.
    pub fn allowed_after(&self, prefix: &[u32]) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .answers
            .iter()
            .filter(|a| a.len() > prefix.len() && a.starts_with(prefix))
            .map(|a| a[prefix.len()])
            .collect();
        if !ids.is_empty() && self.is_answer(prefix) {
            ids.extend_from_slice(&self.end);
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Whether `prefix` is a whole answer that no longer answer extends: generation is over.
    pub fn is_finished(&self, prefix: &[u32]) -> bool {
        self.is_answer(prefix)
            && !self
                .answers
                .iter()
                .any(|a| a.len() > prefix.len() && a.starts_with(prefix))
    }

    fn is_answer(&self, prefix: &[u32]) -> bool {
        self.answers
            .binary_search_by(|a| a.as_slice().cmp(prefix))
            .is_ok()
    }

    /// Sets every logit that may not follow `prefix` to minus infinity. A prefix that left the
    /// answers (it cannot, under this mask) leaves the row unchanged.
    pub fn mask_logits(&self, prefix: &[u32], logits: &mut [f32]) {
        let allowed = self.allowed_after(prefix);
        if allowed.is_empty() {
            return;
        }
        let mut next = allowed.iter().peekable();
        for (id, logit) in logits.iter_mut().enumerate() {
            if next.peek().is_some_and(|&&a| a as usize == id) {
                next.next();
            } else {
                *logit = f32::NEG_INFINITY;
            }
        }
    }
}

/// An additive logit mask for one scored action: 0 where a token may follow the action's
/// prefix at that position, `-MASKED` elsewhere (a finite number, so that a masked entry
/// contributes exactly zero probability and zero entropy instead of `0 * inf`). Row k is the
/// mask at action position k; positions past `len` stay open.
pub const MASKED: f32 = 1e9;

/// Fills `rows` (`positions x vocab`, row-major, all zeros on entry) with the mask of `action`.
pub fn fill_mask(choices: &ChoiceSet, action: &[u32], vocab: usize, rows: &mut [f32]) {
    for (k, row) in rows.chunks_mut(vocab).enumerate().take(action.len()) {
        let allowed = choices.allowed_after(&action[..k]);
        if allowed.is_empty() {
            continue;
        }
        row.fill(-MASKED);
        for id in allowed {
            if let Some(x) = row.get_mut(id as usize) {
                *x = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ChoiceSet {
        // "up", "down" as one token each, and "b" / "b c" sharing a prefix.
        ChoiceSet::new(
            vec![vec![5], vec![6], vec![7], vec![7, 8], vec![6]],
            vec![2],
        )
        .unwrap()
    }

    #[test]
    fn allowed_tokens_follow_the_answers() {
        let s = set();
        assert_eq!(s.answers().len(), 4, "duplicates are dropped");
        assert_eq!(s.allowed_after(&[]), vec![5, 6, 7]);
        // "b" is an answer and "b c" extends it: either end here or continue.
        assert_eq!(s.allowed_after(&[7]), vec![2, 8]);
        assert_eq!(s.allowed_after(&[5]), Vec::<u32>::new());
        assert!(s.is_finished(&[5]));
        assert!(!s.is_finished(&[7]));
        assert!(s.is_finished(&[7, 8]));
        assert!(!s.is_finished(&[9]));
    }

    #[test]
    fn masks_keep_only_allowed_logits() {
        let s = set();
        let mut logits = vec![1.0f32; 10];
        s.mask_logits(&[], &mut logits);
        let open: Vec<usize> = (0..10).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(open, vec![5, 6, 7]);

        let mut rows = vec![0.0f32; 3 * 10];
        fill_mask(&s, &[7, 8], 10, &mut rows);
        let open_at =
            |k: usize| -> Vec<usize> { (0..10).filter(|&i| rows[k * 10 + i] == 0.0).collect() };
        assert_eq!(open_at(0), vec![5, 6, 7]);
        assert_eq!(open_at(1), vec![2, 8]);
        assert_eq!(open_at(2).len(), 10, "past the action nothing is masked");
    }

    #[test]
    fn empty_sets_mean_free_sampling() {
        assert!(ChoiceSet::new(vec![vec![]], vec![2]).is_none());
        let t = Tokenizer::chars_with_words("abc", &["ab".to_string()]);
        assert!(ChoiceSet::from_texts(&t, &["abc".into()], 1).is_none());
        let s = ChoiceSet::from_texts(&t, &["ab".into(), "c".into()], 1).unwrap();
        assert_eq!(s.answers().len(), 2);
    }
}
