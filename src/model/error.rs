//! What can go wrong in the model besides candle's own errors.

/// What can go wrong in the model besides candle's own errors.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model configuration: {reason}")]
    Config { reason: String },
    #[error("sequence needs {needed} positions but the model's context is {context}")]
    TooLong { needed: usize, context: usize },
    #[error("prompt {index} is empty: every prompt needs at least one token")]
    EmptyPrompt { index: usize },
    #[error("{prompts} prompts but {actions} action sequences")]
    BatchMismatch { prompts: usize, actions: usize },
    #[error("token id {id} is outside the model's vocabulary of {vocab}")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("cannot read tokenizer {path}: {reason}")]
    Tokenizer { path: String, reason: String },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    #[error("model directory {path}: {reason}")]
    HfModel { path: String, reason: String },
    #[error("GGUF file {path}: {reason}")]
    Gguf { path: String, reason: String },
    #[error(transparent)]
    ChatTemplate(#[from] super::chat::ChatTemplateError),
    #[error("device: {reason}")]
    Device { reason: String },
    #[error("cannot export the model: {reason}")]
    Export { reason: String },
    #[error("weights differ: {reason}")]
    WeightMismatch { reason: String },
    #[error("image input: {reason}")]
    Image { reason: String },
    #[error(
        "prompt {index} holds {found} image placeholder tokens but its image has {expected} \
         patches (a prompt cut to fit the context loses image tokens: raise `context`)"
    )]
    ImageTokens {
        index: usize,
        found: usize,
        expected: usize,
    },
}

impl From<ModelError> for candle_core::Error {
    /// Without `Error::wrap`'s backtrace: these are the user's errors, not the program's.
    fn from(e: ModelError) -> Self {
        candle_core::Error::Wrapped(Box::new(e))
    }
}

/// The message of a candle error without the backtrace candle appends when `RUST_BACKTRACE`
/// is set: a model that cannot be read is the user's error, reported in one line.
pub fn one_line(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => one_line(inner),
        other => other.to_string(),
    }
}
