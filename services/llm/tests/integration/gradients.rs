//! Gradients reach a prepended soft prompt and a per-layer prefix, and never the frozen weights.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::ops::log_softmax;
use rudder_llm::{ForwardOptions, KvCache};

use crate::common::{ids_tensor, smollm};

#[test]
fn a_gradient_reaches_the_soft_prompt_and_every_layers_prefix_and_weights_stay_frozen() {
    let model = smollm();
    let config = model.model.config();
    let digest_before = model.weights_digest().unwrap();

    let (virtual_tokens, prefix_len) = (4, 2);
    let soft_prompt = Var::from_tensor(
        &(Tensor::randn(0f32, 0.02, (virtual_tokens, config.hidden_size), &Device::Cpu).unwrap()),
    )
    .unwrap();
    let prefix_shape = (config.num_kv_heads, prefix_len, config.head_dim);
    let keys: Vec<Var> =
        (0..config.num_layers).map(|_| Var::randn(0f32, 0.1, prefix_shape, &Device::Cpu).unwrap()).collect();
    let values: Vec<Var> =
        (0..config.num_layers).map(|_| Var::randn(0f32, 0.1, prefix_shape, &Device::Cpu).unwrap()).collect();

    let ids = model.tokenizer.encode("Refunds take five days.").unwrap();
    let tokens = model.model.embed(&ids_tensor(&ids)).unwrap();
    let embeds = Tensor::cat(&[&soft_prompt.as_tensor().unsqueeze(0).unwrap(), &tokens], 1).unwrap();
    let key_tensors: Vec<Tensor> = keys.iter().map(|v| v.as_tensor().clone()).collect();
    let value_tensors: Vec<Tensor> = values.iter().map(|v| v.as_tensor().clone()).collect();
    let mut cache = KvCache::from_prefix(&key_tensors, &value_tensors, 1).unwrap();
    let logits = model.model.forward(&embeds, &mut cache, ForwardOptions::TRAIN_ALL).unwrap();

    // Next-token loss on the text positions only.
    let predicted = logits.narrow(1, virtual_tokens, ids.len() - 1).unwrap().squeeze(0).unwrap();
    let targets = Tensor::new(&ids[1..], &Device::Cpu).unwrap();
    let log_probs = log_softmax(&predicted, D::Minus1).unwrap();
    let loss =
        log_probs.gather(&targets.unsqueeze(1).unwrap(), 1).unwrap().neg().unwrap().mean_all().unwrap();
    assert!(loss.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap().is_finite());

    let grads = loss.backward().unwrap();
    let norm = |var: &Var| -> f32 {
        let grad = grads.get(var.as_tensor()).expect("a gradient reaches this parameter");
        grad.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt()
    };
    assert!(norm(&soft_prompt) > 0.0, "soft prompt gradient is zero");
    for layer in [0, config.num_layers / 2, config.num_layers - 1] {
        assert!(norm(&keys[layer]) > 0.0, "layer {layer} prefix keys get no gradient");
        assert!(norm(&values[layer]) > 0.0, "layer {layer} prefix values get no gradient");
    }
    assert!(grads.get(model.model.embedding_table()).is_none(), "no gradient is kept for a frozen weight");
    assert_eq!(model.weights_digest().unwrap(), digest_before, "the base weights changed");
}
