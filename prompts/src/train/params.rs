//! The trainable steering pieces and how they start: a tone soft prompt (virtual-token input
//! embeddings) or a policy prefix (per-layer keys/values), optionally produced during training by a
//! reparameterisation MLP that is folded into plain keys/values for the artifact.

use candle_core::{DType, Device, Tensor, Var};
use rudder_llm::{ForwardOptions, KvCache, LoadedModel, LogitsAt};

use super::{TrainError, rng::SplitMix64};

pub use crate::artifact::Kind;

/// How a soft prompt starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoftPromptInit {
    /// The embeddings of this text's tokens, repeated or truncated to N.
    Text(String),
    /// N embeddings of random vocabulary tokens.
    Vocab,
    /// Normal noise at the embedding table's scale.
    Random,
}

/// How a prefix starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixInit {
    /// The keys/values the frozen model computes for this text (repeated or truncated to P tokens):
    /// published comparisons find this far better than random.
    Text(String),
    Random,
}

/// Steering as tensors the forward pass takes.
#[derive(Debug, Clone, Default)]
pub struct SteeringTensors {
    /// Keys and values, each `[layers, kv_heads, positions, head_dim]`.
    pub prefix: Option<(Tensor, Tensor)>,
    /// `[virtual_tokens, hidden]`.
    pub soft_prompt: Option<Tensor>,
}

impl SteeringTensors {
    pub fn virtual_tokens(&self) -> usize {
        self.soft_prompt.as_ref().map_or(0, |t| t.dims()[0])
    }

    pub fn prefix_positions(&self) -> usize {
        self.prefix.as_ref().map_or(0, |(k, _)| k.dims()[2])
    }

    /// Reads the artifact at `path` (a directory or its tensors file) as steering for `model`:
    /// refused when its manifest names another base model or its tensors do not fit.
    pub fn load(
        model: &LoadedModel,
        path: &std::path::Path,
    ) -> Result<(crate::artifact::ArtifactManifest, Self), TrainError> {
        let (manifest, tensors) = crate::artifact::read(path)?;
        if manifest.base_model_fingerprint != model.fingerprint {
            return Err(TrainError::Config(format!(
                "{}: trained on base model {}, this model is {}",
                path.display(),
                manifest.base_model_fingerprint,
                model.fingerprint
            )));
        }
        let steering = Self::from_artifact(model, &tensors)
            .map_err(|reason| TrainError::Config(format!("{}: {reason}", path.display())))?;
        Ok((manifest, steering))
    }

    /// An artifact's tensors as steering, checked against `model` (shapes as serving checks them).
    pub fn from_artifact(model: &LoadedModel, tensors: &[(String, Tensor)]) -> Result<Self, String> {
        use rudder_generation::steering::{
            PREFIX_KEYS, PREFIX_VALUES, SOFT_PROMPT, check_prefix, check_soft_prompt,
        };
        let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
        let config = model.model.config();
        let prefix = match (find(PREFIX_KEYS), find(PREFIX_VALUES)) {
            (Some(keys), Some(values)) => {
                check_prefix(config, &keys, &values)?;
                Some((keys, values))
            }
            (None, None) => None,
            _ => return Err(format!("has only one of {PREFIX_KEYS} and {PREFIX_VALUES}")),
        };
        let soft_prompt = find(SOFT_PROMPT);
        if let Some(embeddings) = &soft_prompt {
            check_soft_prompt(config, embeddings)?;
        }
        if prefix.is_none() && soft_prompt.is_none() {
            return Err(format!("holds neither {PREFIX_KEYS}/{PREFIX_VALUES} nor {SOFT_PROMPT}"));
        }
        Ok(Self { prefix, soft_prompt })
    }

    /// The same values, cut from the graph (for evaluation passes and saving).
    pub fn detached(&self) -> Self {
        Self {
            prefix: self.prefix.as_ref().map(|(k, v)| (k.detach(), v.detach())),
            soft_prompt: self.soft_prompt.as_ref().map(Tensor::detach),
        }
    }

    /// `self` with any piece it lacks taken from `fixed` (a frozen companion artifact).
    pub fn with_fixed(self, fixed: &SteeringTensors) -> Self {
        Self {
            prefix: self.prefix.or_else(|| fixed.prefix.clone()),
            soft_prompt: self.soft_prompt.or_else(|| fixed.soft_prompt.clone()),
        }
    }

