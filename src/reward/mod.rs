//! Outcome reward sources: rule-based verifiers and LLM judges (OpenAI-compatible HTTP or the
//! embedded rubric judge).

pub mod judge;
pub mod rubric;
pub mod verifier;
