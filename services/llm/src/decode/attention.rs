//! One token's attention over the KV cache, for decode steps.
//!
//! The cache is the largest thing a step reads after the weights (at ~800 positions, ~36 MB per
//! token for SmolLM2-135M, a quarter of its Q8_0 weights), so it is read once: the positions are
//! split between the pool's threads (each computing, for every query head, a partial softmax: its
//! maximum score, the sum of its exponentials and the weighted sum of its values, then merged), and
//! each key/value row is loaded once for all the query heads of its group.

// One unsafe call: entering code compiled for CPU features detected at run time.
#![allow(unsafe_code)]

use std::sync::{Mutex, PoisonError};

use candle_core::{Layout, Storage, Tensor, utils::barrier_pool};

use super::elementwise::dot;
use crate::{LlmError, config::LlamaConfig};

/// Position ranges per step: a few per thread, so a thread that finishes early takes another.
const SPLITS: usize = 8;

/// Values ahead of the row being read to prefetch (as the weights' products do, see `crate::q8`).
const PREFETCH_AHEAD: usize = 2048;

/// Attention of one token's query heads `q` (`heads * head_dim`) over `keys`/`values`
/// (`[1, kv_heads, positions, head_dim]`, views of in-place buffers or whole tensors), into `out`.
pub(super) fn attend(
    q: &[f32],
    (keys, values): (&Tensor, &Tensor),
    c: &LlamaConfig,
    out: &mut [f32],
) -> Result<(), LlmError> {
    let (key_store, key_layout) = keys.storage_and_layout();
    let (value_store, value_layout) = values.storage_and_layout();
    let (Storage::Cpu(key_data), Storage::Cpu(value_data)) = (&*key_store, &*value_store) else {
        return Err(LlmError::Unsupported("decode steps run on the CPU".into()));
    };
    let cache = Cached {
        keys: HeadRows::new(key_data.as_slice::<f32>()?, key_layout, c)?,
        values: HeadRows::new(value_data.as_slice::<f32>()?, value_layout, c)?,
    };
    let positions = cache.keys.positions;
    let splits = SPLITS.min(positions).max(1);
    let partials: Vec<Mutex<Partial>> = (0..splits).map(|_| Mutex::new(Partial::new(c))).collect();
    let query = Query { q, heads: c.num_heads, group: c.kv_group(), head_dim: c.head_dim };
    barrier_pool().execute_chunked(splits, |range| {
        for split in range {
            let span = split * positions / splits..(split + 1) * positions / splits;
            let mut partial = partials[split].lock().unwrap_or_else(PoisonError::into_inner);
            attend_span(&query, &cache, span, &mut partial);
        }
    });
    let partials: Vec<Partial> =
        partials.into_iter().map(|p| p.into_inner().unwrap_or_else(PoisonError::into_inner)).collect();
    merge(&partials, c.head_dim, out);
    Ok(())
}

struct Query<'a> {
    q: &'a [f32],
    heads: usize,
    group: usize,
    head_dim: usize,
}

struct Cached<'a> {
    keys: HeadRows<'a>,
    values: HeadRows<'a>,
}

/// One span of positions' share of every query head's softmax.
struct Partial {
    /// Per head: the largest score in the span.
    max: Vec<f32>,
    /// Per head: the sum of `exp(score - max)`.
    sum: Vec<f32>,
    /// Per head: the sum of `exp(score - max) * value`, `heads * head_dim`.
    weighted: Vec<f32>,
}

impl Partial {
    fn new(c: &LlamaConfig) -> Self {
        Self {
            max: vec![f32::NEG_INFINITY; c.num_heads],
            sum: vec![0.0; c.num_heads],
            weighted: vec![0.0; c.num_heads * c.head_dim],
        }
    }
}

fn attend_span(query: &Query, cache: &Cached, span: std::ops::Range<usize>, partial: &mut Partial) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { attend_span_avx2(query, cache, span, partial) };
    }
    attend_span_portable(query, cache, span, partial)
}

/// The same code compiled for AVX2 + FMA: the binary targets baseline x86-64, where these loops
/// vectorise to 4-wide SSE only.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn attend_span_avx2(query: &Query, cache: &Cached, span: std::ops::Range<usize>, partial: &mut Partial) {
    attend_span_portable(query, cache, span, partial)
}

#[inline(always)]
fn attend_span_portable(query: &Query, cache: &Cached, span: std::ops::Range<usize>, partial: &mut Partial) {
    let Query { q, heads, group, head_dim } = *query;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let len = span.len();
    // Scores of the group's query heads, one row of `len` per head.
    let mut scores = vec![0f32; group * len];
    for kv_head in 0..heads / group {
        let first = kv_head * group;
        for (i, p) in span.clone().enumerate() {
            let key = cache.keys.row(kv_head, p);
            prefetch_ahead(key);
            for g in 0..group {
                let head = first + g;
                scores[g * len + i] = dot(&q[head * head_dim..(head + 1) * head_dim], key) * scale;
            }
        }
        for g in 0..group {
            let row = &mut scores[g * len..(g + 1) * len];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // Two loops: the exponentials vectorise only without the running sum beside them.
            for s in row.iter_mut() {
                *s = super::elementwise::exp(*s - max);
            }
            partial.max[first + g] = max;
            partial.sum[first + g] = super::elementwise::sum(row);
        }
        let weighted = &mut partial.weighted[first * head_dim..(first + group) * head_dim];
        for (i, p) in span.clone().enumerate() {
            let value = cache.values.row(kv_head, p);
            prefetch_ahead(value);
            for (g, out) in weighted.chunks_exact_mut(head_dim).enumerate() {
                let weight = scores[g * len + i];
                for (o, v) in out.iter_mut().zip(value) {
                    *o = weight.mul_add(*v, *o);
                }
            }
        }
    }
}

