//! The llama forward pass, written for both serving and training:
//! - it takes input embeddings, so a soft prompt is just more rows in front of the token embeddings;
//! - it continues from a [`KvCache`], which may start as a per-layer prefix of keys/values (prefix
//!   tuning) and then holds everything computed so far (decode, and the per-bundle head cache);
//! - it returns logits for every position, the last one, or none;
//! - with `differentiable` it uses ops that record a backward pass to the activations only (candle's
//!   fused softmax, RMS norm and rope kernels record none, so a gradient through them would silently
//!   be None): each decoder block is one op with closed-form gradients (`training_block`), the final
//!   norm one of `fused`'s; without it it uses the fused kernels directly. A differentiable pass
//!   appends its new keys and values to the cache as constants: gradients reach what the cache held
//!   before the call (a trained prefix), not across calls.
//!
//! Grouped-query attention folds the query heads of a group into rows instead of copying keys/values
//! per query head, so decode reads each cached key/value once.

use candle_core::{DType, Device, Tensor};

use crate::{
    LlmError,
    config::LlamaConfig,
    decode::BatchEntry,
    fused::{self, HeadNll},
    kv_cache::KvCache,
    layers::{Block, Pass},
    prefill_attention,
    training_block::{BlockSetting, TrainingBlock},
    weights::Weights,
};

/// `embeds` `[batch, tokens, hidden]` with the soft prompt's rows `[virtual_tokens, hidden]` in front
/// of every sequence (prompt tuning's virtual tokens); `embeds` unchanged without one.
pub fn prepend_soft_prompt(soft_prompt: Option<&Tensor>, embeds: Tensor) -> Result<Tensor, LlmError> {
    let Some(soft) = soft_prompt else { return Ok(embeds) };
    let (batch, _, hidden) = embeds.dims3()?;
    let rows = soft.unsqueeze(0)?.broadcast_as((batch, soft.dim(0)?, hidden))?;
    Ok(Tensor::cat(&[&rows, &embeds], 1)?)
}

/// Which positions get logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsAt {
    /// `[batch, tokens, vocab]` (training).
    All,
    /// `[batch, vocab]` for the last input position (serving).
    Last,
    /// Only update the cache; returns the final hidden states `[batch, tokens, hidden]`.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardOptions {
    pub logits: LogitsAt,
    /// Use only ops that record a backward pass (to the activations and to what the cache held
    /// before the call, such as a trained prefix). The keys and values the call appends to the
    /// cache are constants: a gradient does not cross into a later call.
    pub differentiable: bool,
}

impl ForwardOptions {
    pub const SERVE_LAST: Self = Self { logits: LogitsAt::Last, differentiable: false };
    pub const TRAIN_ALL: Self = Self { logits: LogitsAt::All, differentiable: true };
}

/// A frozen llama-family model ready to run.
#[derive(Debug)]
pub struct Llama {
    config: LlamaConfig,
    weights: Weights,
    /// `[max_position, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
}

