//! Tokenizers: a char-level vocabulary with optional whole-word tokens for the small model, and
//! Hugging Face tokenizers for pretrained models (from `tokenizer.json`, or built from a GGUF
//! file's metadata, see [`super::gguf`]).
//!
//! Char-level ids are deterministic: the four specials first (`<pad>`=0, `<bos>`=1, `<eos>`=2,
//! `<unk>`=3), then the whole words in the order given, then the distinct chars of the alphabet
//! sorted by code point. Encoding matches words greedily (longest first) at every position and
//! falls back to single chars; a char outside the alphabet becomes `<unk>`. Whole-word tokens
//! (e.g. `up`, `</action>`) let a small model emit an action in one step instead of many.

use super::chat::{ChatTemplate, ChatTemplateError, Message};
use super::error::ModelError;
use candle_core::Result;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub const PAD: &str = "<pad>";
pub const BOS: &str = "<bos>";
pub const EOS: &str = "<eos>";
pub const UNK: &str = "<unk>";
const SPECIALS: [&str; 4] = [PAD, BOS, EOS, UNK];

/// The char (+ whole word) vocabulary of the small model.
#[derive(Debug, Clone)]
pub struct CharVocab {
    /// Token strings by id: specials, words, chars.
    pieces: Vec<String>,
    /// Word ids sorted by decreasing byte length, for greedy longest-first matching.
    words_longest_first: Vec<(String, u32)>,
    char_ids: HashMap<char, u32>,
}

impl CharVocab {
    fn new(alphabet: &str, words: &[String]) -> CharVocab {
        let mut pieces: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        let mut words_longest_first = Vec::new();
        for word in words {
            // Empty or repeated words would give unreachable ids; skip them.
            if word.is_empty() || pieces.contains(word) {
                continue;
            }
            words_longest_first.push((word.clone(), pieces.len() as u32));
            pieces.push(word.clone());
        }
        words_longest_first.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut chars: Vec<char> = alphabet.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let mut char_ids = HashMap::new();
        for c in chars {
            char_ids.insert(c, pieces.len() as u32);
            pieces.push(c.to_string());
        }
        CharVocab {
            pieces,
            words_longest_first,
            char_ids,
        }
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some((word, id)) = self
                .words_longest_first
                .iter()
                .find(|(w, _)| rest.starts_with(w.as_str()))
            {
                ids.push(*id);
                rest = &rest[word.len()..];
                continue;
            }
            ids.push(self.char_ids.get(&c).copied().unwrap_or(3));
            rest = &rest[c.len_utf8()..];
        }
        ids
    }

    fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .filter(|&&id| id as usize >= SPECIALS.len())
            .filter_map(|&id| self.pieces.get(id as usize))
            .map(String::as_str)
            .collect()
    }

    /// The string of one token id (specials included), if the id exists.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    /// The same vocabulary as a Hugging Face `tokenizer.json`: a word-level model over single
    /// chars (every char its own pre-token), the words as added tokens (matched leftmost-longest
    /// before the split, as [`Self::encode`] matches them greedily) and the specials as special
    /// added tokens; decoding concatenates.
    fn hf_json(&self) -> serde_json::Value {
        let vocab: serde_json::Map<String, serde_json::Value> = self
            .pieces
            .iter()
            .enumerate()
            .map(|(id, piece)| (piece.clone(), id.into()))
            .collect();
        let added: Vec<serde_json::Value> = self
            .pieces
            .iter()
            .enumerate()
            .take(SPECIALS.len() + self.words_longest_first.len())
            .map(|(id, piece)| {
                serde_json::json!({
                    "id": id,
                    "content": piece,
                    "single_word": false,
                    "lstrip": false,
                    "rstrip": false,
                    "normalized": false,
                    "special": id < SPECIALS.len(),
                })
            })
            .collect();
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            // `[\s\S]` is one char in both Rust's and Oniguruma's (transformers') regex syntax.
            "pre_tokenizer": {
                "type": "Split",
                "pattern": { "Regex": "[\\s\\S]" },
                "behavior": "Isolated",
                "invert": false,
            },
            "post_processor": null,
            "decoder": { "type": "Fuse" },
            "model": { "type": "WordLevel", "vocab": vocab, "unk_token": UNK },
        })
    }
}

/// A tokenizer for either model family.
#[derive(Clone)]
pub enum Tokenizer {
    Chars(CharVocab),
    Hf(Box<HfTokenizer>),
}

