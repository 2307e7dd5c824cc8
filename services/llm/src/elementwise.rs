//! The exponentials of a decode step (the attention softmax and SiLU: ~250k per token for
//! SmolLM2-135M at ~800 positions) and the sums beside them; also the softmax rows and the gated
//! activation of training's blocks, forward and backward (millions per layer and step).
//!
//! `f32::exp` is a libm call per value, which no loop around it can vectorise. [`exp`] is plain
//! arithmetic the compiler turns into 8-wide AVX2 code inside the callers' AVX2 functions: a power of
//! two from the exponent bits times a polynomial on the remainder. Relative error below 2e-7 (a few
//! ulp), checked against `f32::exp` below. It is less work per token; the decode speed it buys was
//! within this machine's noise (BENCHMARKS.md, 2026-11-29).

// One unsafe call: entering code compiled for CPU features detected at run time.
#![allow(unsafe_code)]

/// ln 2 split in two, so `x - n ln 2` stays exact for the `n` that occur (Cody and Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` for finite `x`; below -87 it returns ~1e-38 instead of underflowing toward 0 (a softmax
/// weight that small is zero for every sum it enters), above 88 it saturates near `f32::MAX`.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // x = n ln 2 + r with |r| <= ln 2 / 2, so e^x = 2^n e^r.
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    // e^r by its Taylor series to r^6 / 6!: the first term left out is below 6e-8 for |r| <= 0.35.
    let mut p: f32 = 1.0 / 720.0;
    for coefficient in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, coefficient);
    }
    // 2^n from the exponent bits: n is in -126..=127 after the clamp, a normal float's range. The
    // bias is added as a float: an integer addition carries an overflow check in debug builds,
    // which keeps the loop from vectorising.
    p * f32::from_bits(((n + 127.0) as u32) << 23)
}

/// The sum of `values` in eight independent lanes, so it vectorises (a single running sum is a
/// chain of dependent additions the compiler may not reorder).
#[inline(always)]
pub(super) fn sum(values: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Replaces each score `s` of `row` by `exp(s - max)` and returns `(max, sum of the new values)`:
/// a softmax's parts, for a partial softmax that is merged with others later.
#[inline(always)]
pub(crate) fn exponentiate_shifted(row: &mut [f32]) -> (f32, f32) {
    let max = max(row);
    // Two loops: the exponentials vectorise only without the running sum beside them.
    for s in row.iter_mut() {
        *s = exp(*s - max);
    }
    (max, sum(row))
}

/// The largest of `values` (-inf for none), in eight independent lanes so it vectorises: a fold
/// with `f32::max` stays scalar (its NaN rule is not the vector instruction's). No NaN comes in:
/// these are attention scores.
#[inline(always)]
pub(super) fn max(values: &[f32]) -> f32 {
    const LANES: usize = 8;
    // `if v > m { v } else { m }` is exactly the vector maximum instruction.
    let larger = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, larger);
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = larger(*lane, *v);
        }
    }
    lanes.into_iter().fold(tail, larger)
}

/// Independent partial sums (two 8-wide registers), so the loop vectorises and the additions do
/// not wait on each other; few enough that summing the lanes at the end stays cheap (a dot is only
/// `head_dim` products, and there is one per position and query head).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut sums = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            sums[i] = x[i].mul_add(y[i], sums[i]);
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Causal attention weights in place: `scores` holds rows of `total` scores, row `r` belonging to
/// the query of token `r % tokens` of the last `tokens` positions. Each row becomes the softmax over
/// the positions its query may see (everything cached before the tokens, then its own and earlier
/// tokens); later positions become 0.
pub(crate) fn causal_softmax_rows(scores: &mut [f32], tokens: usize, total: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { causal_softmax_rows_avx2(scores, tokens, total) };
    }
    causal_softmax_rows_portable(scores, tokens, total)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn causal_softmax_rows_avx2(scores: &mut [f32], tokens: usize, total: usize) {
    causal_softmax_rows_portable(scores, tokens, total)
}

#[inline(always)]
fn causal_softmax_rows_portable(scores: &mut [f32], tokens: usize, total: usize) {
    for (r, row) in scores.chunks_exact_mut(total).enumerate() {
        let (seen, later) = row.split_at_mut(total - tokens + r % tokens + 1);
        let max = seen.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        seen.iter_mut().for_each(|s| *s = exp(*s - max));
        let inverse = 1.0 / sum(seen);
        seen.iter_mut().for_each(|s| *s *= inverse);
        later.fill(0.0);
    }
}

