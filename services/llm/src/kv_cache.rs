//! The keys and values a forward pass continues from. Two ways to append, one per use:
//! - training (and the per-bundle head cache) grows each layer by concatenation: every step makes new
//!   tensors, so a trained prefix stays a variable the forward pass reads (its gradient flows back
//!   from the attention) and a shared head is never written to. What a differentiable forward
//!   appends is constant: gradients do not cross from one forward call into the next;
//! - serving writes in place into buffers with room reserved up front ([`KvCache::in_place_copy`]): a
//!   decode step copies only its own position, where concatenation copies the whole cache every
//!   token (tens of MB at a few hundred positions, as much memory traffic as a third of the weights).
//!   The buffers may hold f16: a decode step reads the whole cache, and half the bytes made the
//!   attention ~12% faster ([`crate::Llama::serving_kv_dtype`]).

use candle_core::{DType, Tensor};

use crate::LlmError;

/// One layer's keys and values, each `[batch, kv_heads, positions, head_dim]`.
#[derive(Debug, Clone)]
enum LayerKv {
    /// Exactly the positions held.
    Grown { keys: Tensor, values: Tensor },
    /// Buffers with room, in the cache's [`InPlace::dtype`]: positions `..KvCache::len` are filled,
    /// the rest is free.
    Buffered { keys: Tensor, values: Tensor },
}

impl LayerKv {
    /// Views of the first `len` positions.
    fn filled(&self, len: usize) -> Result<(Tensor, Tensor), LlmError> {
        Ok(match self {
            LayerKv::Grown { keys, values } => (keys.clone(), values.clone()),
            LayerKv::Buffered { keys, values } => (keys.narrow(2, 0, len)?, values.narrow(2, 0, len)?),
        })
    }
}

/// Keys and values per layer. Cloning shares the tensors: clone a cache only while it grows by
/// concatenation (which never writes to existing tensors); take an [`KvCache::in_place_copy`] to
/// write in place. Two clones of an in-place cache would write into one buffer: never clone one
/// (the engine and the bench move theirs).
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    len: usize,
    /// `Some`: appends write in place. `None`: appends concatenate.
    in_place: Option<InPlace>,
}

/// How an in-place cache keeps its buffers.
#[derive(Debug, Clone, Copy)]
struct InPlace {
    /// A buffer that is full is replaced by one with `room` more positions than needed.
    room: usize,
    /// What the buffers store (appended keys and values are converted to it).
    dtype: DType,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![None; num_layers], len: 0, in_place: None }
    }

    /// A cache that starts with a prefix: `keys[l]` / `values[l]` are `[kv_heads, P, head_dim]`,
    /// repeated for each of `batch` sequences. Gradients flow back into them when they are variables.
    pub fn from_prefix(keys: &[Tensor], values: &[Tensor], batch: usize) -> Result<Self, LlmError> {
        let mut layers = Vec::with_capacity(keys.len());
        let mut len = 0;
        for (k, v) in keys.iter().zip(values) {
            let (kv_heads, positions, head_dim) = k.dims3()?;
            len = positions;
            let shape = (batch, kv_heads, positions, head_dim);
            // Materialised per sequence: appending to a stride-0 broadcast yields a layout the
            // attention matmul cannot take.
            let per_sequence = |t: &Tensor| t.unsqueeze(0)?.broadcast_as(shape)?.contiguous();
            layers.push(Some(LayerKv::Grown { keys: per_sequence(k)?, values: per_sequence(v)? }));
        }
        Ok(Self { layers, len, in_place: None })
    }

    /// A copy that shares nothing with `self` and writes later positions in place, with buffers of
    /// `dtype` (F32 or F16) sized for `room` more positions (a request: its prompt tail and
    /// `max_tokens`). Not for training: an in-place write records no backward pass.
    pub fn in_place_copy(&self, room: usize, dtype: DType) -> Result<Self, LlmError> {
        if !matches!(dtype, DType::F32 | DType::F16) {
            // A decode step reads f32 or f16 rows only.
            return Err(LlmError::Unsupported(format!("a KV cache of {}: f32 or f16 only", dtype.as_str())));
        }
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            layers.push(match layer {
                None => None,
                Some(layer) => {
                    let (keys, values) = layer.filled(self.len)?;
                    Some(LayerKv::Buffered {
                        keys: with_room(&keys, self.len, room, dtype)?,
                        values: with_room(&values, self.len, room, dtype)?,
                    })
                }
            });
        }
        Ok(Self { layers, len: self.len, in_place: Some(InPlace { room, dtype }) })
    }

    /// Positions held (prefix + every token processed).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Layer `l`'s keys and values, if any, as stored (views of a buffer's filled positions: a
    /// narrow within its bounds, which cannot fail).
    pub fn layer(&self, l: usize) -> Option<(Tensor, Tensor)> {
        self.layers.get(l).and_then(Option::as_ref).and_then(|layer| layer.filled(self.len).ok())
    }

    /// Bytes held by the cached tensors, free room included (for the head cache's memory bound).
    pub fn size_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|layer| match layer {
                LayerKv::Grown { keys, values } | LayerKv::Buffered { keys, values } => {
                    (keys.elem_count() + values.elem_count()) * keys.dtype().size_in_bytes()
                }
            })
            .sum()
    }

    /// Appends layer `l`'s new keys and values (`[batch, kv_heads, tokens, head_dim]`) after the
    /// positions held, returning all of them as stored (an in-place cache's dtype).
    /// [`KvCache::advance`] then counts the new positions, once every layer has appended.
    pub(crate) fn append(
        &mut self,
        l: usize,
        keys: Tensor,
        values: Tensor,
    ) -> Result<(Tensor, Tensor), LlmError> {
        let start = self.len;
        let total = start + keys.dim(2)?;
        let layers = self.layers.len();
        let slot = self.layers.get_mut(l).ok_or_else(|| LlmError::Shape {
            what: "KV cache layer".into(),
            expected: vec![l],
            actual: vec![layers],
        })?;
        let (layer, all_keys, all_values) = match (slot.take(), self.in_place) {
            (None, None) => (LayerKv::Grown { keys: keys.clone(), values: values.clone() }, keys, values),
            (Some(held), None) => {
                let (held_keys, held_values) = held.filled(start)?;
                let all_keys = Tensor::cat(&[&held_keys, &keys], 2)?;
                let all_values = Tensor::cat(&[&held_values, &values], 2)?;
                (LayerKv::Grown { keys: all_keys.clone(), values: all_values.clone() }, all_keys, all_values)
            }
            (held, Some(InPlace { room, dtype })) => {
                let (buffer_keys, buffer_values) = match held {
                    Some(LayerKv::Buffered { keys: k, values: v }) if k.dim(2)? >= total => (k, v),
                    // First write, or full: a new buffer holding what was cached, with room after.
                    other => {
                        let (held_keys, held_values) = match other {
                            Some(layer) => layer.filled(start)?,
                            None => (keys.narrow(2, 0, 0)?, values.narrow(2, 0, 0)?),
                        };
                        let need = total - start + room;
                        (
                            with_room(&held_keys, start, need, dtype)?,
                            with_room(&held_values, start, need, dtype)?,
                        )
                    }
                };
                buffer_keys.slice_set(&keys.to_dtype(dtype)?.contiguous()?, 2, start)?;
                buffer_values.slice_set(&values.to_dtype(dtype)?.contiguous()?, 2, start)?;
                let all_keys = buffer_keys.narrow(2, 0, total)?;
                let all_values = buffer_values.narrow(2, 0, total)?;
                (LayerKv::Buffered { keys: buffer_keys, values: buffer_values }, all_keys, all_values)
            }
        };
        *slot = Some(layer);
        Ok((all_keys, all_values))
    }

    /// Counts `tokens` new positions, after every layer appended them.
    pub(crate) fn advance(&mut self, tokens: usize) {
        self.len += tokens;
    }
}