/// f32 values in one 64-byte cache line.
const LINE_VALUES: usize = 16;

/// Asks for every cache line of the row [`PREFETCH_AHEAD`] values ahead of `row` (the rows of a head
/// follow each other in the cache). A single hint per row reached only one of a 64-value row's four
/// lines, and without hints the hardware prefetcher keeps too few lines in flight (see `crate::q8`).
#[inline(always)]
fn prefetch_ahead(row: &[f32]) {
    for line in (0..row.len()).step_by(LINE_VALUES) {
        crate::q8::prefetch(row.as_ptr().wrapping_add(PREFETCH_AHEAD + line));
    }
}

/// Combines the spans' partial softmaxes into each head's attention output.
fn merge(partials: &[Partial], head_dim: usize, out: &mut [f32]) {
    for (head, out) in out.chunks_exact_mut(head_dim).enumerate() {
        let max = partials.iter().map(|p| p.max[head]).fold(f32::NEG_INFINITY, f32::max);
        out.fill(0.0);
        let mut total = 0.0;
        for partial in partials {
            // An empty span has max -inf: its factor is 0.
            let factor = (partial.max[head] - max).exp();
            total += factor * partial.sum[head];
            for (o, w) in out.iter_mut().zip(&partial.weighted[head * head_dim..(head + 1) * head_dim]) {
                *o += factor * w;
            }
        }
        for o in out.iter_mut() {
            *o /= total;
        }
    }
}

/// Rows of `head_dim` values of a `[1, kv_heads, positions, head_dim]` tensor whose last dimension
/// is contiguous (a whole tensor, or a view of a buffer's first positions).
struct HeadRows<'a> {
    data: &'a [f32],
    offset: usize,
    head_stride: usize,
    position_stride: usize,
    positions: usize,
    head_dim: usize,
}

impl<'a> HeadRows<'a> {
    fn new(data: &'a [f32], layout: &Layout, c: &LlamaConfig) -> Result<Self, LlmError> {
        let (dims, stride) = (layout.dims(), layout.stride());
        let fits = dims.len() == 4
            && dims[0] == 1
            && dims[1] == c.num_kv_heads
            && dims[2] > 0
            && dims[3] == c.head_dim
            && stride[3] == 1;
        if !fits {
            return Err(LlmError::Shape {
                what: "KV cache layer in a decode step".into(),
                expected: vec![1, c.num_kv_heads, dims.get(2).copied().unwrap_or(1).max(1), c.head_dim],
                actual: dims.to_vec(),
            });
        }
        Ok(Self {
            data,
            offset: layout.start_offset(),
            head_stride: stride[1],
            position_stride: stride[2],
            positions: dims[2],
            head_dim: c.head_dim,
        })
    }

    #[inline(always)]
    fn row(&self, head: usize, position: usize) -> &'a [f32] {
        let start = self.offset + head * self.head_stride + position * self.position_stride;
        &self.data[start..start + self.head_dim]
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::config::RopeStyle;

    fn config(head_dim: usize) -> LlamaConfig {
        LlamaConfig {
            architecture: "llama".into(),
            hidden_size: 4 * head_dim,
            intermediate_size: 128,
            num_layers: 1,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim,
            vocab_size: 10,
            max_position: 64,
            rope_theta: 10_000.0,
            rope_style: RopeStyle::Halves,
            rms_norm_eps: 1e-5,
            attention_bias: false,
        }
    }

    /// Deterministic values in [-2, 2).
    fn numbers(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| {
                let h = (i as u32).wrapping_add(seed).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1u32 << 22) as f32 - 2.0
            })
            .collect()
    }

    /// Softmax attention of each query head over its group's key/value head, written plainly.
    fn reference(q: &[f32], keys: &[f32], values: &[f32], positions: usize, c: &LlamaConfig) -> Vec<f32> {
        let d = c.head_dim;
        let mut out = vec![0.0; c.num_heads * d];
        for head in 0..c.num_heads {
            let kv = head / c.kv_group();
            let row = |data: &[f32], p: usize| data[(kv * positions + p) * d..][..d].to_vec();
            let query = &q[head * d..(head + 1) * d];
            let scores: Vec<f32> = (0..positions)
                .map(|p| row(keys, p).iter().zip(query).map(|(k, q)| k * q).sum::<f32>() / (d as f32).sqrt())
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f32 = weights.iter().sum();
            for (p, w) in weights.iter().enumerate() {
                for (o, v) in out[head * d..(head + 1) * d].iter_mut().zip(row(values, p)) {
                    *o += w / total * v;
                }
            }
        }
        out
    }

    #[test]
    fn the_split_attention_matches_a_plain_softmax() {
        for c in [config(64), config(16)] {
            // More positions than splits, and a count that does not divide evenly.
            let positions = 37;
            let shape = (1, c.num_kv_heads, positions, c.head_dim);
            let per_tensor = positions * c.num_kv_heads * c.head_dim;
            let (keys, values) = (numbers(per_tensor, 1), numbers(per_tensor, 2));
            let q = numbers(c.num_heads * c.head_dim, 3);
            let expected = reference(&q, &keys, &values, positions, &c);
            let tensor = |data: &[f32]| Tensor::from_slice(data, shape, &Device::Cpu);
            let (k, v) = (tensor(&keys).unwrap(), tensor(&values).unwrap());
            let mut out = vec![0.0; q.len()];
            attend(&q, (&k, &v), &c, &mut out).unwrap();
            for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
                assert!((got - want).abs() <= 1e-5, "head size {}, value {i}: {got} vs {want}", c.head_dim);
            }
        }
    }
}
