//! Where the cursor is, read from text that may not parse: a tolerant token scan that tracks the
//! open blocks and calls around an offset. Completion runs on half-typed lines that the pest
//! grammar rightly rejects, so it cannot wait for an AST; hover and go-to-definition use the
//! same scan so that all three agree on what a word is.

use crate::compile::schema::{self, BlockSchema, Ty};

/// What a token is; only what cursor context needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A name, dotted (`env.won`) or with `::` (`std::presets::oprl`).
    Name,
    Number,
    Str,
    /// Any other single character: `{ } ( ) [ ] = , ; + - * /`.
    Punct(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// Splits a recipe into tokens, skipping whitespace and comments. Never fails.
pub fn tokenize(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
            TokenKind::Str
        } else if c.is_ascii_digit() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b"_.".contains(&bytes[i]))
            {
                // `3e-4`: a sign right after the exponent belongs to the number.
                let exponent = (bytes[i] == b'e' || bytes[i] == b'E')
                    && matches!(bytes.get(i + 1), Some(b'+' | b'-'));
                i += if exponent { 2 } else { 1 };
            }
            TokenKind::Number
        } else if is_name_char(c) {
            loop {
                while i < bytes.len() && is_name_char(bytes[i]) {
                    i += 1;
                }
                // Continue across `.` and `::` when a name follows.
                let sep = if bytes.get(i) == Some(&b'.') {
                    1
                } else if text[i..].starts_with("::") {
                    2
                } else {
                    0
                };
                match bytes.get(i + sep) {
                    Some(&n) if sep > 0 && is_name_char(n) && !n.is_ascii_digit() => i += sep,
                    _ => break,
                }
            }
            TokenKind::Name
        } else {
            // One character, whole (never split a UTF-8 sequence).
            let ch = text[i..].chars().next().unwrap_or(' ');
            i += ch.len_utf8();
            TokenKind::Punct(ch)
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Something open around the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `kind [variant] {`, or a block value `key = head [variant] {`.
    Block {
        head: String,
        variant: Option<String>,
        /// The key (or definition kind) a block value is assigned to.
        key: Option<String>,
    },
    /// `function(`.
    Call { function: String },
    /// `(` or `[`.
    Group,
}

/// What the cursor is on or after, for completion and hover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// `use |`: a module path or a file.
    UsePath,
    /// The first word of a statement: a key, or a block kind.
    Key,
    /// `kind |`: the variant of a block.
    Variant { kind: String },
    /// `key = |`.
    Value { key: String },
    /// A positional argument or argument name of a call: `episode(|`.
    Argument { function: String },
    /// `function(name = |`.
    ArgumentValue { function: String, name: String },
    /// After an operator of an expression: `... + |`.
    Operand,
    /// Nothing to offer.
    Other,
}

/// The cursor's surroundings: the frames around it (outermost first), where it is, and the name
/// it is in (with its byte range), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub frames: Vec<Frame>,
    pub position: Position,
    pub word: Option<(usize, usize)>,
}

/// The context of the byte offset `offset` of `text`. A name that contains the offset or ends at
/// it is the word; the context is read from the tokens before that word.
pub fn context_at(text: &str, offset: usize) -> Context {
    let tokens = tokenize(text);
    let word_index = tokens
        .iter()
        .position(|t| t.kind == TokenKind::Name && t.start <= offset && offset <= t.end);
    let end = word_index.unwrap_or_else(|| tokens.partition_point(|t| t.end <= offset));
    let before = &tokens[..end];
    let frames = frames(text, before);
    let word = word_index.map(|i| (tokens[i].start, tokens[i].end));
    let word_start = word.map_or(offset, |(s, _)| s);
    let position = classify(text, before, &frames, word_start);
    Context {
        frames,
        position,
        word,
    }
}

fn slice(text: &str, t: &Token) -> String {
    text[t.start..t.end].to_string()
}

