//! One token's attention over the KV cache, for decode steps.
//!
//! The cache is the largest thing a step reads after the weights (at ~800 positions, ~36 MB per
//! token in f32 for SmolLM2-135M, a quarter of its Q8_0 weights; half that in the f16 a serving
//! cache keeps), so it is read once: the positions are split between the pool's threads (each
//! computing, for every query head, a partial softmax: its maximum score, the sum of its
//! exponentials and the weighted sum of its values, then merged), and each key/value row is loaded
//! (and widened to f32) once for all the query heads of its group. On AVX2 + FMA + F16C a span runs
//! in [`avx2`]; elsewhere, and for heads that are not a multiple of 64 values, in plain loops.

// Unsafe: entering code compiled for CPU features detected at run time, and F16C's conversion.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;

use std::sync::{Mutex, PoisonError};

use candle_core::{DType, Layout, Storage, Tensor, utils::barrier_pool};
use half::{f16, slice::HalfFloatSliceExt};

use crate::elementwise::dot;
use crate::{LlmError, config::LlamaConfig};

/// Position ranges per step: a few per thread, so a thread that finishes early takes another.
const SPLITS: usize = 8;

/// Bytes ahead of the row being read to prefetch (as the weights' products do, see `crate::q8`).
const PREFETCH_AHEAD: usize = 8192;

/// Attention of one token's query heads `q` (`heads * head_dim`) over `keys`/`values`
/// (`[1, kv_heads, positions, head_dim]`, f32 or f16, views of in-place buffers or whole tensors),
/// into `out`.
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
    let query = Query { q, heads: c.num_heads, group: c.kv_group(), head_dim: c.head_dim };
    match (keys.dtype(), values.dtype()) {
        (DType::F32, DType::F32) => {
            let cache =
                Cached::new((key_data.as_slice()?, key_layout), (value_data.as_slice()?, value_layout), c)?;
            attend_cached(Plain, &query, &cache, out);
        }
        (DType::F16, DType::F16) => {
            let cache =
                Cached::new((key_data.as_slice()?, key_layout), (value_data.as_slice()?, value_layout), c)?;
            #[cfg(target_arch = "x86_64")]
            if let Some(f16c) = F16c::detect() {
                attend_cached(f16c, &query, &cache, out);
                return Ok(());
            }
            attend_cached(SoftF16, &query, &cache, out);
        }
        (k, v) => {
            return Err(LlmError::Unsupported(format!(
                "decode steps read keys and values of f32 or f16, not {} and {}",
                k.as_str(),
                v.as_str()
            )));
        }
    }
    Ok(())
}

/// [`attend`] for several sequences at once (a batched decode step): query `i` (`queries`,
/// `heads * head_dim` each) over cache `i`, into row `i` of `out`. Every sequence's spans go to the
/// pool in one call, so the threads stay busy across sequences instead of meeting at a barrier
/// after each. Caches of mixed dtypes run one sequence at a time.
pub(super) fn attend_batch(
    queries: &[f32],
    caches: &[(Tensor, Tensor)],
    c: &LlamaConfig,
    out: &mut [f32],
) -> Result<(), LlmError> {
    let q_len = c.num_heads * c.head_dim;
    let dtypes: Vec<(DType, DType)> = caches.iter().map(|(k, v)| (k.dtype(), v.dtype())).collect();
    let all_f16 = dtypes.iter().all(|&d| d == (DType::F16, DType::F16));
    let all_f32 = dtypes.iter().all(|&d| d == (DType::F32, DType::F32));
    if !(all_f16 || all_f32) {
        for ((q, cache), out) in queries.chunks_exact(q_len).zip(caches).zip(out.chunks_exact_mut(q_len)) {
            attend(q, (&cache.0, &cache.1), c, out)?;
        }
        return Ok(());
    }
    let stores: Vec<_> =
        caches.iter().map(|(k, v)| (k.storage_and_layout(), v.storage_and_layout())).collect();
    let mut cpu = Vec::with_capacity(stores.len());
    for ((k_store, k_layout), (v_store, v_layout)) in &stores {
        let (Storage::Cpu(k), Storage::Cpu(v)) = (&**k_store, &**v_store) else {
            return Err(LlmError::Unsupported("decode steps run on the CPU".into()));
        };
        cpu.push(((k, *k_layout), (v, *v_layout)));
    }
    let queries: Vec<Query> = queries
        .chunks_exact(q_len)
        .map(|q| Query { q, heads: c.num_heads, group: c.kv_group(), head_dim: c.head_dim })
        .collect();
    if all_f32 {
        let cached = cpu
            .iter()
            .map(|((k, kl), (v, vl))| Cached::new((k.as_slice()?, kl), (v.as_slice()?, vl), c))
            .collect::<Result<Vec<_>, LlmError>>()?;
        attend_all(Plain, &queries, &cached, out);
        return Ok(());
    }
    let cached = cpu
        .iter()
        .map(|((k, kl), (v, vl))| Cached::new((k.as_slice()?, kl), (v.as_slice()?, vl), c))
        .collect::<Result<Vec<Cached<f16>>, LlmError>>()?;
    #[cfg(target_arch = "x86_64")]
    if let Some(f16c) = F16c::detect() {
        attend_all(f16c, &queries, &cached, out);
        return Ok(());
    }
    attend_all(SoftF16, &queries, &cached, out);
    Ok(())
}