impl Llama {
    pub(crate) fn new(config: LlamaConfig, weights: Weights) -> Result<Self, LlmError> {
        config.check()?;
        let half = config.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / config.rope_theta.powf(2.0 * i as f32 / config.head_dim as f32))
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
        let positions = Tensor::arange(0u32, config.max_position as u32, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((config.max_position, 1))?;
        let angles = positions.matmul(&inv_freq)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()?, config, weights })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub(crate) fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Bytes of the Q8_0 decode weights (every matrix and the LM head, quants and scales): what a
    /// one-token serving step reads besides the KV cache. None without them ([`crate::ServingFormat::F32`]).
    pub fn decode_weight_bytes(&self) -> Option<usize> {
        self.weights.decode.as_ref().map(|decode| decode.size_bytes())
    }

    /// Whether prefill multiplies on Q8_0 copies of the projections ([`crate::q8_prefill`]: Q8_0
    /// serving on a CPU with AVX-512 VNNI) rather than on the f32 weights.
    pub fn quantized_prefill(&self) -> bool {
        self.weights.blocks.first().is_some_and(|block| block.q.quantized.is_some())
    }

    /// What a request's in-place KV cache should store ([`KvCache::in_place_copy`]). F16 with the
    /// Q8_0 decode steps: a step reads every cached key and value (at ~800 positions, a quarter of
    /// the weights' bytes in f32), and their AVX2 attention took 1.5 ms per token over f16 against
    /// 1.7 ms over f32 (BENCHMARKS.md, 2026-12-04). The f32 tensor path would convert the whole
    /// cache every step, so it keeps f32. Prefill widens what it reads back to f32. f16 holds up to
    /// 65504 (beyond, a key or value would become infinite): SmolLM2-135M's largest is ~20
    /// (`q8_0_decode_on_the_serving_cache_stays_close_to_f32` checks it).
    pub fn serving_kv_dtype(&self) -> DType {
        if self.weights.decode.is_some() { DType::F16 } else { DType::F32 }
    }

    /// The token embedding table, `[vocab, hidden]` (read-only; e.g. to initialise a soft prompt).
    pub fn embedding_table(&self) -> &Tensor {
        &self.weights.embed
    }

    /// Embeddings of token ids `[batch, tokens]` -> `[batch, tokens, hidden]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor, LlmError> {
        let (batch, tokens) = ids.dims2()?;
        let flat = self.weights.embed.index_select(&ids.flatten_all()?, 0)?;
        Ok(flat.reshape((batch, tokens, self.config.hidden_size))?)
    }

    /// Runs `embeds` (`[batch, tokens, hidden]`) after what `cache` holds, appending to the cache.
    /// A one-token serving step of one sequence runs on the Q8_0 decode weights when the model has
    /// them ([`crate::decode`]).
    pub fn forward(
        &self,
        embeds: &Tensor,
        cache: &mut KvCache,
        options: ForwardOptions,
    ) -> Result<Tensor, LlmError> {
        let (_, tokens, _) = embeds.dims3()?;
        if tokens == 0 {
            return Err(LlmError::Shape {
                what: "input embeddings' tokens".into(),
                expected: vec![1],
                actual: vec![0],
            });
        }
        self.check_cache(cache, tokens)?;
        let start = cache.len();
        if let Some(decode) = &self.weights.decode
            && options == ForwardOptions::SERVE_LAST
            && embeds.dims3()? == (1, 1, self.config.hidden_size)
        {
            let x = embeds.flatten_all()?.to_vec1()?;
            let angles = (self.cos.get(start)?.to_vec1()?, self.sin.get(start)?.to_vec1()?);
            let logits = decode.step(&self.config, x, (&angles.0, &angles.1), cache)?;
            let vocab = logits.len();
            return Ok(Tensor::from_vec(logits, (1, vocab), &Device::Cpu)?);
        }
        let step = Step { model: self, start, tokens, differentiable: options.differentiable };
        let mask = step.causal_mask(embeds.dim(0)?)?;
        let mut x = embeds.clone();
        for (l, block) in self.weights.blocks.iter().enumerate() {
            x = step.block(block, &x, (cache, l), mask.as_ref())?;
        }
        cache.advance(tokens);
        let x = step.rms_norm(&x, &self.weights.norm)?;
        match options.logits {
            LogitsAt::All => self.weights.lm_head.forward(&x, step.pass()),
            LogitsAt::Last => {
                let last = x.narrow(1, tokens - 1, 1)?.squeeze(1)?;
                self.weights.lm_head.forward(&last, step.pass())
            }
            LogitsAt::None => Ok(x),
        }
    }

    /// `cache` is this model's and has room for `tokens` more positions.
    fn check_cache(&self, cache: &KvCache, tokens: usize) -> Result<(), LlmError> {
        let needed = cache.len() + tokens;
        if needed > self.config.max_position {
            return Err(LlmError::ContextOverflow { needed, limit: self.config.max_position });
        }
        if cache.num_layers() != self.config.num_layers {
            return Err(LlmError::Shape {
                what: "KV cache layers".into(),
                expected: vec![self.config.num_layers],
                actual: vec![cache.num_layers()],
            });
        }
        Ok(())
    }

    /// Whether [`Self::decode_batch`] reads each weight matrix once for the whole batch (Q8_0 serving
    /// on a CPU with the many-row integer products); otherwise it runs the sequences in turn.
    pub fn decodes_in_batches(&self) -> bool {
        self.weights.decode.as_ref().is_some_and(|decode| decode.batches())
    }

    /// One decode step for several sequences at once (continuous batching): `tokens[i]` is the next
    /// token of the sequence whose cache is `caches[i]`, at that cache's next position; returns each
    /// sequence's logits. Each sequence attends over its own cache only, so sequences of different
    /// bundles (prefixes, lengths) share a step. With Q8_0 many-row products every weight matrix is
    /// read once for the whole batch; otherwise the sequences run one after another.
    pub fn decode_batch(
        &self,
        tokens: &[u32],
        caches: &mut [&mut KvCache],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        if tokens.len() != caches.len() {
            return Err(LlmError::Shape {
                what: "a batched step's caches".into(),
                expected: vec![tokens.len()],
                actual: vec![caches.len()],
            });
        }
        let Some(decode) = self.weights.decode.as_ref().filter(|_| tokens.len() > 1) else {
            let mut logits = Vec::with_capacity(tokens.len());
            for (&token, cache) in tokens.iter().zip(caches.iter_mut()) {
                let embeds = self.embed(&Tensor::new(&[token], &Device::Cpu)?.unsqueeze(0)?)?;
                logits.push(self.forward(&embeds, cache, ForwardOptions::SERVE_LAST)?.squeeze(0)?.to_vec1()?);
            }
            return Ok(logits);
        };
        let mut batch = Vec::with_capacity(caches.len());
        for cache in caches.iter_mut() {
            self.check_cache(cache, 1)?;
            let position = cache.len();
            let (cos, sin) = (self.cos.get(position)?.to_vec1()?, self.sin.get(position)?.to_vec1()?);
            batch.push(BatchEntry { cache, cos, sin });
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let xs = self.weights.embed.index_select(&ids, 0)?.flatten_all()?.to_vec1()?;
        let logits = decode.step_batch(&self.config, xs, &mut batch)?;
        Ok(logits.chunks_exact(logits.len() / tokens.len()).map(<[f32]>::to_vec).collect())
    }

    /// The negative log-likelihood of `targets` (one per row) after final hidden states `[rows,
    /// hidden]` (rows of what [`LogitsAt::None`] returns), `[rows]`; differentiable in `hidden`.
    /// Training asks only for the positions it scores: the LM head is the single largest matrix of a
    /// small model, and the logits never enter the autograd graph.
    pub fn token_nll(&self, hidden: &Tensor, targets: &[u32]) -> Result<Tensor, LlmError> {
        let op = HeadNll::new(&self.weights.lm_head.weight, targets)?;
        Ok(hidden.contiguous()?.apply_op1(op)?)
    }
}