/// The frames open after `tokens`.
fn frames(text: &str, tokens: &[Token]) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.kind {
            TokenKind::Punct('{') => {
                // `head [variant] {`, possibly after `key =`.
                let names: Vec<&Token> = tokens[..i]
                    .iter()
                    .rev()
                    .take_while(|t| t.kind == TokenKind::Name)
                    .take(2)
                    .collect();
                let (head, variant) = match names.as_slice() {
                    [v, h] => (slice(text, h), Some(slice(text, v))),
                    [h] => (slice(text, h), None),
                    _ => (String::new(), None),
                };
                let before = i.saturating_sub(names.len());
                let key =
                    (before >= 2 && tokens[before - 1].kind == TokenKind::Punct('=')).then(|| {
                        // `reward outcome = judge {`: the definition's kind is the key.
                        let k = before - 2;
                        if k >= 1
                            && tokens[k - 1].kind == TokenKind::Name
                            && starts_line(text, tokens[k - 1].start)
                        {
                            slice(text, &tokens[k - 1])
                        } else {
                            slice(text, &tokens[k])
                        }
                    });
                frames.push(Frame::Block { head, variant, key });
            }
            TokenKind::Punct('(') => {
                let callee = i
                    .checked_sub(1)
                    .map(|p| tokens[p])
                    .filter(|p| p.kind == TokenKind::Name);
                frames.push(match callee {
                    Some(c) => Frame::Call {
                        function: slice(text, &c),
                    },
                    None => Frame::Group,
                });
            }
            TokenKind::Punct('[') => frames.push(Frame::Group),
            TokenKind::Punct('}') => {
                if let Some(pos) = frames
                    .iter()
                    .rposition(|f| matches!(f, Frame::Block { .. }))
                {
                    frames.truncate(pos);
                }
            }
            TokenKind::Punct(')' | ']') => {
                if let Some(pos) = frames
                    .iter()
                    .rposition(|f| !matches!(f, Frame::Block { .. }))
                {
                    frames.truncate(pos);
                }
            }
            _ => {}
        }
    }
    frames
}

/// True when only spaces and tabs come before `offset` on its line.
fn starts_line(text: &str, offset: usize) -> bool {
    text[..offset]
        .rsplit('\n')
        .next()
        .is_some_and(|l| l.trim().is_empty())
}

fn classify(text: &str, before: &[Token], frames: &[Frame], word_start: usize) -> Position {
    let last = before.last();
    let prev = |n: usize| before.len().checked_sub(n).map(|i| before[i]);
    let name = |t: Token| slice(text, &t);
    if let Some(t) = last {
        if t.kind == TokenKind::Name && name(*t) == "use" && starts_line(text, t.start) {
            return Position::UsePath;
        }
    }
    if let Some(Frame::Call { function }) = frames.last() {
        return match (prev(1).map(|t| t.kind), prev(2)) {
            (Some(TokenKind::Punct('=')), Some(n)) if n.kind == TokenKind::Name => {
                Position::ArgumentValue {
                    function: function.clone(),
                    name: name(n),
                }
            }
            (Some(TokenKind::Punct('(' | ',')), _) => Position::Argument {
                function: function.clone(),
            },
            (Some(TokenKind::Punct('+' | '-' | '*' | '/')), _) => Position::Operand,
            _ => Position::Other,
        };
    }
    if starts_line(text, word_start) {
        return Position::Key;
    }
    match last.map(|t| t.kind) {
        Some(TokenKind::Punct('{' | ',' | ';')) if !matches!(frames.last(), Some(Frame::Group)) => {
            Position::Key
        }
        Some(TokenKind::Punct('=')) => match prev(2) {
            Some(k) if k.kind == TokenKind::Name => {
                // `reward outcome = |`: the value of the `reward` definition.
                let key = match prev(3) {
                    Some(kind) if kind.kind == TokenKind::Name && starts_line(text, kind.start) => {
                        name(kind)
                    }
                    _ => name(k),
                };
                Position::Value { key }
            }
            _ => Position::Other,
        },
        Some(TokenKind::Punct('+' | '-' | '*' | '/' | '(')) => Position::Operand,
        Some(TokenKind::Name) if starts_line(text, last.map_or(0, |t| t.start)) => {
            Position::Variant {
                kind: name(*last.expect("matched Some")),
            }
        }
        _ => Position::Other,
    }
}

