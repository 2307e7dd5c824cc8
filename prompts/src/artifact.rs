//! The trained-artifact format: a directory holding the tensors (`tensors.safetensors`), a manifest
//! (`manifest.json`: kind, shapes, base-model fingerprint, training-data hash, hyper-parameters,
//! validation loss before and after, steps, wall time, creation time) and, for trained ones, the loss
//! curve (`loss.svg`). Every file is written to a temp name, synced and renamed, so a crash never
//! leaves a half-written artifact behind.
//!
//! Tensor names are the ones serving reads (`rudder_generation::steering`): `prefix_keys` and
//! `prefix_values` `[layers, kv_heads, positions, head_dim]`, or `prompt_embeddings`
//! `[virtual_tokens, hidden]` (the name Hugging Face PEFT uses).

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
    path::{Path, PathBuf},
};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

pub use rudder_core::time::now_rfc3339;

pub const TENSORS_FILE: &str = "tensors.safetensors";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const LOSS_CURVE_FILE: &str = "loss.svg";

/// What an artifact holds: which steering was trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Prompt tuning: N virtual tokens of the model's embedding size.
    SoftPrompt,
    /// Prefix tuning: keys and values for P positions in every layer.
    Prefix,
}

/// The manifest format written here.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io { path: path.to_owned(), source }
}

/// How the artifact came to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// sha256 of each data file's bytes, by path as given.
    pub data_sha256: BTreeMap<String, String>,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// The trainer's settings (learning rate, batch size, seed, init, ...).
    pub hyper_parameters: serde_json::Value,
    /// Mean NLL per answer token on the validation examples.
    pub validation_loss_before: f64,
    pub validation_loss_after: f64,
    pub steps: u64,
    /// The step whose parameters the artifact holds (the best validation loss).
    #[serde(default)]
    pub best_step: Option<u64>,
    /// An artifact held fixed while this one trained (`--with`).
    #[serde(default)]
    pub companion: Option<String>,
    pub wall_time_s: f64,
    pub train_tokens_per_s: f64,
    /// Why training ended: "max-steps" or "early-stopping".
    pub stopped_by: String,
    /// The command line that produced it.
    pub command: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactManifest {
    pub format: u32,
    pub name: String,
    pub kind: Kind,
    /// Shape of every tensor in `tensors.safetensors`.
    pub tensors: BTreeMap<String, Vec<usize>>,
    /// `<architecture>:<sha256>` of the base model it was trained on: serving refuses any other.
    pub base_model_fingerprint: String,
    pub base_model_name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Set for artifacts this trainer produced; None for imported ones.
    pub training: Option<Training>,
    /// Where an imported artifact came from (e.g. a PEFT adapter directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// Writes the artifact directory `dir`: tensors, manifest, and any extra text files (the loss curve).
pub fn write(
    dir: &Path,
    manifest: &ArtifactManifest,
    tensors: &[(String, Tensor)],
    extra_files: &[(&str, String)],
) -> Result<(), ArtifactError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let invalid = |reason: String| ArtifactError::Invalid { path: dir.join(TENSORS_FILE), reason };
    let mut map = HashMap::new();
    for (name, tensor) in tensors {
        check_finite(name, tensor).map_err(invalid)?;
        map.insert(name.clone(), tensor.clone());
    }
    let tensors_path = dir.join(TENSORS_FILE);
    let tmp = tmp_path(&tensors_path);
    candle_core::safetensors::save(&map, &tmp).map_err(|err| invalid(err.to_string()))?;
    sync_and_rename(&tmp, &tensors_path)?;
    for (file, content) in extra_files {
        write_file(&dir.join(file), content.as_bytes())?;
    }
    // The manifest last: a directory with a manifest is a complete artifact.
    let json = serde_json::to_string_pretty(manifest).map_err(|err| invalid(err.to_string()))?;
    write_file(&dir.join(MANIFEST_FILE), json.as_bytes())
}

