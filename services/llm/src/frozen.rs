//! A matrix product with a frozen weight that records a backward pass to its input only.
//!
//! candle's `matmul` backward always computes the gradient of *both* operands. For a frozen weight
//! that gradient is thrown away, yet it costs as much as the forward product itself — and for the
//! tied LM head it is a `[vocab, hidden]` tensor per step. Prompt tuning only needs gradients with
//! respect to the activations (they flow on to the prefix and soft prompt). Training's own passes
//! multiply inside larger ops (`training_block`, `fused::HeadNll`); this op serves the projections
//! a differentiable forward still makes one by one (the LM head with [`crate::LogitsAt::All`]).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::fused::{input_tensor, output_storage};

/// `x [rows, in] -> x W^T [rows, out]` for a fixed `W [out, in]`.
pub(crate) struct FrozenMatmul {
    /// `[out, in]`, f32, contiguous.
    pub weight: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        // The input rebuilt as a constant tensor: nothing inside this op is tracked, the op itself is.
        let x = input_tensor(storage, layout, self.name())?;
        output_storage(&x.matmul(&self.weight.t()?)?)
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        // d(x W^T)/dx applied to the incoming gradient: grad W, `[rows, out] x [out, in]`.
        Ok(Some(grad_res.matmul(&self.weight)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;

    #[test]
    fn the_product_and_the_input_gradient_match_matmul_and_no_weight_gradient_is_computed()
    -> candle_core::Result<()> {
        let device = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (3, 4), &device)?;
        let weight = Tensor::randn(0f32, 1.0, (5, 4), &device)?;
        let upstream = Tensor::randn(0f32, 1.0, (3, 5), &device)?;

        let frozen = x.as_tensor().apply_op1(FrozenMatmul { weight: weight.clone() })?;
        let plain = x.as_tensor().matmul(&weight.t()?)?;
        let difference = (&frozen - &plain)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(difference < 1e-5, "products differ by {difference}");

        let frozen_grads = (frozen * &upstream)?.sum_all()?.backward()?;
        let plain_grads = (plain * &upstream)?.sum_all()?.backward()?;
        let (Some(a), Some(b)) = (frozen_grads.get(x.as_tensor()), plain_grads.get(x.as_tensor())) else {
            panic!("no gradient reached the input");
        };
        assert!((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        // matmul's backward also stores the (discarded) gradient of the transposed weight.
        assert_eq!(frozen_grads.get_ids().count() + 1, plain_grads.get_ids().count());
        Ok(())
    }
}