/// A Hugging Face tokenizer, the special ids its model file declares and, as transformers'
/// tokenizers carry it, the model's chat template.
#[derive(Clone)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    declared: SpecialIds,
    chat_template: Option<Arc<ChatTemplate>>,
}

/// Special-token ids a model file names explicitly (GGUF `tokenizer.ggml.*_token_id`); the
/// ones it leaves out are looked up by their usual spellings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tokenizer::Chars(v) => write!(f, "Tokenizer::Chars({} tokens)", v.pieces.len()),
            Tokenizer::Hf(t) => write!(f, "Tokenizer::Hf({} tokens)", t.inner.get_vocab_size(true)),
        }
    }
}

/// Special-token spellings tried, in order, for HF tokenizers.
const HF_EOS: [&str; 5] = [
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "<eos>",
    "<|end_of_text|>",
];
const HF_BOS: [&str; 4] = ["<|endoftext|>", "<s>", "<bos>", "<|begin_of_text|>"];
const HF_PAD: [&str; 4] = ["<|endoftext|>", "<pad>", "[PAD]", "<|pad|>"];

impl Tokenizer {
    /// The prompt ids a chat model reads for `messages`: the conversation rendered by `template`
    /// with the generation prompt, tokenised as transformers' `apply_chat_template(tokenize=True)`
    /// does it (special-token text such as `<|im_start|>` becomes its token; nothing is added,
    /// so a template that writes `bos_token` gets exactly one BOS). At most `limit` ids: a longer
    /// conversation loses text from the start of its message contents (first message first, as a
    /// compact prompt is cut from its start), so the template's own tokens always stay.
    pub fn chat_prompt_ids(
        &self,
        template: &ChatTemplate,
        messages: &[Message],
        limit: usize,
    ) -> std::result::Result<Vec<u32>, ChatTemplateError> {
        let mut messages = messages.to_vec();
        loop {
            let ids = self.encode(&template.render(&messages, true)?);
            let over = ids.len().saturating_sub(limit);
            if over == 0 {
                return Ok(ids);
            }
            let Some(message) = messages.iter_mut().find(|m| !m.content.is_empty()) else {
                return Err(ChatTemplateError::TooLong {
                    tokens: ids.len(),
                    limit,
                });
            };
            // Re-encoding the cut text may merge differently, hence the loop; every round
            // shortens a content, so it ends.
            let content = self.encode(&message.content);
            let cut = self.decode(&content[over.min(content.len())..]);
            message.content = if cut.len() < message.content.len() {
                cut
            } else {
                String::new()
            };
        }
    }

    /// Char-level vocabulary: specials, then the sorted distinct chars of `alphabet`.
    pub fn chars(alphabet: &str) -> Tokenizer {
        Tokenizer::Chars(CharVocab::new(alphabet, &[]))
    }

    /// Char-level plus whole-word tokens matched greedily, longest first.
    pub fn chars_with_words(alphabet: &str, words: &[String]) -> Tokenizer {
        Tokenizer::Chars(CharVocab::new(alphabet, words))
    }

