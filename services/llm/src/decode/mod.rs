//! One-token serving steps on Q8_0 weights, computed on plain slices rather than candle tensor ops.
//!
//! A decode step multiplies a single row by every weight matrix once. Through tensor ops that is
//! ~20 small ops per layer, each allocating its output and dispatching; for a 135M-parameter model
//! the ops' overhead was more than half of a step (perf over `rudder bench generate`: 30 tok/s, 29%
//! of the memory-bandwidth bound, with the second core idling between matrix products). Here a step
//! is, per layer: RMS norm, one GEMV for Q/K/V stacked, rope, attention over the KV cache, the output
//! GEMV, RMS norm, one GEMV for gate/up stacked, SiLU, the down GEMV; then the LM head. The GEMVs are
//! ours ([`crate::q8`]); they and the attention are split over candle's spinning thread pool.
//!
//! Serving only: one token per sequence, no gradient. [`DecodeWeights::step`] runs one sequence;
//! [`DecodeWeights::step_batch`] runs several sequences' next tokens together (continuous batching):
//! each weight matrix is read once for all of them, on the many-row integer products of
//! [`crate::q8_prefill`], while each sequence attends over its own cache (its own bundle's prefix,
//! its own positions). Prefill and training stay on the tensor path.

use candle_core::Tensor;

mod attention;

use std::sync::Arc;

use crate::{
    LlmError,
    config::{LlamaConfig, RopeStyle},
    elementwise,
    kv_cache::KvCache,
    layers::{Block, Linear},
    q8::{BLOCK, Q8Matrix},
    q8_prefill::{Q8Panels, QuantizedRows},
};

