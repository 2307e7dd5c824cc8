//! The f32 layers of a llama-family block as loaded: what the loader fills, the forward pass and
//! training read, and the Q8_0 decode copy is quantized from.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::{LlmError, frozen::FrozenMatmul, fused, q8_prefill::Q8Panels};

/// How a projection multiplies: chosen per forward call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Serving (prefill, and one-token steps without Q8_0 decode weights): the Q8_0 product where
    /// the projection has one ([`Linear::quantized`]), the f32 gemm otherwise; nothing needs a
    /// backward pass.
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
    /// A Q8_0 copy of `weight` for prefill's many-row products, on CPUs that have the integer
    /// kernel ([`crate::q8_prefill`]); shared, as a block is cloned for training.
    pub quantized: Option<Arc<Q8Panels>>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias, quantized: None }
    }

    /// Gives the projection its Q8_0 prefill copy.
    pub fn quantize_for_prefill(&mut self) -> Result<(), LlmError> {
        let cols = self.weight.dim(1)?;
        if cols == 0 || !cols.is_multiple_of(crate::q8::BLOCK) {
            return Err(LlmError::Unsupported(format!(
                "Q8_0 serving needs matrix rows of a multiple of {} values; this model's are {cols} \
                 (serve it with f32 weights)",
                crate::q8::BLOCK
            )));
        }
        let values = self.weight.flatten_all()?.to_vec1::<f32>()?;
        self.quantized = Some(Arc::new(Q8Panels::from_rows(&values, cols)));
        Ok(())
    }

    /// `x`: `[..., in]`.
    pub fn forward(&self, x: &Tensor, pass: Pass) -> Result<Tensor, LlmError> {
        let dims = x.dims().to_vec();
        let (rows, inner) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
        let rows_x = x.reshape((rows, inner))?;
        let out = match pass {
            Pass::Train => rows_x.contiguous()?.apply_op1(FrozenMatmul { weight: self.weight.clone() })?,
            Pass::Prefill => match &self.quantized {
                Some(panels) => q8_product(panels, &rows_x)?,
                None => rows_x.matmul(&self.weight.t()?)?,
            },
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

/// `x W^T` for `x` `[rows, in]` on the Q8_0 copy of `W`.
fn q8_product(panels: &Q8Panels, x: &Tensor) -> Result<Tensor, LlmError> {
    let x = x.contiguous()?;
    let rows = x.dim(0)?;
    let mut out = vec![0f32; rows * panels.rows()];
    {
        let (storage, layout) = x.storage_and_layout();
        panels.matmul(fused::f32_values(&storage, layout)?, &mut out);
    }
    Ok(Tensor::from_vec(out, (rows, panels.rows()), &Device::Cpu)?)
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

impl Block {
    pub fn linears_mut(&mut self) -> [&mut Linear; 7] {
        [&mut self.q, &mut self.k, &mut self.v, &mut self.o, &mut self.gate, &mut self.up, &mut self.down]
    }
}