/// Reads an artifact directory (or its tensors file): the manifest, and the tensors checked against
/// it (shapes as listed, every value finite).
pub fn read(path: &Path) -> Result<(ArtifactManifest, Vec<(String, Tensor)>), ArtifactError> {
    let dir =
        if path.is_dir() { path.to_owned() } else { path.parent().unwrap_or(Path::new(".")).to_owned() };
    let manifest = read_manifest(&dir)?;
    let tensors_path = dir.join(TENSORS_FILE);
    let invalid = |reason: String| ArtifactError::Invalid { path: tensors_path.clone(), reason };
    let loaded = candle_core::safetensors::load(&tensors_path, &Device::Cpu)
        .map_err(|err| invalid(format!("not a readable safetensors file: {err}")))?;
    let mut tensors = Vec::new();
    for (name, expected) in &manifest.tensors {
        let tensor = loaded
            .get(name)
            .ok_or_else(|| invalid(format!("has no tensor {name} (the manifest lists it)")))?
            .to_dtype(DType::F32)
            .map_err(|err| invalid(err.to_string()))?;
        if tensor.dims() != expected.as_slice() {
            return Err(invalid(format!(
                "tensor {name} has shape {:?}, the manifest says {expected:?}",
                tensor.dims()
            )));
        }
        check_finite(name, &tensor).map_err(invalid)?;
        tensors.push((name.clone(), tensor));
    }
    Ok((manifest, tensors))
}

pub fn read_manifest(dir: &Path) -> Result<ArtifactManifest, ArtifactError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let manifest: ArtifactManifest = serde_json::from_str(&text)
        .map_err(|err| ArtifactError::Invalid { path: path.clone(), reason: err.to_string() })?;
    if manifest.format != FORMAT_VERSION {
        return Err(ArtifactError::Invalid {
            path,
            reason: format!("manifest format {} is not the supported {FORMAT_VERSION}", manifest.format),
        });
    }
    Ok(manifest)
}

pub(crate) fn check_finite(name: &str, tensor: &Tensor) -> Result<(), String> {
    let values = tensor
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|err| err.to_string())?;
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(format!("tensor {name} has NaN or infinite values"))
    }
}

/// Writes `bytes` to `path` through a synced temp file and a rename.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let tmp = tmp_path(path);
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    drop(file);
    sync_and_rename(&tmp, path)
}

pub(crate) fn sync_and_rename(tmp: &Path, path: &Path) -> Result<(), ArtifactError> {
    std::fs::File::open(tmp).and_then(|f| f.sync_all()).map_err(io(tmp))?;
    std::fs::rename(tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent() {
        // The rename itself is durable only once the directory is synced.
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(io(parent))?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(tensors: &[(String, Tensor)]) -> ArtifactManifest {
        ArtifactManifest {
            format: FORMAT_VERSION,
            name: "test".into(),
            kind: Kind::SoftPrompt,
            tensors: tensors.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect(),
            base_model_fingerprint: "llama:abc".into(),
            base_model_name: "tiny".into(),
            created_at: now_rfc3339(),
            training: None,
            imported_from: None,
        }
    }

    #[test]
    fn an_artifact_round_trips_and_misfits_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tensor = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).expect("tensor");
        let tensors = vec![("prompt_embeddings".to_owned(), tensor)];
        let written = manifest(&tensors);
        write(dir.path(), &written, &tensors, &[("loss.svg", "<svg/>".into())]).expect("write");
        let (read_back, loaded) = read(dir.path()).expect("read");
        assert_eq!(read_back, written);
        assert_eq!(loaded[0].1.to_vec2::<f32>().expect("values"), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");

        // A manifest that disagrees with the tensors' shapes.
        let mut wrong = written.clone();
        wrong.tensors.insert("prompt_embeddings".into(), vec![3, 2]);
        write_file(&dir.path().join(MANIFEST_FILE), serde_json::to_string(&wrong).expect("json").as_bytes())
            .expect("write");
        let err = read(dir.path()).expect_err("shape mismatch");
        assert!(err.to_string().contains("has shape [2, 2]"), "{err}");

        // Non-finite values are never written.
        let nan = vec![("prompt_embeddings".to_owned(), Tensor::new(&[f32::NAN], &Device::Cpu).expect("t"))];
        let other = tempfile::tempdir().expect("temp dir");
        let err = write(other.path(), &manifest(&nan), &nan, &[]).expect_err("NaN refused");
        assert!(err.to_string().contains("NaN"), "{err}");
        assert!(!other.path().join(TENSORS_FILE).exists() && !other.path().join(MANIFEST_FILE).exists());
    }
}
