//! The f32 layers of a llama-family block as loaded: what the loader fills, the forward pass and
//! training read, and the Q8_0 decode copy is quantized from.

use candle_core::Tensor;

use crate::{LlmError, frozen::FrozenMatmul};

/// How a projection multiplies: chosen per forward call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Serving (prefill, and one-token steps without Q8_0 decode weights): the f32 gemm; nothing
    /// needs a backward pass.
    Prefill,
    /// Training: the f32 gemm, recording a backward pass to the input only (see [`FrozenMatmul`]).
    Train,
}

/// A projection `y = x W^T (+ b)`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// `[out, in]`, f32.
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `x`: `[..., in]`.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor, LlmError> {
        let dims = x.dims().to_vec();
        let (rows, inner) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
        let rows_x = x.reshape((rows, inner))?;
        let out = match pass {
            Pass::Train => rows_x.contiguous()?.apply_op1(FrozenMatmul { weight: self.weight.clone() })?,
            Pass::Prefill => rows_x.matmul(&self.weight.t()?)?,
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dim(0)?;
        let y = out.reshape(out_dims)?;
        match &self.bias {
            Some(bias) => Ok(y.broadcast_add(bias)?),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}
