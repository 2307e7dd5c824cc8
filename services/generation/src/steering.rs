//! A bundle's trained steering as tensors the forward pass takes: the policy prefix (per-layer keys and
//! values) and the tone soft prompt (virtual-token embeddings), loaded from their safetensors
//! artifacts and checked against the served model — base-model fingerprint, shapes, finite values —
//! so a misfit artifact is refused before it is ever served.
//!
//! Artifact tensors: a prefix holds `prefix_keys` and `prefix_values`, each
//! `[layers, kv_heads, positions, head_dim]`; a soft prompt holds `prompt_embeddings`,
//! `[virtual_tokens, hidden]` (the name Hugging Face PEFT uses).

use std::collections::HashMap;

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
) -> Result<HashMap<String, Tensor>, GenerationError> {
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
    read_tensors(&bytes).map_err(|reason| misfit(artifact, reason))
}

/// The tensors of an artifact file as f32, every value finite, or why not: what both the upload
/// check (PublishBundle) and the loader run on bytes that came from outside. Fuzzed below.
pub fn read_tensors(bytes: &[u8]) -> Result<HashMap<String, Tensor>, String> {
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|err| format!("is not a readable safetensors file: {err}"))?;
    let mut checked = HashMap::new();
    for (name, tensor) in tensors {
        let values = tensor
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| Ok((t.flatten_all()?.to_vec1::<f32>()?, t)))
            .map_err(|err| format!("tensor {name}: {err}"))?;
        if !values.0.iter().all(|v| v.is_finite()) {
            return Err(format!("tensor {name} has NaN or infinite values"));
        }
        checked.insert(name, values.1);
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;

    /// A prefix artifact's file: `[layers 2, kv_heads 1, positions 3, head_dim 4]` keys and values.
    fn prefix_file() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefix.safetensors");
        let values: Vec<f32> = (0..24).map(|i| i as f32 / 10.0).collect();
        let tensor = Tensor::from_vec(values, (2, 1, 3, 4), &Device::Cpu).unwrap();
        let map =
            HashMap::from([(PREFIX_KEYS.to_owned(), tensor.clone()), (PREFIX_VALUES.to_owned(), tensor)]);
        candle_core::safetensors::save(&map, &path).unwrap();
        std::fs::read(&path).unwrap()
    }

    /// xorshift64*: enough to vary mutations reproducibly without a crate.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    /// Text worth putting into the JSON header: other dtypes, shapes whose product overflows or
    /// exceeds the data, offsets out of range, and structure that ends early.
    const HEADER_SYNTAX: &[&str] = &[
        "\"F64\"",
        "\"BF16\"",
        "\"BOOL\"",
        "\"U8\"",
        "\"I64\"",
        "[18446744073709551615,2]",
        "[4294967296,4294967296,4294967296]",
        "[]",
        "[0,18446744073709551615]",
        "[24,8]",
        "{}",
        "null",
        "\"__metadata__\"",
        "{\"a\":",
        "]]]]",
    ];

    /// Uploaded artifact files are bytes from a caller: mutated ones (flipped and cut bytes, header
    /// lengths out of range, header JSON rewritten with other dtypes, overflowing shapes and offsets)
    /// are refused with a reason or read, never a panic, and each read stays quick.
    #[test]
    fn mutated_artifact_files_are_refused_or_read_and_never_panic() {
        let valid = prefix_file();
        assert_eq!(read_tensors(&valid).map(|t| t.len()), Ok(2));
        let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
        let rounds: usize =
            std::env::var("RUDDER_FUZZ_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
        let mut rng = Rng(0x0005_eed0_fa47);
        let (mut refused, mut read) = (0, 0);
        for round in 0..rounds * 20 {
            let mut bytes = valid.clone();
            for _ in 0..1 + rng.below(3) {
                match rng.below(5) {
                    0 if !bytes.is_empty() => {
                        let at = rng.below(bytes.len());
                        bytes[at] ^= 1 << rng.below(8);
                    }
                    0 => {}
                    1 => bytes.truncate(rng.below(bytes.len())),
                    2 => {
                        let claimed = [0, 1, 7, header_len - 1, header_len + 1, bytes.len(), usize::MAX / 2];
                        let claimed = claimed[rng.below(claimed.len())] as u64;
                        if bytes.len() >= 8 {
                            bytes[..8].copy_from_slice(&claimed.to_le_bytes());
                        }
                    }
                    _ => {
                        // Replace a JSON value in the header with one of the dictionary's.
                        let end = (8 + header_len).min(bytes.len());
                        if end > 9 {
                            let start = 8 + rng.below(end - 8);
                            let cut = (start + 1 + rng.below(12)).min(end);
                            let insert = HEADER_SYNTAX[rng.below(HEADER_SYNTAX.len())].as_bytes();
                            bytes.splice(start..cut, insert.iter().copied());
                        }
                    }
                }
            }
            let started = std::time::Instant::now();
            let outcome = catch_unwind(AssertUnwindSafe(|| read_tensors(&bytes)));
            let Ok(outcome) = outcome else {
                panic!("round {round}: reading panicked on {bytes:?}");
            };
            assert!(started.elapsed() < std::time::Duration::from_secs(1), "round {round}: slow");
            match outcome {
                Ok(_) => read += 1,
                Err(reason) => {
                    assert!(!reason.is_empty());
                    refused += 1;
                }
            }
        }
        eprintln!("{} mutated artifact files: {refused} refused, {read} read", rounds * 20);
        assert!(refused > 0, "the mutations reach the checks");
    }
}