/// The softmax's backward pass in place, row by row (rows of `total`): with `probs` the softmax
/// output and `grad` the gradient reaching it, `grad[i] = probs[i] (grad[i] - sum_j grad[j] probs[j])`.
pub(crate) fn softmax_backward_rows(grad: &mut [f32], probs: &[f32], total: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { softmax_backward_rows_avx2(grad, probs, total) };
    }
    softmax_backward_rows_portable(grad, probs, total)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_backward_rows_avx2(grad: &mut [f32], probs: &[f32], total: usize) {
    softmax_backward_rows_portable(grad, probs, total)
}

#[inline(always)]
fn softmax_backward_rows_portable(grad: &mut [f32], probs: &[f32], total: usize) {
    for (g, p) in grad.chunks_exact_mut(total).zip(probs.chunks_exact(total)) {
        let inner = dot(g, p);
        g.iter_mut().zip(p).for_each(|(g, p)| *g = p * (*g - inner));
    }
}

/// `gate[i] = silu(gate[i]) * up[i]`: the gated feed-forward's activation.
pub(super) fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { silu_mul_avx2(gate, up) };
    }
    silu_mul_portable(gate, up)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_mul_avx2(gate: &mut [f32], up: &[f32]) {
    silu_mul_portable(gate, up)
}

#[inline(always)]
fn silu_mul_portable(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = silu_times(*g, *u);
    }
}

#[inline(always)]
fn silu_times(g: f32, u: f32) -> f32 {
    g / (1.0 + exp(-g)) * u
}

/// `ln sum_j e^row[j]`, stably (shifted by the row's maximum).
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { log_sum_exp_avx2(row) };
    }
    log_sum_exp_portable(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn log_sum_exp_avx2(row: &[f32]) -> f32 {
    log_sum_exp_portable(row)
}

#[inline(always)]
fn log_sum_exp_portable(row: &[f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    const LANES: usize = 8;
    let mut lanes = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - max)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += exp(v - max);
        }
    }
    max + (lanes.iter().sum::<f32>() + tail).ln()
}

