//! One span's attention on AVX2 + FMA + F16C, for heads of a multiple of 64 values.
//!
//! The plain loops (`super::attend_span_portable`, compiled for AVX2) were bound by their
//! instructions, not by memory: an f16 cache, half the bytes, made them no faster. Each dot product
//! ended in a horizontal sum whose additions waited on each other, and each weighted value was
//! loaded and stored back for every position. Here:
//! - a key/value head's rows in the span are widened to f32 once, into scratch that stays in L1/L2,
//!   while the cache is read (and prefetched) once;
//! - scores are computed eight positions at a time: eight running sums, then one reduction whose
//!   horizontal additions the eight share;
//! - the weighted values of a query head are summed 64 values at a time in eight registers, over
//!   every position of the span, and stored once.
//!
//! At SmolLM2-135M's shape (30 layers, 800 positions, nine query heads over three key/value heads
//! of 64 values), a token's attention took 2.4 ms with the plain loops over an f32 cache, and 1.7
//! ms (f32) or 1.5 ms (f16) here (a timing loop over `attend` on this 2-core machine, not kept).

#![allow(unsafe_code)]

use std::{
    arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_hadd_ps, _mm256_loadu_ps, _mm256_mul_ps,
        _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    },
    cell::RefCell,
    ops::Range,
};

use super::{Cached, Partial, Query, Widen, prefetch_ahead};
use crate::elementwise;

/// Values one pass of [`weigh`] sums in registers (eight of AVX's eight-value registers).
const PASS: usize = 64;

/// Whether this kernel takes heads of `head_dim` values.
pub(super) fn fits(head_dim: usize) -> bool {
    head_dim > 0 && head_dim.is_multiple_of(PASS)
}

/// The span's rows of one key/value head widened to f32, and the scores of its query heads. Kept
/// per thread between calls: a step runs a few hundred spans, each needing tens of KB.
#[derive(Default)]
struct Scratch {
    /// `[positions rounded up to 8, head_dim]`; rows past the span are zeros.
    keys: Vec<f32>,
    /// `[positions, head_dim]`.
    values: Vec<f32>,
    /// `[positions rounded up to 8]`, one query head's at a time.
    scores: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// One span of positions' share of every query head's softmax (as `super::attend_span_portable`),
/// for a head size that [`fits`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn attend_span<W: Widen>(
    widen: W,
    query: &Query,
    cache: &Cached<W::Stored>,
    span: Range<usize>,
    partial: &mut Partial,
) {
    // Taken out and put back rather than borrowed in a closure, so that the work stays in this
    // function, compiled for its CPU features.
    let mut scratch = SCRATCH.take();
    {
        let Query { q, heads, group, head_dim } = *query;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let len = span.len();
        let padded = len.next_multiple_of(8);
        // Resized, not cleared: every row and score read below is written first, except the
        // padding rows, zeroed here.
        scratch.keys.resize(padded * head_dim, 0.0);
        scratch.keys[len * head_dim..].fill(0.0);
        scratch.values.resize(len * head_dim, 0.0);
        scratch.scores.resize(padded, 0.0);
        let Scratch { keys, values, scores } = &mut scratch;
        for kv_head in 0..heads / group {
            let rows = keys.chunks_exact_mut(head_dim).zip(values.chunks_exact_mut(head_dim));
            for (position, (key, value)) in span.clone().zip(rows) {
                let (cached_key, cached_value) =
                    (cache.keys.row(kv_head, position), cache.values.row(kv_head, position));
                prefetch_ahead(cached_key);
                prefetch_ahead(cached_value);
                widen.widen_into(cached_key, key);
                widen.widen_into(cached_value, value);
            }
            for head in kv_head * group..(kv_head + 1) * group {
                let head_query = &q[head * head_dim..(head + 1) * head_dim];
                for (block, out) in keys.chunks_exact(8 * head_dim).zip(scores.chunks_exact_mut(8)) {
                    out.copy_from_slice(&dots8(head_query, block, head_dim, scale));
                }
                let row = &mut scores[..len];
                (partial.max[head], partial.sum[head]) = elementwise::exponentiate_shifted(row);
                weigh(row, values, &mut partial.weighted[head * head_dim..(head + 1) * head_dim]);
            }
        }
    }
    SCRATCH.set(scratch);
}

