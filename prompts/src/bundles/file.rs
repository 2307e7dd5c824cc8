//! Bundle versions on disk: `<dir>/<region>[/<brand>]/v<N>/bundle.toml`, artifacts beside it or
//! referenced by a relative path. Reading a version also fingerprints it (sha256 over `bundle.toml`
//! and every artifact file), which is how the registry notices a version changed on disk and whether
//! a stored evaluation still describes it. Directories whose name is not `v<digits>` (a publish in
//! progress, notes) are ignored.
//!
//! `bundle.toml`:
//! ```toml
//! system_text = "You are ..."
//! handover_text = "..."              # optional; said when the policies do not answer the question
//! description = "..."                # optional
//! published_by = "alice"             # optional; written by PublishBundle
//! published_at = "2026-11-21T10:00:00Z"
//! [retrieval]                         # optional; default: the bundle's own region, the request's brand
//! regions = ["uk"]                    # at most one
//! brands = []                         # at most one
//! [generation]                        # optional; defaults from rudder-core
//! max_tokens = 160
//! [policy_prefix]                     # optional trained artifact
//! file = "policy-prefix/tensors.safetensors"
//! base_model_fingerprint = "llama:<sha256>"
//! sha256 = "<sha256 of the file>"    # optional; the version is refused when the file differs
//! [tone_soft_prompt]                  # optional, same fields
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use rudder_core::{Bundle, BundleKey, GenerationDefaults, bundle::ArtifactRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    artifact::{self, ArtifactManifest},
    train::Kind,
};

pub const BUNDLE_FILE: &str = "bundle.toml";

#[derive(Debug, thiserror::Error)]
pub enum BundleFileError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleFile {
    pub system_text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub handover_text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub published_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub published_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<RetrievalScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_prefix: Option<ArtifactFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone_soft_prompt: Option<ArtifactFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrievalScope {
    pub regions: Vec<String>,
    #[serde(default)]
    pub brands: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerationFile {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub repetition_penalty: Option<f32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArtifactFile {
    pub file: PathBuf,
    pub base_model_fingerprint: String,
    /// The tensors file's sha256 when the version was published: a version is immutable, so a file
    /// that no longer matches is refused when the version is read (PublishBundle always writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A trained artifact of a bundle version: where its tensors are, its manifest when the trainer's
/// `manifest.json` sits beside them, and the sha256 of the tensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactInfo {
    pub kind: Kind,
    pub reference: ArtifactRef,
    pub manifest: Option<ArtifactManifest>,
    pub sha256: String,
}

/// One bundle version as read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionOnDisk {
    pub bundle: Arc<Bundle>,
    pub dir: PathBuf,
    pub description: String,
    pub published_by: String,
    pub published_at: String,
    pub artifacts: Vec<ArtifactInfo>,
    /// sha256 over `bundle.toml` and every artifact file.
    pub digest: String,
}

/// Every bundle version found under `dir` (none when it does not exist), by key and version.
pub fn scan(dir: &Path) -> Result<BTreeMap<BundleKey, BTreeMap<u32, VersionOnDisk>>, BundleFileError> {
    let mut found: BTreeMap<BundleKey, BTreeMap<u32, VersionOnDisk>> = BTreeMap::new();
    for (key, version, path) in version_dirs(dir)? {
        let on_disk = read_version(&path, &key, version)?;
        found.entry(key).or_default().insert(version, on_disk);
    }
    Ok(found)
}

/// `(key, version, directory)` of every `v<N>` directory under `dir`, in name order.
pub fn version_dirs(dir: &Path) -> Result<Vec<(BundleKey, u32, PathBuf)>, BundleFileError> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    let mut pending = vec![(dir.to_owned(), Vec::<String>::new())];
    while let Some((path, names)) = pending.pop() {
        for entry in read_dir(&path)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = entry.path();
            if !child.is_dir() {
                continue;
            }
            let version = name.strip_prefix('v').filter(|n| n.bytes().all(|b| b.is_ascii_digit()));
            match (version.and_then(|n| n.parse::<u32>().ok()), names.as_slice()) {
                (Some(version), [region]) => found.push((key(region, None), version, child)),
                (Some(version), [region, brand]) => found.push((key(region, Some(brand)), version, child)),
                (None, _) if names.len() < 2 && !name.starts_with('.') => {
                    pending.push((child, [names.clone(), vec![name]].concat()));
                }
                _ => {}
            }
        }
    }
    Ok(found)
}

fn key(region: &str, brand: Option<&str>) -> BundleKey {
    BundleKey { region: region.to_owned(), brand: brand.map(str::to_owned) }
}

/// Why a bundle may name at most one retrieval region (also enforced when one is published).
pub(crate) const MULTIPLE_REGIONS: &str =
    "at most one region: retrieval filters each question to one region's documents";
