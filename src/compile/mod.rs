//! Compiler: resolve imports and names (stdlib, relative files), check every block against its
//! schema, and lower a checked recipe to the typed [`crate::graph::ExecGraph`].
