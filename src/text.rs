//! Character-scanning helpers shared by modules that must not import each other
//! (`experiments` and `reward` both scan text for brackets outside strings).

/// Tracks whether a left-to-right character scan stands inside a double-quoted string,
/// honouring backslash escapes.
#[derive(Debug, Default)]
pub struct QuoteScan {
    inside: bool,
    escaped: bool,
}

impl QuoteScan {
    /// Feeds the next character; true when it belongs to a string (its quotes included), so
    /// the caller copies it as it is and skips its own bracket and comma rules.
    pub fn feed(&mut self, c: char) -> bool {
        if self.inside {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.inside = false;
            }
            return true;
        }
        self.inside = c == '"';
        self.inside
    }

    /// Whether the text seen so far ends inside an unterminated string.
    pub fn inside(&self) -> bool {
        self.inside
    }
}
