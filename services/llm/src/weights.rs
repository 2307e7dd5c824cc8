//! The frozen weights of a llama-family model, loaded from a GGUF file or a Hugging Face safetensors
//! directory. Every matrix is kept in f32 (training uses it: candle's f32 gemm carries gradients to the
//! inputs). With [`ServingFormat::Q8_0`] the model also gets a Q8_0 copy ([`DecodeWeights`]) for
//! one-token serving steps, which read the weights once per token and are bound by memory bandwidth
//! (Q8_0 reads ~3.8x fewer bytes than f32), and, on CPUs with AVX-512 VNNI, a Q8_0 copy of each
//! projection for prefill's many-row products ([`crate::q8_prefill`]), which are bound by arithmetic.
//!
//! Nothing here is a `Var` and no API hands out a mutable tensor: the base model cannot change.

use std::{collections::HashMap, io::BufReader, path::Path};

use candle_core::{DType, Device, Tensor, quantized::gguf_file::Content};

use crate::{
    LlmError,
    config::LlamaConfig,
    decode::DecodeWeights,
    layers::{Block, Linear},
    q8_prefill,
};

/// Which weights one-token decode steps multiply with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingFormat {
    /// The f32 weights for everything.
    F32,
    /// A Q8_0 copy of every matrix for one-token serving steps, and another, laid out for
    /// many-row products, for prefill where the CPU has AVX-512 VNNI ([`crate::q8_prefill`]);
    /// f32 for training.
    Q8_0,
}

impl ServingFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Q8_0 => "q8_0",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Weights {
    /// `[vocab, hidden]`.
    pub embed: Tensor,
    pub blocks: Vec<Block>,
    pub norm: Tensor,
    pub lm_head: Linear,
    /// The Q8_0 copy for one-token serving steps ([`ServingFormat::Q8_0`]).
    pub decode: Option<DecodeWeights>,
}

/// Where tensors come from, under the names of one convention.
trait TensorSource {
    fn take(&mut self, name: &str) -> Result<Tensor, LlmError>;
    fn take_optional(&mut self, name: &str) -> Result<Option<Tensor>, LlmError>;
}

struct GgufSource<'a> {
    content: &'a Content,
    reader: BufReader<std::fs::File>,
}

impl TensorSource for GgufSource<'_> {
    fn take(&mut self, name: &str) -> Result<Tensor, LlmError> {
        let qtensor = self
            .content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|err| LlmError::Format(format!("tensor {name}: {err}")))?;
        Ok(qtensor.dequantize(&Device::Cpu)?)
    }

    fn take_optional(&mut self, name: &str) -> Result<Option<Tensor>, LlmError> {
        if self.content.tensor_infos.contains_key(name) { self.take(name).map(Some) } else { Ok(None) }
    }
}

struct SafetensorsSource(HashMap<String, Tensor>);

impl TensorSource for SafetensorsSource {
    fn take(&mut self, name: &str) -> Result<Tensor, LlmError> {
        self.take_optional(name)?.ok_or_else(|| LlmError::Format(format!("safetensors lack tensor {name}")))
    }

    fn take_optional(&mut self, name: &str) -> Result<Option<Tensor>, LlmError> {
        match self.0.remove(name) {
            Some(tensor) => Ok(Some(tensor.to_dtype(DType::F32)?)),
            None => Ok(None),
        }
    }
}

/// Tensor names of the two layouts.
struct Naming {
    embed: &'static str,
    norm: &'static str,
    output: &'static str,
    layer: fn(usize, &str) -> String,
}

const GGUF_NAMING: Naming = Naming {
    embed: "token_embd.weight",
    norm: "output_norm.weight",
    output: "output.weight",
    layer: |i, part| {
        let name = match part {
            "attn_norm" => "attn_norm",
            "q" => "attn_q",
            "k" => "attn_k",
            "v" => "attn_v",
            "o" => "attn_output",
            "ffn_norm" => "ffn_norm",
            "gate" => "ffn_gate",
            "up" => "ffn_up",
            _ => "ffn_down",
        };
        format!("blk.{i}.{name}")
    },
};

const HF_NAMING: Naming = Naming {
    embed: "model.embed_tokens.weight",
    norm: "model.norm.weight",
    output: "lm_head.weight",
    layer: |i, part| {
        let name = match part {
            "attn_norm" => "input_layernorm",
            "q" => "self_attn.q_proj",
            "k" => "self_attn.k_proj",
            "v" => "self_attn.v_proj",
            "o" => "self_attn.o_proj",
            "ffn_norm" => "post_attention_layernorm",
            "gate" => "mlp.gate_proj",
            "up" => "mlp.up_proj",
            _ => "mlp.down_proj",
        };
        format!("model.layers.{i}.{name}")
    },
};

