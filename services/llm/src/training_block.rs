//! Training's decoder block as one differentiable op: the hidden states in, the block's output out,
//! and in closed form the gradients of the hidden states and of the cached keys/values (a trained
//! prefix) it attended to. No weight gradient is ever computed.
//!
//! As a chain of smaller ops (norm, three projections, rope, attention, output projection, residual,
//! norm, gated feed-forward, residual) a block was about twenty graph nodes, and candle's backward
//! creates a zero tensor and adds into it for every edge, copies each op's input and output, and
//! differentiates reshapes and transposes one by one: a third of the backward pass was that glue
//! (BENCHMARKS.md). Here the graph has one node per block; inside it, the products are candle's
//! threaded gemm, and norms, rope, softmax and the gated activation run once each over their rows,
//! forward and backward. The forward keeps what its backward reads (candle hands a custom op's
//! backward only its inputs and output) and the backward takes it, freeing it as it goes.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};

use crate::{
    config::{LlamaConfig, RopeStyle},
    elementwise,
    fused::{
        f32_values, input_tensor, output_storage, rms_norm, rms_norm_backward, rotate, rows_in_parallel,
    },
    fused_attention::{self, Attention},
    layers::{Block, Linear},
};

/// What one block's op needs besides its weights.
#[derive(Debug, Clone)]
pub(crate) struct BlockSetting {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f64,
    pub style: RopeStyle,
    /// The rotary tables at the new tokens' positions, `[tokens, head_dim / 2]`.
    pub cos: Tensor,
    pub sin: Tensor,
}

impl BlockSetting {
    pub(crate) fn new(config: &LlamaConfig, cos: Tensor, sin: Tensor) -> Self {
        Self {
            heads: config.num_heads,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
            eps: config.rms_norm_eps,
            style: config.rope_style,
            cos,
            sin,
        }
    }
}

/// The new tokens' keys and values `[batch, kv_heads, tokens, head_dim]` (rotated keys), as the op
/// computed them: the caller appends them to its KV cache.
pub(crate) type NewKeysValues = Arc<Mutex<Option<(Tensor, Tensor)>>>;

/// One decoder block, `[batch, tokens, hidden]` -> `[batch, tokens, hidden]`. Applied as a
/// `CustomOp1` to the hidden states alone, or as a `CustomOp3` with the cached keys and values
/// `[batch, kv_heads, cached, head_dim]` the new tokens also attend to.
pub(crate) struct TrainingBlock {
    block: Block,
    setting: BlockSetting,
    saved: Mutex<Option<Saved>>,
    new_keys_values: NewKeysValues,
}

/// What the forward pass keeps for the backward pass.
struct Saved {
    /// `1 / rms` of each row of the input.
    attn_inv_rms: Vec<f32>,
    attention: Attention,
    /// The input plus the attention's output `[rows, hidden]`: the feed-forward's input and residual.
    mid: Tensor,
    ffn_inv_rms: Vec<f32>,
    /// The gate and up projections `[rows, intermediate]`.
    gate: Tensor,
    up: Tensor,
}

impl TrainingBlock {
    pub(crate) fn new(block: &Block, setting: BlockSetting) -> Self {
        Self {
            block: block.clone(),
            setting,
            saved: Mutex::new(None),
            new_keys_values: Arc::new(Mutex::new(None)),
        }
    }

    /// Where the forward pass leaves the new tokens' keys and values.
    pub(crate) fn new_keys_values(&self) -> NewKeysValues {
        Arc::clone(&self.new_keys_values)
    }

