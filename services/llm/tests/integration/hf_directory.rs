//! A Hugging Face safetensors directory loads to the same model: we write SmolLM2's weights in HF
//! layout (Q/K rows un-permuted from GGUF's interleaved rope order), with config.json, tokenizer.json
//! and tokenizer_config.json, and compare logits with the GGUF load.

use std::collections::HashMap;

use candle_core::{Device, Tensor, quantized::gguf_file};
use rudder_llm::{KvCache, LoadedModel, ServingFormat};

use crate::common::{chat_ids, gguf_path, last_logits, max_abs_diff, smollm};

/// GGUF stores Q/K rows of each head as (pairs, 2) for interleaved rope; HF stores (2, pairs).
fn unpermute(weight: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = weight.dims2().unwrap();
    let head_dim = rows / heads;
    weight
        .reshape((heads, head_dim / 2, 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

#[test]
fn a_safetensors_directory_loads_to_the_same_logits_as_the_gguf() {
    let gguf = smollm();
    let config = gguf.model.config();
    let dir = tempfile::tempdir().unwrap();

    let mut reader = std::io::BufReader::new(std::fs::File::open(gguf_path()).unwrap());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut take = |name: &str| {
        content.tensor(&mut reader, name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap()
    };
    tensors.insert("model.embed_tokens.weight".into(), take("token_embd.weight"));
    tensors.insert("model.norm.weight".into(), take("output_norm.weight"));
    for i in 0..config.num_layers {
        let (g, h) = (format!("blk.{i}"), format!("model.layers.{i}"));
        tensors.insert(
            format!("{h}.self_attn.q_proj.weight"),
            unpermute(&take(&format!("{g}.attn_q.weight")), config.num_heads),
        );
        tensors.insert(
            format!("{h}.self_attn.k_proj.weight"),
            unpermute(&take(&format!("{g}.attn_k.weight")), config.num_kv_heads),
        );
        for (gguf_part, hf_part) in [
            ("attn_v", "self_attn.v_proj"),
            ("attn_output", "self_attn.o_proj"),
            ("ffn_gate", "mlp.gate_proj"),
            ("ffn_up", "mlp.up_proj"),
            ("ffn_down", "mlp.down_proj"),
            ("attn_norm", "input_layernorm"),
            ("ffn_norm", "post_attention_layernorm"),
        ] {
            tensors.insert(format!("{h}.{hf_part}.weight"), take(&format!("{g}.{gguf_part}.weight")));
        }
    }
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    let hf_config = serde_json::json!({
        "model_type": "llama",
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_position,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.rms_norm_eps,
        "tie_word_embeddings": true,
    });
    std::fs::write(dir.path().join("config.json"), hf_config.to_string()).unwrap();
    gguf.tokenizer.inner().save(dir.path().join("tokenizer.json"), false).unwrap();
    let template = content.metadata["tokenizer.chat_template"].to_string().unwrap().clone();
    let tokenizer_config = serde_json::json!({ "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "chat_template": template });
    std::fs::write(dir.path().join("tokenizer_config.json"), tokenizer_config.to_string()).unwrap();

    let hf = LoadedModel::load(dir.path(), ServingFormat::F32).unwrap();
    assert!(hf.fingerprint.starts_with("llama:") && hf.fingerprint != gguf.fingerprint);
    let prompt = chat_ids(gguf, "Do you ship to Ireland?");
    assert_eq!(chat_ids(&hf, "Do you ship to Ireland?"), prompt, "same tokens and chat template");
    let layers = config.num_layers;
    let diff = max_abs_diff(
        &last_logits(gguf, &prompt, &mut KvCache::new(layers)),
        &last_logits(&hf, &prompt, &mut KvCache::new(layers)),
    );
    assert!(diff <= 1e-3, "HF-directory logits differ by {diff}");
}
