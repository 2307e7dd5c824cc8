//! Q8_0 matrix-matrix products for prefill: many activation rows times a weight matrix quantized in
//! blocks of 32 int8 values with one f32 scale per block, on integer dot products (AVX-512 VNNI).
//!
//! Why: prefill is most of a request's time (a 5-passage prompt is ~760 tokens) and candle's f32
//! gemm runs it at about half of what the two cores' f32 units could do, ~300 tokens/s. VNNI's
//! `vpdpbusd` multiplies 64 byte pairs and adds them in fours into 16 int32 lanes in one
//! instruction: four times the f32 multiply-adds of one instruction, and a quarter of the weight
//! bytes to read.
//!
//! Layout: rows go in panels of [`PANEL`]; within a panel, block by block, four consecutive weights
//! of each of the 32 rows sit side by side, so one 64-byte load holds four weights of 16 rows and an
//! activation's four matching bytes are broadcast to every lane: each int32 lane sums one row's dot
//! product and no horizontal sum is needed. Each block record ends with the rows' f32 scales and
//! their correction terms (below). Four activation rows go at a time, sharing every weight load.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so an activation is stored as its quant plus 128
//! (quants stay within [-127, 127]) and each block's product is corrected by `128 * sum(w)`, stored
//! per row and block as the starting value of the sum.
//!
//! Only CPUs with AVX-512 VNNI get these products ([`available`]); elsewhere prefill keeps the f32
//! gemm, which an int8 product without VNNI (two extra instructions per multiply-add) would not beat
//! by much. A portable version of the same arithmetic checks the kernel in tests.

// The VNNI kernel loads through raw pointers into aligned records and activation rows.
#![allow(unsafe_code)]

use std::{
    ops::Range,
    sync::{Mutex, PoisonError},
};

use candle_core::utils::barrier_pool;

use crate::q8::BLOCK;

/// Weight rows multiplied together: two 16-lane registers of int32 sums.
const PANEL: usize = 32;

/// Four-byte groups per block (each lane of `vpdpbusd` adds four products).
const GROUPS: usize = BLOCK / 4;

/// Bytes of one panel's block: the quants (`[GROUPS][PANEL][4]`), then `PANEL` f32 scales, then
/// `PANEL` i32 corrections (`-128 * sum of the row's quants in the block`).
const RECORD: usize = PANEL * BLOCK + 2 * PANEL * 4;
const SCALES_AT: usize = PANEL * BLOCK;
const CORRECTIONS_AT: usize = SCALES_AT + PANEL * 4;

/// Activation rows multiplied together, sharing each weight load.
const ROWS_AT_ONCE: usize = 4;

/// Up to this many activation rows, threads split a product by panels rather than by rows.
const FEW_ROWS: usize = 32;

/// Panels a thread takes at a time when it splits by panels.
const PANELS_PER_TASK: usize = 2;

/// Activation rows a thread takes at a time: few enough to leave work for both threads on a short
/// prompt chunk, many enough that a weight panel (~20 KB) is reused from L1 across them.
const MAX_ROWS_PER_TASK: usize = 64;

/// One cache line; records are 64-byte aligned so that every 64-byte load is one line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

const _: () = assert!(RECORD.is_multiple_of(64) && BLOCK.is_multiple_of(4));

/// Whether this CPU runs the integer prefill products (detected once, then cached by the standard
/// library).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A `rows` x `cols` weight matrix in the panel layout above (`cols` a multiple of [`BLOCK`]; a last,
/// short panel is padded with zero rows).
#[derive(Debug)]
pub(crate) struct Q8Panels {
    rows: usize,
    cols: usize,
    lines: Vec<Line>,
}

