//! The shape of a llama-family model, read from GGUF metadata or a Hugging Face `config.json`.

use candle_core::quantized::gguf_file::Content;
use serde::Deserialize;

use crate::LlmError;

/// How rotary position embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1): GGUF llama files (llama.cpp permutes Q/K weights for this layout).
    Interleaved,
    /// Pairs (i, i + d/2): Hugging Face llama checkpoints, and GGUF qwen2.
    Halves,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub architecture: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position: usize,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    pub rms_norm_eps: f64,
    /// Whether Q/K/V projections carry a bias (qwen2 does).
    pub attention_bias: bool,
}

impl LlamaConfig {
    /// Reads `<arch>.*` keys of a GGUF file's metadata (llama and qwen2 architectures).
    pub fn from_gguf(content: &Content) -> Result<Self, LlmError> {
        let meta = |key: &str| {
            content.metadata.get(key).ok_or_else(|| LlmError::Format(format!("GGUF metadata lacks `{key}`")))
        };
        let architecture = meta("general.architecture")?.to_string().map_err(LlmError::from)?.clone();
        if !matches!(architecture.as_str(), "llama" | "qwen2") {
            return Err(LlmError::Unsupported(format!(
                "architecture {architecture:?} (supported: llama, qwen2)"
            )));
        }
        let arch_u32 = |key: &str| -> Result<usize, LlmError> {
            Ok(meta(&format!("{architecture}.{key}"))?.to_u32().map_err(LlmError::from)? as usize)
        };
        let hidden_size = arch_u32("embedding_length")?;
        let num_heads = arch_u32("attention.head_count")?;
        let head_dim = match arch_u32("rope.dimension_count") {
            Ok(dim) => dim,
            Err(_) => hidden_size / num_heads,
        };
        let vocab_size = match content.tensor_infos.get("token_embd.weight") {
            Some(info) => info.shape.dims()[0],
            None => return Err(LlmError::Format("GGUF file has no token_embd.weight".into())),
        };
        let rope_theta = match meta(&format!("{architecture}.rope.freq_base")) {
            Ok(value) => value.to_f32().map_err(LlmError::from)?,
            Err(_) => 10_000.0,
        };
        let rms_norm_eps = meta(&format!("{architecture}.attention.layer_norm_rms_epsilon"))?
            .to_f32()
            .map_err(LlmError::from)? as f64;
        Ok(Self {
            hidden_size,
            intermediate_size: arch_u32("feed_forward_length")?,
            num_layers: arch_u32("block_count")?,
            num_heads,
            num_kv_heads: arch_u32("attention.head_count_kv")?,
            head_dim,
            vocab_size,
            max_position: arch_u32("context_length")?,
            rope_theta,
            rope_style: if architecture == "qwen2" { RopeStyle::Halves } else { RopeStyle::Interleaved },
            rms_norm_eps,
            attention_bias: architecture == "qwen2",
            architecture,
        })
    }

    /// Reads a Hugging Face `config.json` (LlamaForCausalLM or Qwen2ForCausalLM).
    pub fn from_hf_json(json: &str) -> Result<(Self, bool), LlmError> {
        let hf: HfConfig =
            serde_json::from_str(json).map_err(|err| LlmError::Format(format!("config.json: {err}")))?;
        let architecture = match hf.model_type.as_str() {
            "llama" | "mistral" => "llama",
            "qwen2" => "qwen2",
            other => {
                return Err(LlmError::Unsupported(format!("model_type {other:?} (supported: llama, qwen2)")));
            }
        };
        let num_kv_heads = hf.num_key_value_heads.unwrap_or(hf.num_attention_heads);
        let config = Self {
            architecture: architecture.to_owned(),
            hidden_size: hf.hidden_size,
            intermediate_size: hf.intermediate_size,
            num_layers: hf.num_hidden_layers,
            num_heads: hf.num_attention_heads,
            num_kv_heads,
            head_dim: hf.head_dim.unwrap_or(hf.hidden_size / hf.num_attention_heads.max(1)),
            vocab_size: hf.vocab_size,
            max_position: hf.max_position_embeddings,
            rope_theta: hf.rope_theta.unwrap_or(10_000.0),
            rope_style: RopeStyle::Halves,
            rms_norm_eps: hf.rms_norm_eps,
            attention_bias: architecture == "qwen2" || hf.attention_bias.unwrap_or(false),
        };
        Ok((config, hf.tie_word_embeddings.unwrap_or(false)))
    }

    /// Query heads per key/value head (grouped-query attention).
    pub fn kv_group(&self) -> usize {
        self.num_heads / self.num_kv_heads.max(1)
    }

    pub(crate) fn check(&self) -> Result<(), LlmError> {
        let consistent = self.num_heads > 0
            && self.num_kv_heads > 0
            && self.num_heads.is_multiple_of(self.num_kv_heads)
            && self.head_dim.is_multiple_of(2)
            && self.num_layers > 0;
        if consistent { Ok(()) } else { Err(LlmError::Format(format!("inconsistent model shape: {self:?}"))) }
    }
}

#[derive(Debug, Deserialize)]
struct HfConfig {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    max_position_embeddings: usize,
    rope_theta: Option<f32>,
    rms_norm_eps: f64,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
}
