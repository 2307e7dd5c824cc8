//! Training ops with hand-written backward passes, and the helpers training's custom ops share.
//! Composed from candle's elementwise ops, an RMS norm or a log-softmax records every intermediate
//! tensor for the backward pass and differentiates each one separately; on two cores that made a
//! training token cost ~4x an inference token. The ops here compute their input gradients in closed
//! form: the final RMS norm from its input alone, the LM head's token NLL from the logits it keeps.
//! None of them computes a gradient for the frozen tensors they hold (norm weights, the LM head). A
//! whole decoder block is one op of its own (`training_block`).

use std::sync::{Mutex, PoisonError};

use candle_core::{
    CpuStorage, CustomOp1, DType, Device, Layout, Shape, Storage, Tensor, backend::BackendStorage,
    utils::barrier_pool,
};

use crate::{config::RopeStyle, elementwise};

/// The values of a contiguous f32 CPU storage, borrowed.
pub(crate) fn contiguous_f32<'a>(
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

/// The values of a contiguous f32 CPU storage, mutably borrowed (an in-place op's target).
pub(crate) fn contiguous_f32_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    what: &'static str,
) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what} needs a contiguous tensor")))?;
    match storage {
        CpuStorage::F32(values) => Ok(&mut values[start..end]),
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

/// `y = x / rms(x) * weight` over the last dimension (the final norm; a block's norms are inside
/// [`crate::training_block`]'s op).
pub(crate) struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    /// `x` as rows `[rows, hidden]`.
    fn rows(x: &Tensor) -> candle_core::Result<Tensor> {
        let hidden = x.dims().last().copied().unwrap_or(0);
        x.reshape((x.elem_count() / hidden.max(1), hidden))
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = input_tensor(storage, layout, self.name())?;
        let (normed, _) = rms_norm(&Self::rows(&x)?, &self.weight, self.eps)?;
        output_storage(&normed.reshape(x.shape())?)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let rows = Self::rows(x)?;
        let (_, inv_rms) = rms_norm(&rows, &self.weight, self.eps)?;
        let grad = rms_norm_backward(&rows, &inv_rms, &self.weight, &Self::rows(grad)?, None)?;
        Ok(Some(grad.reshape(x.shape())?))
    }
}

/// RMS norm of the rows of `x` `[rows, hidden]` (contiguous): `x r weight` with `r = 1 / rms(x)`;
/// also returns each row's `r`.
pub(crate) fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<(Tensor, Vec<f32>)> {
    let (rows, hidden) = x.dims2()?;
    let weight = weight.to_vec1::<f32>()?;
    let (x_storage, x_layout) = x.storage_and_layout();
    let x = f32_values(&x_storage, x_layout)?;
    let inv_rms: Vec<f32> = x
        .chunks_exact(hidden)
        .map(|row| (f64::from(elementwise::dot(row, row)) / hidden as f64 + eps).sqrt().recip() as f32)
        .collect();
    let normed = rows_in_parallel((rows, hidden), |first, chunk| {
        for (i, out) in chunk.chunks_exact_mut(hidden).enumerate() {
            let (row, r) = (&x[(first + i) * hidden..][..hidden], inv_rms[first + i]);
            for ((o, v), w) in out.iter_mut().zip(row).zip(&weight) {
                *o = v * r * w;
            }
        }
    })?;
    Ok((normed, inv_rms))
}