impl Q8Panels {
    /// Quantizes `values` (`rows * cols`, row after row) as [`crate::q8`] does: per block, scale =
    /// largest magnitude / 127, quants rounded half away from zero.
    pub(crate) fn from_rows(values: &[f32], cols: usize) -> Self {
        debug_assert!(cols > 0 && cols.is_multiple_of(BLOCK) && values.len().is_multiple_of(cols));
        let rows = values.len() / cols;
        let blocks = cols / BLOCK;
        let mut lines = vec![Line([0; 64]); rows.div_ceil(PANEL) * blocks * RECORD / 64];
        let bytes = lines_as_bytes_mut(&mut lines);
        crate::q8::for_each_block(values, cols, |row, b, quants, scale| {
            let (panel, lane) = (row / PANEL, row % PANEL);
            let record = &mut bytes[(panel * blocks + b) * RECORD..][..RECORD];
            for (group, four) in quants.chunks_exact(4).enumerate() {
                for (i, q) in four.iter().enumerate() {
                    record[(group * PANEL + lane) * 4 + i] = q.cast_unsigned();
                }
            }
            let correction = -128 * quants.iter().map(|&q| i32::from(q)).sum::<i32>();
            record[SCALES_AT + lane * 4..][..4].copy_from_slice(&scale.to_le_bytes());
            record[CORRECTIONS_AT + lane * 4..][..4].copy_from_slice(&correction.to_le_bytes());
        });
        Self { rows, cols, lines }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// `out = x W^T` for `x` `[x_rows, cols]` (row-major): `out` is `[x_rows, rows]`.
    pub(crate) fn matmul(&self, x: &[f32], out: &mut [f32]) {
        assert!(
            x.len().is_multiple_of(self.cols) && out.len() == x.len() / self.cols * self.rows,
            "a product's input and output lengths"
        );
        if x.len() / self.cols <= FEW_ROWS {
            self.matmul_quantized(&QuantizedRows::new(x, self.cols), out);
        } else {
            self.matmul_by_rows(x, out);
        }
    }

    /// Many rows (prefill): each thread takes rows, quantizes them and multiplies them by every panel
    /// (a panel's ~20 KB stay in L1 across the rows).
    fn matmul_by_rows(&self, x: &[f32], out: &mut [f32]) {
        let x_rows = x.len() / self.cols;
        let workers = barrier_pool().n_workers().max(1);
        let per_task = x_rows
            .div_ceil(2 * workers)
            .next_multiple_of(ROWS_AT_ONCE)
            .clamp(ROWS_AT_ONCE, MAX_ROWS_PER_TASK);
        let tasks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(per_task * self.rows).map(Mutex::new).collect();
        let kernel = kernel();
        let panels = 0..self.rows.div_ceil(PANEL);
        barrier_pool().execute_chunked(tasks.len(), |range| {
            let mut quantized = QuantizedRows::default();
            for task in range {
                let mut out = tasks[task].lock().unwrap_or_else(PoisonError::into_inner);
                let first = task * per_task;
                let x = &x[first * self.cols..][..out.len() / self.rows * self.cols];
                quantized.fill(x, self.cols);
                kernel(self, panels.clone(), &quantized, &mut out);
            }
        });
    }

    /// `out = x W^T` for rows quantized beforehand (a batched decode step's: several projections of
    /// one input share them). Each thread takes panels, so the weights, which are most of what the
    /// step reads, are read once in all.
    pub(crate) fn matmul_quantized(&self, quantized: &QuantizedRows, out: &mut [f32]) {
        assert!(
            quantized.cols == self.cols && out.len() == quantized.rows() * self.rows,
            "a product's input and output lengths"
        );
        let x_rows = quantized.rows();
        let panels = self.rows.div_ceil(PANEL);
        let tasks = panels.div_ceil(PANELS_PER_TASK);
        let columns = |task: usize| {
            let panels = task * PANELS_PER_TASK..((task + 1) * PANELS_PER_TASK).min(panels);
            let columns = panels.start * PANEL..(panels.end * PANEL).min(self.rows);
            (panels, columns)
        };
        let parts: Vec<Mutex<Vec<f32>>> = (0..tasks).map(|_| Mutex::new(Vec::new())).collect();
        let kernel = kernel();
        barrier_pool().execute_chunked(tasks, |range| {
            for task in range {
                let (panels, columns) = columns(task);
                let mut part = parts[task].lock().unwrap_or_else(PoisonError::into_inner);
                part.resize(x_rows * columns.len(), 0.0);
                kernel(self, panels, quantized, &mut part);
            }
        });
        for (task, part) in parts.into_iter().enumerate() {
            let (_, columns) = columns(task);
            let part = part.into_inner().unwrap_or_else(PoisonError::into_inner);
            for (row, values) in part.chunks_exact(columns.len()).enumerate() {
                out[row * self.rows + columns.start..][..columns.len()].copy_from_slice(values);
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        lines_as_bytes(&self.lines)
    }
}

fn lines_as_bytes(lines: &[Line]) -> &[u8] {
    // SAFETY: `Line` is 64 plain bytes with no padding (`repr(C)`, size 64); a slice of them is
    // `64 * len` initialized bytes, and u8 has no alignment requirement.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), lines.len() * 64) }
}

fn lines_as_bytes_mut(lines: &mut [Line]) -> &mut [u8] {
    // SAFETY: as in `lines_as_bytes`; the borrow is unique, and every byte pattern is a valid `Line`.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64) }
}

/// Activation rows quantized per block: quants plus 128, as unsigned bytes, and one scale per block.
#[derive(Debug, Default)]
pub(crate) struct QuantizedRows {
    cols: usize,
    quants: Vec<u8>,
    scales: Vec<f32>,
}

impl QuantizedRows {
    /// `x`: rows of `cols` values (a multiple of [`BLOCK`]).
    pub(crate) fn new(x: &[f32], cols: usize) -> Self {
        let mut rows = Self::default();
        rows.fill(x, cols);
        rows
    }

    fn fill(&mut self, x: &[f32], cols: usize) {
        self.cols = cols;
        self.quants.resize(x.len(), 0);
        self.scales.resize(x.len() / BLOCK, 0.0);
        let mut quants = [0i8; BLOCK];
        for ((block, out), scale) in
            x.chunks_exact(BLOCK).zip(self.quants.chunks_exact_mut(BLOCK)).zip(&mut self.scales)
        {
            crate::q8::quantize(block, &mut quants, std::slice::from_mut(scale));
            for (o, q) in out.iter_mut().zip(quants) {
                *o = (i16::from(q) + 128) as u8;
            }
        }
    }

    fn rows(&self) -> usize {
        self.quants.len() / self.cols
    }
}

/// Multiplies every quantized activation row by the panels `panels` of `weights` into `out`
/// (`[rows, columns]`: the columns of those panels).
type Kernel = fn(&Q8Panels, Range<usize>, &QuantizedRows, &mut [f32]);

fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if available() {
        return vnni::matmul_checked;
    }
    matmul_portable
}

fn matmul_portable(weights: &Q8Panels, panels: Range<usize>, x: &QuantizedRows, out: &mut [f32]) {
    let blocks = weights.cols / BLOCK;
    let bytes = weights.bytes();
    let columns = panels.start * PANEL..(panels.end * PANEL).min(weights.rows);
    for (r, out) in out.chunks_exact_mut(columns.len()).enumerate() {
        let (quants, scales) = (&x.quants[r * x.cols..][..x.cols], &x.scales[r * blocks..][..blocks]);
        for (row, y) in columns.clone().zip(out.iter_mut()) {
            let (panel, lane) = (row / PANEL, row % PANEL);
            *y = (0..blocks)
                .map(|b| {
                    let record = &bytes[(panel * blocks + b) * RECORD..][..RECORD];
                    let read = |at: usize| [record[at], record[at + 1], record[at + 2], record[at + 3]];
                    let mut sum = i32::from_le_bytes(read(CORRECTIONS_AT + lane * 4));
                    for (k, &xq) in quants[b * BLOCK..][..BLOCK].iter().enumerate() {
                        let w = record[((k / 4) * PANEL + lane) * 4 + k % 4].cast_signed();
                        sum += i32::from(xq) * i32::from(w);
                    }
                    sum as f32 * f32::from_le_bytes(read(SCALES_AT + lane * 4)) * scales[b]
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::{
        __m512, __m512i, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_fmadd_ps, _mm512_load_ps,
        _mm512_load_si512, _mm512_mul_ps, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    use std::ops::Range;

    use super::{
        BLOCK, CORRECTIONS_AT, GROUPS, PANEL, Q8Panels, QuantizedRows, RECORD, ROWS_AT_ONCE, SCALES_AT,
    };

    /// Only handed out by `super::kernel` after `super::available` found AVX-512 VNNI.
    pub(super) fn matmul_checked(
        weights: &Q8Panels,
        panels: Range<usize>,
        x: &QuantizedRows,
        out: &mut [f32],
    ) {
        // SAFETY: `kernel` returns this function only on a CPU with AVX-512 F, BW and VNNI.
        unsafe { matmul(weights, panels, x, out) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn matmul(weights: &Q8Panels, panels: Range<usize>, x: &QuantizedRows, out: &mut [f32]) {
        let (rows, n) = (x.rows(), weights.rows);
        let blocks = weights.cols / BLOCK;
        let bytes = weights.bytes();
        let first_column = panels.start * PANEL;
        let stride = (panels.end * PANEL).min(n) - first_column;
        let mut partial = [[0f32; PANEL]; ROWS_AT_ONCE];
        for panel in panels {
            let records = &bytes[panel * blocks * RECORD..][..blocks * RECORD];
            let (column, width) = (panel * PANEL - first_column, (n - panel * PANEL).min(PANEL));
            let mut r = 0;
            while r < rows {
                let count = (rows - r).min(ROWS_AT_ONCE);
                if count == ROWS_AT_ONCE {
                    panel_rows::<ROWS_AT_ONCE>(records, x, r, &mut partial);
                } else {
                    for (i, partial) in partial.iter_mut().take(count).enumerate() {
                        panel_rows::<1>(records, x, r + i, std::slice::from_mut(partial));
                    }
                }
                for (i, sums) in partial.iter().take(count).enumerate() {
                    out[(r + i) * stride + column..][..width].copy_from_slice(&sums[..width]);
                }
                r += count;
            }
        }
    }

    /// `N` activation rows from `first` times one panel's rows (`records`: its blocks' records).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn panel_rows<const N: usize>(records: &[u8], x: &QuantizedRows, first: usize, out: &mut [[f32; PANEL]]) {
        let blocks = records.len() / RECORD;
        let rows: [&[u8]; N] = std::array::from_fn(|i| &x.quants[(first + i) * x.cols..][..x.cols]);
        let scales: [&[f32]; N] = std::array::from_fn(|i| &x.scales[(first + i) * blocks..][..blocks]);
        let mut totals = [[_mm512_setzero_ps(); 2]; N];
        for (b, record) in records.chunks_exact(RECORD).enumerate() {
            let at = |offset: usize| record[offset..][..64].as_ptr();
            // SAFETY (every load below): a record starts on a 64-byte line (records are whole lines)
            // and `at` takes 64 bytes of it at a multiple of 64.
            let corrections: [__m512i; 2] =
                std::array::from_fn(|h| unsafe { _mm512_load_si512(at(CORRECTIONS_AT + 64 * h).cast()) });
            let mut sums = [corrections; N];
            for group in 0..GROUPS {
                let w: [__m512i; 2] = std::array::from_fn(|h| unsafe {
                    _mm512_load_si512(at(group * PANEL * 4 + 64 * h).cast())
                });
                for (sums, row) in sums.iter_mut().zip(&rows) {
                    let four = &row[b * BLOCK + group * 4..][..4];
                    let x = _mm512_set1_epi32(i32::from_le_bytes([four[0], four[1], four[2], four[3]]));
                    sums[0] = _mm512_dpbusd_epi32(sums[0], x, w[0]);
                    sums[1] = _mm512_dpbusd_epi32(sums[1], x, w[1]);
                }
            }
            let w_scales: [__m512; 2] =
                std::array::from_fn(|h| unsafe { _mm512_load_ps(at(SCALES_AT + 64 * h).cast()) });
            for ((totals, sums), scales) in totals.iter_mut().zip(&sums).zip(&scales) {
                let x_scale = _mm512_set1_ps(scales[b]);
                for h in 0..2 {
                    let scale = _mm512_mul_ps(w_scales[h], x_scale);
                    totals[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[h]), scale, totals[h]);
                }
            }
        }
        for (out, totals) in out.iter_mut().zip(&totals) {
            for h in 0..2 {
                // SAFETY: `out` is a PANEL-float array; 16 floats at 16 * h.
                unsafe { _mm512_storeu_ps(out[16 * h..][..16].as_mut_ptr(), totals[h]) };
            }
        }
    }
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

    fn exact(w: &[f32], x: &[f32], cols: usize) -> Vec<f32> {
        x.chunks_exact(cols)
            .flat_map(|x| w.chunks_exact(cols).map(move |w| w.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()))
            .collect()
    }

    #[test]
    fn the_product_matches_f32_within_quantization_error() {
        // 150 weight rows: five panels, the last one padded, split between threads two panels at a
        // time (a decode batch's 7 rows) or by rows (a prefill chunk's 45: groups of four and
        // single rows).
        let (rows, cols) = (150, 96);
        let w = matrix(rows, cols, 1);
        let q = Q8Panels::from_rows(&w, cols);
        assert_eq!((q.rows(), q.lines.len() * 64), (rows, 5 * 3 * RECORD));
        for x_rows in [7, 45] {
            assert_eq!(x_rows <= FEW_ROWS, x_rows == 7);
            let x = matrix(x_rows, cols, 7);
            let mut out = vec![0.0; x_rows * rows];
            q.matmul(&x, &mut out);
            for (i, (got, want)) in out.iter().zip(exact(&w, &x, cols)).enumerate() {
                // Two roundings of at most half a step (|v| <= 0.5: step 0.5/127) on 96 products.
                assert!((got - want).abs() < 0.02, "{x_rows} rows, entry {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn the_kernel_of_this_cpu_agrees_with_the_portable_one() {
        let (rows, cols, x_rows) = (70, 256, 9);
        let (w, x) = (matrix(rows, cols, 3), matrix(x_rows, cols, 11));
        let q = Q8Panels::from_rows(&w, cols);
        let mut quantized = QuantizedRows::default();
        quantized.fill(&x, cols);
        let (mut fast, mut portable) = (vec![0.0; x_rows * rows], vec![0.0; x_rows * rows]);
        let panels = 0..rows.div_ceil(PANEL);
        kernel()(&q, panels.clone(), &quantized, &mut fast);
        matmul_portable(&q, panels, &quantized, &mut portable);
        for (i, (got, want)) in fast.iter().zip(&portable).enumerate() {
            assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "entry {i}: {got} vs {want}");
        }
    }
}