/// `scale` times the dot products of `query` (`head_dim` values, a multiple of 8) with the eight
/// rows of `block` (`[8, head_dim]`).
#[target_feature(enable = "avx2,fma")]
fn dots8(query: &[f32], block: &[f32], head_dim: usize, scale: f32) -> [f32; 8] {
    // Checked once here so that the loop's loads need no bounds checks. Loads by plain pointer
    // arithmetic: a first version loaded through a closure, and its vectors went through the stack.
    assert!(head_dim.is_multiple_of(8) && query.len() == head_dim && block.len() == 8 * head_dim);
    let (q, k) = (query.as_ptr(), block.as_ptr());
    let zero = _mm256_setzero_ps();
    let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = [zero; 8];
    for c in (0..head_dim).step_by(8) {
        // SAFETY: `c + 8 <= head_dim`, so each load reads eight values within `query`, or within
        // row `r` of `block` (`r * head_dim + c + 8 <= 8 * head_dim`), checked above.
        unsafe {
            let q = _mm256_loadu_ps(q.add(c));
            let row = k.add(c);
            s0 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row), s0);
            s1 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(head_dim)), s1);
            s2 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(2 * head_dim)), s2);
            s3 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(3 * head_dim)), s3);
            s4 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(4 * head_dim)), s4);
            s5 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(5 * head_dim)), s5);
            s6 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(6 * head_dim)), s6);
            s7 = _mm256_fmadd_ps(q, _mm256_loadu_ps(row.add(7 * head_dim)), s7);
        }
    }
    // Pairwise additions within each row's eight lanes, two rows per instruction:
    // [r0 r1 r2 r3 | r0 r1 r2 r3] (low and high halves of each row's lanes), then the same for rows
    // 4-7, then the halves added: the eight rows' totals in order.
    let first = _mm256_hadd_ps(_mm256_hadd_ps(s0, s1), _mm256_hadd_ps(s2, s3));
    let second = _mm256_hadd_ps(_mm256_hadd_ps(s4, s5), _mm256_hadd_ps(s6, s7));
    let low_halves = _mm256_permute2f128_ps::<0x20>(first, second);
    let high_halves = _mm256_permute2f128_ps::<0x31>(first, second);
    let totals = _mm256_mul_ps(_mm256_add_ps(low_halves, high_halves), _mm256_set1_ps(scale));
    let mut out = [0f32; 8];
    // SAFETY: `out` holds eight f32.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), totals) };
    out
}

/// `out[d] = sum over positions p of weights[p] * values[p][d]`, for `values` of `[weights.len(),
/// out.len()]` and `out.len()` a multiple of [`PASS`].
#[target_feature(enable = "avx2,fma")]
fn weigh(weights: &[f32], values: &[f32], out: &mut [f32]) {
    let head_dim = out.len();
    // Checked once here so that the loop's loads need no bounds checks.
    assert!(head_dim.is_multiple_of(PASS) && values.len() == weights.len() * head_dim);
    for pass in (0..head_dim).step_by(PASS) {
        let zero = _mm256_setzero_ps();
        let [mut s0, mut s1, mut s2, mut s3, mut s4, mut s5, mut s6, mut s7] = [zero; 8];
        for (p, weight) in weights.iter().enumerate() {
            let weight = _mm256_set1_ps(*weight);
            // SAFETY: `pass + PASS <= head_dim` and `p < weights.len()`: each load reads eight
            // values within row `p` of `values` (checked above).
            unsafe {
                let chunk = values.as_ptr().add(p * head_dim + pass);
                s0 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk), s0);
                s1 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(8)), s1);
                s2 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(16)), s2);
                s3 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(24)), s3);
                s4 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(32)), s4);
                s5 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(40)), s5);
                s6 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(48)), s6);
                s7 = _mm256_fmadd_ps(weight, _mm256_loadu_ps(chunk.add(56)), s7);
            }
        }
        for (i, sum) in [s0, s1, s2, s3, s4, s5, s6, s7].into_iter().enumerate() {
            // SAFETY: as above, eight values within `out`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(pass + 8 * i), sum) };
        }
    }
}
