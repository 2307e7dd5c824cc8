//! Training's attention core: queries, keys and values in, the attended values out, and the
//! gradients of all three in closed form. Part of [`crate::training_block`]'s op.
//!
//! Composed from candle ops, the core is a scale, two products, a masked softmax and three reshapes,
//! and its backward allocates a zero tensor and adds into it for every one of them; several of those
//! tensors are the `[batch, kv_heads, group * tokens, positions]` attention weights, the largest
//! activations of a layer at training's sequence lengths. Here the products stay candle's (threaded
//! gemm) and the softmax and its backward run in place on the product's output, once each.

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, Layout, Shape, Tensor};

use crate::{
    elementwise,
    fused::{contiguous_f32, contiguous_f32_mut},
};

/// What one call's backward reads.
pub(crate) struct Attention {
    /// The queries with a group's heads folded into rows, scaled: `[batch, kv_heads, rows, head_dim]`.
    queries: Tensor,
    keys: Tensor,
    values: Tensor,
    /// The softmax weights, `[batch, kv_heads, rows, positions]`.
    weights: Tensor,
    dims: Dims,
}

/// The gradients of [`attend`]'s inputs.
pub(crate) struct AttentionGrads {
    /// `[batch, heads, tokens, head_dim]`.
    pub queries: Tensor,
    /// `[batch, kv_heads, positions, head_dim]`, cached positions first.
    pub keys: Tensor,
    pub values: Tensor,
}

/// The sizes of one call, read from the queries and keys.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    tokens: usize,
    head_dim: usize,
}

impl Dims {
    fn of(queries: &Shape, keys: &Shape) -> candle_core::Result<Self> {
        let (batch, heads, tokens, head_dim) = queries.dims4()?;
        let (key_batch, kv_heads, positions, key_dim) = keys.dims4()?;
        if key_batch != batch
            || key_dim != head_dim
            || kv_heads == 0
            || heads % kv_heads != 0
            || positions < tokens
        {
            return Err(candle_core::Error::Msg(format!(
                "attention: queries {queries:?} do not fit keys {keys:?}"
            )));
        }
        Ok(Self { batch, heads, kv_heads, tokens, head_dim })
    }

    /// Query rows per key/value head: the group's heads times the tokens.
    fn rows(&self) -> usize {
        self.heads / self.kv_heads * self.tokens
    }

    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// `[batch, heads, tokens, head_dim]` <-> `[batch, kv_heads, rows, head_dim]`.
    fn grouped(&self, heads: &Tensor) -> candle_core::Result<Tensor> {
        heads.reshape((self.batch, self.kv_heads, self.rows(), self.head_dim))
    }

    fn ungrouped(&self, grouped: &Tensor) -> candle_core::Result<Tensor> {
        grouped.reshape((self.batch, self.heads, self.tokens, self.head_dim))
    }
}

/// Causal grouped-query attention of queries `[batch, heads, tokens, head_dim]` (rotated) over keys
/// and values `[batch, kv_heads, positions, head_dim]` (rotated keys): the cached positions (prefix)
/// followed by the `tokens` new ones. The query heads of a group share a key/value head and are
/// folded into rows, as in serving. All three must be contiguous. Returns the attended values
/// `[batch * tokens, heads * head_dim]`, ready for the output projection, and what the backward reads.
pub(crate) fn attend(
    queries: &Tensor,
    keys: &Tensor,
    values: &Tensor,
) -> candle_core::Result<(Tensor, Attention)> {
    let dims = Dims::of(queries.shape(), keys.shape())?;
    let queries = (dims.grouped(queries)? * dims.scale())?;
    let weights = queries.matmul(&keys.t()?)?;
    weights.inplace_op1(&CausalSoftmax { tokens: dims.tokens })?;
    let output = dims
        .ungrouped(&weights.matmul(values)?)?
        .transpose(1, 2)?
        .reshape((dims.batch * dims.tokens, dims.heads * dims.head_dim))?;
    Ok((output, Attention { queries, keys: keys.clone(), values: values.clone(), weights, dims }))
}

impl Attention {
    /// The gradients of the queries, keys and values, given the attended values' (`[batch * tokens,
    /// heads * head_dim]`, as [`attend`] returns them).
    pub(crate) fn backward(&self, output_grad: &Tensor) -> candle_core::Result<AttentionGrads> {
        let dims = self.dims;
        // The output's gradient in the weights' row layout.
        let grad = dims.grouped(
            &output_grad
                .reshape((dims.batch, dims.tokens, dims.heads, dims.head_dim))?
                .transpose(1, 2)?
                .contiguous()?,
        )?;
        let score_grad = grad.matmul(&self.values.t()?)?;
        score_grad.inplace_op2(&self.weights, &SoftmaxBackward)?;
        Ok(AttentionGrads {
            queries: dims.ungrouped(&(score_grad.matmul(&self.keys)? * dims.scale())?)?,
            keys: score_grad.t()?.matmul(&self.queries)?,
            values: self.weights.t()?.matmul(&grad)?,
        })
    }
}