/// Why a bundle may name at most one retrieval brand (also enforced when one is published).
pub(crate) const MULTIPLE_BRANDS: &str =
    "at most one brand: retrieval filters each question to one brand's documents and those of no brand";

/// Reads and fingerprints the version in `dir`.
pub fn read_version(dir: &Path, key: &BundleKey, version: u32) -> Result<VersionOnDisk, BundleFileError> {
    let path = dir.join(BUNDLE_FILE);
    let invalid = |reason: String| BundleFileError::Invalid { path: path.clone(), reason };
    let bytes = std::fs::read(&path).map_err(|source| BundleFileError::Io { path: path.clone(), source })?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| invalid("is not UTF-8".into()))?;
    let file: BundleFile = toml::from_str(&text).map_err(|err| invalid(err.message().to_owned()))?;
    if file.system_text.trim().is_empty() {
        return Err(invalid("system_text is empty".into()));
    }
    let mut digest = Sha256::new();
    digest.update(&bytes);
    let mut artifacts = Vec::new();
    for (kind, name, entry) in [
        (Kind::Prefix, "policy-prefix", &file.policy_prefix),
        (Kind::SoftPrompt, "tone-soft-prompt", &file.tone_soft_prompt),
    ] {
        let Some(entry) = entry else { continue };
        let tensors_path = dir.join(&entry.file);
        let tensor_bytes = std::fs::read(&tensors_path).map_err(|err| {
            invalid(format!("{name}: cannot read artifact {}: {err}", tensors_path.display()))
        })?;
        digest.update(name.as_bytes());
        digest.update(&tensor_bytes);
        let manifest =
            tensors_path.parent().and_then(|artifact_dir| artifact::read_manifest(artifact_dir).ok());
        let sha256 = hex(&Sha256::digest(&tensor_bytes));
        if let Some(pinned) = entry.sha256.as_deref().filter(|pinned| *pinned != sha256) {
            return Err(invalid(format!(
                "{name}: artifact {} has sha256 {sha256}, the version pins {pinned}: changed after it was \
                 published (publish a new version instead)",
                tensors_path.display()
            )));
        }
        artifacts.push(ArtifactInfo {
            kind,
            reference: ArtifactRef {
                name: name.to_owned(),
                path: tensors_path,
                base_model_fingerprint: entry.base_model_fingerprint.clone(),
                sha256: sha256.clone(),
            },
            manifest,
            sha256,
        });
    }
    let defaults = GenerationDefaults::default();
    let generation = match &file.generation {
        Some(g) => GenerationDefaults {
            max_tokens: g.max_tokens.unwrap_or(defaults.max_tokens),
            temperature: g.temperature.unwrap_or(defaults.temperature),
            top_p: g.top_p.unwrap_or(defaults.top_p),
            top_k: g.top_k.unwrap_or(defaults.top_k),
            repetition_penalty: g.repetition_penalty.unwrap_or(defaults.repetition_penalty),
        },
        None => defaults,
    };
    let (retrieval_regions, retrieval_brands) = match file.retrieval {
        Some(scope) => (scope.regions, scope.brands),
        None => (vec![key.region.clone()], Vec::new()),
    };
    if retrieval_regions.len() > 1 {
        return Err(invalid(format!("retrieval.regions: {MULTIPLE_REGIONS} (got {retrieval_regions:?})")));
    }
    if retrieval_brands.len() > 1 {
        return Err(invalid(format!("retrieval.brands: {MULTIPLE_BRANDS} (got {retrieval_brands:?})")));
    }
    let artifact_ref = |kind: Kind| artifacts.iter().find(|a| a.kind == kind).map(|a| a.reference.clone());
    let bundle = Bundle {
        key: key.clone(),
        version,
        system_text: file.system_text,
        handover_text: file.handover_text,
        policy_prefix: artifact_ref(Kind::Prefix),
        tone_soft_prompt: artifact_ref(Kind::SoftPrompt),
        retrieval_regions,
        retrieval_brands,
        generation,
    };
    Ok(VersionOnDisk {
        bundle: Arc::new(bundle),
        dir: dir.to_owned(),
        description: file.description,
        published_by: file.published_by,
        published_at: file.published_at,
        artifacts,
        digest: hex(&digest.finalize()),
    })
}

/// A cheap signature of everything under `dir` (paths, sizes, modification times): when it is
/// unchanged, so are the bundles, and the watcher need not re-read them.
pub fn tree_signature(dir: &Path) -> String {
    let mut digest = Sha256::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let Ok(entries) = read_dir(&path) else { continue };
        for entry in entries {
            let Ok(meta) = entry.metadata() else { continue };
            digest.update(entry.path().to_string_lossy().as_bytes());
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            digest.update(meta.len().to_le_bytes());
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            digest.update(modified.map_or(0, |d| d.as_nanos()).to_le_bytes());
        }
    }
    hex(&digest.finalize())
}

