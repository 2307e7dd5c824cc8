//! The exponentials of a decode step (the attention softmax and SiLU: ~250k per token for
//! SmolLM2-135M at ~800 positions) and the sums beside them.
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
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
