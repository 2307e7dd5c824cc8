//! Hugging Face PEFT prompt-tuning adapters in and out: `adapter_config.json` (peft_type
//! `PROMPT_TUNING`) and `adapter_model.safetensors` holding `prompt_embeddings`
//! `[num_virtual_tokens, token_dim]`. A soft prompt trained in Python can be served here, and ours
//! can be loaded by `PeftModel.from_pretrained` there.

use std::{collections::HashMap, path::Path};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{
    artifact::{self, ArtifactError, ArtifactManifest, write_file},
    train::Kind,
};

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const TENSOR: &str = "prompt_embeddings";

/// The fields of a PEFT prompt-tuning `adapter_config.json` that matter here; others are kept on
/// import only as far as serde ignores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftPromptTuningConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    pub num_virtual_tokens: usize,
    #[serde(default)]
    pub token_dim: Option<usize>,
    #[serde(default)]
    pub num_transformer_submodules: Option<usize>,
    #[serde(default)]
    pub num_attention_heads: Option<usize>,
    #[serde(default)]
    pub num_layers: Option<usize>,
    #[serde(default)]
    pub prompt_tuning_init: Option<String>,
    #[serde(default)]
    pub prompt_tuning_init_text: Option<String>,
    #[serde(default)]
    pub tokenizer_name_or_path: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub inference_mode: bool,
}

/// The base model an adapter is bound to on import.
#[derive(Debug, Clone)]
pub struct BaseModel {
    pub fingerprint: String,
    pub name: String,
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_layers: usize,
}

fn invalid(path: &Path, reason: impl Into<String>) -> ArtifactError {
    ArtifactError::Invalid { path: path.to_owned(), reason: reason.into() }
}

/// Writes the soft-prompt artifact at `artifact_dir` as a PEFT adapter in `out`.
pub fn export(artifact_dir: &Path, base: &BaseModel, out: &Path) -> Result<(), ArtifactError> {
    let (manifest, tensors) = artifact::read(artifact_dir)?;
    let embeddings = tensors.iter().find(|(n, _)| n == TENSOR).map(|(_, t)| t.clone()).ok_or_else(|| {
        invalid(artifact_dir, "is not a soft prompt: only prompt-tuning adapters export to PEFT")
    })?;
    let (virtual_tokens, dim) = embeddings.dims2().map_err(|err| invalid(artifact_dir, err.to_string()))?;
    let config = PeftPromptTuningConfig {
        peft_type: "PROMPT_TUNING".into(),
        task_type: Some("CAUSAL_LM".into()),
        num_virtual_tokens: virtual_tokens,
        token_dim: Some(dim),
        num_transformer_submodules: Some(1),
        num_attention_heads: Some(base.num_heads),
        num_layers: Some(base.num_layers),
        prompt_tuning_init: Some("RANDOM".into()),
        prompt_tuning_init_text: None,
        tokenizer_name_or_path: None,
        base_model_name_or_path: Some(manifest.base_model_name.clone()),
        inference_mode: true,
    };
    std::fs::create_dir_all(out).map_err(|source| ArtifactError::Io { path: out.to_owned(), source })?;
    let weights = out.join(WEIGHTS_FILE);
    let tmp = out.join(format!("{WEIGHTS_FILE}.tmp"));
    let map: HashMap<String, Tensor> = [(TENSOR.to_owned(), embeddings)].into_iter().collect();
    candle_core::safetensors::save(&map, &tmp).map_err(|err| invalid(&weights, err.to_string()))?;
    artifact::sync_and_rename(&tmp, &weights)?;
    let json = serde_json::to_string_pretty(&config).map_err(|err| invalid(out, err.to_string()))?;
    write_file(&out.join(CONFIG_FILE), json.as_bytes())
}