    fn forward(&self, x: &Tensor, cached: Option<(Tensor, Tensor)>) -> candle_core::Result<Tensor> {
        let setting = &self.setting;
        let (batch, tokens, hidden) = x.dims3()?;
        let rows = batch * tokens;
        let x = x.reshape((rows, hidden))?;

        let (normed, attn_inv_rms) = rms_norm(&x, &self.block.attn_norm, setting.eps)?;
        let heads = |t: Tensor, n: usize| {
            t.reshape((batch, tokens, n, setting.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let queries = self.rotate(&heads(project(&normed, &self.block.q)?, setting.heads)?, false)?;
        let new_keys = self.rotate(&heads(project(&normed, &self.block.k)?, setting.kv_heads)?, false)?;
        let new_values = heads(project(&normed, &self.block.v)?, setting.kv_heads)?;
        let (keys, values) = match cached {
            Some((keys, values)) => {
                (Tensor::cat(&[&keys, &new_keys], 2)?, Tensor::cat(&[&values, &new_values], 2)?)
            }
            None => (new_keys.clone(), new_values.clone()),
        };
        let (attended, attention) = fused_attention::attend(&queries, &keys, &values)?;
        let mid = (&x + project(&attended, &self.block.o)?)?;

        let (normed, ffn_inv_rms) = rms_norm(&mid, &self.block.ffn_norm, setting.eps)?;
        let gate = project(&normed, &self.block.gate)?;
        let up = project(&normed, &self.block.up)?;
        let activation = silu_mul(&gate, &up)?;
        let out = (&mid + project(&activation, &self.block.down)?)?;

        *self.new_keys_values.lock().unwrap_or_else(PoisonError::into_inner) = Some((new_keys, new_values));
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Saved { attn_inv_rms, attention, mid, ffn_inv_rms, gate, up });
        out.reshape((batch, tokens, hidden))
    }

    /// The gradients of the input and, when there were any, of the cached keys and values.
    fn backward(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<(Tensor, Option<(Tensor, Tensor)>)> {
        let Saved { attn_inv_rms, attention, mid, ffn_inv_rms, gate, up } =
            self.saved.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or_else(|| {
                candle_core::Error::Msg("training block: backward ran twice, or before forward".into())
            })?;
        let setting = &self.setting;
        let (batch, tokens, hidden) = x.dims3()?;
        let rows = batch * tokens;
        let grad = grad.reshape((rows, hidden))?.contiguous()?;

        // Feed-forward, then its norm; the residual passes the gradient straight through.
        let activation_grad = grad.matmul(&self.block.down.weight)?;
        let (gate_grad, up_grad) = silu_mul_backward(&activation_grad, &gate, &up)?;
        drop((activation_grad, gate, up));
        let normed_grad =
            (gate_grad.matmul(&self.block.gate.weight)? + up_grad.matmul(&self.block.up.weight)?)?;
        let mid_grad =
            rms_norm_backward(&mid, &ffn_inv_rms, &self.block.ffn_norm, &normed_grad, Some(&grad))?;

        // Attention, then its norm.
        let grads = attention.backward(&mid_grad.matmul(&self.block.o.weight)?)?;
        let cached = grads.keys.dim(2)? - tokens;
        let new = |t: &Tensor| t.narrow(2, cached, tokens);
        let rows_of = |t: Tensor| {
            let heads = t.dim(1)?;
            t.transpose(1, 2)?.reshape((rows, heads * setting.head_dim))
        };
        let query_grad = rows_of(self.rotate(&grads.queries, true)?)?;
        let key_grad = rows_of(self.rotate(&new(&grads.keys)?.contiguous()?, true)?)?;
        let value_grad = rows_of(new(&grads.values)?)?;
        let normed_grad = (query_grad.matmul(&self.block.q.weight)?
            + key_grad.matmul(&self.block.k.weight)?
            + value_grad.matmul(&self.block.v.weight)?)?;
        let x = x.reshape((rows, hidden))?;
        let x_grad =
            rms_norm_backward(&x, &attn_inv_rms, &self.block.attn_norm, &normed_grad, Some(&mid_grad))?;

        let cached_grads = if cached > 0 {
            Some((grads.keys.narrow(2, 0, cached)?, grads.values.narrow(2, 0, cached)?))
        } else {
            None
        };
        Ok((x_grad.reshape((batch, tokens, hidden))?, cached_grads))
    }

    /// Rotary embedding of `[batch, heads, tokens, head_dim]` (contiguous) at the new tokens'
    /// positions; `inverse`, the rotation back (a rotation's gradient is its inverse).
    fn rotate(&self, x: &Tensor, inverse: bool) -> candle_core::Result<Tensor> {
        let setting = &self.setting;
        let sin = if inverse { setting.sin.neg()? } else { setting.sin.clone() };
        rotate(x, &setting.cos, &sin, setting.style)
    }
}

impl CustomOp1 for TrainingBlock {
    fn name(&self) -> &'static str {
        "training-block"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        output_storage(&self.forward(&input_tensor(storage, layout, CustomOp1::name(self))?, None)?)
    }

    fn bwd(&self, x: &Tensor, _out: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.backward(x, grad)?.0))
    }
}