fn read_dir(path: &Path) -> Result<Vec<std::fs::DirEntry>, BundleFileError> {
    let io = |source| BundleFileError::Io { path: path.to_owned(), source };
    let mut entries: Vec<_> = std::fs::read_dir(path).map_err(io)?.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn versions_of_regions_and_brands_are_found_with_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "uk/v1/bundle.toml", "system_text = \"old\"\n");
        write(dir.path(), "uk/v2/bundle.toml", "system_text = \"new\"\n[generation]\nmax_tokens = 64\n");
        write(dir.path(), "uk/v3.partial-1/bundle.toml", "system_text = \"half\"\n");
        write(dir.path(), "uk/acme/v1/bundle.toml", "system_text = \"brand\"\n");
        let found = scan(dir.path()).unwrap();
        let uk = &found[&key("uk", None)];
        assert_eq!(uk.keys().copied().collect::<Vec<_>>(), [1, 2], "the partial publish is ignored");
        let v2 = &uk[&2].bundle;
        assert_eq!((v2.system_text.as_str(), v2.generation.max_tokens), ("new", 64));
        assert_eq!(v2.retrieval_regions, ["uk"]);
        assert_eq!(found[&key("uk", Some("acme"))][&1].bundle.id(), "uk/acme@1");
        assert_ne!(uk[&1].digest, uk[&2].digest);
    }

    #[test]
    fn an_unknown_key_or_a_missing_artifact_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "eu/v1/bundle.toml", "system_text = \"x\"\ntemprature = 1\n");
        let err = scan(dir.path()).unwrap_err().to_string();
        assert!(err.contains("eu/v1/bundle.toml") && err.contains("temprature"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "eu/v1/bundle.toml",
            "system_text = \"x\"\n[policy_prefix]\nfile = \"gone.safetensors\"\nbase_model_fingerprint = \"llama:0\"\n",
        );
        let err = scan(dir.path()).unwrap_err().to_string();
        assert!(err.contains("eu/v1/bundle.toml") && err.contains("gone.safetensors"), "{err}");
    }

    #[test]
    fn a_bundle_scoped_to_two_retrieval_regions_or_brands_is_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        for (scope, field) in [
            ("regions = [\"eu\", \"uk\"]", "retrieval.regions"),
            ("regions = [\"eu\"]\nbrands = [\"acme\", \"outlet\"]", "retrieval.brands"),
        ] {
            write(dir.path(), "eu/v1/bundle.toml", &format!("system_text = \"x\"\n[retrieval]\n{scope}\n"));
            let err = scan(dir.path()).unwrap_err().to_string();
            assert!(err.contains("eu/v1/bundle.toml") && err.contains(field), "{err}");
        }
        write(
            dir.path(),
            "eu/v1/bundle.toml",
            "system_text = \"x\"\n[retrieval]\nregions = [\"uk\"]\nbrands = [\"outlet\"]\n",
        );
        let bundle = &scan(dir.path()).unwrap()[&key("eu", None)][&1].bundle;
        assert_eq!(
            (bundle.retrieval_regions.as_slice(), bundle.retrieval_brands.as_slice()),
            (&["uk".to_owned()][..], &["outlet".to_owned()][..])
        );
    }

    #[test]
    fn an_artifact_that_no_longer_matches_its_pinned_sha256_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "eu/v1/prefix.safetensors", "as published");
        let pinned = hex(&Sha256::digest(b"as published"));
        let toml = format!(
            "system_text = \"x\"\n[policy_prefix]\nfile = \"prefix.safetensors\"\n\
             base_model_fingerprint = \"llama:0\"\nsha256 = \"{pinned}\"\n"
        );
        write(dir.path(), "eu/v1/bundle.toml", &toml);
        let found = scan(dir.path()).unwrap();
        assert_eq!(found[&key("eu", None)][&1].artifacts[0].sha256, pinned);
        write(dir.path(), "eu/v1/prefix.safetensors", "edited in place");
        let err = scan(dir.path()).unwrap_err().to_string();
        assert!(err.contains("pins") && err.contains(&pinned), "{err}");
    }

    #[test]
    fn the_tree_signature_changes_when_a_file_does() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "us/v1/bundle.toml", "system_text = \"hi\"\n");
        let before = tree_signature(dir.path());
        assert_eq!(before, tree_signature(dir.path()));
        write(dir.path(), "us/v2/bundle.toml", "system_text = \"hello\"\n");
        assert_ne!(before, tree_signature(dir.path()));
    }
}
