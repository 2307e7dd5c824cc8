//! Training's attention core as one differentiable op: queries, keys and values in, the attended
//! values out, with the gradients of all three in closed form.
//!
//! Composed from candle ops, the core is a scale, two products, a masked softmax and three reshapes,
//! and its backward allocates a zero tensor and adds into it for every one of them; several of those
//! tensors are the `[batch, kv_heads, group * tokens, positions]` attention weights, the largest
//! activations of a layer at training's sequence lengths. Here the products stay candle's (threaded
//! gemm) and the softmax and its backward run in place on the weights, once each.

use std::sync::{Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};

use crate::{
    decode::elementwise,
    fused::{f32_values, input_tensor, output_storage},
};

/// Causal grouped-query attention. Inputs: queries `[batch, heads, tokens, head_dim]` (rotated),
/// keys and values `[batch, kv_heads, positions, head_dim]` (rotated keys): the cached positions
/// (prefix, soft prompt's companions) followed by the `tokens` new ones. Output: `[batch, tokens,
/// heads * head_dim]`, ready for the output projection. The query heads of a group share a key/value
/// head and are folded into rows, as in serving.
pub(crate) struct CausalAttention {
    /// The attention weights of the forward pass, `[batch, kv_heads, group * tokens, positions]`
    /// (candle hands a custom op's backward only its inputs and output).
    weights: Mutex<Option<Tensor>>,
}

impl CausalAttention {
    pub(crate) fn new() -> Self {
        Self { weights: Mutex::new(None) }
    }
}

/// The sizes of one call, read from the queries and keys.
struct Dims {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    tokens: usize,
    positions: usize,
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
        Ok(Self { batch, heads, kv_heads, tokens, positions, head_dim })
    }

    /// Query rows per key/value head: the group's heads times the tokens.
    fn rows(&self) -> usize {
        self.heads / self.kv_heads * self.tokens
    }

    fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }

    /// `[batch, heads, tokens, head_dim]` -> `[batch, kv_heads, rows, head_dim]`, scaled.
    fn grouped_queries(&self, queries: &Tensor) -> candle_core::Result<Tensor> {
        queries.reshape((self.batch, self.kv_heads, self.rows(), self.head_dim))? * self.scale()
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        q_storage: &CpuStorage,
        q_layout: &Layout,
        k_storage: &CpuStorage,
        k_layout: &Layout,
        v_storage: &CpuStorage,
        v_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = Dims::of(q_layout.shape(), k_layout.shape())?;
        let queries = dims.grouped_queries(&input_tensor(q_storage, q_layout, self.name())?)?;
        let keys = input_tensor(k_storage, k_layout, self.name())?;
        let values = input_tensor(v_storage, v_layout, self.name())?;

        let mut weights = queries.matmul(&keys.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        elementwise::causal_softmax_rows(&mut weights, dims.tokens, dims.positions);
        let weights = Tensor::from_vec(
            weights,
            (dims.batch, dims.kv_heads, dims.rows(), dims.positions),
            &Device::Cpu,
        )?;
        let attended = weights
            .matmul(&values)?
            .reshape((dims.batch, dims.heads, dims.tokens, dims.head_dim))?
            .transpose(1, 2)?
            .reshape((dims.batch, dims.tokens, dims.heads * dims.head_dim))?;
        *self.weights.lock().unwrap_or_else(PoisonError::into_inner) = Some(weights);
        output_storage(&attended)
    }

    fn bwd(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        _attended: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let weights = self
            .weights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| candle_core::Error::Msg("causal-attention: backward before forward".into()))?;
        let dims = Dims::of(queries.shape(), keys.shape())?;
        let (keys, values) = (keys.detach(), values.detach());
        // The gradient of the attended values, in the weights' row layout.
        let grad = grad
            .reshape((dims.batch, dims.tokens, dims.heads, dims.head_dim))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((dims.batch, dims.kv_heads, dims.rows(), dims.head_dim))?;

        let mut score_grad = grad.matmul(&values.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        {
            let (storage, layout) = weights.storage_and_layout();
            let probs = f32_values(&storage, layout)?;
            elementwise::softmax_backward_rows(&mut score_grad, probs, dims.positions);
        }
        let score_grad = Tensor::from_vec(score_grad, weights.shape(), &Device::Cpu)?;

        let query_grad = (score_grad.matmul(&keys)? * dims.scale())?.reshape((
            dims.batch,
            dims.heads,
            dims.tokens,
            dims.head_dim,
        ))?;
        let key_grad = score_grad.t()?.matmul(&dims.grouped_queries(&queries.detach())?)?;
        let value_grad = weights.t()?.matmul(&grad)?;
        Ok((Some(query_grad), Some(key_grad), Some(value_grad)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Var};

    use super::*;

    /// Composed from candle's differentiable ops: an explicit mask and the softmax by exp and sum.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, kv_heads: usize) -> candle_core::Result<Tensor> {
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
        weights.matmul(v)?.reshape((batch, heads, tokens, head_dim))?.transpose(1, 2)?.reshape((
            batch,
            tokens,
            heads * head_dim,
        ))
    }

    #[test]
    fn values_and_gradients_match_the_composed_attention() -> candle_core::Result<()> {
        // 2 sequences, 4 query heads sharing 2 key/value heads, 3 new tokens after 2 cached positions.
        let (batch, heads, kv_heads, tokens, positions, head_dim) = (2, 4, 2, 3, 5, 8);
        let q = Var::randn(0f32, 1.0, (batch, heads, tokens, head_dim), &Device::Cpu)?;
        let k = Var::randn(0f32, 1.0, (batch, kv_heads, positions, head_dim), &Device::Cpu)?;
        let v = Var::randn(0f32, 1.0, (batch, kv_heads, positions, head_dim), &Device::Cpu)?;
        let fused = q.as_tensor().apply_op3(k.as_tensor(), v.as_tensor(), CausalAttention::new())?;
        let composed = reference(q.as_tensor(), k.as_tensor(), v.as_tensor(), kv_heads)?;
        let forward = (&fused - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(forward < 1e-5, "forward differs by {forward}");

        let upstream = Tensor::randn(0f32, 1.0, fused.shape(), &Device::Cpu)?;
        let fused_grads = (fused * &upstream)?.sum_all()?.backward()?;
        let composed_grads = (composed * &upstream)?.sum_all()?.backward()?;
        for (name, input) in [("queries", &q), ("keys", &k), ("values", &v)] {
            let (Some(a), Some(b)) =
                (fused_grads.get(input.as_tensor()), composed_grads.get(input.as_tensor()))
            else {
                panic!("no gradient reached the {name}");
            };
            let difference = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            assert!(difference / scale < 1e-5, "{name}: gradients differ by {difference} (scale {scale})");
        }
        Ok(())
    }
}