impl CustomOp3 for TrainingBlock {
    fn name(&self) -> &'static str {
        "training-block"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        keys_storage: &CpuStorage,
        keys_layout: &Layout,
        values_storage: &CpuStorage,
        values_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = CustomOp1::name(self);
        let cached = (
            input_tensor(keys_storage, keys_layout, name)?,
            input_tensor(values_storage, values_layout, name)?,
        );
        output_storage(&self.forward(&input_tensor(x_storage, x_layout, name)?, Some(cached))?)
    }

    fn bwd(
        &self,
        x: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x_grad, cached_grads) = self.backward(x, grad)?;
        // Cached positions that are constants (not a trained prefix) get no gradient.
        let (keys_grad, values_grad) = match cached_grads {
            Some((k, v)) => (keys.track_op().then_some(k), values.track_op().then_some(v)),
            None => (None, None),
        };
        Ok((Some(x_grad), keys_grad, values_grad))
    }
}

/// `x W^T (+ b)` for `x` `[rows, in]`.
fn project(x: &Tensor, linear: &Linear) -> candle_core::Result<Tensor> {
    let y = x.matmul(&linear.weight.t()?)?;
    match &linear.bias {
        Some(bias) => y.broadcast_add(bias),
        None => Ok(y),
    }
}

/// `silu(gate) * up`, elementwise, `[rows, intermediate]`.
fn silu_mul(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    let (rows, width) = gate.dims2()?;
    let (gate_storage, gate_layout) = gate.storage_and_layout();
    let (up_storage, up_layout) = up.storage_and_layout();
    let (gate, up) = (f32_values(&gate_storage, gate_layout)?, f32_values(&up_storage, up_layout)?);
    rows_in_parallel((rows, width), |first, chunk| {
        let at = first * width..first * width + chunk.len();
        elementwise::silu_mul_into(chunk, &gate[at.clone()], &up[at]);
    })
}

