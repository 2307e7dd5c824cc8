//! The model's tokenizer: built from GGUF metadata (`tokenizer.ggml.*`, byte-level BPE as in SmolLM2
//! and Llama 3 files) or read from a Hugging Face `tokenizer.json`, plus the ids of the special tokens
//! generation needs.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::{
    AddedToken, Tokenizer,
    decoders::byte_level::ByteLevel as ByteLevelDecoder,
    models::bpe::{BPE, Vocab},
    pre_tokenizers::{byte_level::ByteLevel, digits::Digits, sequence::Sequence},
};

use crate::LlmError;

/// GGUF `tokenizer.ggml.token_type` of control tokens (`<|im_start|>`, `<|endoftext|>`, ...).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF `tokenizer.ggml.token_type` of user-defined added tokens.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// `(start, end)` bytes of a text.
pub type ByteRange = (usize, usize);

/// A tokenizer with the special-token ids the runtime needs.
#[derive(Debug, Clone)]
pub struct ModelTokenizer {
    inner: Tokenizer,
    pub bos_id: Option<u32>,
    /// Tokens that end an answer (the model's eos, plus `<|im_end|>`/`<|eot_id|>` when present).
    pub stop_ids: Vec<u32>,
    pub bos_token: String,
    pub eos_token: String,
}

impl ModelTokenizer {
    /// Builds a byte-level BPE tokenizer from a GGUF file's metadata.
    pub fn from_gguf(content: &Content) -> Result<Self, LlmError> {
        let meta = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| LlmError::Tokenizer(format!("GGUF metadata lacks `{key}`")))
        };
        let model = meta("tokenizer.ggml.model")?.to_string()?.clone();
        if model != "gpt2" {
            return Err(LlmError::Unsupported(format!(
                "GGUF tokenizer model {model:?}; only byte-level BPE (\"gpt2\") is built from metadata — \
                 bring the model as a Hugging Face directory with tokenizer.json instead"
            )));
        }
        let tokens = string_array(meta("tokenizer.ggml.tokens")?)?;
        let merges = string_array(meta("tokenizer.ggml.merges")?)?
            .into_iter()
            .map(|merge| match merge.split_once(' ') {
                Some((left, right)) => Ok((left.to_owned(), right.to_owned())),
                None => Err(LlmError::Tokenizer(format!("malformed merge {merge:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let token_types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(value) => value.to_vec()?.iter().map(|v| v.to_i32()).collect::<Result<_, _>>()?,
            None => vec![1; tokens.len()],
        };
        let vocab: Vocab = tokens.iter().enumerate().map(|(id, t)| (t.clone(), id as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|err| LlmError::Tokenizer(err.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        // GPT-2 style pre-tokenization; SmolLM2 and Llama 3 also split digits one by one.
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&token_types)
            .filter(|(_, kind)| matches!(**kind, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
            .map(|(token, _)| AddedToken::from(token.clone(), true))
            .collect();
        inner.add_special_tokens(special).map_err(|err| LlmError::Tokenizer(err.to_string()))?;

        let id_of = |key: &str| content.metadata.get(key).and_then(|v| v.to_u32().ok());
        let token_of =
            |id: Option<u32>| id.and_then(|id| tokens.get(id as usize).cloned()).unwrap_or_default();
        let bos_id = id_of("tokenizer.ggml.bos_token_id");
        let eos_id = id_of("tokenizer.ggml.eos_token_id");
        let (bos_token, eos_token) = (token_of(bos_id), token_of(eos_id));
        Ok(Self::with_stops(inner, bos_id, eos_id, bos_token, eos_token))
    }

    /// Wraps a Hugging Face `tokenizer.json`, with bos/eos named by `tokenizer_config.json`.
    pub fn from_hf(inner: Tokenizer, bos_token: Option<String>, eos_token: Option<String>) -> Self {
        let bos_id = bos_token.as_deref().and_then(|t| inner.token_to_id(t));
        let eos_id = eos_token.as_deref().and_then(|t| inner.token_to_id(t));
        Self::with_stops(inner, bos_id, eos_id, bos_token.unwrap_or_default(), eos_token.unwrap_or_default())
    }

    fn with_stops(
        inner: Tokenizer,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
        bos_token: String,
        eos_token: String,
    ) -> Self {
        let mut stop_ids: Vec<u32> = eos_id.into_iter().collect();
        for end_of_turn in ["<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end_of_text|>"] {
            if let Some(id) = inner.token_to_id(end_of_turn)
                && !stop_ids.contains(&id)
            {
                stop_ids.push(id);
            }
        }
        Self { inner, bos_id, stop_ids, bos_token, eos_token }
    }

    /// Token ids of `text`; special tokens written in the text (e.g. `<|im_start|>`) are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding =
            self.inner.encode_fast(text, false).map_err(|err| LlmError::Tokenizer(err.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of `text` (as [`Self::encode`]) with the byte range of `text` each one covers.
    pub fn encode_with_offsets(&self, text: &str) -> Result<Vec<(u32, ByteRange)>, LlmError> {
        let encoding = self.inner.encode(text, false).map_err(|err| LlmError::Tokenizer(err.to_string()))?;
        Ok(encoding.get_ids().iter().copied().zip(encoding.get_offsets().iter().copied()).collect())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.inner.decode(ids, true).map_err(|err| LlmError::Tokenizer(err.to_string()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }

    /// The underlying `tokenizers` tokenizer (e.g. to save it as tokenizer.json).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

fn string_array(value: &Value) -> Result<Vec<String>, LlmError> {
    value.to_vec()?.iter().map(|v| v.to_string().cloned().map_err(LlmError::from)).collect()
}
