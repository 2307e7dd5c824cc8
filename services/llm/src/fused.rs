//! Training ops with hand-written backward passes. Composed from candle's elementwise ops, an RMS
//! norm, a rotary embedding or a softmax records every intermediate tensor for the backward pass and
//! differentiates each one separately; on two cores that made a training token cost ~4x an
//! inference token. Each op here runs candle's fused forward kernel and computes its input gradient
//! in closed form from the input (or the output), storing nothing else. None of them computes a
//! gradient for the frozen tensors they hold (norm weights, rotary tables). The attention core,
//! softmax included, is one op of its own (`fused_attention`).

use std::sync::{Mutex, PoisonError};

use candle_core::{
    CpuStorage, CustomOp1, D, DType, Device, Layout, Shape, Storage, Tensor, backend::BackendStorage,
};

use crate::config::RopeStyle;

/// The values of a contiguous f32 CPU storage, borrowed.
fn contiguous_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &'static str,
) -> candle_core::Result<&'a [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what} needs a contiguous input")))?;
    match storage {
        CpuStorage::F32(values) => Ok(&values[start..end]),
        other => {
            Err(candle_core::Error::UnexpectedDType { msg: what, expected: DType::F32, got: other.dtype() })
        }
    }
}

/// The op's input as a constant tensor (nothing inside an op's forward is tracked; the op is).
pub(crate) fn input_tensor(
    storage: &CpuStorage,
    layout: &Layout,
    op: &'static str,
) -> candle_core::Result<Tensor> {
    Tensor::from_slice(contiguous_f32(storage, layout, op)?, layout.shape(), &Device::Cpu)
}

pub(crate) fn output_storage(tensor: &Tensor) -> candle_core::Result<(CpuStorage, Shape)> {
    let shape = tensor.shape().clone();
    Ok((CpuStorage::F32(tensor.flatten_all()?.to_vec1::<f32>()?), shape))
}

/// `y = x / rms(x) * weight` over the last dimension.
pub(crate) struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = input_tensor(storage, layout, self.name())?;
        output_storage(&candle_nn::ops::rms_norm(&x, &self.weight, self.eps as f32)?)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // r = (mean(x^2) + eps)^-1/2;  dx = r (g w) - x r^3 mean((g w) x)
        let x = x.detach();
        let gw = grad.broadcast_mul(&self.weight)?;
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?.recip()?;
        let projection = (&gw * &x)?.mean_keepdim(D::Minus1)?.broadcast_mul(&r.powf(3.0)?)?;
        Ok(Some((gw.broadcast_mul(&r)? - x.broadcast_mul(&projection)?)?))
    }
}

/// Rotary position embedding of `[batch, heads, tokens, head_dim]` with fixed `cos`/`sin` tables
/// `[tokens, head_dim / 2]`. A rotation's gradient is the inverse rotation: the same op with `-sin`.
pub(crate) struct Rope {
    pub cos: Tensor,
    pub sin: Tensor,
    pub style: RopeStyle,
}

fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> candle_core::Result<Tensor> {
    match style {
        RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin),
        RopeStyle::Halves => candle_nn::rotary_emb::rope(x, cos, sin),
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = input_tensor(storage, layout, self.name())?;
        output_storage(&rotate(&x, &self.cos, &self.sin, self.style)?)
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(rotate(&grad.contiguous()?, &self.cos, &self.sin.neg()?, self.style)?))
    }
}

/// The gated feed-forward block `y = (silu(h Wg^T) * h Wu^T) Wd^T` of `h` `[rows, hidden]`, with the
/// gradient to `h` only. As separate ops it is five graph nodes, and candle's backward creates a
/// zero tensor and adds into it for every one of them (`[rows, intermediate]`-sized, the largest
/// activations of a layer), then differentiates silu and the product op by op; here the backward is
/// two elementwise passes and three products. The forward keeps the two projections for it (candle
/// hands a custom op's backward only its input and output).
pub(crate) struct GatedMlp {
    /// `[intermediate, hidden]`.
    gate: Tensor,
    /// `[intermediate, hidden]`.
    up: Tensor,
    /// `[hidden, intermediate]`.
    down: Tensor,
    /// `h Wg^T` and `h Wu^T` of the forward pass.
    projections: Mutex<Option<(Tensor, Tensor)>>,
}

