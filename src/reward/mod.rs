//! Outcome reward sources: rule-based verifiers and episode judges (an LLM over
//! OpenAI-compatible HTTP, or SOTOPIA's embedded rubric judge from `env::sotopia::rubric`).

pub mod judge;
pub mod verifier;
