//! Diagnostics shared by every phase: error enums with stable codes, and renderers (terminal,
//! plain text for snapshots, JSON for editors).
