//! One loaded model per test binary (loading dequantizes ~135M weights), and small helpers.

use std::{path::PathBuf, sync::OnceLock};

use candle_core::{Device, Tensor};
use rudder_llm::{ForwardOptions, KvCache, LoadedModel, ServingFormat};

pub fn models_dir() -> PathBuf {
    match std::env::var_os("RUDDER_MODELS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/rudder/models"),
    }
}

/// SmolLM2-135M-Instruct as `deploy/models.sh` installs it (rudder-core's `ModelFiles::LLM_GGUF`).
pub fn gguf_path() -> PathBuf {
    let path = models_dir().join("llm/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.is_file(), "{} is missing: run `make models`", path.display());
    path
}

pub fn smollm() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| LoadedModel::load_gguf(&gguf_path(), ServingFormat::F32).expect("load SmolLM2"))
}

pub fn smollm_q8() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| LoadedModel::load_gguf(&gguf_path(), ServingFormat::Q8_0).expect("load SmolLM2 q8"))
}

pub fn ids_tensor(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

/// The chat prompt for one user question, as token ids.
pub fn chat_ids(model: &LoadedModel, question: &str) -> Vec<u32> {
    use rudder_llm::{Message, Role};
    let text = model.chat.render(&[Message::new(Role::User, question)], true).unwrap();
    model.tokenizer.encode(&text).unwrap()
}

/// Last-position logits of `ids` run after `cache`.
pub fn last_logits(model: &LoadedModel, ids: &[u32], cache: &mut KvCache) -> Vec<f32> {
    let embeds = model.model.embed(&ids_tensor(ids)).unwrap();
    model
        .model
        .forward(&embeds, cache, ForwardOptions::SERVE_LAST)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap()
}

pub fn argmax(values: &[f32]) -> u32 {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i as u32).unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Greedy decoding of `max_tokens` after `prompt`, stopping at an end-of-turn token.
pub fn greedy(model: &LoadedModel, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
    let mut cache = KvCache::new(model.model.config().num_layers);
    let mut logits = last_logits(model, prompt, &mut cache);
    let mut out = Vec::new();
    for _ in 0..max_tokens {
        let next = argmax(&logits);
        if model.tokenizer.is_stop(next) {
            break;
        }
        out.push(next);
        logits = last_logits(model, &[next], &mut cache);
    }
    out
}