    /// A cache holding the prefix for `batch` sequences (or an empty one).
    pub fn start_cache(&self, num_layers: usize, batch: usize) -> Result<KvCache, TrainError> {
        match &self.prefix {
            Some((keys, values)) => {
                let split = |t: &Tensor| (0..num_layers).map(|l| t.get(l)).collect::<Result<Vec<_>, _>>();
                Ok(KvCache::from_prefix(&split(keys)?, &split(values)?, batch)?)
            }
            None => Ok(KvCache::new(num_layers)),
        }
    }
}

/// The reparameterisation: `prefix = base + tanh(E W1 + b1) W2`, per position.
#[derive(Debug)]
struct Reparam {
    positions: usize,
}

/// The trainable parameters of one run.
#[derive(Debug)]
pub struct Trainable {
    pub kind: Kind,
    /// Named so checkpoints and the optimizer state line up by name.
    vars: Vec<(String, Var)>,
    reparam: Option<Reparam>,
}

const SOFT_PROMPT: &str = "soft_prompt";
const PREFIX_KEYS: &str = "prefix_keys";
const PREFIX_VALUES: &str = "prefix_values";

impl Trainable {
    pub fn soft_prompt(
        model: &LoadedModel,
        tokens: usize,
        init: &SoftPromptInit,
        rng: &mut SplitMix64,
    ) -> Result<Self, TrainError> {
        let table = model.model.embedding_table();
        let (vocab, hidden) = table.dims2()?;
        let initial = match init {
            SoftPromptInit::Text(text) => {
                let ids = repeat_to(&model.tokenizer.encode(text)?, tokens, "--init-text")?;
                table.index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?
            }
            SoftPromptInit::Vocab => {
                let ids: Vec<u32> = (0..tokens).map(|_| rng.below(vocab) as u32).collect();
                table.index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?
            }
            SoftPromptInit::Random => {
                let scale = table.flatten_all()?.sqr()?.mean_all()?.sqrt()?.to_scalar::<f32>()?;
                normal(rng, (tokens, hidden), scale)?
            }
        };
        Ok(Self {
            kind: Kind::SoftPrompt,
            vars: vec![(SOFT_PROMPT.into(), Var::from_tensor(&initial.contiguous()?)?)],
            reparam: None,
        })
    }