/// Spans of a sequence in a batched step: fewer than one sequence alone gets, as the sequences
/// themselves keep the threads busy.
const BATCH_SPLITS: usize = 2;

fn attend_all<W: Widen>(widen: W, queries: &[Query], caches: &[Cached<W::Stored>], out: &mut [f32]) {
    let tasks: Vec<(usize, std::ops::Range<usize>)> = caches
        .iter()
        .enumerate()
        .flat_map(|(i, cache)| {
            let positions = cache.keys.positions;
            let splits = BATCH_SPLITS.min(positions).max(1);
            (0..splits).map(move |split| (i, split * positions / splits..(split + 1) * positions / splits))
        })
        .collect();
    let partials: Vec<Mutex<Partial>> =
        tasks.iter().map(|&(i, _)| Mutex::new(Partial::new(queries[i].heads, queries[i].head_dim))).collect();
    barrier_pool().execute_chunked(tasks.len(), |range| {
        for task in range {
            let (i, span) = tasks[task].clone();
            let mut partial = partials[task].lock().unwrap_or_else(PoisonError::into_inner);
            attend_span(widen, &queries[i], &caches[i], span, &mut partial);
        }
    });
    let partials: Vec<Partial> =
        partials.into_iter().map(|p| p.into_inner().unwrap_or_else(PoisonError::into_inner)).collect();
    let q_len = queries.first().map_or(0, |q| q.heads * q.head_dim);
    let mut next = 0;
    for (i, out) in out.chunks_exact_mut(q_len.max(1)).enumerate().take(queries.len()) {
        let count = tasks[next..].iter().take_while(|(task_sequence, _)| *task_sequence == i).count();
        merge(&partials[next..next + count], queries[i].head_dim, out);
        next += count;
    }
}

/// Splits the positions between the pool's threads and merges their partial softmaxes into `out`.
fn attend_cached<W: Widen>(widen: W, query: &Query, cache: &Cached<W::Stored>, out: &mut [f32]) {
    let positions = cache.keys.positions;
    let splits = SPLITS.min(positions).max(1);
    let partials: Vec<Mutex<Partial>> =
        (0..splits).map(|_| Mutex::new(Partial::new(query.heads, query.head_dim))).collect();
    barrier_pool().execute_chunked(splits, |range| {
        for split in range {
            let span = split * positions / splits..(split + 1) * positions / splits;
            let mut partial = partials[split].lock().unwrap_or_else(PoisonError::into_inner);
            attend_span(widen, query, cache, span, &mut partial);
        }
    });
    let partials: Vec<Partial> =
        partials.into_iter().map(|p| p.into_inner().unwrap_or_else(PoisonError::into_inner)).collect();
    merge(&partials, query.head_dim, out);
}

/// How a decode step reads a cached row as f32.
trait Widen: Copy + Sync {
    /// What the cache stores.
    type Stored: Copy + Sync;

    /// Writes `row`'s values as f32 into `out` (as long as the row).
    fn widen_into(self, row: &[Self::Stored], out: &mut [f32]);
}

/// An f32 cache: read as it is.
#[derive(Clone, Copy)]
struct Plain;

impl Widen for Plain {
    type Stored = f32;

    #[inline(always)]
    fn widen_into(self, row: &[f32], out: &mut [f32]) {
        out.copy_from_slice(row);
    }
}

/// An f16 cache where the span code does not run compiled for F16C: `half`'s slice conversion.
#[derive(Clone, Copy)]
struct SoftF16;

impl Widen for SoftF16 {
    type Stored = f16;

    #[inline(always)]
    fn widen_into(self, row: &[f16], out: &mut [f32]) {
        row.convert_to_f32_slice(out);
    }
}

