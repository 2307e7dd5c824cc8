//! Q8_0 matrix-vector products for decode steps: weights in blocks of 32 int8 values with one f32
//! scale per block, multiplied by an activation row quantized the same way.
//!
//! Why our own: a decode step is one such product per weight matrix, and it should run at memory
//! speed. candle's Q8_0 kernel moved 6.5 GB/s on this 2-core machine where a plain 2-thread read
//! moves ~20 GB/s (measured side by side with a 150 MB matrix): it converts an f16 scale through a
//! function call per block. Here a block of a row is a handful of SIMD instructions (a sign flip, a
//! u8 x i8 multiply-add into 16-bit pairs, a widening add, a conversion) and one f32 multiply-add;
//! four rows go at a time, sharing each activation block, and are stored interleaved so that they
//! are read as one stream; scales are stored as f32 (36 bytes per 32 weights instead of 34, for no
//! conversion at all); the weights are prefetched 8 KiB ahead; and rows are spread over candle's
//! spinning thread pool in fixed slices.

// The AVX2 kernel loads through raw pointers, every load one 32-byte chunk of a slice; a prefetch
// hint takes a raw address.
#![allow(unsafe_code)]

use std::sync::{Mutex, PoisonError};

use candle_core::utils::barrier_pool;

/// Values per block, each block sharing one scale.
pub(crate) const BLOCK: usize = 32;

/// Rows handed to a thread at a time: small enough to balance two threads on a 576-row matrix,
/// large enough that taking a slice costs nothing next to its products. A multiple of [`QUAD`].
const ROWS_PER_TASK: usize = 32;

/// Rows multiplied together, sharing each activation block (and stored together, see [`Q8Matrix`]).
const QUAD: usize = 4;

// A task's rows start on a quad.
const _: () = assert!(ROWS_PER_TASK.is_multiple_of(QUAD));

/// Bytes of one quad's block: the four rows' 32 quants, then their four f32 scales.
const RECORD: usize = QUAD * BLOCK + QUAD * std::mem::size_of::<f32>();

/// How far ahead of the block being multiplied to prefetch, in bytes. Without it a core streams at
/// about half the memory's speed here (the hardware prefetcher alone keeps too few lines in flight):
/// 4-8 KiB ahead measured best.
const PREFETCH_AHEAD: usize = 8192;

/// A `rows` x `cols` matrix; `cols` is a multiple of [`BLOCK`]. Rows are stored four at a time,
/// interleaved block by block (quad `q`'s block `b` is the [`RECORD`] at `(q * blocks + b) *
/// RECORD`; a last, short quad is padded with zero rows), so one quad's product reads a single
/// contiguous stream instead of four rows' quants and four rows' scales from eight places.
#[derive(Debug, Default)]
pub(crate) struct Q8Matrix {
    rows: usize,
    cols: usize,
    records: Vec<u8>,
}