/// The schema of each open block frame, outermost first (`None` where the block is unknown).
pub fn block_schemas(frames: &[Frame]) -> Vec<Option<&'static BlockSchema>> {
    let mut out: Vec<Option<&'static BlockSchema>> = Vec::new();
    for frame in frames {
        let Frame::Block { head, variant, key } = frame else {
            continue;
        };
        let parent = out.last().copied().flatten();
        let through_key = |k: &str| match parent.and_then(|p| p.key(k)).map(|k| k.ty) {
            Some(Ty::Block(kind)) => Some(kind),
            _ => None,
        };
        let schema = schema::block(head, variant.as_deref())
            .or_else(|| {
                // `partner = endpoint { ... }`: the key's block kind, with `head` as variant.
                let kind = key.as_deref().and_then(through_key)?;
                schema::block(kind, Some(head))
            })
            .or_else(|| {
                // `algorithm { ... }`: a kind written without its variant gets the first one.
                let first = schema::variants(head).into_iter().next()?;
                schema::block(head, Some(first))
            });
        out.push(schema);
    }
    out
}

/// The schema of the innermost open block, and whether the cursor is at the top level.
pub fn innermost_block(frames: &[Frame]) -> (Option<&'static BlockSchema>, bool) {
    let schemas = block_schemas(frames);
    (schemas.last().copied().flatten(), schemas.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Context {
        let offset = text.find('|').expect("a cursor");
        let text = text.replacen('|', "", 1);
        context_at(&text, offset)
    }

    #[test]
    fn tokens_cover_numbers_names_and_strings() {
        let text = "a.b = 3e-4 + std::x # c\n\"s\\\"t\"";
        let kinds: Vec<(TokenKind, &str)> = tokenize(text)
            .iter()
            .map(|t| (t.kind, &text[t.start..t.end]))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (TokenKind::Name, "a.b"),
                (TokenKind::Punct('='), "="),
                (TokenKind::Number, "3e-4"),
                (TokenKind::Punct('+'), "+"),
                (TokenKind::Name, "std::x"),
                (TokenKind::Str, "\"s\\\"t\""),
            ]
        );
    }

    #[test]
    fn keys_values_and_variants_in_half_typed_text() {
        let c = at("env sokoban {\n  bo|\n");
        assert_eq!(c.position, Position::Key);
        assert_eq!(
            c.frames,
            vec![Frame::Block {
                head: "env".into(),
                variant: Some("sokoban".into()),
                key: None
            }]
        );
        assert_eq!(
            at("env |").position,
            Position::Variant { kind: "env".into() }
        );
        assert_eq!(
            at("env sokoban {\n  observation = |\n}").position,
            Position::Value {
                key: "observation".into()
            }
        );
        assert_eq!(at("use std::pre|").position, Position::UsePath);
        assert_eq!(
            at("reward outcome = |").position,
            Position::Value {
                key: "reward".into()
            }
        );
        assert_eq!(at("pr|").position, Position::Key);
        assert_eq!(at("train { seed = 1, gr| }").position, Position::Key);
    }

    #[test]
    fn calls_and_block_values() {
        let c = at("advantage = episode(outcome, norm = |");
        assert_eq!(
            c.position,
            Position::ArgumentValue {
                function: "episode".into(),
                name: "norm".into()
            }
        );
        assert_eq!(
            at("advantage = step(|").position,
            Position::Argument {
                function: "step".into()
            }
        );
        assert_eq!(
            at("advantage = episode(outcome) + |").position,
            Position::Operand
        );
        let c = at("env sotopia {\n  partner = endpoint {\n    ur|");
        assert_eq!(c.position, Position::Key);
        let (schema, top) = innermost_block(&c.frames);
        assert!(!top);
        assert_eq!(schema.map(|s| s.title()), Some("partner endpoint".into()));
        let c = at("reward outcome = judge {\n  rub|");
        assert_eq!(
            innermost_block(&c.frames).0.map(|s| s.title()),
            Some("judge".into())
        );
        let c = at("policy hf {\n  sampling {\n    te|");
        assert_eq!(
            innermost_block(&c.frames).0.map(|s| s.title()),
            Some("sampling".into())
        );
        let c = at("algorithm {\n  cl|");
        assert_eq!(
            innermost_block(&c.frames).0.map(|s| s.title()),
            Some("algorithm ppo".into())
        );
        let c = at("env sokoban { room = [1, 2] }\nad|");
        assert_eq!(c.frames, vec![]);
        assert_eq!(c.word.map(|(s, e)| e - s), Some(2));
    }
}
