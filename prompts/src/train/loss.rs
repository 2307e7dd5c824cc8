//! The training objective: mean negative log-likelihood of the answer tokens, given the steering and
//! the prompt. Padding sits at the right of each sequence, so causal attention never lets a real
//! token see it, and no padded position is scored.

use candle_core::{Device, Tensor};
use rudder_llm::{ForwardOptions, LoadedModel, LogitsAt};

use super::{TrainError, data::TokenizedExample, params::SteeringTensors};

/// Weighted sum of NLL over the batch's answer tokens (a scalar tensor on the graph when
/// `differentiable`) and the sum of the weights: emphasised tokens weigh `emphasis_weight`, the
/// others 1, so with a weight of 1 the pair is (total NLL, tokens scored).
pub fn answer_nll(
    model: &LoadedModel,
    steering: &SteeringTensors,
    batch: &[&TokenizedExample],
    differentiable: bool,
    emphasis_weight: f32,
) -> Result<(Tensor, f64), TrainError> {
    let config = model.model.config();
    let width = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    if batch.is_empty() || width == 0 {
        return Err(TrainError::Internal("an empty batch".into()));
    }
    let pad = model.tokenizer.stop_ids.first().copied().unwrap_or(0);
    let ids: Vec<u32> = batch
        .iter()
        .flat_map(|e| e.ids.iter().copied().chain(std::iter::repeat_n(pad, width - e.ids.len())))
        .collect();
    let ids = Tensor::from_vec(ids, (batch.len(), width), &Device::Cpu)?;
    let embeds = rudder_llm::prepend_soft_prompt(steering.soft_prompt.as_ref(), model.model.embed(&ids)?)?;
    let virtual_tokens = steering.virtual_tokens();
    let mut cache = steering.start_cache(config.num_layers, batch.len())?;
    let hidden = model.model.forward(
        &embeds,
        &mut cache,
        ForwardOptions { logits: LogitsAt::None, differentiable },
    )?;

    // The hidden state at position p predicts token p + 1: score answer tokens only.
    let sequence = virtual_tokens + width;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for (b, example) in batch.iter().enumerate() {
        // Position 0 has nothing before it to predict it from.
        for t in example.answer_start.max(1)..example.ids.len() {
            rows.push((b * sequence + virtual_tokens + t - 1) as u32);
            targets.push(example.ids[t]);
            weights.push(if example.emphasised.binary_search(&t).is_ok() { emphasis_weight } else { 1.0 });
        }
    }
    let total_weight = weights.iter().map(|&w| f64::from(w)).sum();
    let selected = hidden
        .reshape((batch.len() * sequence, config.hidden_size))?
        .index_select(&Tensor::new(rows.as_slice(), &Device::Cpu)?, 0)?;
    let logits = model.model.logits(&selected, differentiable)?;
    let weights = Tensor::from_vec(weights, targets.len(), &Device::Cpu)?;
    let nll = (rudder_llm::token_nll(&logits, &targets)? * weights)?.sum_all()?;
    Ok((nll, total_weight))
}

/// Mean NLL per answer token over `examples` (no gradients, no emphasis), in batches of `batch_size`.
pub fn mean_nll(
    model: &LoadedModel,
    steering: &SteeringTensors,
    examples: &[TokenizedExample],
    batch_size: usize,
) -> Result<f64, TrainError> {
    let steering = steering.detached();
    let (mut total, mut tokens) = (0.0f64, 0.0f64);
    let mut order: Vec<&TokenizedExample> = examples.iter().collect();
    order.sort_by_key(|e| e.ids.len());
    for batch in order.chunks(batch_size.max(1)) {
        let (nll, scored) = answer_nll(model, &steering, batch, false, 1.0)?;
        total += f64::from(nll.to_scalar::<f32>()?);
        tokens += scored;
    }
    Ok(if tokens == 0.0 { f64::NAN } else { total / tokens })
}
