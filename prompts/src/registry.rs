//! Bundles read from a directory: `<dir>/<region>[/<brand>]/v<N>/bundle.toml`, artifacts beside it.
//! The highest version of each region/brand is the one served until activation and rollback land.
//!
//! `bundle.toml`:
//! ```toml
//! system_text = "You are ..."
//! description = "..."                # optional
//! [retrieval]                         # optional; default: the bundle's own region, every brand
//! regions = ["uk"]
//! brands = []
//! [generation]                        # optional; defaults from rudder-core
//! max_tokens = 160
//! [policy_prefix]                     # optional trained artifact
//! file = "policy-prefix.safetensors"
//! base_model_fingerprint = "llama:<sha256>"
//! [tone_soft_prompt]                  # optional, same fields
//! ```

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use rudder_core::{Bundle, BundleKey, BundleRegistry, GenerationDefaults, ServiceError, bundle::ArtifactRef};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum BundleFileError {
    #[error("cannot read bundle directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    system_text: String,
    /// Accepted so bundle files can say what they are for; PromptService will show it once it lands.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    #[serde(default)]
    retrieval: Option<RetrievalScope>,
    #[serde(default)]
    generation: Option<GenerationFile>,
    #[serde(default)]
    policy_prefix: Option<ArtifactFile>,
    #[serde(default)]
    tone_soft_prompt: Option<ArtifactFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrievalScope {
    regions: Vec<String>,
    #[serde(default)]
    brands: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerationFile {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<u32>,
    repetition_penalty: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactFile {
    file: PathBuf,
    base_model_fingerprint: String,
}

/// Every bundle version found under a directory.
#[derive(Debug, Default)]
pub struct FileBundles {
    versions: BTreeMap<BundleKey, BTreeMap<u32, Arc<Bundle>>>,
}

impl FileBundles {
    /// Reads every `bundle.toml` under `dir`. A missing directory gives no bundles.
    pub fn load(dir: &Path) -> Result<Self, BundleFileError> {
        let mut bundles = Self::default();
        if !dir.is_dir() {
            return Ok(bundles);
        }
        let mut pending = vec![(dir.to_owned(), Vec::<String>::new())];
        while let Some((path, names)) = pending.pop() {
            for entry in read_dir(&path)? {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = entry.path();
                if !child.is_dir() {
                    continue;
                }
                match (name.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()), names.as_slice()) {
                    (Some(version), [region]) => bundles.add(&child, region, None, version)?,
                    (Some(version), [region, brand]) => bundles.add(&child, region, Some(brand), version)?,
                    _ if names.len() < 2 => pending.push((child, [names.clone(), vec![name]].concat())),
                    _ => {}
                }
            }
        }
        Ok(bundles)
    }

    fn add(
        &mut self,
        dir: &Path,
        region: &str,
        brand: Option<&str>,
        version: u32,
    ) -> Result<(), BundleFileError> {
        let path = dir.join("bundle.toml");
        let invalid = |reason: String| BundleFileError::Invalid { path: path.clone(), reason };
        let text = std::fs::read_to_string(&path)
            .map_err(|source| BundleFileError::Io { path: path.clone(), source })?;
        let file: BundleFile = toml::from_str(&text).map_err(|err| invalid(err.message().to_owned()))?;
        if file.system_text.trim().is_empty() {
            return Err(invalid("system_text is empty".into()));
        }
        let artifact = |name: &str, a: Option<ArtifactFile>| {
            a.map(|a| ArtifactRef {
                name: name.to_owned(),
                path: dir.join(a.file),
                base_model_fingerprint: a.base_model_fingerprint,
            })
        };
        let defaults = GenerationDefaults::default();
        let generation = match file.generation {
            Some(g) => GenerationDefaults {
                max_tokens: g.max_tokens.unwrap_or(defaults.max_tokens),
                temperature: g.temperature.unwrap_or(defaults.temperature),
                top_p: g.top_p.unwrap_or(defaults.top_p),
                top_k: g.top_k.unwrap_or(defaults.top_k),
                repetition_penalty: g.repetition_penalty.unwrap_or(defaults.repetition_penalty),
            },
            None => defaults,
        };
        let key = BundleKey { region: region.to_owned(), brand: brand.map(str::to_owned) };
        let (retrieval_regions, retrieval_brands) = match file.retrieval {
            Some(scope) => (scope.regions, scope.brands),
            None => (vec![region.to_owned()], Vec::new()),
        };
        let bundle = Bundle {
            key: key.clone(),
            version,
            system_text: file.system_text,
            policy_prefix: artifact("policy-prefix", file.policy_prefix),
            tone_soft_prompt: artifact("tone-soft-prompt", file.tone_soft_prompt),
            retrieval_regions,
            retrieval_brands,
            generation,
        };
        self.versions.entry(key).or_default().insert(version, Arc::new(bundle));
        Ok(())
    }

    /// `region[/brand]` of every bundle.
    pub fn keys(&self) -> Vec<String> {
        self.versions.keys().map(ToString::to_string).collect()
    }
}

fn read_dir(path: &Path) -> Result<Vec<std::fs::DirEntry>, BundleFileError> {
    let io = |source| BundleFileError::Io { path: path.to_owned(), source };
    let mut entries: Vec<_> = std::fs::read_dir(path).map_err(io)?.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

impl BundleRegistry for FileBundles {
    fn resolve(&self, key: &BundleKey, version: Option<u32>) -> Result<Arc<Bundle>, ServiceError> {
        let versions = self.versions.get(key).ok_or_else(|| ServiceError::NotFound {
            what: "region/brand bundle",
            name: key.to_string(),
            known: self.keys(),
        })?;
        let found = match version {
            Some(version) => versions.get(&version),
            None => versions.values().next_back(),
        };
        found.cloned().ok_or_else(|| ServiceError::NotFound {
            what: "bundle version",
            name: format!("{key}@{}", version.unwrap_or(0)),
            known: versions.keys().map(|v| format!("{key}@{v}")).collect(),
        })
    }
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
    fn the_highest_version_serves_and_an_exact_version_can_be_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "uk/v1/bundle.toml", "system_text = \"old\"\n");
        write(dir.path(), "uk/v2/bundle.toml", "system_text = \"new\"\n[generation]\nmax_tokens = 64\n");
        write(dir.path(), "uk/acme/v1/bundle.toml", "system_text = \"brand\"\n");
        let bundles = FileBundles::load(dir.path()).unwrap();
        let uk = BundleKey { region: "uk".into(), brand: None };
        let active = bundles.resolve(&uk, None).unwrap();
        assert_eq!(
            (active.version, active.system_text.as_str(), active.generation.max_tokens),
            (2, "new", 64)
        );
        assert_eq!(active.retrieval_regions, ["uk"]);
        assert_eq!(bundles.resolve(&uk, Some(1)).unwrap().system_text, "old");
        let brand = BundleKey { region: "uk".into(), brand: Some("acme".into()) };
        assert_eq!(bundles.resolve(&brand, None).unwrap().id(), "uk/acme@1");
    }

    #[test]
    fn unknown_regions_and_versions_list_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "us/v1/bundle.toml", "system_text = \"hi\"\n");
        let bundles = FileBundles::load(dir.path()).unwrap();
        let err = bundles.resolve(&BundleKey { region: "fr".into(), brand: None }, None).unwrap_err();
        assert!(matches!(&err, ServiceError::NotFound { known, .. } if known == &["us"]), "{err}");
        let err = bundles.resolve(&BundleKey { region: "us".into(), brand: None }, Some(9)).unwrap_err();
        assert!(err.to_string().contains("us@1"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_a_bundle_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "eu/v1/bundle.toml", "system_text = \"x\"\ntemprature = 1\n");
        let err = FileBundles::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("eu/v1/bundle.toml") && err.contains("temprature"), "{err}");
    }
}
