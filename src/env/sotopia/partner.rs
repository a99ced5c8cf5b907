//! The conversation partner: whoever plays the other agent inside the environment's `step`.
//! An OpenAI-compatible endpoint, or a local model behind a callback (the runtime wires the
//! current policy for `self` self-chat and a fixed checkpoint for `model`).

use crate::graph::{EndpointSpec, PromptStyle};
use crate::openai::{ChatClient, ChatError, ChatMessage};

use super::episode::Episode;

/// A partner failure.
#[derive(Debug, thiserror::Error)]
pub enum PartnerError {
    #[error("the partner endpoint failed: {0}")]
    Endpoint(#[from] ChatError),
    #[error("the partner model failed: {0}")]
    Model(String),
}

/// Plays one side of a SOTOPIA conversation.
pub trait Partner: Send {
    /// The partner's raw text for its turn as `agent` (0 or 1) in `episode`; the environment
    /// parses it like the policy's text.
    fn act(&mut self, episode: &Episode, agent: usize) -> Result<String, PartnerError>;
    /// A short description for logs (`endpoint http://.../v1 model m`).
    fn describe(&self) -> String;
}

/// The prompt a partner with `style` sees (`Verl` = SOTOPIA's own agent prompt).
pub fn partner_prompt(style: PromptStyle, episode: &Episode, agent: usize) -> String {
    match style {
        PromptStyle::Compact => episode.compact_prompt(agent),
        PromptStyle::Verl => episode.sotopia_prompt(agent),
    }
}

/// A chat model behind an OpenAI-compatible endpoint, prompted with SOTOPIA's agent prompt
/// (or the compact one, for a small oprl model behind `oprl serve`).
#[derive(Debug, Clone)]
pub struct EndpointPartner {
    pub client: ChatClient,
    pub style: PromptStyle,
}

impl EndpointPartner {
    pub fn new(client: ChatClient) -> EndpointPartner {
        EndpointPartner {
            client,
            style: PromptStyle::Verl,
        }
    }

    pub fn with_style(mut self, style: PromptStyle) -> EndpointPartner {
        self.style = style;
        self
    }

    pub fn from_spec(spec: &EndpointSpec) -> Result<EndpointPartner, ChatError> {
        Ok(EndpointPartner::new(ChatClient::from_spec(spec)?))
    }
}

impl Partner for EndpointPartner {
    fn act(&mut self, episode: &Episode, agent: usize) -> Result<String, PartnerError> {
        let messages = [ChatMessage::user(partner_prompt(
            self.style, episode, agent,
        ))];
        Ok(self.client.complete(&messages)?)
    }

    fn describe(&self) -> String {
        format!(
            "endpoint {} model {}",
            self.client.endpoint(),
            self.client.model
        )
    }
}

/// The function a [`CallbackPartner`] calls: prompt in, raw reply out.
pub type PartnerFn = Box<dyn FnMut(&str) -> Result<String, String> + Send>;

/// A local model: renders the prompt in `style` and hands it to a callback (the runtime's
/// generation with the current policy or a fixed checkpoint).
pub struct CallbackPartner {
    pub style: PromptStyle,
    name: String,
    generate: PartnerFn,
}

impl CallbackPartner {
    pub fn new(
        name: impl Into<String>,
        style: PromptStyle,
        generate: PartnerFn,
    ) -> CallbackPartner {
        CallbackPartner {
            style,
            name: name.into(),
            generate,
        }
    }
}

impl Partner for CallbackPartner {
    fn act(&mut self, episode: &Episode, agent: usize) -> Result<String, PartnerError> {
        let prompt = partner_prompt(self.style, episode, agent);
        (self.generate)(&prompt).map_err(PartnerError::Model)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