    /// `reparam_hidden`: the MLP's hidden width, or None for plain keys/values.
    pub fn prefix(
        model: &LoadedModel,
        positions: usize,
        init: &PrefixInit,
        reparam_hidden: Option<usize>,
        rng: &mut SplitMix64,
    ) -> Result<Self, TrainError> {
        let config = model.model.config();
        let shape = (config.num_layers, config.num_kv_heads, positions, config.head_dim);
        let (keys, values) = match init {
            PrefixInit::Text(text) => text_prefix(model, text, positions)?,
            PrefixInit::Random => (normal(rng, shape, 0.5)?, normal(rng, shape, 0.5)?),
        };
        let mut vars = vec![
            (PREFIX_KEYS.to_owned(), Var::from_tensor(&keys)?),
            (PREFIX_VALUES.to_owned(), Var::from_tensor(&values)?),
        ];
        let reparam = match reparam_hidden {
            None => None,
            Some(width) => {
                // Starts near zero so the initial prefix is the initialisation above.
                let hidden = config.hidden_size;
                let out = 2 * config.num_layers * config.num_kv_heads * config.head_dim;
                let embed_ids: Vec<u32> =
                    (0..positions).map(|_| rng.below(config.vocab_size) as u32).collect();
                let input = model
                    .model
                    .embedding_table()
                    .index_select(&Tensor::new(embed_ids.as_slice(), &Device::Cpu)?, 0)?;
                vars.push(("reparam_input".into(), Var::from_tensor(&input.contiguous()?)?));
                vars.push((
                    "reparam_w1".into(),
                    Var::from_tensor(&normal(rng, (hidden, width), (1.0 / hidden as f32).sqrt())?)?,
                ));
                vars.push(("reparam_b1".into(), Var::zeros(width, DType::F32, &Device::Cpu)?));
                vars.push(("reparam_w2".into(), Var::from_tensor(&normal(rng, (width, out), 1e-3)?)?));
                Some(Reparam { positions })
            }
        };
        Ok(Self { kind: Kind::Prefix, vars, reparam })
    }

    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    fn var(&self, name: &str) -> Result<&Var, TrainError> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| TrainError::Internal(format!("no parameter {name}")))
    }

    /// The steering these parameters produce, on the autograd graph.
    pub fn steering(&self) -> Result<SteeringTensors, TrainError> {
        match self.kind {
            Kind::SoftPrompt => Ok(SteeringTensors {
                prefix: None,
                soft_prompt: Some(self.var(SOFT_PROMPT)?.as_tensor().clone()),
            }),
            Kind::Prefix => {
                let keys = self.var(PREFIX_KEYS)?.as_tensor().clone();
                let values = self.var(PREFIX_VALUES)?.as_tensor().clone();
                let (keys, values) = match &self.reparam {
                    None => (keys, values),
                    Some(reparam) => self.add_reparam(reparam, keys, values)?,
                };
                Ok(SteeringTensors { prefix: Some((keys, values)), soft_prompt: None })
            }
        }
    }

    fn add_reparam(
        &self,
        reparam: &Reparam,
        keys: Tensor,
        values: Tensor,
    ) -> Result<(Tensor, Tensor), TrainError> {
        let (layers, kv_heads, _, head_dim) = keys.dims4()?;
        let hidden = self.var("reparam_input")?.as_tensor().matmul(self.var("reparam_w1")?.as_tensor())?;
        let hidden = hidden.broadcast_add(self.var("reparam_b1")?.as_tensor())?.tanh()?;
        // [P, 2 * L * kvh * d] -> [2, L, kvh, P, d]
        let delta = hidden
            .matmul(self.var("reparam_w2")?.as_tensor())?
            .reshape((reparam.positions, 2, layers, kv_heads, head_dim))?
            .permute((1, 2, 3, 0, 4))?
            .contiguous()?;
        Ok(((keys + delta.get(0)?)?, (values + delta.get(1)?)?))
    }

    /// The artifact's tensors (the reparameterisation folded into plain keys/values), under the
    /// names serving reads.
    pub fn artifact_tensors(&self) -> Result<Vec<(String, Tensor)>, TrainError> {
        let steering = self.steering()?.detached();
        let mut out = Vec::new();
        if let Some((keys, values)) = steering.prefix {
            out.push((rudder_generation::steering::PREFIX_KEYS.to_owned(), keys.contiguous()?));
            out.push((rudder_generation::steering::PREFIX_VALUES.to_owned(), values.contiguous()?));
        }
        if let Some(embeddings) = steering.soft_prompt {
            out.push((rudder_generation::steering::SOFT_PROMPT.to_owned(), embeddings.contiguous()?));
        }
        Ok(out)
    }

    /// Replaces every parameter's value (resume, best-so-far restore).
    pub fn load(&self, values: &[(String, Tensor)]) -> Result<(), TrainError> {
        for (name, var) in &self.vars {
            let value = values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| TrainError::Checkpoint(format!("has no values for parameter {name}")))?;
            if value.dims() != var.dims() {
                return Err(TrainError::Checkpoint(format!(
                    "parameter {name} has shape {:?}, this run's is {:?}",
                    value.dims(),
                    var.dims()
                )));
            }
            var.set(value)?;
        }
        Ok(())
    }

    /// Current values, copied.
    pub fn snapshot(&self) -> Result<Vec<(String, Tensor)>, TrainError> {
        self.vars.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?))).collect()
    }
}

/// Keys/values the frozen model computes for `text` (repeated or truncated to `positions` tokens).
fn text_prefix(model: &LoadedModel, text: &str, positions: usize) -> Result<(Tensor, Tensor), TrainError> {
    let ids = repeat_to(&model.tokenizer.encode(text)?, positions, "--init-text")?;
    let config = model.model.config();
    let mut cache = KvCache::new(config.num_layers);
    let embeds = model.model.embed(&Tensor::new(ids.as_slice(), &Device::Cpu)?.unsqueeze(0)?)?;
    model.model.forward(
        &embeds,
        &mut cache,
        ForwardOptions { logits: LogitsAt::None, differentiable: false },
    )?;
    let mut keys = Vec::with_capacity(config.num_layers);
    let mut values = Vec::with_capacity(config.num_layers);
    for layer in 0..config.num_layers {
        let (k, v) = cache
            .layer(layer)
            .ok_or_else(|| TrainError::Internal(format!("layer {layer} cached nothing")))?;
        keys.push(k.squeeze(0)?);
        values.push(v.squeeze(0)?);
    }
    Ok((Tensor::stack(&keys, 0)?.contiguous()?, Tensor::stack(&values, 0)?.contiguous()?))
}

fn repeat_to(ids: &[u32], n: usize, what: &str) -> Result<Vec<u32>, TrainError> {
    if ids.is_empty() {
        return Err(TrainError::Config(format!("{what}: the text has no tokens")));
    }
    Ok(ids.iter().copied().cycle().take(n).collect())
}

fn normal(
    rng: &mut SplitMix64,
    shape: impl Into<candle_core::Shape>,
    std: f32,
) -> Result<Tensor, TrainError> {
    let shape = shape.into();
    let values: Vec<f32> = (0..shape.elem_count()).map(|_| rng.normal() * std).collect();
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}