impl GatedMlp {
    pub(crate) fn new(gate: &Tensor, up: &Tensor, down: &Tensor) -> Self {
        Self { gate: gate.clone(), up: up.clone(), down: down.clone(), projections: Mutex::new(None) }
    }
}

impl CustomOp1 for GatedMlp {
    fn name(&self) -> &'static str {
        "gated-mlp"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = input_tensor(storage, layout, self.name())?;
        let gate = h.matmul(&self.gate.t()?)?;
        let up = h.matmul(&self.up.t()?)?;
        let y = (gate.silu()? * &up)?.matmul(&self.down.t()?)?;
        *self.projections.lock().unwrap_or_else(PoisonError::into_inner) = Some((gate, up));
        output_storage(&y)
    }

    fn bwd(&self, _h: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (gate, up) = self
            .projections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("gated-mlp: backward before forward".into()))?;
        let activation_grad = grad.contiguous()?.matmul(&self.down)?;
        // With s = sigmoid(g): silu(g) = g s, silu'(g) = s (1 + g (1 - s)).
        //   d/dg = a_grad * u * silu'(g),   d/du = a_grad * silu(g)
        let (a_storage, a_layout) = activation_grad.storage_and_layout();
        let (g_storage, g_layout) = gate.storage_and_layout();
        let (u_storage, u_layout) = up.storage_and_layout();
        let (a_grad, g, u) = (
            f32_values(&a_storage, a_layout)?,
            f32_values(&g_storage, g_layout)?,
            f32_values(&u_storage, u_layout)?,
        );
        let (mut gate_grad, mut up_grad) = (vec![0f32; g.len()], vec![0f32; u.len()]);
        for i in 0..g.len() {
            let s = 1.0 / (1.0 + (-g[i]).exp());
            gate_grad[i] = a_grad[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            up_grad[i] = a_grad[i] * g[i] * s;
        }
        let gate_grad = Tensor::from_vec(gate_grad, gate.shape(), &Device::Cpu)?;
        let up_grad = Tensor::from_vec(up_grad, up.shape(), &Device::Cpu)?;
        Ok(Some((gate_grad.matmul(&self.gate)? + up_grad.matmul(&self.up)?)?))
    }
}

/// The values of a contiguous f32 CPU tensor's storage, borrowed rather than copied.
pub(crate) fn f32_values<'a>(storage: &'a Storage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => contiguous_f32(cpu, layout, "a training op's backward"),
        _ => Err(candle_core::Error::Msg("training ops run on the CPU".into())),
    }
}

/// Negative log-likelihood of `targets` under `logits` `[rows, vocab]`, per row. Its gradient,
/// `softmax(logits) - onehot(target)`, is computed directly instead of through a recorded
/// log-softmax over the whole vocabulary.
pub(crate) struct TokenNll {
    pub targets: Vec<u32>,
}

impl CustomOp1 for TokenNll {
    fn name(&self) -> &'static str {
        "token-nll"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = input_tensor(storage, layout, self.name())?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let targets = Tensor::new(self.targets.as_slice(), &Device::Cpu)?.unsqueeze(1)?;
        output_storage(&log_probs.gather(&targets, 1)?.squeeze(1)?.neg()?)
    }

    fn bwd(&self, logits: &Tensor, _nll: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (rows, vocab) = logits.dims2()?;
        let mut probs =
            candle_nn::ops::softmax_last_dim(&logits.detach())?.flatten_all()?.to_vec1::<f32>()?;
        for (row, &target) in self.targets.iter().enumerate() {
            probs[row * vocab + target as usize] -= 1.0;
        }
        let delta = Tensor::from_vec(probs, (rows, vocab), &Device::Cpu)?;
        Ok(Some(delta.broadcast_mul(&grad.unsqueeze(1)?)?))
    }
}

