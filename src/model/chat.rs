//! Chat templates of pretrained models: the Jinja source a model ships (`chat_template.jinja`,
//! `tokenizer_config.json`'s `chat_template`, or a GGUF file's `tokenizer.chat_template`),
//! rendered by a real Jinja engine the way transformers' `apply_chat_template` renders it:
//! blocks trimmed (`trim_blocks`, `lstrip_blocks`), loop controls, `tojson`, Python string
//! methods, `raise_exception`, and the tokenizer's `bos_token` / `eos_token` as variables.
//! `strftime_now` is deliberately absent: templates that test for it (Llama 3.x) fall back to
//! their fixed date, so a rendered prompt never depends on the day it was rendered.

use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// What goes wrong reading or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("chat template of {origin}: {reason}")]
    Read { origin: String, reason: String },
    #[error("chat template does not compile: {reason}")]
    Syntax { reason: String },
    #[error("chat template fails to render: {reason}")]
    Render { reason: String },
    #[error(
        "the chat template's own tokens ({tokens}) do not fit the prompt limit of {limit} \
         tokens even with every message emptied: raise the context or lower max_new_tokens"
    )]
    TooLong { tokens: usize, limit: usize },
}

/// The name the single template is stored under in its environment.
const NAME: &str = "chat";

/// A compiled chat template with the special-token strings it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the strings the template sees.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        let mut env = Environment::new();
        // transformers compiles chat templates with both on; whitespace differs without them.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| ChatTemplateError::Syntax {
                reason: e.to_string(),
            })?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(NAME, source.into())
            .map_err(|e| ChatTemplateError::Syntax {
                reason: describe(&e),
            })?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template's Jinja source, as compiled.
    pub fn source(&self) -> String {
        self.env
            .get_template(NAME)
            .expect("the template was added when compiled")
            .source()
            .to_string()
    }

    /// The conversation as the model reads it; with `add_generation_prompt` it ends with the
    /// header of the assistant's next turn.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .expect("the template was added when compiled");
        template
            .render(minijinja::context! {
                messages => minijinja::value::Serde(messages),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| ChatTemplateError::Render {
                reason: describe(&e),
            })
    }

    /// The template of a Hugging Face model directory: `chat_template.jinja` (transformers 5),
    /// else `tokenizer_config.json`'s `chat_template` (the one named `default` when it is a
    /// list); `None` when the directory has neither. Special tokens come from
    /// `tokenizer_config.json`.
    pub fn from_hf_dir(dir: &Path) -> Result<Option<ChatTemplate>, ChatTemplateError> {
        let read_error = |file: &str, e: &dyn std::fmt::Display| ChatTemplateError::Read {
            origin: dir.join(file).display().to_string(),
            reason: e.to_string(),
        };
        let config: TokenizerConfig = match std::fs::read_to_string(dir.join(CONFIG)) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| read_error(CONFIG, &e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenizerConfig::default(),
            Err(e) => return Err(read_error(CONFIG, &e)),
        };
        let source = match std::fs::read_to_string(dir.join(JINJA)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => config
                .chat_template
                .map(|t| t.default_source())
                .transpose()
                .map_err(|e| read_error(CONFIG, &e))?,
            Err(e) => return Err(read_error(JINJA, &e)),
        };
        source
            .map(|s| {
                ChatTemplate::new(
                    s,
                    config
                        .bos_token
                        .map(TokenText::into_text)
                        .unwrap_or_default(),
                    config
                        .eos_token
                        .map(TokenText::into_text)
                        .unwrap_or_default(),
                )
            })
            .transpose()
    }
}

const CONFIG: &str = "tokenizer_config.json";
const JINJA: &str = "chat_template.jinja";

/// The fields of `tokenizer_config.json` a chat template and the tokenizer need.
#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    chat_template: Option<TemplateField>,
    #[serde(default)]
    bos_token: Option<TokenText>,
    #[serde(default)]
    eos_token: Option<TokenText>,
    #[serde(default)]
    pad_token: Option<TokenText>,
}