/// An f16 cache read with F16C's instruction (eight values at a time, inlined into the AVX2 span
/// code). Only [`F16c::detect`] makes one, so holding one means the CPU has F16C.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct F16c(());

#[cfg(target_arch = "x86_64")]
impl F16c {
    fn detect() -> Option<Self> {
        has_simd().then_some(F16c(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Widen for F16c {
    type Stored = f16;

    #[inline(always)]
    fn widen_into(self, row: &[f16], out: &mut [f32]) {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_storeu_ps};
        let (halves, widened) = (row.chunks_exact(8), out.chunks_exact_mut(8));
        for (h, o) in halves.remainder().iter().zip(widened.into_remainder()) {
            *o = h.to_f32();
        }
        for (h, o) in row.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            // SAFETY: `self` exists only where the CPU has F16C (and so AVX); the load reads the 16
            // bytes of eight f16 and the store writes eight f32, each within its chunk.
            unsafe {
                _mm256_storeu_ps(
                    o.as_mut_ptr(),
                    _mm256_cvtph_ps(_mm_loadu_si128(h.as_ptr().cast::<__m128i>())),
                )
            };
        }
    }
}

/// Whether the CPU runs the span kernel compiled for AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
fn has_simd() -> bool {
    crate::q8::has_avx2_fma() && std::arch::is_x86_feature_detected!("f16c")
}

struct Query<'a> {
    q: &'a [f32],
    heads: usize,
    group: usize,
    head_dim: usize,
}

struct Cached<'a, T> {
    keys: HeadRows<'a, T>,
    values: HeadRows<'a, T>,
}

impl<'a, T> Cached<'a, T> {
    fn new(keys: (&'a [T], &Layout), values: (&'a [T], &Layout), c: &LlamaConfig) -> Result<Self, LlmError> {
        Ok(Self { keys: HeadRows::new(keys.0, keys.1, c)?, values: HeadRows::new(values.0, values.1, c)? })
    }
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
    fn new(heads: usize, head_dim: usize) -> Self {
        Self {
            max: vec![f32::NEG_INFINITY; heads],
            sum: vec![0.0; heads],
            weighted: vec![0.0; heads * head_dim],
        }
    }
}

fn attend_span<W: Widen>(
    widen: W,
    query: &Query,
    cache: &Cached<W::Stored>,
    span: std::ops::Range<usize>,
    partial: &mut Partial,
) {
    #[cfg(target_arch = "x86_64")]
    if has_simd() {
        // SAFETY: the CPU has the features both functions are compiled for (checked just above).
        return unsafe {
            if avx2::fits(query.head_dim) {
                avx2::attend_span(widen, query, cache, span, partial)
            } else {
                attend_span_portable_avx2(widen, query, cache, span, partial)
            }
        };
    }
    attend_span_portable(widen, query, cache, span, partial)
}

/// The plain loops compiled for AVX2 + FMA + F16C (the binary targets baseline x86-64, where they
/// vectorise to 4-wide SSE only), for head sizes the kernel does not take.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn attend_span_portable_avx2<W: Widen>(
    widen: W,
    query: &Query,
    cache: &Cached<W::Stored>,
    span: std::ops::Range<usize>,
    partial: &mut Partial,
) {
    attend_span_portable(widen, query, cache, span, partial)
}

/// The plain loops, for any CPU and head size.
#[inline(always)]
fn attend_span_portable<W: Widen>(
    widen: W,
    query: &Query,
    cache: &Cached<W::Stored>,
    span: std::ops::Range<usize>,
    partial: &mut Partial,
) {
    let Query { q, heads, group, head_dim } = *query;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let len = span.len();
    // Scores of the group's query heads, one row of `len` per head.
    let mut scores = vec![0f32; group * len];
    let mut widened = vec![0f32; head_dim];
    for kv_head in 0..heads / group {
        let first = kv_head * group;
        for (i, p) in span.clone().enumerate() {
            let key = cache.keys.row(kv_head, p);
            prefetch_ahead(key);
            widen.widen_into(key, &mut widened);
            let key = &widened;
            for g in 0..group {
                let head = first + g;
                scores[g * len + i] = dot(&q[head * head_dim..(head + 1) * head_dim], key) * scale;
            }
        }
        for g in 0..group {
            let (max, sum) = crate::elementwise::exponentiate_shifted(&mut scores[g * len..(g + 1) * len]);
            partial.max[first + g] = max;
            partial.sum[first + g] = sum;
        }
        let weighted = &mut partial.weighted[first * head_dim..(first + group) * head_dim];
        for (i, p) in span.clone().enumerate() {
            let value = cache.values.row(kv_head, p);
            prefetch_ahead(value);
            widen.widen_into(value, &mut widened);
            let value = &widened;
            for (g, out) in weighted.chunks_exact_mut(head_dim).enumerate() {
                let weight = scores[g * len + i];
                for (o, v) in out.iter_mut().zip(value) {
                    *o += weight * v;
                }
            }
        }
    }
}