/// Per-row NLL of `targets` under `logits` `[rows, vocab]` -> `[rows]`, differentiable in `logits`.
pub fn token_nll(logits: &Tensor, targets: &[u32]) -> candle_core::Result<Tensor> {
    let (rows, vocab) = logits.dims2()?;
    if targets.len() != rows || targets.iter().any(|&t| t as usize >= vocab) {
        return Err(candle_core::Error::Msg(format!(
            "token_nll: {} targets for {rows} rows of {vocab} logits",
            targets.len()
        )));
    }
    logits.contiguous()?.apply_op1(TokenNll { targets: targets.to_vec() })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    /// Forward values and input gradients of a fused op match a composed, autograd-differentiated
    /// reference on random inputs.
    fn check(
        shape: &[usize],
        fused: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
        reference: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<()> {
        let x = Var::randn(0f32, 1.0, shape, &Device::Cpu)?;
        let (a, b) = (fused(x.as_tensor())?, reference(x.as_tensor())?);
        let forward = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(forward < 1e-4, "forward differs by {forward}");
        let upstream = Tensor::randn(0f32, 1.0, a.shape(), &Device::Cpu)?;
        let ga = (a * &upstream)?.sum_all()?.backward()?.get(x.as_tensor()).cloned();
        let gb = (b * &upstream)?.sum_all()?.backward()?.get(x.as_tensor()).cloned();
        let (Some(ga), Some(gb)) = (ga, gb) else { panic!("no gradient reached the input") };
        let backward = (&ga - &gb)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = gb.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
        assert!(backward / scale < 1e-4, "gradients differ by {backward} (scale {scale})");
        Ok(())
    }

    #[test]
    fn rms_norm_matches_the_composed_norm() -> candle_core::Result<()> {
        let weight = Tensor::randn(1f32, 0.1, 8, &Device::Cpu)?;
        check(
            &[2, 3, 8],
            |x| x.apply_op1(RmsNorm { weight: weight.clone(), eps: 1e-5 }),
            |x| x.broadcast_div(&(x.sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?)?.broadcast_mul(&weight),
        )
    }

    #[test]
    fn rope_matches_the_slow_rope_in_both_styles() -> candle_core::Result<()> {
        let angles = Tensor::randn(0f32, 1.0, (5, 4), &Device::Cpu)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        for (style, slow) in [
            (RopeStyle::Halves, candle_nn::rotary_emb::rope_slow as fn(&Tensor, &Tensor, &Tensor) -> _),
            (RopeStyle::Interleaved, candle_nn::rotary_emb::rope_i_slow),
        ] {
            check(
                &[2, 3, 5, 8],
                |x| x.apply_op1(Rope { cos: cos.clone(), sin: sin.clone(), style }),
                |x| slow(x, &cos, &sin),
            )?;
        }
        Ok(())
    }

    #[test]
    fn the_gated_mlp_matches_the_composed_block() -> candle_core::Result<()> {
        let gate = Tensor::randn(0f32, 0.5, (12, 8), &Device::Cpu)?;
        let up = Tensor::randn(0f32, 0.5, (12, 8), &Device::Cpu)?;
        let down = Tensor::randn(0f32, 0.5, (8, 12), &Device::Cpu)?;
        check(
            &[5, 8],
            |h| h.apply_op1(GatedMlp::new(&gate, &up, &down)),
            |h| (h.matmul(&gate.t()?)?.silu()? * h.matmul(&up.t()?)?)?.matmul(&down.t()?),
        )
    }

    #[test]
    fn token_nll_matches_log_softmax_and_gather() -> candle_core::Result<()> {
        let targets = [3u32, 0, 6];
        check(
            &[3, 7],
            |x| token_nll(x, &targets),
            |x| {
                let targets = Tensor::new(&targets, &Device::Cpu)?.unsqueeze(1)?;
                candle_nn::ops::log_softmax(x, D::Minus1)?.gather(&targets, 1)?.squeeze(1)?.neg()
            },
        )?;
        assert!(token_nll(&Tensor::zeros((3, 7), DType::F32, &Device::Cpu)?, &[1, 2]).is_err());
        Ok(())
    }
}