/// The gradient of [`rms_norm`]'s input, given its output's gradient, plus `residual_grad` (the
/// gradient a residual connection passes around the norm) when there is one: with `g = grad *
/// weight`, `dx = r g - x r^3 mean(g x)` per row.
pub(crate) fn rms_norm_backward(
    x: &Tensor,
    inv_rms: &[f32],
    weight: &Tensor,
    grad: &Tensor,
    residual_grad: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (rows, hidden) = x.dims2()?;
    let weight = weight.to_vec1::<f32>()?;
    let grad = grad.contiguous()?;
    let residual_grad = match residual_grad {
        Some(residual) => residual.contiguous()?,
        None => Tensor::zeros((rows, hidden), DType::F32, &Device::Cpu)?,
    };
    let (x_storage, x_layout) = x.storage_and_layout();
    let (grad_storage, grad_layout) = grad.storage_and_layout();
    let (residual_storage, residual_layout) = residual_grad.storage_and_layout();
    let (x, grad, residual) = (
        f32_values(&x_storage, x_layout)?,
        f32_values(&grad_storage, grad_layout)?,
        f32_values(&residual_storage, residual_layout)?,
    );
    rows_in_parallel((rows, hidden), |first, chunk| {
        let mut weighted = vec![0f32; hidden];
        for (i, out) in chunk.chunks_exact_mut(hidden).enumerate() {
            let row = (first + i) * hidden..(first + i + 1) * hidden;
            let (x, r) = (&x[row.clone()], inv_rms[first + i]);
            weighted.iter_mut().zip(&grad[row.clone()]).zip(&weight).for_each(|((g, d), w)| *g = d * w);
            let projection = elementwise::dot(&weighted, x) / hidden as f32 * r * r * r;
            for (((o, g), v), residual) in out.iter_mut().zip(&weighted).zip(x).zip(&residual[row]) {
                *o = residual + r * g - v * projection;
            }
        }
    })
}

/// Rotary position embedding of `x` `[batch, heads, tokens, head_dim]` (contiguous) with the tables
/// `cos`/`sin` `[tokens, head_dim / 2]`, in the model's pairing of dimensions.
pub(crate) fn rotate(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    style: RopeStyle,
) -> candle_core::Result<Tensor> {
    match style {
        RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin),
        RopeStyle::Halves => candle_nn::rotary_emb::rope(x, cos, sin),
    }
}

/// The values of a contiguous f32 CPU tensor's storage, borrowed rather than copied.
pub(crate) fn f32_values<'a>(storage: &'a Storage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => contiguous_f32(cpu, layout, "a training op"),
        _ => Err(candle_core::Error::Msg("training ops run on the CPU".into())),
    }
}

