//! Rendering conversations with the model's own chat template (Jinja, from GGUF metadata or
//! `tokenizer_config.json`), so any llama-family model formats its turns the way it was trained.

use minijinja::{Environment, Error as JinjaError, ErrorKind, context};
use serde::Serialize;

use crate::LlmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Role {
    /// The name chat templates and training data use: "system", "user", "assistant".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    pub fn new(source: String, bos_token: String, eos_token: String) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.add_function("raise_exception", |message: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|err| LlmError::ChatTemplate(err.to_string()))?;
        Ok(Self { env, bos_token, eos_token })
    }

    /// The conversation as the model expects it; with `add_generation_prompt` it ends where the
    /// assistant's answer begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, LlmError> {
        let template =
            self.env.get_template(TEMPLATE_NAME).map_err(|err| LlmError::ChatTemplate(err.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|err| LlmError::ChatTemplate(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_a_generation_prompt() {
        let template = ChatTemplate::new(CHATML.into(), String::new(), String::new()).unwrap();
        let text = template
            .render(&[Message::new(Role::System, "Be brief."), Message::new(Role::User, "Hi")], true)
            .unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_in_a_template_is_an_error_not_a_panic() {
        let template =
            ChatTemplate::new("{{ raise_exception('no system role') }}".into(), String::new(), String::new())
                .unwrap();
        let err = template.render(&[], false).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}
