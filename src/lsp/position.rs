//! The one place where byte offsets meet LSP positions: the compiler speaks byte spans, LSP
//! speaks zero-based lines and UTF-16 code-unit columns.

use lsp_types::{Position, Range};

/// Line starts of a text, for converting between byte offsets and LSP positions.
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, line_starts }
    }

    /// The LSP position of a byte offset (clamped to the text, rounded down to a character).
    pub fn position(&self, offset: usize) -> Position {
        let offset =
            crate::diagnostics::floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let character: usize = self.text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(line as u32, character as u32)
    }

    /// The LSP range of a byte range.
    pub fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end))
    }

    /// The byte offset of an LSP position. A column past the end of its line clamps to the end
    /// of the line, a line past the end to the end of the text, and a column inside a surrogate
    /// pair to the character's start, as the protocol asks.
    pub fn offset(&self, position: Position) -> usize {
        let Some(&start) = self.line_starts.get(position.line as usize) else {
            return self.text.len();
        };
        let end = self
            .line_starts
            .get(position.line as usize + 1)
            .map_or(self.text.len(), |&next| next - 1);
        let mut units = 0usize;
        for (i, c) in self.text[start..end].char_indices() {
            units += c.len_utf16();
            if units > position.character as usize {
                return start + i;
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_code_units() {
        // `é` is 2 bytes and 1 UTF-16 unit; `𝛽` is 4 bytes and 2 UTF-16 units (a surrogate pair).
        let text = "a = 1\n# é𝛽x\nb";
        let index = LineIndex::new(text);
        assert_eq!(index.position(0), Position::new(0, 0));
        assert_eq!(index.position(6), Position::new(1, 0));
        // `x` is at byte 6 + 2 (`# `) + 2 (`é`) + 4 (`𝛽`) = 14, UTF-16 column 2 + 1 + 2 = 5.
        assert_eq!(&text[14..15], "x");
        assert_eq!(index.position(14), Position::new(1, 5));
        assert_eq!(index.offset(Position::new(1, 5)), 14);
        // Inside the surrogate pair: the start of `𝛽`.
        assert_eq!(index.offset(Position::new(1, 4)), 10);
        // Past the end of a line: the end of that line (before its newline).
        assert_eq!(index.offset(Position::new(0, 99)), 5);
        assert_eq!(index.offset(Position::new(9, 0)), text.len());
        assert_eq!(index.position(text.len()), Position::new(2, 1));
        // A byte inside a character rounds down to the character.
        assert_eq!(index.position(9), Position::new(1, 2));
    }

    #[test]
    fn positions_round_trip_at_every_character() {
        let text = "env sokoban {\n  room = [6, 6]  # ⌀ 𝛾\n}\n";
        let index = LineIndex::new(text);
        for (offset, _) in text.char_indices() {
            assert_eq!(
                index.offset(index.position(offset)),
                offset,
                "offset {offset}"
            );
        }
    }
}