/// Scores `[.., rows, positions]` -> causal softmax weights, in place (rows of a token's query heads
/// see the cached positions, then their own and earlier tokens).
struct CausalSoftmax {
    tokens: usize,
}

impl InplaceOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let positions = layout.dims().last().copied().unwrap_or(0);
        let scores = contiguous_f32_mut(storage, layout, self.name())?;
        elementwise::causal_softmax_rows(scores, self.tokens, positions);
        Ok(())
    }
}

/// The gradient reaching the softmax weights -> the gradient of the scores, in place; the second
/// operand is the weights.
struct SoftmaxBackward;

impl InplaceOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "softmax-backward"
    }

    fn cpu_fwd(
        &self,
        grad: &mut CpuStorage,
        grad_layout: &Layout,
        weights: &CpuStorage,
        weights_layout: &Layout,
    ) -> candle_core::Result<()> {
        let positions = grad_layout.dims().last().copied().unwrap_or(0);
        let probs = contiguous_f32(weights, weights_layout, self.name())?;
        let grad = contiguous_f32_mut(grad, grad_layout, self.name())?;
        elementwise::softmax_backward_rows(grad, probs, positions);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{D, Device, Var};

    use super::*;

    /// Composed from candle's differentiable ops: an explicit mask and the softmax by exp and sum.
    pub(crate) fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        kv_heads: usize,
    ) -> candle_core::Result<Tensor> {
        let (batch, heads, tokens, head_dim) = q.dims4()?;
        let positions = k.dim(2)?;
        let group = heads / kv_heads;
        let mask: Vec<f32> = (0..tokens)
            .flat_map(|i| {
                (0..positions).map(move |j| if j > positions - tokens + i { f32::NEG_INFINITY } else { 0.0 })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (tokens, positions), &Device::Cpu)?;
        let q = (q.reshape((batch, kv_heads, group * tokens, head_dim))? / (head_dim as f64).sqrt())?;
        let scores = q.matmul(&k.t()?)?.reshape((batch, kv_heads, group, tokens, positions))?;
        let weights = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?.reshape((
            batch,
            kv_heads,
            group * tokens,
            positions,
        ))?;
        weights
            .matmul(v)?
            .reshape((batch, heads, tokens, head_dim))?
            .transpose(1, 2)?
            .reshape((batch * tokens, heads * head_dim))
    }

    #[test]
    fn values_and_gradients_match_the_composed_attention() -> candle_core::Result<()> {
        // 2 sequences, 4 query heads sharing 2 key/value heads, 3 new tokens after 2 cached positions.
        let (batch, heads, kv_heads, tokens, positions, head_dim) = (2, 4, 2, 3, 5, 8);
        let q = Var::randn(0f32, 1.0, (batch, heads, tokens, head_dim), &Device::Cpu)?;
        let k = Var::randn(0f32, 1.0, (batch, kv_heads, positions, head_dim), &Device::Cpu)?;
        let v = Var::randn(0f32, 1.0, (batch, kv_heads, positions, head_dim), &Device::Cpu)?;
        let (output, fused) =
            attend(&q.as_tensor().detach(), &k.as_tensor().detach(), &v.as_tensor().detach())?;
        let composed = reference(q.as_tensor(), k.as_tensor(), v.as_tensor(), kv_heads)?;
        let forward = (&output - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(forward < 1e-5, "forward differs by {forward}");

        let upstream = Tensor::randn(0f32, 1.0, composed.shape(), &Device::Cpu)?;
        let fused_grads = fused.backward(&upstream)?;
        let composed_grads = (composed * &upstream)?.sum_all()?.backward()?;
        for (name, input, fused) in [
            ("queries", &q, &fused_grads.queries),
            ("keys", &k, &fused_grads.keys),
            ("values", &v, &fused_grads.values),
        ] {
            let Some(composed) = composed_grads.get(input.as_tensor()) else {
                panic!("no gradient reached the composed {name}");
            };
            let difference = (fused - composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = composed.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            assert!(difference / scale < 1e-5, "{name}: gradients differ by {difference} (scale {scale})");
        }
        Ok(())
    }
}
