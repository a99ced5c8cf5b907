//! Diagnostics shared by every phase: error enums with stable codes, and renderers (terminal,
//! plain text for snapshots, JSON for editors).
//!
//! A [`Diagnostic`] is data: a [`Code`], a severity, a one-sentence lower-case message, labels on
//! byte [`Span`]s (the first is the primary one) and an optional help line. Phases collect them
//! instead of stopping at the first; the renderers turn them into text only at the edge.

mod codes;
mod render;
mod source;

pub use codes::{Code, Phase};
pub use render::{render_human, render_json, render_plain, JsonDiagnostic};
pub use source::{floor_char_boundary, Origin, SourceFile, SourceId, SourceMap, Span};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// A message attached to a span.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One finding of the compiler.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// One lower-case sentence without a final period; user input in backticks.
    pub message: String,
    /// The first label is the primary one (what is wrong here); others point at the other half
    /// of a conflict.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic whose severity follows from its code (`W` codes are warnings).
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        let severity = if code.is_warning() {
            Severity::Warning
        } else {
            Severity::Error
        };
        Diagnostic {
            code,
            severity,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    /// Adds a label; the first one added is the primary label.
    pub fn label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

/// Sorts diagnostics into a deterministic order: by primary position, then code, then message.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| d.primary_span().map(|s| (s.source, s.start, s.end));
        key(a)
            .cmp(&key(b))
            .then(a.code.cmp(&b.code))
            .then(a.message.cmp(&b.message))
    });
}

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::jaro_winkler(word, candidate);
        let distance = strsim::damerau_levenshtein(word, candidate);
        let close = score >= 0.8 || distance <= (word.len().max(candidate.len()) / 3).max(1);
        if close && best.is_none_or(|(s, c)| score > s || (score == s && candidate < c)) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `a`, `b` and `c` -> "`a`, `b`, `c`".
pub fn backticked_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_and_ignores_unrelated_words() {
        let keys = ["room", "boxes", "max_turns", "observation"];
        assert_eq!(did_you_mean("boxs", keys), Some("boxes"));
        assert_eq!(did_you_mean("max_turn", keys), Some("max_turns"));
        assert_eq!(did_you_mean("obsevation", keys), Some("observation"));
        assert_eq!(did_you_mean("learning_rate", keys), None);
    }
}
