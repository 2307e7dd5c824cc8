//! Causal attention of a serving forward's queries (a prefill chunk) over the KV cache, in one pass
//! per tile of queries: scores, softmax and weighted values without a score tensor.
//!
//! Composed from candle ops, this was a score product over every cached position for every query
//! (the half after each query's own position computed and then masked), a mask added, a softmax,
//! and a second product: three `[kv_heads, group * tokens, positions]` tensors per layer (~20 MB at
//! a 760-token prompt), each allocated and zero-filled, with the product's packing on top. With the
//! projections on integer products (`crate::q8_prefill`) that was most of a prefill. Here each task
//! takes [`TILE`] consecutive queries of one head, scores only the positions they may see, keeps
//! the scores in a small buffer, and sums the weighted values in registers.
//!
//! Keys are transposed once per call (`[head_dim, positions]` per key/value head), so a score
//! product runs [`LANES`] positions at a time with no horizontal sums. Runs on candle's thread pool,
//! longest tiles first.

// One unsafe call: entering code compiled for CPU features detected at run time.
#![allow(unsafe_code)]

use std::sync::{Mutex, PoisonError};

use candle_core::{DType, Device, Tensor, utils::barrier_pool};

use crate::{LlmError, elementwise, fused};

/// Queries of one head computed together, sharing each key and value load.
const TILE: usize = 4;

/// Positions (in the score product) or values (in the weighted sum) a loop step covers: one
/// 512-bit register, or two 256-bit ones.
const LANES: usize = 16;

/// Whether heads of `head_dim` values take this path (otherwise the tensor ops do).
pub(crate) fn fits(head_dim: usize) -> bool {
    head_dim > 0 && head_dim.is_multiple_of(LANES) && head_dim <= MAX_HEAD_DIM
}

/// The largest head a tile's query rows hold (on the stack).
const MAX_HEAD_DIM: usize = 256;

/// `q` `[1, heads, tokens, head_dim]` (rotated, not yet scaled) attending over `keys`/`values`
/// `[1, kv_heads, positions, head_dim]` (the cache, this call's tokens last): query `t` sees every
/// cached position before the call's tokens and the call's tokens up to its own. Returns `[1,
/// heads, tokens, head_dim]`.
pub(crate) fn attend(q: &Tensor, keys: &Tensor, values: &Tensor) -> Result<Tensor, LlmError> {
    let (_, heads, tokens, head_dim) = q.dims4()?;
    let (_, kv_heads, positions, _) = keys.dims4()?;
    let shape = Shape { group: heads / kv_heads.max(1), tokens, positions, head_dim };
    let (q, keys, values) = (q.contiguous()?, f32_contiguous(keys)?, f32_contiguous(values)?);
    let (q_store, q_layout) = q.storage_and_layout();
    let (k_store, k_layout) = keys.storage_and_layout();
    let (v_store, v_layout) = values.storage_and_layout();
    let inputs = Inputs {
        queries: fused::f32_values(&q_store, q_layout)?,
        transposed_keys: transpose_keys(fused::f32_values(&k_store, k_layout)?, kv_heads, &shape),
        values: fused::f32_values(&v_store, v_layout)?,
        shape,
    };
    let mut out = vec![0f32; heads * tokens * head_dim];
    let tiles_per_head = tokens.div_ceil(TILE);
    let regions: Vec<Mutex<&mut [f32]>> = out
        .chunks_mut(tokens * head_dim)
        .flat_map(|head| head.chunks_mut(TILE * head_dim))
        .map(Mutex::new)
        .collect();
    let run = tile_runner();
    barrier_pool().execute_chunked(regions.len(), |range| {
        let mut scores = Vec::new();
        for task in range {
            // The last tiles see the most positions: they go first, so the pool's threads finish
            // together.
            let (tile, head) = (tiles_per_head - 1 - task / heads, task % heads);
            let mut region =
                regions[head * tiles_per_head + tile].lock().unwrap_or_else(PoisonError::into_inner);
            run(&inputs, head, tile * TILE, &mut scores, &mut region);
        }
    });
    drop(regions);
    Ok(Tensor::from_vec(out, (1, heads, tokens, head_dim), &Device::Cpu)?)
}

fn f32_contiguous(t: &Tensor) -> Result<Tensor, LlmError> {
    // An f16 serving cache is widened for the call (a copy: once per layer and call).
    Ok(t.to_dtype(DType::F32)?.contiguous()?)
}

#[derive(Clone, Copy)]
struct Shape {
    /// Query heads per key/value head.
    group: usize,
    tokens: usize,
    positions: usize,
    head_dim: usize,
}

impl Shape {
    /// Positions rounded up to whole score steps (the transposed keys' row length).
    fn padded_positions(&self) -> usize {
        self.positions.next_multiple_of(LANES)
    }

    /// Cached positions before this call's tokens.
    fn start(&self) -> usize {
        self.positions - self.tokens
    }
}

struct Inputs<'a> {
    /// `[heads, tokens, head_dim]`.
    queries: &'a [f32],
    /// `[kv_heads, head_dim, padded positions]`, zeros past the last position.
    transposed_keys: Vec<f32>,
    /// `[kv_heads, positions, head_dim]`.
    values: &'a [f32],
    shape: Shape,
}

