//! Renderers: miette's graphical report (with colour for terminals, without colour at width 80
//! for snapshots) and JSON for editors. Line and column numbers exist only here.

use super::{Diagnostic, Severity, SourceId, SourceMap};
use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
use serde::Serialize;
use std::fmt;

/// Renders without colour at width 80: the stable form used by snapshot tests.
pub fn render_plain(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    render_with(diagnostics, sources, GraphicalTheme::unicode_nocolor(), 80)
}

/// Renders for a person: colour when `colour` is set, at the given width.
pub fn render_human(
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    colour: bool,
    width: usize,
) -> String {
    let theme = if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    render_with(diagnostics, sources, theme, width)
}

fn render_with(
    diagnostics: &[Diagnostic],
    sources: &SourceMap,
    theme: GraphicalTheme,
    width: usize,
) -> String {
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false);
    let mut out = String::new();
    for diagnostic in diagnostics {
        let view = MietteView::new(diagnostic, sources);
        if handler.render_report(&mut out, &view).is_err() {
            // Rendering into a String cannot fail short of a bug in miette; keep the essentials.
            out.push_str(&format!(
                "{}[{}]: {}\n",
                severity_word(diagnostic.severity),
                diagnostic.code,
                diagnostic.message
            ));
        }
    }
    out
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as miette sees it: the labels in the primary label's source, and one related
/// report for each other source a label points into (a `--set` value and a recipe line, say).
struct MietteView {
    code: Option<String>,
    severity: miette::Severity,
    message: String,
    help: Option<String>,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    related: Vec<MietteView>,
}

impl MietteView {
    fn new(diagnostic: &Diagnostic, sources: &SourceMap) -> MietteView {
        let severity = match diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        };
        let mut groups: Vec<(SourceId, Vec<LabeledSpan>)> = Vec::new();
        for (i, label) in diagnostic.labels.iter().enumerate() {
            let text = &sources.get(label.span.source).text;
            let start = label.span.start.min(text.len());
            let len = label.span.end.min(text.len()) - start;
            let message = (!label.message.is_empty()).then(|| label.message.clone());
            let span = if i == 0 {
                LabeledSpan::new_primary_with_span(message, (start, len))
            } else {
                LabeledSpan::new_with_span(message, (start, len))
            };
            match groups.iter_mut().find(|(id, _)| *id == label.span.source) {
                Some((_, spans)) => spans.push(span),
                None => groups.push((label.span.source, vec![span])),
            }
        }
        let named = |id: SourceId| {
            let file = sources.get(id);
            NamedSource::new(file.name.clone(), file.text.clone())
        };
        let mut groups = groups.into_iter();
        let (source, labels) = match groups.next() {
            Some((id, spans)) => (Some(named(id)), spans),
            None => (None, Vec::new()),
        };
        let related = groups
            .map(|(id, spans)| MietteView {
                code: None,
                severity: miette::Severity::Advice,
                message: format!("related location in {}", sources.get(id).name),
                help: None,
                source: Some(named(id)),
                labels: spans,
                related: Vec::new(),
            })
            .collect();
        MietteView {
            code: Some(diagnostic.code.as_str().to_string()),
            severity,
            message: diagnostic.message.clone(),
            help: diagnostic.help.clone(),
            source,
            labels,
            related,
        }
    }
}

impl fmt::Debug for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for MietteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteView {}

impl miette::Diagnostic for MietteView {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code
            .as_ref()
            .map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        (!self.labels.is_empty())
            .then(|| Box::new(self.labels.iter().cloned()) as Box<dyn Iterator<Item = LabeledSpan>>)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        (!self.related.is_empty()).then(|| {
            Box::new(self.related.iter().map(|r| r as &dyn miette::Diagnostic))
                as Box<dyn Iterator<Item = _>>
        })
    }
}

/// A diagnostic as editors read it: byte offsets plus 1-based lines and columns (in characters).
#[derive(Debug, Clone, Serialize)]
pub struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    pub labels: Vec<JsonLabel>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JsonLabel {
    pub file: String,
    pub start: usize,
    pub end: usize,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    pub primary: bool,
}

impl JsonDiagnostic {
    pub fn new(diagnostic: &Diagnostic, sources: &SourceMap) -> JsonDiagnostic {
        let labels = diagnostic
            .labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let file = sources.get(label.span.source);
                let (line, column) = file.line_col(label.span.start);
                let (end_line, end_column) = file.line_col(label.span.end);
                JsonLabel {
                    file: file.name.clone(),
                    start: label.span.start,
                    end: label.span.end,
                    line,
                    column,
                    end_line,
                    end_column,
                    message: label.message.clone(),
                    primary: i == 0,
                }
            })
            .collect();
        JsonDiagnostic {
            code: diagnostic.code.as_str(),
            severity: diagnostic.severity,
            message: diagnostic.message.clone(),
            help: diagnostic.help.clone(),
            labels,
        }
    }
}

/// JSON lines: one diagnostic object per line.
pub fn render_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let json = JsonDiagnostic::new(diagnostic, sources);
        out.push_str(&serde_json::to_string(&json).unwrap_or_default());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::{Code, Origin, SourceFile, Span};

    fn sample() -> (Vec<Diagnostic>, SourceMap) {
        let mut sources = SourceMap::new();
        let file = sources.add(SourceFile::new(
            "r.oprl",
            Origin::Cli,
            "train {\n  gruop = 4\n}\n",
        ));
        let cli = sources.add(SourceFile::new("<cli>", Origin::Cli, "train.group=1"));
        let d = Diagnostic::new(Code::UnknownKey, "unknown key `gruop` in `train`")
            .label(Span::new(file, 10, 15), "unknown key")
            .label(Span::new(cli, 12, 13), "other half")
            .help("did you mean `group`?");
        (vec![d], sources)
    }

    #[test]
    fn json_has_lines_columns_and_the_primary_label() {
        let (diagnostics, sources) = sample();
        let json: serde_json::Value =
            serde_json::from_str(render_json(&diagnostics, &sources).trim()).unwrap();
        assert_eq!(json["code"], "E0301");
        assert_eq!(json["severity"], "error");
        let label = &json["labels"][0];
        assert_eq!(
            (label["line"].as_u64(), label["column"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(
            (label["end_line"].as_u64(), label["end_column"].as_u64()),
            (Some(2), Some(8))
        );
        assert_eq!(label["primary"], true);
        assert_eq!(json["labels"][1]["file"], "<cli>");
        assert_eq!(json["labels"][1]["primary"], false);
    }

    #[test]
    fn plain_rendering_has_no_colour_and_shows_every_source() {
        let (diagnostics, sources) = sample();
        let text = render_plain(&diagnostics, &sources);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            text.contains("E0301") && text.contains("r.oprl:2:3") && text.contains("<cli>:1:13"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    }
}
