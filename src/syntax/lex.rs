//! A pre-scan of the raw text before pest runs: it finds unterminated strings, unbalanced
//! delimiters and runaway nesting, which a PEG parser reports poorly (or, for nesting, by
//! overflowing its stack). It understands just enough lexing to skip strings and comments.

use crate::diagnostics::{Code, Diagnostic, SourceId, Span};

/// The deepest nesting of brackets and unary minus signs the parser accepts.
pub const MAX_DEPTH: usize = 32;

/// Scans `text`; returns the first structural problem found, if any.
pub fn prescan(source: SourceId, text: &str) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    let span = |start: usize, end: usize| Span::new(source, start, end);
    let mut stack: Vec<(u8, usize)> = Vec::new();
    let mut minus_run = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                let open = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            return Some(
                                Diagnostic::new(Code::UnterminatedString, "unterminated string")
                                    .label(span(open, i), "this string is never closed")
                                    .help("close it with `\"` on the same line; write `\\n` for a newline"),
                            );
                        }
                        Some(b'"') => break,
                        // An escape: skip the next byte unless it ends the line (reported above).
                        Some(b'\\') if bytes.get(i + 1).is_some_and(|&n| n != b'\n') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                minus_run = 0;
            }
            b'{' | b'[' | b'(' => {
                stack.push((b, i));
                if stack.len() + minus_run > MAX_DEPTH {
                    return Some(too_deep(span(i, i + 1)));
                }
            }
            b'}' | b']' | b')' => {
                let expected = match b {
                    b'}' => b'{',
                    b']' => b'[',
                    _ => b'(',
                };
                match stack.pop() {
                    Some((open, _)) if open == expected => {}
                    Some((open, at)) => {
                        return Some(
                            Diagnostic::new(
                                Code::UnclosedDelimiter,
                                format!("mismatched closing delimiter `{}`", b as char),
                            )
                            .label(
                                span(i, i + 1),
                                format!("expected `{}` here", closer(open) as char),
                            )
                            .label(span(at, at + 1), "this delimiter is unclosed")
                            .help(format!(
                                "close `{}` with `{}`",
                                open as char,
                                closer(open) as char
                            )),
                        );
                    }
                    None => {
                        return Some(
                            Diagnostic::new(
                                Code::UnclosedDelimiter,
                                format!("unexpected closing delimiter `{}`", b as char),
                            )
                            .label(span(i, i + 1), "nothing is open here")
                            .help("remove it, or add the opening delimiter it closes"),
                        );
                    }
                }
            }
            b'-' => {
                minus_run += 1;
                if stack.len() + minus_run > MAX_DEPTH {
                    return Some(too_deep(span(i, i + 1)));
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => minus_run = 0,
        }
        i += 1;
    }
    stack.pop().map(|(open, at)| {
        Diagnostic::new(
            Code::UnclosedDelimiter,
            format!("unclosed delimiter `{}`", open as char),
        )
        .label(span(at, at + 1), "this delimiter is never closed")
        .label(span(text.len(), text.len()), "the file ends here")
        .help(format!(
            "add `{}` where it should end",
            closer(open) as char
        ))
    })
}

fn closer(open: u8) -> u8 {
    match open {
        b'{' => b'}',
        b'[' => b']',
        _ => b')',
    }
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::NestingTooDeep,
        format!("nesting deeper than {MAX_DEPTH} levels"),
    )
    .label(span, "too deep here")
    .help("flatten the expression; no recipe needs this much nesting")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Option<Code> {
        prescan(SourceId(0), text).map(|d| d.code)
    }

    #[test]
    fn finds_structural_problems_and_skips_strings_and_comments() {
        assert_eq!(code("env sokoban { room = [6, 6] }"), None);
        assert_eq!(code("a = \"{ [ (\" # } ] )"), None);
        assert_eq!(code("a = \"abc\nb = 1"), Some(Code::UnterminatedString));
        assert_eq!(code("a = \"ab\\\"c"), Some(Code::UnterminatedString));
        assert_eq!(
            code("env sokoban { room = [6, 6 }"),
            Some(Code::UnclosedDelimiter)
        );
        assert_eq!(code("train { "), Some(Code::UnclosedDelimiter));
        assert_eq!(code("a = 1 }"), Some(Code::UnclosedDelimiter));
        assert_eq!(
            code(&format!("a = {}1{}", "(".repeat(40), ")".repeat(40))),
            Some(Code::NestingTooDeep)
        );
        assert_eq!(
            code(&format!("a = {}1", "- ".repeat(70))),
            Some(Code::NestingTooDeep)
        );
        assert_eq!(code(&format!("a = {}1", "- 1 ".repeat(70))), None);
    }
}