/// Reads the PEFT adapter in `peft_dir`, checks it against `base`, and writes it as our artifact in
/// `out` (bound to `base`'s fingerprint).
pub fn import(peft_dir: &Path, base: &BaseModel, out: &Path) -> Result<ArtifactManifest, ArtifactError> {
    let config_path = peft_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|source| ArtifactError::Io { path: config_path.clone(), source })?;
    let config: PeftPromptTuningConfig =
        serde_json::from_str(&text).map_err(|err| invalid(&config_path, err.to_string()))?;
    if config.peft_type != "PROMPT_TUNING" {
        return Err(invalid(
            &config_path,
            format!("peft_type is {:?}; only PROMPT_TUNING imports", config.peft_type),
        ));
    }
    if config.num_virtual_tokens == 0 {
        return Err(invalid(&config_path, "num_virtual_tokens is 0"));
    }
    if out.join(artifact::MANIFEST_FILE).exists() {
        return Err(invalid(out, "already holds an artifact: import into another directory"));
    }
    if config.num_transformer_submodules.unwrap_or(1) != 1 {
        return Err(invalid(&config_path, "num_transformer_submodules must be 1 (a decoder-only model)"));
    }
    if let Some(dim) = config.token_dim.filter(|&d| d != base.hidden_size) {
        return Err(invalid(
            &config_path,
            format!("token_dim is {dim}, the base model's hidden size is {}", base.hidden_size),
        ));
    }
    let weights_path = peft_dir.join(WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
        .map_err(|err| invalid(&weights_path, format!("not a readable safetensors file: {err}")))?;
    let embeddings = tensors
        .remove(TENSOR)
        .ok_or_else(|| invalid(&weights_path, format!("has no tensor {TENSOR}")))?
        .to_dtype(DType::F32)
        .map_err(|err| invalid(&weights_path, err.to_string()))?;
    let expected = [config.num_virtual_tokens, base.hidden_size];
    if embeddings.dims() != expected {
        return Err(invalid(
            &weights_path,
            format!("{TENSOR} has shape {:?}, expected {expected:?}", embeddings.dims()),
        ));
    }
    let manifest = ArtifactManifest {
        format: artifact::FORMAT_VERSION,
        name: out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        kind: Kind::SoftPrompt,
        tensors: [(TENSOR.to_owned(), expected.to_vec())].into_iter().collect(),
        base_model_fingerprint: base.fingerprint.clone(),
        base_model_name: base.name.clone(),
        created_at: artifact::now_rfc3339(),
        training: None,
        imported_from: Some(format!(
            "PEFT adapter {} (base_model_name_or_path {:?})",
            peft_dir.display(),
            config.base_model_name_or_path.unwrap_or_default()
        )),
    };
    artifact::write(out, &manifest, &[(TENSOR.to_owned(), embeddings)], &[])?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BaseModel {
        BaseModel {
            fingerprint: "llama:abc".into(),
            name: "tiny".into(),
            hidden_size: 3,
            num_heads: 1,
            num_layers: 2,
        }
    }

    #[test]
    fn a_soft_prompt_round_trips_through_a_peft_adapter() {
        let dir = tempfile::tempdir().expect("temp dir");
        let values = Tensor::new(&[[0.5f32, -1.0, 2.0], [3.0, 0.25, -0.125]], &Device::Cpu).expect("tensor");
        let ours = dir.path().join("ours");
        let manifest = ArtifactManifest {
            format: artifact::FORMAT_VERSION,
            name: "ours".into(),
            kind: Kind::SoftPrompt,
            tensors: [(TENSOR.to_owned(), vec![2, 3])].into_iter().collect(),
            base_model_fingerprint: "llama:abc".into(),
            base_model_name: "tiny".into(),
            created_at: artifact::now_rfc3339(),
            training: None,
            imported_from: None,
        };
        artifact::write(&ours, &manifest, &[(TENSOR.to_owned(), values.clone())], &[]).expect("write");

        let peft = dir.path().join("peft");
        export(&ours, &base(), &peft).expect("export");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(peft.join(CONFIG_FILE)).expect("config"))
                .expect("json");
        assert_eq!(config["peft_type"], "PROMPT_TUNING");
        assert_eq!(config["num_virtual_tokens"], 2);
        assert_eq!(config["token_dim"], 3);

        let back = dir.path().join("back");
        let imported = import(&peft, &base(), &back).expect("import");
        assert_eq!(imported.kind, Kind::SoftPrompt);
        let (_, tensors) = artifact::read(&back).expect("read");
        assert_eq!(tensors[0].1.to_vec2::<f32>().expect("values"), values.to_vec2::<f32>().expect("values"));
    }

    #[test]
    fn adapters_that_do_not_fit_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let peft = dir.path().join("peft");
        std::fs::create_dir_all(&peft).expect("dir");
        let write_config = |json: &str| std::fs::write(peft.join(CONFIG_FILE), json).expect("config");
        let out = dir.path().join("out");

        write_config(r#"{"peft_type":"LORA","num_virtual_tokens":2}"#);
        assert!(import(&peft, &base(), &out).expect_err("lora").to_string().contains("only PROMPT_TUNING"));
        write_config(r#"{"peft_type":"PROMPT_TUNING","num_virtual_tokens":2,"token_dim":4}"#);
        assert!(import(&peft, &base(), &out).expect_err("dim").to_string().contains("token_dim is 4"));

        write_config(r#"{"peft_type":"PROMPT_TUNING","num_virtual_tokens":2,"token_dim":3}"#);
        let wrong = Tensor::zeros((5, 3), DType::F32, &Device::Cpu).expect("tensor");
        let map: HashMap<String, Tensor> = [(TENSOR.to_owned(), wrong)].into_iter().collect();
        candle_core::safetensors::save(&map, peft.join(WEIGHTS_FILE)).expect("save");
        assert!(import(&peft, &base(), &out).expect_err("shape").to_string().contains("shape [5, 3]"));

        let nan = Tensor::new(&[[f32::NAN, 0.0, 0.0], [0.0, 0.0, 0.0]], &Device::Cpu).expect("tensor");
        let map: HashMap<String, Tensor> = [(TENSOR.to_owned(), nan)].into_iter().collect();
        candle_core::safetensors::save(&map, peft.join(WEIGHTS_FILE)).expect("save");
        assert!(import(&peft, &base(), &out).expect_err("nan").to_string().contains("NaN"));
        assert!(!out.join(artifact::MANIFEST_FILE).exists(), "nothing written for a refused adapter");
    }
}
