//! Recipe syntax: the pest grammar (`grammar/oprl.pest`), the AST with byte spans, and the
//! conversion of parse errors into diagnostics.
