//! The training objective: mean negative log-likelihood of the answer tokens, given the steering and
//! the prompt, plus (where the data brings rejected answers) an unlikelihood term that pushes down
//! the first token of each forbidden phrase in them. Padding sits at the right of each sequence, so
//! causal attention never lets a real token see it, and no padded position is scored.

use candle_core::{Device, Tensor};
use rudder_llm::{ForwardOptions, LoadedModel, LogitsAt};

use super::{TrainError, data::TokenizedExample, params::SteeringTensors};

/// How the tokens of a batch weigh in its loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossWeights {
    /// The weight of emphasised answer tokens (the others weigh 1).
    pub emphasis: f32,
    /// The weight of the unlikelihood term; None: rejected answers are not run at all.
    pub unlikelihood: Option<f32>,
}

impl LossWeights {
    /// Every answer token weighs 1 and rejected answers are left out: the validation loss.
    pub const PLAIN: Self = Self { emphasis: 1.0, unlikelihood: None };
}

/// One batch's loss terms, scalar tensors on the graph when computed `differentiable`.
#[derive(Debug)]
pub struct BatchLoss {
    /// Weighted sum of the answer tokens' NLL.
    pub nll: Tensor,
    /// Sum of the answer tokens' weights: with weight 1 everywhere, the number of tokens scored.
    pub weight: f64,
    /// The rejected answers' term, when they rode in the batch.
    pub unlikelihood: Option<Unlikelihood>,
}

/// The unlikelihood term of a batch's rejected answers.
#[derive(Debug)]
pub struct Unlikelihood {
    /// Sum over the forbidden tokens of -log(1 - p(token)).
    pub sum: Tensor,
    /// How many forbidden tokens were scored.
    pub tokens: usize,
    /// The term's weight in the objective.
    pub weight: f32,
}

impl BatchLoss {
    /// What a training step minimises: the weighted mean NLL of the answers, plus the unlikelihood
    /// weight times the mean unlikelihood of the forbidden tokens. The two are normalised apart, so a
    /// few forbidden tokens are not averaged away among a batch's answer tokens.
    pub fn objective(&self) -> Result<Tensor, TrainError> {
        let mean_nll = (&self.nll / self.weight)?;
        Ok(match &self.unlikelihood {
            Some(term) => (mean_nll + (&term.sum * (f64::from(term.weight) / term.tokens as f64))?)?,
            None => mean_nll,
        })
    }
}

/// The unlikelihood is -log(1 - p (1 - EPSILON)): zero for a token the model never says, and large but
/// finite for one it is sure of.
const EPSILON: f64 = 1e-5;

/// One sequence of a forward pass and the positions its loss reads: answer tokens with their
/// weights (an example), or forbidden tokens (a rejected answer).
struct ScoredSequence<'a> {
    ids: &'a [u32],
    answer: Vec<(usize, f32)>,
    forbidden: &'a [usize],
}

/// The loss terms of `batch` under `steering`. Rejected answers ride in the same forward pass as
/// extra sequences when `weights.unlikelihood` is set.
pub fn answer_loss(
    model: &LoadedModel,
    steering: &SteeringTensors,
    batch: &[&TokenizedExample],
    differentiable: bool,
    weights: LossWeights,
) -> Result<BatchLoss, TrainError> {
    let config = model.model.config();
    let mut sequences: Vec<ScoredSequence> = batch
        .iter()
        .map(|example| ScoredSequence {
            ids: &example.ids,
            // Position 0 has nothing before it to predict it from.
            answer: (example.answer_start.max(1)..example.ids.len())
                .map(|t| {
                    (t, if example.emphasised.binary_search(&t).is_ok() { weights.emphasis } else { 1.0 })
                })
                .collect(),
            forbidden: &[],
        })
        .collect();
    if weights.unlikelihood.is_some() {
        for rejected in batch.iter().flat_map(|example| &example.rejected) {
            sequences.push(ScoredSequence {
                ids: &rejected.ids,
                answer: Vec::new(),
                forbidden: &rejected.unlikely,
            });
        }
    }
    let width = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
    if batch.is_empty() || width == 0 {
        return Err(TrainError::Internal("an empty batch".into()));
    }
    let pad = model.tokenizer.stop_ids.first().copied().unwrap_or(0);
    let ids: Vec<u32> = sequences
        .iter()
        .flat_map(|s| s.ids.iter().copied().chain(std::iter::repeat_n(pad, width - s.ids.len())))
        .collect();
    let ids = Tensor::from_vec(ids, (sequences.len(), width), &Device::Cpu)?;
    let embeds = rudder_llm::prepend_soft_prompt(steering.soft_prompt.as_ref(), model.model.embed(&ids)?)?;
    let virtual_tokens = steering.virtual_tokens();
    let mut cache = steering.start_cache(config.num_layers, sequences.len())?;
    let hidden = model.model.forward(
        &embeds,
        &mut cache,
        ForwardOptions { logits: LogitsAt::None, differentiable },
    )?;

    // The hidden state at position p predicts token p + 1: the answers' rows first, then the
    // forbidden tokens'.
    let sequence = virtual_tokens + width;
    let row = |s: usize, t: usize| (s * sequence + virtual_tokens + t - 1) as u32;
    let (mut rows, mut targets, mut answer_weights) = (Vec::new(), Vec::new(), Vec::new());
    for (s, scored) in sequences.iter().enumerate() {
        for &(t, weight) in &scored.answer {
            rows.push(row(s, t));
            targets.push(scored.ids[t]);
            answer_weights.push(weight);
        }
    }
    let answer_rows = rows.len();
    for (s, scored) in sequences.iter().enumerate() {
        for &t in scored.forbidden.iter().filter(|&&t| t >= 1) {
            rows.push(row(s, t));
            targets.push(scored.ids[t]);
        }
    }
    let forbidden_rows = rows.len() - answer_rows;
    let selected = hidden
        .reshape((sequences.len() * sequence, config.hidden_size))?
        .index_select(&Tensor::new(rows.as_slice(), &Device::Cpu)?, 0)?;
    let nll = model.model.token_nll(&selected, &targets)?;

    let weight = answer_weights.iter().map(|&w| f64::from(w)).sum();
    let answer_weights = Tensor::from_vec(answer_weights, answer_rows, &Device::Cpu)?;
    let answer_nll = (nll.narrow(0, 0, answer_rows)? * answer_weights)?.sum_all()?;
    let unlikelihood = match weights.unlikelihood {
        Some(weight) if forbidden_rows > 0 => {
            // p = exp(-nll).
            let p = nll.narrow(0, answer_rows, forbidden_rows)?.neg()?.exp()?;
            let sum = p.affine(-(1.0 - EPSILON), 1.0)?.log()?.neg()?.sum_all()?;
            Some(Unlikelihood { sum, tokens: forbidden_rows, weight })
        }
        _ => None,
    };
    Ok(BatchLoss { nll: answer_nll, weight, unlikelihood })
}

/// Mean NLL per answer token over `examples` (no gradients, no emphasis, no rejected answers), in
/// batches of `batch_size`.
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
        let loss = answer_loss(model, &steering, batch, false, LossWeights::PLAIN)?;
        total += f64::from(loss.nll.to_scalar::<f32>()?);
        tokens += loss.weight;
    }
    Ok(if tokens == 0.0 { f64::NAN } else { total / tokens })
}
