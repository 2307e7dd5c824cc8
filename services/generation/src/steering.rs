//! A bundle's trained steering as tensors the forward pass takes: the policy prefix (per-layer keys and
//! values) and the tone soft prompt (virtual-token embeddings), loaded from their safetensors
//! artifacts and checked against the served model — base-model fingerprint, shapes, finite values —
//! so a misfit artifact is refused before it is ever served.
//!
//! Artifact tensors: a prefix holds `prefix_keys` and `prefix_values`, each
//! `[layers, kv_heads, positions, head_dim]`; a soft prompt holds `prompt_embeddings`,
//! `[virtual_tokens, hidden]` (the name Hugging Face PEFT uses).

use candle_core::{Device, Tensor};
use rudder_core::{Bundle, bundle::ArtifactRef};
use rudder_llm::{KvCache, LlamaConfig, LoadedModel};

use crate::GenerationError;

pub const PREFIX_KEYS: &str = "prefix_keys";
pub const PREFIX_VALUES: &str = "prefix_values";
pub const SOFT_PROMPT: &str = "prompt_embeddings";

/// Per-layer `[kv_heads, positions, head_dim]` keys and values.
#[derive(Debug, Clone)]
pub struct PrefixKv {
    pub keys: Vec<Tensor>,
    pub values: Vec<Tensor>,
}

impl PrefixKv {
    pub fn positions(&self) -> usize {
        self.keys.first().and_then(|k| k.dims().get(1).copied()).unwrap_or(0)
    }
}

/// What a bundle version adds in front of the text. Empty for the untuned baseline.
#[derive(Debug, Clone, Default)]
pub struct Steering {
    pub prefix: Option<PrefixKv>,
    /// `[virtual_tokens, hidden]`.
    pub soft_prompt: Option<Tensor>,
}

impl Steering {
    /// Loads and checks the bundle's artifacts against `model`.
    pub fn load(bundle: &Bundle, model: &LoadedModel) -> Result<Self, GenerationError> {
        let config = model.model.config();
        let prefix = match &bundle.policy_prefix {
            Some(artifact) => {
                let mut tensors = read_artifact(artifact, model)?;
                let mut take = |name: &str| {
                    tensors.remove(name).ok_or_else(|| misfit(artifact, format!("has no tensor {name}")))
                };
                let (keys, values) = (take(PREFIX_KEYS)?, take(PREFIX_VALUES)?);
                check_prefix(config, &keys, &values).map_err(|reason| misfit(artifact, reason))?;
                let split = |t: &Tensor| -> Result<Vec<Tensor>, GenerationError> {
                    (0..config.num_layers).map(|l| Ok(t.get(l)?)).collect()
                };
                Some(PrefixKv { keys: split(&keys)?, values: split(&values)? })
            }
            None => None,
        };
        let soft_prompt = match &bundle.tone_soft_prompt {
            Some(artifact) => {
                let mut tensors = read_artifact(artifact, model)?;
                let embeddings = tensors
                    .remove(SOFT_PROMPT)
                    .ok_or_else(|| misfit(artifact, format!("has no tensor {SOFT_PROMPT}")))?;
                check_soft_prompt(config, &embeddings).map_err(|reason| misfit(artifact, reason))?;
                Some(embeddings)
            }
            None => None,
        };
        Ok(Self { prefix, soft_prompt })
    }

    /// Positions the steering occupies before the first text token.
    pub fn virtual_positions(&self) -> usize {
        self.prefix.as_ref().map_or(0, PrefixKv::positions)
            + self.soft_prompt.as_ref().map_or(0, |t| t.dims()[0])
    }

    /// A cache holding the prefix (or empty), ready for the soft prompt and text.
    pub fn start_cache(&self, num_layers: usize) -> Result<KvCache, GenerationError> {
        match &self.prefix {
            Some(prefix) => Ok(KvCache::from_prefix(&prefix.keys, &prefix.values, 1)?),
            None => Ok(KvCache::new(num_layers)),
        }
    }
}

/// `prefix_keys` and `prefix_values` fit `config`: `[layers, kv_heads, positions > 0, head_dim]`, equal.
pub fn check_prefix(config: &LlamaConfig, keys: &Tensor, values: &Tensor) -> Result<(), String> {
    for (name, tensor) in [(PREFIX_KEYS, keys), (PREFIX_VALUES, values)] {
        let dims = tensor.dims();
        let fits = dims.len() == 4
            && dims[0] == config.num_layers
            && dims[1] == config.num_kv_heads
            && dims[3] == config.head_dim
            && dims[2] > 0;
        if !fits {
            return Err(format!(
                "tensor {name} has shape {dims:?}, the model needs [{}, {}, positions, {}]",
                config.num_layers, config.num_kv_heads, config.head_dim
            ));
        }
    }
    if keys.dims() != values.dims() {
        return Err("keys and values differ in shape".into());
    }
    Ok(())
}

/// `prompt_embeddings` fits `config`: `[virtual_tokens > 0, hidden]`.
pub fn check_soft_prompt(config: &LlamaConfig, embeddings: &Tensor) -> Result<(), String> {
    let dims = embeddings.dims();
    if dims.len() != 2 || dims[1] != config.hidden_size || dims[0] == 0 {
        return Err(format!(
            "tensor {SOFT_PROMPT} has shape {dims:?}, the model needs [virtual_tokens, {}]",
            config.hidden_size
        ));
    }
    Ok(())
}

fn misfit(artifact: &ArtifactRef, reason: String) -> GenerationError {
    GenerationError::ArtifactMisfit { artifact: artifact.path.display().to_string(), reason }
}

/// Reads an artifact's tensors after checking it was trained on this base model; every value finite.
fn read_artifact(
    artifact: &ArtifactRef,
    model: &LoadedModel,
) -> Result<std::collections::HashMap<String, Tensor>, GenerationError> {
    if artifact.base_model_fingerprint != model.fingerprint {
        return Err(misfit(
            artifact,
            format!(
                "was trained on base model {}, this server runs {}",
                artifact.base_model_fingerprint, model.fingerprint
            ),
        ));
    }
    let bytes = artifact.read_unchanged().map_err(|reason| misfit(artifact, reason))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|err| misfit(artifact, format!("is not a readable safetensors file: {err}")))?;
    let mut checked = std::collections::HashMap::new();
    for (name, tensor) in tensors {
        let tensor = tensor.to_dtype(candle_core::DType::F32)?;
        let all_finite = tensor.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| v.is_finite());
        if !all_finite {
            return Err(misfit(artifact, format!("tensor {name} has NaN or infinite values")));
        }
        checked.insert(name, tensor);
    }
    Ok(checked)
}