/// The gradients of `gate` and `up` through [`silu_mul`], given its output's gradient.
fn silu_mul_backward(
    activation_grad: &Tensor,
    gate: &Tensor,
    up: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (rows, width) = gate.dims2()?;
    let (grad_storage, grad_layout) = activation_grad.storage_and_layout();
    let (gate_storage, gate_layout) = gate.storage_and_layout();
    let (up_storage, up_layout) = up.storage_and_layout();
    let (activation_grad, gate, up) = (
        f32_values(&grad_storage, grad_layout)?,
        f32_values(&gate_storage, gate_layout)?,
        f32_values(&up_storage, up_layout)?,
    );
    // Each row holds the gate's gradient, then the up projection's: one buffer, two views.
    let both = rows_in_parallel((rows, 2 * width), |first, chunk| {
        for (i, out) in chunk.chunks_exact_mut(2 * width).enumerate() {
            let row = (first + i) * width..(first + i + 1) * width;
            let (gate_grad, up_grad) = out.split_at_mut(width);
            elementwise::silu_mul_backward(
                &activation_grad[row.clone()],
                (&gate[row.clone()], &up[row]),
                (gate_grad, up_grad),
            );
        }
    })?;
    Ok((both.narrow(1, 0, width)?, both.narrow(1, width, width)?))
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};

    use super::*;

    fn random(shape: &[usize], scale: f32) -> Tensor {
        Tensor::randn(0f32, scale, shape, &Device::Cpu).unwrap()
    }

    fn linear(out: usize, inner: usize, bias: bool) -> Linear {
        Linear::new(random(&[out, inner], 0.3), bias.then(|| random(&[out], 0.1)))
    }

    /// The block composed of candle's differentiable ops: the norm as a division by the root mean
    /// square, the slow rotary embeddings, the attention with an explicit mask, SiLU as an op.
    fn reference(
        x: &Tensor,
        cached: Option<(&Tensor, &Tensor)>,
        block: &Block,
        setting: &BlockSetting,
    ) -> candle_core::Result<Tensor> {
        let (batch, tokens, _) = x.dims3()?;
        let norm = |x: &Tensor, weight: &Tensor| {
            let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + setting.eps)?.sqrt()?;
            x.broadcast_div(&rms)?.broadcast_mul(weight)
        };
        let project = |x: &Tensor, linear: &Linear| {
            let y = x.broadcast_matmul(&linear.weight.t()?)?;
            match &linear.bias {
                Some(bias) => y.broadcast_add(bias),
                None => Ok(y),
            }
        };
        let heads = |t: Tensor, n: usize| {
            t.reshape((batch, tokens, n, setting.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let rope = |t: Tensor| match setting.style {
            RopeStyle::Halves => candle_nn::rotary_emb::rope_slow(&t, &setting.cos, &setting.sin),
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i_slow(&t, &setting.cos, &setting.sin),
        };
        let normed = norm(x, &block.attn_norm)?;
        let queries = rope(heads(project(&normed, &block.q)?, setting.heads)?)?;
        let mut keys = rope(heads(project(&normed, &block.k)?, setting.kv_heads)?)?;
        let mut values = heads(project(&normed, &block.v)?, setting.kv_heads)?;
        if let Some((cached_keys, cached_values)) = cached {
            keys = Tensor::cat(&[cached_keys, &keys], 2)?;
            values = Tensor::cat(&[cached_values, &values], 2)?;
        }
        let attended = fused_attention::tests::reference(&queries, &keys, &values, setting.kv_heads)?;
        let mid = (x + project(&attended.reshape((batch, tokens, ()))?, &block.o)?)?;
        let normed = norm(&mid, &block.ffn_norm)?;
        let activation = (project(&normed, &block.gate)?.silu()? * project(&normed, &block.up)?)?;
        mid + project(&activation, &block.down)?
    }

    /// The op against [`reference`], in value and in the gradients of the hidden states and of the
    /// cached keys/values when there are any (`cached` positions).
    fn check_block(style: RopeStyle, cached: usize) -> candle_core::Result<()> {
        // 2 sequences of 3 new tokens; 4 query heads share 2 key/value heads.
        let (batch, tokens, hidden, heads, kv_heads, head_dim, intermediate) = (2, 3, 16, 4, 2, 4, 24);
        let block = Block {
            attn_norm: (random(&[hidden], 0.1) + 1.0)?,
            q: linear(heads * head_dim, hidden, true),
            k: linear(kv_heads * head_dim, hidden, true),
            v: linear(kv_heads * head_dim, hidden, true),
            o: linear(hidden, heads * head_dim, false),
            ffn_norm: (random(&[hidden], 0.1) + 1.0)?,
            gate: linear(intermediate, hidden, false),
            up: linear(intermediate, hidden, false),
            down: linear(hidden, intermediate, false),
        };
        let angles = random(&[tokens, head_dim / 2], 1.0);
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let setting = BlockSetting { heads, kv_heads, head_dim, eps: 1e-5, style, cos, sin };
        let x = Var::from_tensor(&random(&[batch, tokens, hidden], 1.0))?;
        let keys = Var::from_tensor(&random(&[batch, kv_heads, cached, head_dim], 1.0))?;
        let values = Var::from_tensor(&random(&[batch, kv_heads, cached, head_dim], 1.0))?;

        let op = TrainingBlock::new(&block, setting.clone());
        let new_keys_values = op.new_keys_values();
        let (fused, composed) = if cached > 0 {
            let cached = (keys.as_tensor(), values.as_tensor());
            (
                x.as_tensor().apply_op3(cached.0, cached.1, op)?,
                reference(x.as_tensor(), Some(cached), &block, &setting)?,
            )
        } else {
            (x.as_tensor().apply_op1(op)?, reference(x.as_tensor(), None, &block, &setting)?)
        };
        let forward = (&fused - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(forward < 1e-4, "{style:?}, {cached} cached: outputs differ by {forward}");
        let new_keys_values = new_keys_values.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some((new_keys, _)) = new_keys_values else { panic!("the op left no keys and values") };
        assert_eq!(new_keys.dims(), &[batch, kv_heads, tokens, head_dim]);

        let upstream = random(&[batch, tokens, hidden], 1.0);
        let fused_grads = (fused * &upstream)?.sum_all()?.backward()?;
        let composed_grads = (composed * &upstream)?.sum_all()?.backward()?;
        let mut inputs = vec![("hidden states", &x)];
        if cached > 0 {
            inputs.extend([("cached keys", &keys), ("cached values", &values)]);
        }
        for (name, input) in inputs {
            let (Some(a), Some(b)) =
                (fused_grads.get(input.as_tensor()), composed_grads.get(input.as_tensor()))
            else {
                panic!("{style:?}, {cached} cached: no gradient reached the {name}");
            };
            let difference = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            assert!(
                difference / scale < 1e-4,
                "{style:?}, {cached} cached, {name}: gradients differ by {difference} (scale {scale})"
            );
        }
        for weight in [&block.q.weight, &block.gate.weight, &block.attn_norm] {
            assert!(fused_grads.get(weight).is_none(), "a frozen weight got a gradient");
        }
        Ok(())
    }

    #[test]
    fn the_block_and_its_gradients_match_the_composed_block_in_both_rope_styles_with_and_without_a_cache()
    -> candle_core::Result<()> {
        for style in [RopeStyle::Halves, RopeStyle::Interleaved] {
            for cached in [0, 2] {
                check_block(style, cached)?;
            }
        }
        Ok(())
    }
}
