//! Opening a model from disk: a GGUF file (weights, tokenizer and chat template all in one) or a
//! Hugging Face directory (config.json + tokenizer.json + *.safetensors, with tokenizer_config.json
//! for the chat template), and the fingerprint that identifies the base model to trained artifacts.

use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
};

use candle_core::quantized::gguf_file::Content;
use sha2::{Digest, Sha256};

use crate::{
    LlmError,
    chat::ChatTemplate,
    config::LlamaConfig,
    model::Llama,
    tokenizer::ModelTokenizer,
    weights::{ServingFormat, Weights},
};

/// A loaded frozen model with everything needed to talk to it.
#[derive(Debug)]
pub struct LoadedModel {
    pub name: String,
    pub model: Llama,
    pub tokenizer: ModelTokenizer,
    pub chat: ChatTemplate,
    /// `<architecture>:<sha256 over the weight files>`.
    pub fingerprint: String,
    pub format: ServingFormat,
}

impl LoadedModel {
    /// Loads a `.gguf` file, or a Hugging Face directory when `path` is a directory.
    pub fn load(path: &Path, format: ServingFormat) -> Result<Self, LlmError> {
        if path.is_dir() { Self::load_hf_dir(path, format) } else { Self::load_gguf(path, format) }
    }

    pub fn load_gguf(path: &Path, format: ServingFormat) -> Result<Self, LlmError> {
        let file = File::open(path).map_err(LlmError::io(path))?;
        let content = Content::read(&mut BufReader::new(file)).map_err(|err| {
            LlmError::Format(format!("{} is not a readable GGUF file: {err}", path.display()))
        })?;
        let config = LlamaConfig::from_gguf(&content)?;
        let tokenizer = ModelTokenizer::from_gguf(&content)?;
        let template = match content.metadata.get("tokenizer.chat_template") {
            Some(value) => value.to_string()?.clone(),
            None => {
                return Err(LlmError::ChatTemplate(format!(
                    "{} has no tokenizer.chat_template",
                    path.display()
                )));
            }
        };
        let chat = ChatTemplate::new(template, tokenizer.bos_token.clone(), tokenizer.eos_token.clone())?;
        let weights = Weights::from_gguf(path, &content, &config, format)?;
        let name = content
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_else(|| file_stem(path));
        let fingerprint = fingerprint(&config.architecture, &[path.to_owned()])?;
        Ok(Self { name, model: Llama::new(config, weights)?, tokenizer, chat, fingerprint, format })
    }

    pub fn load_hf_dir(dir: &Path, format: ServingFormat) -> Result<Self, LlmError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(LlmError::io(&path))
        };
        let (config, _tied) = LlamaConfig::from_hf_json(&read("config.json")?)?;
        let tokenizer_config: serde_json::Value = serde_json::from_str(&read("tokenizer_config.json")?)
            .map_err(|err| LlmError::Format(format!("tokenizer_config.json: {err}")))?;
        let special = |key: &str| match &tokenizer_config[key] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_owned),
            _ => None,
        };
        let tokenizer_path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&tokenizer_path)
            .map_err(|err| LlmError::Tokenizer(format!("{}: {err}", tokenizer_path.display())))?;
        let tokenizer = ModelTokenizer::from_hf(inner, special("bos_token"), special("eos_token"));
        let template = tokenizer_config["chat_template"]
            .as_str()
            .ok_or_else(|| {
                LlmError::ChatTemplate("tokenizer_config.json has no chat_template string".into())
            })?
            .to_owned();
        let chat = ChatTemplate::new(template, tokenizer.bos_token.clone(), tokenizer.eos_token.clone())?;

        let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(LlmError::io(dir))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "safetensors"))
            .collect();
        shards.sort();
        if shards.is_empty() {
            return Err(LlmError::Format(format!("{} holds no *.safetensors file", dir.display())));
        }
        let weights = Weights::from_safetensors(&shards, &config, format)?;
        let fingerprint = fingerprint(&config.architecture, &shards)?;
        Ok(Self {
            name: file_stem(dir),
            model: Llama::new(config, weights)?,
            tokenizer,
            chat,
            fingerprint,
            format,
        })
    }

    /// sha256 over every weight tensor as loaded (f32 bytes in a fixed order): equal before and after
    /// serving or training proves the base model was not changed.
    pub fn weights_digest(&self) -> Result<String, LlmError> {
        let mut hasher = Sha256::new();
        for (name, tensor) in self.model.weights().named_tensors() {
            hasher.update(name.as_bytes());
            for value in tensor.flatten_all()?.to_vec1::<f32>()? {
                hasher.update(value.to_le_bytes());
            }
        }
        Ok(hex_digest(hasher))
    }
}

/// `<architecture>:<sha256 of the weight files' bytes, in path order>`.
pub fn fingerprint(architecture: &str, files: &[PathBuf]) -> Result<String, LlmError> {
    let mut hasher = Sha256::new();
    for path in files {
        let mut file = File::open(path).map_err(LlmError::io(path))?;
        std::io::copy(&mut file, &mut hasher).map_err(LlmError::io(path))?;
    }
    Ok(format!("{architecture}:{}", hex_digest(hasher)))
}

fn hex_digest(hasher: Sha256) -> String {
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".to_owned())
}