/// One forward call's positions and mode.
struct Step<'a> {
    model: &'a Llama,
    start: usize,
    tokens: usize,
    differentiable: bool,
}

impl Step<'_> {
    /// Training never computes a weight gradient.
    fn pass(&self) -> Pass {
        if self.differentiable { Pass::Train } else { Pass::Prefill }
    }

    /// Whether serving attention runs in [`prefill_attention`] (one sequence, a head size it
    /// takes) rather than as tensor ops.
    fn tiled_attention(&self, batch: usize) -> bool {
        !self.differentiable && batch == 1 && prefill_attention::fits(self.model.config.head_dim)
    }

    /// `[tokens, start + tokens]`: 0 where a query may attend, -inf after its own position. Cached
    /// positions (prefix, earlier tokens) are visible to all. None for a single token.
    /// Training's block op and [`prefill_attention`] mask by position themselves: None there too.
    fn causal_mask(&self, batch: usize) -> Result<Option<Tensor>, LlmError> {
        if self.tokens == 1 || self.differentiable || self.tiled_attention(batch) {
            return Ok(None);
        }
        let total = self.start + self.tokens;
        let mask: Vec<f32> = (0..self.tokens)
            .flat_map(|i| (0..total).map(move |j| if j > self.start + i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Ok(Some(Tensor::from_vec(mask, (self.tokens, total), &Device::Cpu)?))
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor, LlmError> {
        let eps = self.model.config.rms_norm_eps;
        if self.differentiable {
            Ok(x.contiguous()?.apply_op1(fused::RmsNorm { weight: weight.clone(), eps })?)
        } else {
            Ok(candle_nn::ops::rms_norm(x, weight, eps as f32)?)
        }
    }

    /// The rotary tables at this call's positions, `[tokens, head_dim / 2]` each.
    fn rope_tables(&self) -> Result<(Tensor, Tensor), LlmError> {
        let table = |t: &Tensor| t.narrow(0, self.start, self.tokens)?.contiguous();
        Ok((table(&self.model.cos)?, table(&self.model.sin)?))
    }

    fn rope(&self, x: &Tensor) -> Result<Tensor, LlmError> {
        let (cos, sin) = self.rope_tables()?;
        Ok(fused::rotate(&x.contiguous()?, &cos, &sin, self.model.config.rope_style)?)
    }

    fn block(
        &self,
        block: &Block,
        x: &Tensor,
        layer_cache: (&mut KvCache, usize),
        mask: Option<&Tensor>,
    ) -> Result<Tensor, LlmError> {
        if self.differentiable {
            return self.training_block(block, x, layer_cache);
        }
        let attn = self.attention(block, &self.rms_norm(x, &block.attn_norm)?, layer_cache, mask)?;
        let x = (x + attn)?;
        let h = self.rms_norm(&x, &block.ffn_norm)?;
        let pass = self.pass();
        let gated = (block.gate.forward(&h, pass)?.silu()? * block.up.forward(&h, pass)?)?;
        Ok((x + block.down.forward(&gated, pass)?)?)
    }

    /// The block as one differentiable op over `x` and the cached keys/values, if any; its new keys
    /// and values go to the cache as constants.
    fn training_block(
        &self,
        block: &Block,
        x: &Tensor,
        (cache, layer): (&mut KvCache, usize),
    ) -> Result<Tensor, LlmError> {
        let (cos, sin) = self.rope_tables()?;
        let op = TrainingBlock::new(block, BlockSetting::new(&self.model.config, cos, sin));
        let new_keys_values = op.new_keys_values();
        let x = x.contiguous()?;
        let out = match cache.layer(layer) {
            Some((keys, values)) => x.apply_op3(&keys.contiguous()?, &values.contiguous()?, op)?,
            None => x.apply_op1(op)?,
        };
        let (keys, values) =
            new_keys_values.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().ok_or_else(
                || candle_core::Error::Msg("the training block left no keys and values".into()),
            )?;
        cache.append(layer, keys, values)?;
        Ok(out)
    }

    fn attention(
        &self,
        block: &Block,
        x: &Tensor,
        (cache, layer): (&mut KvCache, usize),
        mask: Option<&Tensor>,
    ) -> Result<Tensor, LlmError> {
        let config = &self.model.config;
        let (batch, tokens, _) = x.dims3()?;
        let (heads, kv_heads, head_dim, group) =
            (config.num_heads, config.num_kv_heads, config.head_dim, config.kv_group());
        let pass = self.pass();
        let split = |t: Tensor, n: usize| t.reshape((batch, tokens, n, head_dim))?.transpose(1, 2);
        let q = self.rope(&split(block.q.forward(x, pass)?, heads)?)?;
        let k = self.rope(&split(block.k.forward(x, pass)?, kv_heads)?)?;
        let v = split(block.v.forward(x, pass)?, kv_heads)?.contiguous()?;
        let (k, v) = cache.append(layer, k, v)?;
        if self.tiled_attention(batch) {
            let attended = prefill_attention::attend(&q, &k, &v)?;
            let attended = attended.transpose(1, 2)?.reshape((batch, tokens, heads * head_dim))?;
            return block.o.forward(&attended, pass);
        }
        // An f16 serving cache is widened for the product (a copy: once per layer and call).
        let (k, v) = (k.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
        let total = k.dim(2)?;

        // Query heads of one group share a key/value head: [b, kv, group * tokens, d].
        // Scaled before the product: the query is `tokens` rows, the scores `tokens x total`.
        let q = (q.reshape((batch, kv_heads, group * tokens, head_dim))? * (1.0 / (head_dim as f64).sqrt()))?;
        let scores = q.matmul(&k.t()?)?.reshape((batch, kv_heads, group, tokens, total))?;
        let masked = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let weights =
            candle_nn::ops::softmax_last_dim(&masked)?.reshape((batch, kv_heads, group * tokens, total))?;
        let attended = weights.matmul(&v)?;
        let attended = attended.reshape((batch, heads, tokens, head_dim))?.transpose(1, 2)?.reshape((
            batch,
            tokens,
            heads * head_dim,
        ))?;
        block.o.forward(&attended, pass)
    }
}
