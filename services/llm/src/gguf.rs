//! Reading a GGUF model file's header: architecture, shape hyper-parameters, tokenizer presence, and a
//! check that the tensor data the header promises is really in the file (a truncated download parses
//! fine but would fail, or worse, mid-load).

use candle_core::quantized::gguf_file::{Content, Value};
use std::{
    fs::File,
    io::BufReader,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum LlmFileError {
    #[error("cannot open model file {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a readable GGUF file: {reason}")]
    NotGguf { path: PathBuf, reason: String },
    #[error("{path} lacks the GGUF metadata key `{key}`")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path} is truncated: its tensors need {needed} bytes, the file has {actual}")]
    Truncated { path: PathBuf, needed: u64, actual: u64 },
}

/// What a GGUF header says about the model inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufSummary {
    /// `general.architecture`, e.g. "llama".
    pub architecture: String,
    /// `general.name`, if the file has one.
    pub name: Option<String>,
    pub block_count: u32,
    pub embedding_length: u32,
    pub head_count: u32,
    pub head_count_kv: u32,
    pub context_length: u32,
    /// Number of entries in `tokenizer.ggml.tokens`.
    pub vocab_size: usize,
    pub has_chat_template: bool,
    pub tensor_count: usize,
}

impl GgufSummary {
    /// Parses the header of the GGUF file at `path` and checks that its tensor data is complete.
    pub fn read(path: &Path) -> Result<Self, LlmFileError> {
        let file = File::open(path).map_err(|source| LlmFileError::Open { path: path.to_owned(), source })?;
        let file_len =
            file.metadata().map_err(|source| LlmFileError::Open { path: path.to_owned(), source })?.len();
        let content = Content::read(&mut BufReader::new(file))
            .map_err(|err| LlmFileError::NotGguf { path: path.to_owned(), reason: err.to_string() })?;

        let needed = content.tensor_data_offset + tensor_data_len(&content);
        if needed > file_len {
            return Err(LlmFileError::Truncated { path: path.to_owned(), needed, actual: file_len });
        }

        let meta = Metadata { path, content: &content };
        let architecture = meta.string("general.architecture")?;
        let arch_u32 = |key: &str| meta.u32(&format!("{architecture}.{key}"));
        Ok(Self {
            name: meta.string("general.name").ok(),
            block_count: arch_u32("block_count")?,
            embedding_length: arch_u32("embedding_length")?,
            head_count: arch_u32("attention.head_count")?,
            head_count_kv: arch_u32("attention.head_count_kv")?,
            context_length: arch_u32("context_length")?,
            vocab_size: meta.array_len("tokenizer.ggml.tokens")?,
            has_chat_template: content.metadata.contains_key("tokenizer.chat_template"),
            tensor_count: content.tensor_infos.len(),
            architecture,
        })
    }
}

/// Bytes from the start of the tensor data to the end of the last tensor.
fn tensor_data_len(content: &Content) -> u64 {
    content
        .tensor_infos
        .values()
        .map(|info| {
            let blocks = info.shape.elem_count() / info.ggml_dtype.block_size();
            info.offset + (blocks * info.ggml_dtype.type_size()) as u64
        })
        .max()
        .unwrap_or(0)
}

/// Typed access to GGUF metadata with errors that name the file and key.
struct Metadata<'a> {
    path: &'a Path,
    content: &'a Content,
}

impl Metadata<'_> {
    fn value(&self, key: &str) -> Result<&Value, LlmFileError> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| LlmFileError::MissingKey { path: self.path.to_owned(), key: key.to_owned() })
    }

    fn wrong_type(&self, key: &str, err: candle_core::Error) -> LlmFileError {
        LlmFileError::NotGguf { path: self.path.to_owned(), reason: format!("metadata `{key}`: {err}") }
    }

    fn string(&self, key: &str) -> Result<String, LlmFileError> {
        self.value(key)?.to_string().cloned().map_err(|err| self.wrong_type(key, err))
    }

    fn u32(&self, key: &str) -> Result<u32, LlmFileError> {
        self.value(key)?.to_u32().map_err(|err| self.wrong_type(key, err))
    }

    fn array_len(&self, key: &str) -> Result<usize, LlmFileError> {
        self.value(key)?.to_vec().map(Vec::len).map_err(|err| self.wrong_type(key, err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_gguf_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"definitely not a gguf header").unwrap();
        let err = GgufSummary::read(&path).unwrap_err();
        assert!(matches!(err, LlmFileError::NotGguf { .. }), "{err}");
        assert!(err.to_string().contains("model.gguf"));
    }
}