impl Q8Matrix {
    /// Quantizes `values` (`rows * cols` values, row after row; `cols` a multiple of [`BLOCK`]).
    pub(crate) fn from_rows(values: &[f32], cols: usize) -> Self {
        debug_assert!(cols > 0 && cols.is_multiple_of(BLOCK) && values.len().is_multiple_of(cols));
        let rows = values.len() / cols;
        let blocks = cols / BLOCK;
        let mut records = vec![0u8; rows.div_ceil(QUAD) * blocks * RECORD];
        for_each_block(values, cols, |row, b, quants, scale| {
            let (quad, lane) = (row / QUAD, row % QUAD);
            let record = &mut records[(quad * blocks + b) * RECORD..][..RECORD];
            for (stored, q) in record[lane * BLOCK..(lane + 1) * BLOCK].iter_mut().zip(quants) {
                *stored = q.cast_unsigned();
            }
            record[scale_at(lane)..][..4].copy_from_slice(&scale.to_le_bytes());
        });
        Self { rows, cols, records }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes a product reads (padding rows included).
    pub(crate) fn size_bytes(&self) -> usize {
        self.records.len()
    }

    /// `out = W x`, with `x` (`cols` values) quantized per block first.
    pub(crate) fn gemv(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!((x.len(), out.len()), (self.cols, self.rows), "a product's input and output lengths");
        let mut x_quants = vec![0i8; x.len()];
        let mut x_scales = vec![0f32; x.len() / BLOCK];
        quantize(x, &mut x_quants, &mut x_scales);
        let quad_dots = quad_dots_kernel();
        let x = (x_quants.as_slice(), x_scales.as_slice());
        let quad_bytes = self.cols / BLOCK * RECORD;
        let tasks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(ROWS_PER_TASK).map(Mutex::new).collect();
        barrier_pool().execute_chunked(tasks.len(), |range| {
            for task in range {
                let mut slice = tasks[task].lock().unwrap_or_else(PoisonError::into_inner);
                let first_quad = task * ROWS_PER_TASK / QUAD;
                for (i, ys) in slice.chunks_mut(QUAD).enumerate() {
                    let quad = &self.records[(first_quad + i) * quad_bytes..][..quad_bytes];
                    ys.copy_from_slice(&quad_dots(quad, x)[..ys.len()]);
                }
            }
        });
    }
}

/// Quantizes `values` (rows of `cols`) block by block and hands each block to `store` with its row,
/// its index in the row, its quants and its scale: how each weight layout is filled.
pub(crate) fn for_each_block(
    values: &[f32],
    cols: usize,
    mut store: impl FnMut(usize, usize, &[i8; BLOCK], f32),
) {
    let (mut quants, mut scale) = ([0i8; BLOCK], [0f32; 1]);
    for (row, values) in values.chunks_exact(cols).enumerate() {
        for (b, block) in values.chunks_exact(BLOCK).enumerate() {
            quantize(block, &mut quants, &mut scale);
            store(row, b, &quants, scale[0]);
        }
    }
}

/// Where lane `lane`'s scale sits in a record.
const fn scale_at(lane: usize) -> usize {
    QUAD * BLOCK + lane * std::mem::size_of::<f32>()
}

fn record_scale(record: &[u8], lane: usize) -> f32 {
    let at = scale_at(lane);
    f32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]])
}

/// Asks the CPU to start loading the cache line at `address` (a hint: it never faults, whatever the
/// address, so computing one past the end of a slice is fine).
#[inline(always)]
pub(crate) fn prefetch<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints; it does not access memory or fault. SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast::<i8>())
    };
}

/// Block-wise symmetric int8: each block's scale is its largest magnitude / 127, so values round
/// into [-127, 127] (never -128: the AVX2 kernel's sign trick relies on it).
pub(crate) fn quantize(values: &[f32], quants: &mut [i8], scales: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { quantize_avx2(values, quants, scales) };
    }
    quantize_portable(values, quants, scales)
}

/// The same loops compiled for AVX2 (the baseline x86-64 target runs them four values at a time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quantize_avx2(values: &[f32], quants: &mut [i8], scales: &mut [f32]) {
    quantize_portable(values, quants, scales)
}

#[inline(always)]
fn quantize_portable(values: &[f32], quants: &mut [i8], scales: &mut [f32]) {
    for ((block, out), scale) in values.chunks_exact(BLOCK).zip(quants.chunks_exact_mut(BLOCK)).zip(scales) {
        // Eight running maxima, as `if a > m` (the vector instruction's rule): a fold with
        // `f32::max` stays scalar.
        let mut lanes = [0f32; 8];
        for chunk in block.chunks_exact(8) {
            for (lane, v) in lanes.iter_mut().zip(chunk) {
                let a = v.abs();
                *lane = if a > *lane { a } else { *lane };
            }
        }
        let largest = lanes.into_iter().fold(0f32, |m, a| if a > m { a } else { m });
        *scale = largest / 127.0;
        let inverse = if largest > 0.0 { 127.0 / largest } else { 0.0 };
        for (q, v) in out.iter_mut().zip(block) {
            // Rounds half away from zero like `f32::round`, which the baseline x86-64 target
            // compiles to a libm call per value; `as` truncates toward zero.
            let scaled = v * inverse;
            *q = (scaled + 0.5f32.copysign(scaled)) as i8;
        }
    }
}

/// The activation's blocks: its quants and their scales.
type Row<'a> = (&'a [i8], &'a [f32]);

/// One quad's four products with the quantized activation (`quad`: its records, block by block):
/// each activation block is loaded once for four rows, and four sums advance independently.
type QuadDots = fn(&[u8], Row) -> [f32; QUAD];

fn quad_dots_kernel() -> QuadDots {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return quad_dots_avx2_checked;
    }
    quad_dots_portable
}

/// Whether the CPU runs the AVX2 + FMA code paths of the decode step (detected once, then cached by
/// the standard library).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