/// Rows `[rows, width]` of a new tensor, computed in chunks of whole rows on candle's thread pool:
/// `fill(first_row, chunk)` writes rows `first_row..` into `chunk`. `fill` must not use the pool
/// itself (no candle tensor op, no nested call): the pool is not reentrant and would deadlock.
pub(crate) fn rows_in_parallel(
    (rows, width): (usize, usize),
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> candle_core::Result<Tensor> {
    let mut out = vec![0f32; rows * width];
    // A few chunks per thread, so a thread that finishes early takes another.
    let chunk_rows = rows.div_ceil(4 * barrier_pool().n_workers().max(1)).max(1);
    let chunks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(chunk_rows * width.max(1)).map(Mutex::new).collect();
    barrier_pool().execute_chunked(chunks.len(), |range| {
        for c in range {
            let mut chunk = chunks[c].lock().unwrap_or_else(PoisonError::into_inner);
            fill(c * chunk_rows, &mut chunk);
        }
    });
    drop(chunks);
    Tensor::from_vec(out, (rows, width), &Device::Cpu)
}

/// Negative log-likelihood of `targets` under the logits `hidden W^T` of the LM head `W` `[vocab,
/// hidden]`, per row of `hidden` `[rows, hidden]`; differentiable in `hidden`. The logits never
/// enter the graph: as separate ops, the LM head and a log-softmax over the vocabulary make and
/// differentiate several `[rows, vocab]` tensors (tens of MB each at training's batch sizes), and
/// candle's backward zero-fills and adds one more. Here the forward keeps the logits and each row's
/// log-sum-exp; the backward turns them into `softmax - onehot(target)` in one pass and multiplies
/// by `W`.
pub(crate) struct HeadNll {
    /// `[vocab, hidden]`.
    weight: Tensor,
    targets: Vec<u32>,
    /// The logits `[rows, vocab]` and each row's log-sum-exp, from the forward pass.
    saved: Mutex<Option<(Tensor, Vec<f32>)>>,
}

impl HeadNll {
    /// `targets` one per row of the hidden states, each below the vocabulary size.
    pub(crate) fn new(weight: &Tensor, targets: &[u32]) -> candle_core::Result<Self> {
        let vocab = weight.dim(0)?;
        if let Some(&target) = targets.iter().find(|&&t| t as usize >= vocab) {
            return Err(candle_core::Error::Msg(format!(
                "token {target} is outside the vocabulary of {vocab}"
            )));
        }
        Ok(Self { weight: weight.clone(), targets: targets.to_vec(), saved: Mutex::new(None) })
    }
}

impl CustomOp1 for HeadNll {
    fn name(&self) -> &'static str {
        "head-nll"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let hidden = input_tensor(storage, layout, self.name())?;
        let (rows, _) = hidden.dims2()?;
        if rows != self.targets.len() {
            return Err(candle_core::Error::Msg(format!("{} targets for {rows} rows", self.targets.len())));
        }
        let logits = hidden.matmul(&self.weight.t()?)?;
        let vocab = logits.dim(1)?;
        let log_sum_exp = {
            let (logits_storage, logits_layout) = logits.storage_and_layout();
            let values = f32_values(&logits_storage, logits_layout)?;
            rows_in_parallel((rows, 1), |first, chunk| {
                for (i, out) in chunk.iter_mut().enumerate() {
                    *out = elementwise::log_sum_exp(&values[(first + i) * vocab..][..vocab]);
                }
            })?
            .flatten_all()?
            .to_vec1::<f32>()?
        };
        let nll: Vec<f32> = {
            let (logits_storage, logits_layout) = logits.storage_and_layout();
            let values = f32_values(&logits_storage, logits_layout)?;
            let target_logit = |row: usize| values[row * vocab + self.targets[row] as usize];
            (0..rows).map(|row| log_sum_exp[row] - target_logit(row)).collect()
        };
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some((logits, log_sum_exp));
        Ok((CpuStorage::F32(nll), Shape::from(rows)))
    }

    fn bwd(&self, _hidden: &Tensor, _nll: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (logits, log_sum_exp) =
            self.saved.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or_else(|| {
                candle_core::Error::Msg("head-nll: backward ran twice, or before forward".into())
            })?;
        let (rows, vocab) = logits.dims2()?;
        let grad = grad.to_vec1::<f32>()?;
        let (logits_storage, logits_layout) = logits.storage_and_layout();
        let values = f32_values(&logits_storage, logits_layout)?;
        // d nll / d logits = softmax(logits) - onehot(target), per row times the row's gradient.
        let delta = rows_in_parallel((rows, vocab), |first, chunk| {
            for (i, out) in chunk.chunks_exact_mut(vocab).enumerate() {
                let row = first + i;
                elementwise::scaled_softmax_into(
                    out,
                    &values[row * vocab..][..vocab],
                    log_sum_exp[row],
                    grad[row],
                );
                out[self.targets[row] as usize] -= grad[row];
            }
        })?;
        Ok(Some(delta.matmul(&self.weight)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Tensor, Var};

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
    fn head_nll_matches_the_head_product_log_softmax_and_gather() -> candle_core::Result<()> {
        let weight = Tensor::randn(0f32, 1.0, (7, 4), &Device::Cpu)?;
        let targets = [3u32, 0, 6];
        check(
            &[3, 4],
            |h| h.apply_op1(HeadNll::new(&weight, &targets)?),
            |h| {
                let targets = Tensor::new(&targets, &Device::Cpu)?.unsqueeze(1)?;
                let logits = h.matmul(&weight.t()?)?;
                candle_nn::ops::log_softmax(&logits, D::Minus1)?.gather(&targets, 1)?.squeeze(1)?.neg()
            },
        )?;
        assert!(HeadNll::new(&weight, &[1, 7]).is_err(), "a target outside the vocabulary");
        let two_targets = HeadNll::new(&weight, &[1, 2])?;
        assert!(Tensor::zeros((3, 4), DType::F32, &Device::Cpu)?.apply_op1(two_targets).is_err());
        Ok(())
    }
}