/// `parts`' f32 weights `[out, in]` stacked row-wise in one Q8_0 matrix: projections that read
/// the same input (Q/K/V; gate/up) then take one product — one quantization of the input, one trip
/// to the thread pool.
fn stacked(parts: &[&Tensor]) -> Result<Q8Matrix, LlmError> {
    let cols = parts.first().map(|part| part.dim(1)).transpose()?.unwrap_or(0);
    if cols == 0 || !cols.is_multiple_of(BLOCK) {
        return Err(LlmError::Unsupported(format!(
            "Q8_0 serving needs matrix rows of a multiple of {BLOCK} values; this model's are {cols} \
             (serve it with f32 weights)"
        )));
    }
    let mut values = Vec::new();
    for part in parts {
        values.extend(part.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(Q8Matrix::from_rows(&values, cols))
}

#[derive(Debug)]
struct DecodeLayer {
    attn_norm: Vec<f32>,
    /// Q, K and V stacked.
    qkv: Q8Matrix,
    /// Q/K/V biases stacked (qwen2), zeros for a projection without one.
    qkv_bias: Option<Vec<f32>>,
    o: Q8Matrix,
    ffn_norm: Vec<f32>,
    /// Gate and up stacked.
    gate_up: Q8Matrix,
    down: Q8Matrix,
    /// The layer's projections as many-row products (shared with prefill's), for batched steps.
    panels: Option<LayerPanels>,
}

#[derive(Debug)]
struct LayerPanels {
    q: Arc<Q8Panels>,
    k: Arc<Q8Panels>,
    v: Arc<Q8Panels>,
    o: Arc<Q8Panels>,
    gate: Arc<Q8Panels>,
    up: Arc<Q8Panels>,
    down: Arc<Q8Panels>,
}

impl LayerPanels {
    fn of(block: &Block) -> Option<Self> {
        Some(Self {
            q: block.q.quantized.clone()?,
            k: block.k.quantized.clone()?,
            v: block.v.quantized.clone()?,
            o: block.o.quantized.clone()?,
            gate: block.gate.quantized.clone()?,
            up: block.up.quantized.clone()?,
            down: block.down.quantized.clone()?,
        })
    }
}

/// The Q8_0 copy of a model's weights that decode steps read.
#[derive(Debug)]
pub(crate) struct DecodeWeights {
    layers: Vec<DecodeLayer>,
    norm: Vec<f32>,
    lm_head: Q8Matrix,
    lm_head_panels: Option<Arc<Q8Panels>>,
}

/// One sequence's share of a batched step: the cache it continues and its next token's rope angles.
pub(crate) struct BatchEntry<'a> {
    pub cache: &'a mut KvCache,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

impl DecodeWeights {
    pub(crate) fn quantize(blocks: &[Block], norm: &Tensor, lm_head: &Linear) -> Result<Self, LlmError> {
        let mut layers = Vec::with_capacity(blocks.len());
        for block in blocks {
            let attention = [&block.q, &block.k, &block.v];
            layers.push(DecodeLayer {
                attn_norm: block.attn_norm.to_vec1()?,
                qkv: stacked(&attention.map(|linear| &linear.weight))?,
                qkv_bias: stacked_bias(&attention)?,
                o: stacked(&[&block.o.weight])?,
                ffn_norm: block.ffn_norm.to_vec1()?,
                gate_up: stacked(&[&block.gate.weight, &block.up.weight])?,
                down: stacked(&[&block.down.weight])?,
                panels: LayerPanels::of(block),
            });
        }
        Ok(Self {
            layers,
            norm: norm.to_vec1()?,
            lm_head: stacked(&[&lm_head.weight])?,
            lm_head_panels: lm_head.quantized.clone(),
        })
    }

    /// Whether [`Self::step_batch`] reads each matrix once for the whole batch (the many-row
    /// products exist); otherwise it runs the sequences one after another.
    pub(crate) fn batches(&self) -> bool {
        self.lm_head_panels.is_some() && self.layers.iter().all(|layer| layer.panels.is_some())
    }

    /// Bytes of quantized weights one step reads (all of them, once).
    pub(crate) fn size_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.qkv.size_bytes() + l.o.size_bytes() + l.gate_up.size_bytes() + l.down.size_bytes())
            .sum();
        layers + self.lm_head.size_bytes()
    }

    /// Runs one token's input embedding `x` at position `cache.len()` (its rope angles `cos`/`sin`),
    /// appends its keys and values to `cache`, and returns the logits.
    pub(crate) fn step(
        &self,
        config: &LlamaConfig,
        mut x: Vec<f32>,
        (cos, sin): (&[f32], &[f32]),
        cache: &mut KvCache,
    ) -> Result<Vec<f32>, LlmError> {
        let c = config;
        let (q_len, kv_len) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        let eps = c.rms_norm_eps as f32;
        let mut normed = vec![0.0; c.hidden_size];
        let mut qkv = vec![0.0; q_len + 2 * kv_len];
        let mut attended = vec![0.0; q_len];
        let mut projected = vec![0.0; c.hidden_size];
        let mut gate_up = vec![0.0; 2 * c.intermediate_size];
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, eps, &mut normed);
            layer.qkv.gemv(&normed, &mut qkv);
            if let Some(bias) = &layer.qkv_bias {
                add_assign(&mut qkv, bias);
            }
            let (q, kv) = qkv.split_at_mut(q_len);
            let (k, v) = kv.split_at_mut(kv_len);
            for head in q.chunks_exact_mut(c.head_dim).chain(k.chunks_exact_mut(c.head_dim)) {
                rope(head, cos, sin, c.rope_style);
            }
            let shape = (1, c.num_kv_heads, 1, c.head_dim);
            let (keys, values) = cache.append(
                l,
                Tensor::from_slice(k, shape, &candle_core::Device::Cpu)?,
                Tensor::from_slice(v, shape, &candle_core::Device::Cpu)?,
            )?;
            attention::attend(q, (&keys, &values), c, &mut attended)?;
            layer.o.gemv(&attended, &mut projected);
            add_assign(&mut x, &projected);

            rms_norm(&x, &layer.ffn_norm, eps, &mut normed);
            layer.gate_up.gemv(&normed, &mut gate_up);
            let (gate, up) = gate_up.split_at_mut(c.intermediate_size);
            elementwise::silu_mul(gate, up);
            layer.down.gemv(gate, &mut projected);
            add_assign(&mut x, &projected);
        }
        cache.advance(1);
        rms_norm(&x, &self.norm, eps, &mut normed);
        let mut logits = vec![0.0; self.lm_head.rows()];
        self.lm_head.gemv(&normed, &mut logits);
        Ok(logits)
    }

    /// Runs one token per sequence together: `xs` holds their input embeddings (`batch * hidden`,
    /// row `i` for `batch[i]`), each at its own cache's next position. Returns the logits, `batch *
    /// vocab`. Without the many-row products ([`Self::batches`]), one [`Self::step`] after another.
    pub(crate) fn step_batch(
        &self,
        config: &LlamaConfig,
        mut xs: Vec<f32>,
        batch: &mut [BatchEntry],
    ) -> Result<Vec<f32>, LlmError> {
        let (c, n) = (config, batch.len());
        let panels: Option<Vec<&LayerPanels>> =
            self.layers.iter().map(|layer| layer.panels.as_ref()).collect();
        let (Some(lm_head), Some(panels)) = (&self.lm_head_panels, panels) else {
            let mut logits = Vec::new();
            for (x, entry) in xs.chunks_exact(c.hidden_size).zip(batch.iter_mut()) {
                logits.extend(self.step(c, x.to_vec(), (&entry.cos, &entry.sin), entry.cache)?);
            }
            return Ok(logits);
        };
        let (q_len, kv_len, h) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.hidden_size);
        let eps = c.rms_norm_eps as f32;
        let mut normed = vec![0.0; n * h];
        let (mut q, mut k, mut v) = (vec![0.0; n * q_len], vec![0.0; n * kv_len], vec![0.0; n * kv_len]);
        let mut attended = vec![0.0; n * q_len];
        let mut projected = vec![0.0; n * h];
        let (mut gate, mut up) = (vec![0.0; n * c.intermediate_size], vec![0.0; n * c.intermediate_size]);
        for ((l, layer), p) in self.layers.iter().enumerate().zip(panels) {
            rms_norm_rows(&xs, &layer.attn_norm, eps, &mut normed);
            let input = QuantizedRows::new(&normed, h);
            p.q.matmul_quantized(&input, &mut q);
            p.k.matmul_quantized(&input, &mut k);
            p.v.matmul_quantized(&input, &mut v);
            let mut cached = Vec::with_capacity(n);
            for (i, entry) in batch.iter_mut().enumerate() {
                let (q, k, v) = (
                    &mut q[i * q_len..][..q_len],
                    &mut k[i * kv_len..][..kv_len],
                    &mut v[i * kv_len..][..kv_len],
                );
                if let Some(bias) = &layer.qkv_bias {
                    let (q_bias, kv_bias) = bias.split_at(q_len);
                    add_assign(q, q_bias);
                    add_assign(k, &kv_bias[..kv_len]);
                    add_assign(v, &kv_bias[kv_len..]);
                }
                for head in q.chunks_exact_mut(c.head_dim).chain(k.chunks_exact_mut(c.head_dim)) {
                    rope(head, &entry.cos, &entry.sin, c.rope_style);
                }
                let shape = (1, c.num_kv_heads, 1, c.head_dim);
                cached.push(entry.cache.append(
                    l,
                    Tensor::from_slice(k, shape, &candle_core::Device::Cpu)?,
                    Tensor::from_slice(v, shape, &candle_core::Device::Cpu)?,
                )?);
            }
            attention::attend_batch(&q, &cached, c, &mut attended)?;
            p.o.matmul_quantized(&QuantizedRows::new(&attended, q_len), &mut projected);
            add_assign(&mut xs, &projected);

            rms_norm_rows(&xs, &layer.ffn_norm, eps, &mut normed);
            let input = QuantizedRows::new(&normed, h);
            p.gate.matmul_quantized(&input, &mut gate);
            p.up.matmul_quantized(&input, &mut up);
            elementwise::silu_mul(&mut gate, &up);
            p.down.matmul_quantized(&QuantizedRows::new(&gate, c.intermediate_size), &mut projected);
            add_assign(&mut xs, &projected);
        }
        for entry in batch.iter_mut() {
            entry.cache.advance(1);
        }
        rms_norm_rows(&xs, &self.norm, eps, &mut normed);
        let mut logits = vec![0.0; n * lm_head.rows()];
        lm_head.matmul_quantized(&QuantizedRows::new(&normed, h), &mut logits);
        Ok(logits)
    }
}

fn rms_norm_rows(xs: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    for (x, out) in xs.chunks_exact(weight.len()).zip(out.chunks_exact_mut(weight.len())) {
        rms_norm(x, weight, eps, out);
    }
}

fn stacked_bias(linears: &[&Linear]) -> Result<Option<Vec<f32>>, LlmError> {
    if linears.iter().all(|linear| linear.bias.is_none()) {
        return Ok(None);
    }
    let mut stacked = Vec::new();
    for linear in linears {
        match &linear.bias {
            Some(bias) => stacked.extend(bias.to_vec1::<f32>()?),
            None => stacked.extend(std::iter::repeat_n(0.0, linear.weight.dim(0)?)),
        }
    }
    Ok(Some(stacked))
}

fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean_square = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean_square + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Rotates one head's vector by its position's angles (`cos`/`sin`: `head_dim / 2` values), pairing
/// dimensions as the tensor path's rope kernels do.
fn rope(head: &mut [f32], cos: &[f32], sin: &[f32], style: RopeStyle) {
    let half = head.len() / 2;
    for i in 0..half {
        let (a, b) = match style {
            RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            RopeStyle::Halves => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos[i] - x1 * sin[i];
        head[b] = x0 * sin[i] + x1 * cos[i];
    }
}