impl Weights {
    pub fn from_gguf(
        path: &Path,
        content: &Content,
        config: &LlamaConfig,
        format: ServingFormat,
    ) -> Result<Self, LlmError> {
        let file = std::fs::File::open(path).map_err(LlmError::io(path))?;
        let mut source = GgufSource { content, reader: BufReader::new(file) };
        Self::assemble(&mut source, &GGUF_NAMING, config, format)
    }

    /// Loads every `*.safetensors` file of `paths` (converted to f32).
    pub fn from_safetensors(
        paths: &[std::path::PathBuf],
        config: &LlamaConfig,
        format: ServingFormat,
    ) -> Result<Self, LlmError> {
        let mut tensors = HashMap::new();
        for path in paths {
            let loaded = candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|err| LlmError::Format(format!("{}: {err}", path.display())))?;
            tensors.extend(loaded);
        }
        Self::assemble(&mut SafetensorsSource(tensors), &HF_NAMING, config, format)
    }

    fn assemble(
        source: &mut dyn TensorSource,
        naming: &Naming,
        config: &LlamaConfig,
        format: ServingFormat,
    ) -> Result<Self, LlmError> {
        let (h, kv) = (config.hidden_size, config.num_kv_heads * config.head_dim);
        let q_out = config.num_heads * config.head_dim;
        let embed = expect_shape(source.take(naming.embed)?, &[config.vocab_size, h], naming.embed)?;
        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let name = |part: &str| (naming.layer)(i, part);
            let mut linear = |part: &str, shape: [usize; 2]| -> Result<Linear, LlmError> {
                let weight_name = format!("{}.weight", name(part));
                let weight = expect_shape(source.take(&weight_name)?, &shape, &weight_name)?;
                let bias = if config.attention_bias && matches!(part, "q" | "k" | "v") {
                    source.take_optional(&format!("{}.bias", name(part)))?
                } else {
                    None
                };
                Ok(Linear::new(weight, bias))
            };
            let q = linear("q", [q_out, h])?;
            let k = linear("k", [kv, h])?;
            let v = linear("v", [kv, h])?;
            let o = linear("o", [h, q_out])?;
            let gate = linear("gate", [config.intermediate_size, h])?;
            let up = linear("up", [config.intermediate_size, h])?;
            let down = linear("down", [h, config.intermediate_size])?;
            let attn_norm = source.take(&format!("{}.weight", name("attn_norm")))?;
            let ffn_norm = source.take(&format!("{}.weight", name("ffn_norm")))?;
            blocks.push(Block { attn_norm, q, k, v, o, ffn_norm, gate, up, down });
        }
        let norm = source.take(naming.norm)?;
        // Tied embeddings (SmolLM2) have no output matrix: the embedding table is the LM head.
        let output = source.take_optional(naming.output)?.unwrap_or_else(|| embed.clone());
        let lm_head = Linear::new(output, None);
        let mut weights = Self { embed, blocks, norm, lm_head, decode: None };
        if format == ServingFormat::Q8_0 {
            if q8_prefill::available() {
                let linears = weights.blocks.iter_mut().flat_map(Block::linears_mut);
                for linear in linears.chain([&mut weights.lm_head]) {
                    linear.quantize_for_prefill()?;
                }
            }
            weights.decode = Some(DecodeWeights::quantize(&weights.blocks, &weights.norm, &weights.lm_head)?);
        }
        Ok(weights)
    }

    /// Every weight tensor with a stable name, for hashing (the frozen-weights check).
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut out = vec![("embed".to_owned(), &self.embed), ("norm".to_owned(), &self.norm)];
        out.push(("lm_head".to_owned(), &self.lm_head.weight));
        for (i, block) in self.blocks.iter().enumerate() {
            let linears = [
                ("q", &block.q),
                ("k", &block.k),
                ("v", &block.v),
                ("o", &block.o),
                ("gate", &block.gate),
                ("up", &block.up),
                ("down", &block.down),
            ];
            for (part, linear) in linears {
                out.push((format!("{i}.{part}"), &linear.weight));
                if let Some(bias) = &linear.bias {
                    out.push((format!("{i}.{part}.bias"), bias));
                }
            }
            out.push((format!("{i}.attn_norm"), &block.attn_norm));
            out.push((format!("{i}.ffn_norm"), &block.ffn_norm));
        }
        out
    }
}

fn expect_shape(tensor: Tensor, expected: &[usize], what: &str) -> Result<Tensor, LlmError> {
    if tensor.dims() == expected {
        Ok(tensor)
    } else {
        Err(LlmError::Shape {
            what: what.to_owned(),
            expected: expected.to_vec(),
            actual: tensor.dims().to_vec(),
        })
    }
}