fn transpose_keys(keys: &[f32], kv_heads: usize, shape: &Shape) -> Vec<f32> {
    let (positions, head_dim, padded) = (shape.positions, shape.head_dim, shape.padded_positions());
    let mut out = vec![0f32; kv_heads * head_dim * padded];
    for (head_keys, head_out) in
        keys.chunks_exact(positions * head_dim).zip(out.chunks_exact_mut(head_dim * padded))
    {
        for (p, key) in head_keys.chunks_exact(head_dim).enumerate() {
            for (d, &k) in key.iter().enumerate() {
                head_out[d * padded + p] = k;
            }
        }
    }
    out
}

/// Computes the tile of query head `head` from token `first` into `out` (`[rows, head_dim]`), with
/// `scores` as scratch.
type TileRunner = fn(&Inputs, usize, usize, &mut Vec<f32>, &mut [f32]);

fn tile_runner() -> TileRunner {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return tile_avx512_checked;
        }
        if crate::q8::has_avx2_fma() {
            return tile_avx2_checked;
        }
    }
    tile::<false>
}

#[cfg(target_arch = "x86_64")]
fn tile_avx512_checked(inputs: &Inputs, head: usize, first: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    // SAFETY: `tile_runner` hands this out only where the CPU has AVX-512 F.
    unsafe { tile_avx512(inputs, head, first, scores, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn tile_avx512(inputs: &Inputs, head: usize, first: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    tile::<true>(inputs, head, first, scores, out)
}

#[cfg(target_arch = "x86_64")]
fn tile_avx2_checked(inputs: &Inputs, head: usize, first: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    // SAFETY: `tile_runner` hands this out only where the CPU has AVX2 and FMA.
    unsafe { tile_avx2(inputs, head, first, scores, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_avx2(inputs: &Inputs, head: usize, first: usize, scores: &mut Vec<f32>, out: &mut [f32]) {
    tile::<true>(inputs, head, first, scores, out)
}

/// `a * b + c`, fused where the caller is compiled with FMA (elsewhere `mul_add` is a libm call).
#[inline(always)]
fn multiply_add<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn tile<const FUSED: bool>(
    inputs: &Inputs,
    head: usize,
    first: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let s = inputs.shape;
    let (head_dim, padded) = (s.head_dim, s.padded_positions());
    let kv_head = head / s.group;
    let rows = (s.tokens - first).min(TILE);
    // Row `r` sees positions `..start + first + r + 1`; the tile's last row sees the most.
    let seen = |r: usize| s.start() + first + r + 1;
    let steps = seen(rows - 1).div_ceil(LANES);

    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut queries = [[0f32; MAX_HEAD_DIM]; TILE];
    let query_rows = &inputs.queries[(head * s.tokens + first) * head_dim..][..rows * head_dim];
    for (query, row) in queries.iter_mut().zip(query_rows.chunks_exact(head_dim)) {
        for (q, v) in query.iter_mut().zip(row) {
            *q = v * scale;
        }
    }

    // Scores, LANES positions at a time for all the tile's rows.
    scores.clear();
    scores.resize(TILE * steps * LANES, 0.0);
    let keys = &inputs.transposed_keys[kv_head * head_dim * padded..][..head_dim * padded];
    for step in 0..steps {
        let mut sums = [[0f32; LANES]; TILE];
        for d in 0..head_dim {
            let key = &keys[d * padded + step * LANES..][..LANES];
            for (sums, query) in sums.iter_mut().zip(&queries) {
                for (sum, k) in sums.iter_mut().zip(key) {
                    *sum = multiply_add::<FUSED>(query[d], *k, *sum);
                }
            }
        }
        for (r, sums) in sums.iter().enumerate() {
            scores[r * steps * LANES + step * LANES..][..LANES].copy_from_slice(sums);
        }
    }
    // Softmax over what each row sees; the positions after it weigh 0.
    for r in 0..rows {
        let row = &mut scores[r * steps * LANES..][..steps * LANES];
        let (visible, later) = row.split_at_mut(seen(r));
        let (_, total) = elementwise::exponentiate_shifted(visible);
        let inverse = 1.0 / total;
        visible.iter_mut().for_each(|w| *w *= inverse);
        later.fill(0.0);
    }

    // Weighted values, LANES values of the head at a time.
    let values = &inputs.values[kv_head * s.positions * head_dim..][..s.positions * head_dim];
    let positions = seen(rows - 1);
    for chunk in 0..head_dim / LANES {
        let mut sums = [[0f32; LANES]; TILE];
        for (p, value) in values.chunks_exact(head_dim).take(positions).enumerate() {
            let value = &value[chunk * LANES..][..LANES];
            for (r, sums) in sums.iter_mut().enumerate() {
                let weight = scores[r * steps * LANES + p];
                for (sum, v) in sums.iter_mut().zip(value) {
                    *sum = multiply_add::<FUSED>(weight, *v, *sum);
                }
            }
        }
        for (r, sums) in sums.iter().take(rows).enumerate() {
            out[r * head_dim + chunk * LANES..][..LANES].copy_from_slice(sums);
        }
    }
}