/// A new buffer `[batch, kv_heads, len + room, head_dim]` of `dtype` whose first `len` positions
/// are `held`'s.
fn with_room(held: &Tensor, len: usize, room: usize, dtype: DType) -> Result<Tensor, LlmError> {
    let (batch, kv_heads, _, head_dim) = held.dims4()?;
    let buffer = Tensor::zeros((batch, kv_heads, len + room, head_dim), dtype, held.device())?;
    if len > 0 {
        buffer.slice_set(&held.to_dtype(dtype)?.contiguous()?, 2, 0)?;
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn positions(from: usize, count: usize) -> Tensor {
        // [1, 1, count, 2]: position p holds (p, -p).
        let data: Vec<f32> = (from..from + count).flat_map(|p| [p as f32, -(p as f32)]).collect();
        Tensor::from_vec(data, (1, 1, count, 2), &Device::Cpu).unwrap()
    }

    fn appended(cache: &mut KvCache, from: usize, count: usize) -> Vec<f32> {
        let (keys, _) = cache.append(0, positions(from, count), positions(from, count)).unwrap();
        cache.advance(count);
        keys.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn in_place_appends_hold_the_same_positions_as_concatenation_and_leave_the_original_alone() {
        // Small integers: exact in f16 as in f32.
        for dtype in [DType::F32, DType::F16] {
            let mut grown = KvCache::new(1);
            appended(&mut grown, 0, 3);
            // Room for 2 more: the third append outgrows the buffer and moves to a bigger one.
            let mut in_place = grown.in_place_copy(2, dtype).unwrap();
            let original = grown.clone();
            for (from, count) in [(3, 1), (4, 1), (5, 2)] {
                assert_eq!(appended(&mut in_place, from, count), appended(&mut grown, from, count));
                assert_eq!(in_place.layer(0).unwrap().0.dtype(), dtype);
            }
            assert_eq!(in_place.len(), 7);
            let (keys, _) = original.layer(0).unwrap();
            assert_eq!(
                keys.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                positions(0, 3).flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
            let as_f32_bytes = in_place.size_bytes() * 4 / dtype.size_in_bytes();
            assert!(as_f32_bytes > grown.size_bytes(), "the buffer keeps free room");
        }
        let error = KvCache::new(1).in_place_copy(2, DType::BF16).unwrap_err().to_string();
        assert!(error.contains("bf16"), "{error}");
    }
}
