//! Our forward pass against candle-transformers' stock `quantized_llama` on the same weights.
//!
//! The stock model multiplies with quantized kernels unless its tensors are f32, so both run from an
//! f32 copy of the GGUF (every tensor dequantized, metadata unchanged) written to a temp dir.

use std::{fs::File, io::BufReader};

use candle_core::{
    Device,
    quantized::{GgmlDType, QTensor, gguf_file},
};
use candle_transformers::models::quantized_llama::ModelWeights;
use rudder_llm::{KvCache, LoadedModel, ServingFormat};

use crate::common::{chat_ids, gguf_path, ids_tensor, last_logits, max_abs_diff, smollm};

/// Absolute tolerance on logits (whose magnitude here is ~10-30).
const TOLERANCE: f32 = 1e-4;

fn f32_gguf_copy(dir: &std::path::Path) -> std::path::PathBuf {
    let source = gguf_path();
    let mut reader = BufReader::new(File::open(&source).unwrap());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut tensors = Vec::new();
    for name in content.tensor_infos.keys() {
        let dequantized =
            content.tensor(&mut reader, name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
        tensors.push((name.clone(), QTensor::quantize(&dequantized, GgmlDType::F32).unwrap()));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let path = dir.join("smollm2-f32.gguf");
    let mut out = std::io::BufWriter::new(File::create(&path).unwrap());
    gguf_file::write(&mut out, &metadata, &tensor_refs).unwrap();
    path
}

#[test]
fn logits_match_the_stock_model_for_prefill_and_decode() {
    let dir = tempfile::tempdir().unwrap();
    let f32_path = f32_gguf_copy(dir.path());
    let mut reader = BufReader::new(File::open(&f32_path).unwrap());
    let content = gguf_file::Content::read(&mut reader).unwrap();
    let mut stock = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).unwrap();

    let ours = smollm();
    let prompt = chat_ids(ours, "How long do refunds take?");
    let stock_prefill: Vec<f32> =
        stock.forward(&ids_tensor(&prompt), 0).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
    let mut cache = KvCache::new(ours.model.config().num_layers);
    let our_prefill = last_logits(ours, &prompt, &mut cache);
    let diff = max_abs_diff(&stock_prefill, &our_prefill);
    assert!(diff <= TOLERANCE, "prefill logits differ by {diff}");

    // One decode step after the prompt, through each side's KV cache.
    let next = crate::common::argmax(&our_prefill);
    let stock_step: Vec<f32> =
        stock.forward(&ids_tensor(&[next]), prompt.len()).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
    let our_step = last_logits(ours, &[next], &mut cache);
    let diff = max_abs_diff(&stock_step, &our_step);
    assert!(diff <= TOLERANCE, "decode logits differ by {diff}");

    // Our loader reads the f32 copy to the same model as the original file.
    let from_copy = LoadedModel::load_gguf(&f32_path, ServingFormat::F32).unwrap();
    let mut cache = KvCache::new(from_copy.model.config().num_layers);
    assert!(max_abs_diff(&last_logits(&from_copy, &prompt, &mut cache), &our_prefill) <= TOLERANCE);
}