/// The bos, eos and padding tokens `tokenizer_config.json` in `dir` names (`None` for each it
/// leaves out, and for all when the file is missing or unreadable: the tokenizer then falls
/// back to the usual spellings).
pub(super) fn declared_special_tokens(dir: &Path) -> [Option<String>; 3] {
    let config: TokenizerConfig = std::fs::read_to_string(dir.join(CONFIG))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    [config.bos_token, config.eos_token, config.pad_token].map(|t| t.map(TokenText::into_text))
}

/// `chat_template`: one source, or named sources (`[{"name": ..., "template": ...}]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

impl TemplateField {
    fn default_source(self) -> Result<String, String> {
        match self {
            TemplateField::One(s) => Ok(s),
            TemplateField::Named(list) => list
                .into_iter()
                .find(|t| t.name == "default")
                .map(|t| t.template)
                .ok_or_else(|| "chat_template lists no template named `default`".to_string()),
        }
    }
}

/// A special token as `tokenizer_config.json` writes it: a string or an added-token object.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TokenText {
    Plain(String),
    Added { content: String },
}

impl TokenText {
    fn into_text(self) -> String {
        match self {
            TokenText::Plain(s) | TokenText::Added { content: s } => s,
        }
    }
}

/// A minijinja error with its cause chain and, for syntax errors, the line.
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' \
        + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}\
        {{ '<|im_start|>assistant\n' }}{% endif %}";

    fn chat() -> Vec<Message> {
        vec![
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello"),
        ]
    }

    #[test]
    fn chatml_renders_with_and_without_the_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let body = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n";
        assert_eq!(t.render(&chat(), false).unwrap(), body);
        assert_eq!(
            t.render(&chat(), true).unwrap(),
            format!("{body}<|im_start|>assistant\n")
        );
    }

    #[test]
    fn blocks_are_trimmed_and_hf_helpers_exist() {
        // trim_blocks / lstrip_blocks, loop controls, Python string methods, tojson and the
        // special tokens, as transformers renders them.
        let source = "{{ bos_token }}\n{% for m in messages %}\n  {% if loop.index > 1 %}{% break %}{% endif %}\n{{ m.content.strip().upper() }}|{{ m.role | tojson }}\n{% endfor %}\n{{ eos_token }}";
        let t = ChatTemplate::new(source, "<s>", "</s>").unwrap();
        let messages = vec![Message::new("user", "  hi "), Message::new("x", "y")];
        assert_eq!(
            t.render(&messages, false).unwrap(),
            "<s>\nHI|\"user\"\n</s>"
        );
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_typed() {
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] != 'system' %}{{ raise_exception('system first') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        let err = t.render(&chat(), true).unwrap_err();
        assert!(
            matches!(&err, ChatTemplateError::Render { reason } if reason.contains("system first")),
            "{err}"
        );
        let err = ChatTemplate::new("{% for %}", "", "").unwrap_err();
        assert!(matches!(err, ChatTemplateError::Syntax { .. }), "{err}");
    }

    #[test]
    fn hf_directories_give_their_template_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::from_hf_dir(dir.path()).unwrap().is_none());
        // transformers 4.x: in tokenizer_config.json, tokens as added-token objects.
        let config = serde_json::json!({
            "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
            "bos_token": {"content": "<s>", "special": true},
            "eos_token": "</s>",
        });
        std::fs::write(dir.path().join(CONFIG), config.to_string()).unwrap();
        let t = ChatTemplate::from_hf_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&chat(), false).unwrap(), "<s>Hi</s>");
        // Named templates: the `default` one.
        let config = serde_json::json!({"chat_template": [
            {"name": "tool_use", "template": "tools"},
            {"name": "default", "template": "plain"},
        ]});
        std::fs::write(dir.path().join(CONFIG), config.to_string()).unwrap();
        let t = ChatTemplate::from_hf_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&chat(), false).unwrap(), "plain");
        // transformers 5: chat_template.jinja wins.
        std::fs::write(dir.path().join(JINJA), "{{ messages | length }}").unwrap();
        let t = ChatTemplate::from_hf_dir(dir.path()).unwrap().unwrap();
        assert_eq!(t.render(&chat(), false).unwrap(), "2");
    }
}