/// `out[j] = scale * e^(row[j] - log_sum_exp)`: a softmax row, scaled, from its log-sum-exp.
pub(crate) fn scaled_softmax_into(out: &mut [f32], row: &[f32], log_sum_exp: f32, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { scaled_softmax_into_avx2(out, row, log_sum_exp, scale) };
    }
    scaled_softmax_into_portable(out, row, log_sum_exp, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scaled_softmax_into_avx2(out: &mut [f32], row: &[f32], log_sum_exp: f32, scale: f32) {
    scaled_softmax_into_portable(out, row, log_sum_exp, scale)
}

#[inline(always)]
fn scaled_softmax_into_portable(out: &mut [f32], row: &[f32], log_sum_exp: f32, scale: f32) {
    for (o, &v) in out.iter_mut().zip(row) {
        *o = scale * exp(v - log_sum_exp);
    }
}

/// `out[i] = silu(gate[i]) * up[i]`, keeping `gate` and `up` (training's backward reads them).
pub(crate) fn silu_mul_into(out: &mut [f32], gate: &[f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { silu_mul_into_avx2(out, gate, up) };
    }
    silu_mul_into_portable(out, gate, up)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_mul_into_avx2(out: &mut [f32], gate: &[f32], up: &[f32]) {
    silu_mul_into_portable(out, gate, up)
}

#[inline(always)]
fn silu_mul_into_portable(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu_times(*g, *u);
    }
}

/// The gated activation's backward: with `activation_grad` reaching `silu(g) * u`, writes
/// `d/dg = a u silu'(g)` to `gate_grad` and `d/du = a silu(g)` to `up_grad`, where with
/// `s = sigmoid(g)`: `silu(g) = g s` and `silu'(g) = s (1 + g (1 - s))`.
pub(crate) fn silu_mul_backward(
    activation_grad: &[f32],
    (gate, up): (&[f32], &[f32]),
    (gate_grad, up_grad): (&mut [f32], &mut [f32]),
) {
    #[cfg(target_arch = "x86_64")]
    if crate::q8::has_avx2_fma() {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { silu_mul_backward_avx2(activation_grad, (gate, up), (gate_grad, up_grad)) };
    }
    silu_mul_backward_portable(activation_grad, (gate, up), (gate_grad, up_grad))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_mul_backward_avx2(
    activation_grad: &[f32],
    inputs: (&[f32], &[f32]),
    grads: (&mut [f32], &mut [f32]),
) {
    silu_mul_backward_portable(activation_grad, inputs, grads)
}

#[inline(always)]
fn silu_mul_backward_portable(
    activation_grad: &[f32],
    (gate, up): (&[f32], &[f32]),
    (gate_grad, up_grad): (&mut [f32], &mut [f32]),
) {
    let inputs = activation_grad.iter().zip(gate).zip(up);
    for (((a, g), u), (dg, du)) in inputs.zip(gate_grad.iter_mut().zip(up_grad.iter_mut())) {
        let s = 1.0 / (1.0 + exp(-g));
        *dg = a * u * s * (1.0 + g * (1.0 - s));
        *du = a * g * s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_finds_the_largest_value_in_any_lane_or_the_tail() {
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        // 19 values: two chunks of eight and a tail of three; the largest in each place in turn.
        for at in 0..19 {
            let values: Vec<f32> = (0..19).map(|i| if i == at { 7.5 } else { -100.0 + i as f32 }).collect();
            assert_eq!(max(&values), 7.5, "largest at {at}");
        }
    }

    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0f32;
        for i in -8700..8800 {
            let x = i as f32 / 100.0 + 0.003;
            let (got, want) = (exp(x), x.exp());
            worst = worst.max((got - want).abs() / want);
        }
        eprintln!("worst relative error {worst:e}");
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(-1000.0) >= 0.0, "clamped, not NaN");
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn causal_softmax_rows_see_the_cache_and_their_own_and_earlier_tokens() {
        // 2 query tokens after 1 cached position, two rows per token (e.g. two heads): row r is
        // token r % 2, which sees 2 + r % 2 positions.
        let mut scores: Vec<f32> = (0..12).map(|i| (i % 5) as f32 * 0.7 - 1.0).collect();
        let original = scores.clone();
        causal_softmax_rows(&mut scores, 2, 3);
        for (r, (row, raw)) in scores.chunks(3).zip(original.chunks(3)).enumerate() {
            let visible = 2 + r % 2;
            let norm: f32 = raw[..visible].iter().map(|s| s.exp()).sum();
            for j in 0..3 {
                let want = if j < visible { raw[j].exp() / norm } else { 0.0 };
                assert!((row[j] - want).abs() < 1e-6, "row {r} position {j}: {} vs {want}", row[j]);
            }
        }
    }

    #[test]
    fn softmax_backward_rows_is_the_softmax_jacobian_applied_to_the_gradient() {
        let probs = [0.2f32, 0.5, 0.3, 0.6, 0.4, 0.0];
        let mut grad = [1.0f32, -2.0, 0.5, 3.0, 1.0, 7.0];
        let want: Vec<f32> = grad
            .chunks(3)
            .zip(probs.chunks(3))
            .flat_map(|(g, p)| {
                let inner: f32 = g.iter().zip(p).map(|(g, p)| g * p).sum();
                g.iter().zip(p).map(move |(g, p)| p * (g - inner)).collect::<Vec<_>>()
            })
            .collect();
        softmax_backward_rows(&mut grad, &probs, 3);
        for (got, want) in grad.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn silu_mul_backward_is_the_derivative_of_the_gated_activation() {
        let gate = [-3.0f32, -0.5, 0.0, 0.7, 4.0];
        let up = [2.0f32, 1.0, 5.0, -1.0, 0.5];
        let activation_grad = [1.0f32, -2.0, 0.5, 3.0, 0.25];
        let (mut gate_grad, mut up_grad) = ([0f32; 5], [0f32; 5]);
        silu_mul_backward(&activation_grad, (&gate, &up), (&mut gate_grad, &mut up_grad));
        let silu = |g: f64| g / (1.0 + (-g).exp());
        let step = 1e-4;
        for i in 0..gate.len() {
            let (g, u, a) = (f64::from(gate[i]), f64::from(up[i]), f64::from(activation_grad[i]));
            // Central differences of a * silu(g) * u in g and in u.
            let want_gate = a * u * (silu(g + step) - silu(g - step)) / (2.0 * step);
            let want_up = a * silu(g);
            assert!(
                (f64::from(gate_grad[i]) - want_gate).abs() < 1e-4,
                "d/dgate[{i}]: {} vs {want_gate}",
                gate_grad[i]
            );
            assert!(
                (f64::from(up_grad[i]) - want_up).abs() < 1e-5,
                "d/dup[{i}]: {} vs {want_up}",
                up_grad[i]
            );
        }
        let mut out = [0f32; 5];
        silu_mul_into(&mut out, &gate, &up);
        for i in 0..gate.len() {
            let want = silu(f64::from(gate[i])) * f64::from(up[i]);
            assert!((f64::from(out[i]) - want).abs() < 1e-5, "silu_mul_into[{i}]: {} vs {want}", out[i]);
        }
    }

    #[test]
    fn silu_mul_is_the_gated_activation() {
        let (mut gate, up) =
            (vec![-3.0f32, -0.5, 0.0, 0.7, 4.0, 11.0], vec![2.0f32, 1.0, 5.0, -1.0, 0.5, 1.0]);
        let want: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        silu_mul(&mut gate, &up);
        for (got, want) in gate.iter().zip(want) {
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "{got} vs {want}");
        }
    }
}