fn quad_dots_portable(quad: &[u8], (x_quants, x_scales): Row) -> [f32; QUAD] {
    let mut totals = [0f32; QUAD];
    for ((record, x), x_scale) in quad.chunks_exact(RECORD).zip(x_quants.chunks_exact(BLOCK)).zip(x_scales) {
        for (lane, total) in totals.iter_mut().enumerate() {
            let w = &record[lane * BLOCK..(lane + 1) * BLOCK];
            let sum: i32 = w.iter().zip(x).map(|(&a, &b)| i32::from(a.cast_signed()) * i32::from(b)).sum();
            *total += sum as f32 * (record_scale(record, lane) * x_scale);
        }
    }
    totals
}

/// Only handed out by [`quad_dots_kernel`] after it detected AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
fn quad_dots_avx2_checked(quad: &[u8], x: Row) -> [f32; QUAD] {
    // SAFETY: `quad_dots_kernel` returns this function only on a CPU with AVX2 and FMA.
    unsafe { quad_dots_avx2(quad, x) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quad_dots_avx2(quad: &[u8], (x_quants, x_scales): Row) -> [f32; QUAD] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); QUAD];
    for ((record, x), x_scale) in quad.chunks_exact(RECORD).zip(x_quants.chunks_exact(BLOCK)).zip(x_scales) {
        // A record spans up to three cache lines.
        for line in [0, 64, 128] {
            prefetch(record.as_ptr().wrapping_add(PREFETCH_AHEAD + line));
        }
        // SAFETY: `x` is a 32-byte chunk of a live slice; an unaligned load of 32 bytes.
        let x = unsafe { _mm256_loadu_si256(x.as_ptr().cast::<__m256i>()) };
        let x_magnitude = _mm256_sign_epi8(x, x);
        for (lane, acc) in acc.iter_mut().enumerate() {
            let w = &record[lane * BLOCK..(lane + 1) * BLOCK];
            // SAFETY: as above, a 32-byte chunk of a live slice.
            let w = unsafe { _mm256_loadu_si256(w.as_ptr().cast::<__m256i>()) };
            // |x| as unsigned times w with x's sign: the products of x and w, in the u8 x i8 form
            // that maddubs takes (|x| <= 127, so pairs of products fit an i16).
            let products = _mm256_maddubs_epi16(x_magnitude, _mm256_sign_epi8(w, x));
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
            *acc = _mm256_fmadd_ps(sums, _mm256_set1_ps(record_scale(record, lane) * x_scale), *acc);
        }
    }
    acc.map(|acc| {
        let halves = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: u32) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| {
                let h = (i as u32).wrapping_add(seed).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn the_product_matches_f32_within_quantization_error() {
        // 101 rows: the last quad is padded.
        let (rows, cols) = (101, 96);
        let (w, x) = (matrix(rows, cols, 1), matrix(1, cols, 7));
        let q = Q8Matrix::from_rows(&w, cols);
        assert_eq!((q.rows(), q.size_bytes()), (rows, 26 * 3 * RECORD));
        let mut out = vec![0.0; rows];
        q.gemv(&x, &mut out);
        for (r, got) in out.iter().enumerate() {
            let exact: f32 = w[r * cols..(r + 1) * cols].iter().zip(&x).map(|(a, b)| a * b).sum();
            // Two roundings of at most half a step (|v| <= 0.5: step 0.5/127) on 96 products.
            assert!((got - exact).abs() < 0.02, "row {r}: {got} vs {exact}");
        }
    }

    #[test]
    fn the_simd_kernel_agrees_with_the_portable_one() {
        let cols = 256;
        let (w, x) = (matrix(3, cols, 3), matrix(1, cols, 11));
        let q = Q8Matrix::from_rows(&w, cols);
        let (mut xq, mut xs) = (vec![0i8; cols], vec![0f32; cols / BLOCK]);
        quantize(&x, &mut xq, &mut xs);
        assert!(xq.iter().all(|&q| q != i8::MIN), "quantization stays within [-127, 127]");
        let fast = quad_dots_kernel()(&q.records, (&xq, &xs));
        let portable = quad_dots_portable(&q.records, (&xq, &xs));
        for (lane, (got, want)) in fast.into_iter().zip(portable).enumerate() {
            assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "row {lane}: {got} vs {want}");
        }
        assert_eq!(portable[3], 0.0, "the padding row");
    }

    #[test]
    fn an_all_zero_block_quantizes_to_zeros() {
        let (mut q, mut s) = ([1i8; BLOCK], [1f32; 1]);
        quantize(&[0.0; BLOCK], &mut q, &mut s);
        assert_eq!((q, s), ([0; BLOCK], [0.0]));
    }
}