    /// A Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        Tokenizer::from_file_declaring(path, [None, None, None])
    }

    /// A Hugging Face `tokenizer.json` whose model declares its bos, eos and padding tokens
    /// by name (as `tokenizer_config.json` does); names not in the vocabulary are ignored.
    pub fn from_file_declaring(path: &Path, names: [Option<String>; 3]) -> Result<Tokenizer> {
        let tok = tokenizers::Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let [bos, eos, pad] = names.map(|n| n.and_then(|n| tok.token_to_id(&n)));
        Ok(Tokenizer::from_hf(tok, SpecialIds { bos, eos, pad }))
    }

    /// A Hugging Face tokenizer built in memory, with the special ids its model declares.
    pub fn from_hf(inner: tokenizers::Tokenizer, declared: SpecialIds) -> Tokenizer {
        Tokenizer::Hf(Box::new(HfTokenizer {
            inner,
            declared,
            chat_template: None,
        }))
    }

    /// The same tokenizer carrying `template` (a char-level tokenizer has none to carry).
    pub fn with_chat_template(mut self, template: Option<ChatTemplate>) -> Tokenizer {
        if let Tokenizer::Hf(t) = &mut self {
            t.chat_template = template.map(Arc::new);
        }
        self
    }

    /// The chat template of a pretrained instruct model: when present, every prompt the model
    /// reads is rendered through it ([`Tokenizer::chat_prompt_ids`]); small models trained from
    /// scratch have none and read compact raw prompts.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        match self {
            Tokenizer::Chars(_) => None,
            Tokenizer::Hf(t) => t.chat_template.as_deref(),
        }
    }

    /// The string of one token id (special tokens included), if the id exists.
    pub fn token_text(&self, id: u32) -> Option<String> {
        match self {
            Tokenizer::Chars(v) => v.piece(id).map(str::to_string),
            Tokenizer::Hf(t) => t.inner.id_to_token(id),
        }
    }

    /// The tokenizer as a Hugging Face `tokenizer.json` (what an export writes).
    pub fn to_hf_json(&self) -> Result<String> {
        let error = |e: &dyn std::fmt::Display| ModelError::Tokenizer {
            path: "tokenizer.json".into(),
            reason: e.to_string(),
        };
        match self {
            Tokenizer::Chars(v) => {
                serde_json::to_string_pretty(&v.hf_json()).map_err(|e| error(&e).into())
            }
            Tokenizer::Hf(t) => t.inner.to_string(true).map_err(|e| error(&e).into()),
        }
    }

    /// Token ids of `text`, no special tokens added.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::Chars(v) => v.encode(text),
            // An HF encoding error on plain text means the tokenizer itself is broken; the
            // contract returns ids, so fall back to nothing rather than panic.
            Tokenizer::Hf(t) => t
                .inner
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default(),
        }
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Chars(v) => v.decode(ids),
            Tokenizer::Hf(t) => t.inner.decode(ids, true).unwrap_or_default(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Chars(v) => v.pieces.len(),
            Tokenizer::Hf(t) => t.inner.get_vocab_size(true),
        }
    }

    pub fn pad_id(&self) -> u32 {
        match self {
            Tokenizer::Chars(_) => 0,
            Tokenizer::Hf(t) => t
                .declared
                .pad
                .or_else(|| first_known(&t.inner, &HF_PAD))
                .unwrap_or_else(|| self.eos_id()),
        }
    }

    pub fn bos_id(&self) -> u32 {
        match self {
            Tokenizer::Chars(_) => 1,
            Tokenizer::Hf(t) => t
                .declared
                .bos
                .or_else(|| first_known(&t.inner, &HF_BOS))
                .unwrap_or_else(|| self.eos_id()),
        }
    }

    pub fn eos_id(&self) -> u32 {
        match self {
            Tokenizer::Chars(_) => 2,
            Tokenizer::Hf(t) => t
                .declared
                .eos
                .or_else(|| first_known(&t.inner, &HF_EOS))
                .unwrap_or(0),
        }
    }

    /// Every id that ends a generation: `eos_id` and, for HF chat models, the other
    /// end-of-turn / end-of-text tokens the vocabulary has.
    pub fn stop_ids(&self) -> Vec<u32> {
        match self {
            Tokenizer::Chars(_) => vec![self.eos_id()],
            Tokenizer::Hf(t) => {
                let mut ids: Vec<u32> = t.declared.eos.into_iter().collect();
                for id in HF_EOS.iter().filter_map(|s| t.inner.token_to_id(s)) {
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                if ids.is_empty() {
                    ids.push(self.eos_id());
                }
                ids
            }
        }
    }
}

fn first_known(t: &tokenizers::Tokenizer, names: &[&str]) -> Option<u32> {
    names.iter().find_map(|s| t.token_to_id(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_ids_are_specials_then_sorted_chars() {
        let t = Tokenizer::chars("cabba");
        assert_eq!(t.vocab_size(), 4 + 3);
        assert_eq!(t.encode("abc"), vec![4, 5, 6]);
        assert_eq!(t.encode("cz"), vec![6, 3]); // z is unknown
        assert_eq!((t.pad_id(), t.bos_id(), t.eos_id()), (0, 1, 2));
        assert_eq!(t.decode(&[1, 6, 4, 2, 0]), "ca");
    }

    #[test]
    fn words_match_longest_first_before_chars() {
        let words: Vec<String> = ["up", "u", "</action>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = Tokenizer::chars_with_words("<>/actionupd ", &words);
        // specials 0..4, words 4 ("up"), 5 ("u"), 6 ("</action>"), then chars.
        let ids = t.encode("up u</action>p");
        assert_eq!(&ids[..2], &[4, 7]); // "up", then ' ' (first sorted char)
        assert_eq!(ids[2], 5);
        assert_eq!(ids[3], 6);
        assert_eq!(ids.len(), 5);
        assert_eq!(t.decode(&ids), "up u</action>p");
    }
}