/// Bytes in one cache line.
const LINE_BYTES: usize = 64;

/// Asks for every cache line of the row [`PREFETCH_AHEAD`] bytes ahead of `row` (the rows of a head
/// follow each other in the cache). A single hint per row reached only one of an f32 64-value
/// row's four lines, and without hints the hardware prefetcher keeps too few lines in flight (see
/// `crate::q8`).
#[inline(always)]
fn prefetch_ahead<T>(row: &[T]) {
    let start = row.as_ptr().cast::<u8>();
    for line in (0..size_of_val(row)).step_by(LINE_BYTES) {
        crate::q8::prefetch(start.wrapping_add(PREFETCH_AHEAD + line));
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
struct HeadRows<'a, T> {
    data: &'a [T],
    offset: usize,
    head_stride: usize,
    position_stride: usize,
    positions: usize,
    head_dim: usize,
}

impl<'a, T> HeadRows<'a, T> {
    fn new(data: &'a [T], layout: &Layout, c: &LlamaConfig) -> Result<Self, LlmError> {
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
    fn row(&self, head: usize, position: usize) -> &'a [T] {
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
    fn the_split_attention_matches_a_plain_softmax_over_an_f32_or_f16_cache() {
        // 64 and 128 run the AVX2 kernel where the CPU has it (one and two passes of 64 values);
        // 16 and 12 the plain loops, 12 a size F16C's eight-value conversion does not divide.
        for c in [config(64), config(128), config(16), config(12)] {
            for dtype in [DType::F32, DType::F16] {
                // Spans of 4-5 positions (fewer than the kernel's eight), of exactly 8, and of 37-38.
                for positions in [37, 64, 300] {
                    // A view of a buffer's first positions, as a request's in-place cache is.
                    let buffer = (1, c.num_kv_heads, positions + 5, c.head_dim);
                    let per_buffer = buffer.0 * buffer.1 * buffer.2 * buffer.3;
                    let tensor = |seed| {
                        Tensor::from_vec(numbers(per_buffer, seed), buffer, &Device::Cpu)?
                            .to_dtype(dtype)?
                            .narrow(2, 0, positions)
                    };
                    let (k, v) = (tensor(1).unwrap(), tensor(2).unwrap());
                    let q = numbers(c.num_heads * c.head_dim, 3);
                    // The reference reads the values the cache holds (rounded to f16 where it is f16).
                    let stored = |t: &Tensor| {
                        t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
                    };
                    let expected = reference(&q, &stored(&k), &stored(&v), positions, &c);
                    let mut out = vec![0.0; q.len()];
                    attend(&q, (&k, &v), &c, &mut out).unwrap();
                    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
                        let head_dim = c.head_dim;
                        assert!(
                            (got - want).abs() <= 1e-5,
                            "{dtype:?}, head size {head_dim}, {positions} positions, value {i}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn f16c_widens_as_the_portable_conversion_does() {
        #[cfg(target_arch = "x86_64")]
        if let Some(f16c) = F16c::detect() {
            // 20 values: two chunks of eight and a remainder.
            let row: Vec<f16> = numbers(20, 4).into_iter().map(f16::from_f32).collect();
            let (mut soft, mut simd) = (vec![0.0; 20], vec![0.0; 20]);
            f16c.widen_into(&row, &mut simd);
            SoftF16.widen_into(&row, &mut soft);
            assert_eq!(simd, soft);
            assert_eq!(simd, row.iter().map(|h| h.to_f32()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_cache_of_another_dtype_is_refused() {
        let c = config(16);
        let shape = (1, c.num_kv_heads, 3, c.head_dim);
        let k = Tensor::zeros(shape, DType::BF16, &Device::Cpu).unwrap();
        let v = Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
        let mut out = vec![0.0; c.num_heads * c.head_dim];
        let error = attend(&vec![0.0; out.len()], (&k, &v), &c, &mut out).unwrap_err().to_string();
        assert!(error.contains("bf16 and f32"), "{error}");
    }
}
