//! Region bundles: what steers the frozen model for one region (and optionally brand) — system text,
//! the trained policy prefix and tone soft prompt, the retrieval scope and generation defaults.
//! Published versions are immutable; a bundle is shared as `Arc<Bundle>` and swapping one replaces the
//! Arc, so a request keeps the version it started with.

use std::{fmt, path::PathBuf};

/// `region[/brand]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleKey {
    pub region: String,
    pub brand: Option<String>,
}

impl fmt::Display for BundleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.brand {
            Some(brand) => write!(f, "{}/{brand}", self.region),
            None => f.write_str(&self.region),
        }
    }
}

/// Decoding defaults a bundle sets; a request's parameters override them.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationDefaults {
    pub max_tokens: u32,
    /// 0 is greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    pub repetition_penalty: f32,
}

impl Default for GenerationDefaults {
    fn default() -> Self {
        Self { max_tokens: 160, temperature: 0.0, top_p: 1.0, top_k: 0, repetition_penalty: 1.1 }
    }
}

/// A trained artifact a bundle version uses: its safetensors file and the fingerprint of the base model
/// it was trained on (checked against the served model before anything is loaded).
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRef {
    pub name: String,
    pub path: PathBuf,
    pub base_model_fingerprint: String,
    /// sha256 of the file's bytes when the bundle version was read: a version is immutable, so a file
    /// edited in place afterwards is refused rather than served under the old version number.
    pub sha256: String,
}

impl ArtifactRef {
    /// The file's bytes, when they are still the ones the version was read with.
    pub fn read_unchanged(&self) -> Result<Vec<u8>, String> {
        use sha2::{Digest, Sha256};
        let bytes = std::fs::read(&self.path).map_err(|err| format!("cannot be read: {err}"))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 != self.sha256 {
            return Err(format!(
                "changed on disk since the bundle version was read (sha256 {sha256}, the version has {}); \
                 publish a new version instead of editing an artifact in place",
                self.sha256
            ));
        }
        Ok(bytes)
    }
}

/// One immutable bundle version.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub key: BundleKey,
    pub version: u32,
    pub system_text: String,
    /// What an answer says when the policies do not answer the question (the region's voice); empty:
    /// the service's default.
    pub handover_text: String,
    pub policy_prefix: Option<ArtifactRef>,
    pub tone_soft_prompt: Option<ArtifactRef>,
    /// The region whose documents retrieval may return: at most one (loading and publishing refuse
    /// more); empty means the bundle's own region.
    pub retrieval_regions: Vec<String>,
    /// The brand whose documents (and those of no brand) retrieval may return: at most one; empty
    /// means the request's brand.
    pub retrieval_brands: Vec<String>,
    pub generation: GenerationDefaults,
}

impl Bundle {
    /// `region[/brand]@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.key, self.version)
    }
}

/// How one request on a bundle version went, for that version's traffic counters (A/B comparison).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Served {
    pub outcome: Outcome,
    /// From receipt to the last event.
    pub latency: std::time::Duration,
    pub time_to_first_token: Option<std::time::Duration>,
}

/// How a request on a bundle version ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The answer was streamed to the end.
    Ok,
    /// Retrieval or the model failed after the bundle was chosen.
    Error,
    /// The client hung up or its deadline passed before the answer ended.
    Cancelled,
    /// The model worker's queue was full (RESOURCE_EXHAUSTED): load, not a fault of the version, so
    /// an A/B comparison does not read it as one.
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Ok, Outcome::Error, Outcome::Cancelled, Outcome::Rejected];

    /// This outcome's place in [`Outcome::ALL`], for counters kept as an array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// How a request that failed with `err` ended.
    pub fn of_failure(err: &crate::ServiceError) -> Self {
        match err {
            crate::ServiceError::ResourceExhausted(_) => Outcome::Rejected,
            crate::ServiceError::Cancelled(_) => Outcome::Cancelled,
            _ => Outcome::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Resolves a region/brand to the bundle version that serves it (the seam between generation and the
/// bundle registry).
pub trait BundleRegistry: Send + Sync + std::fmt::Debug {
    /// The active version of `key`, or exactly `version` when given. NOT_FOUND lists what exists.
    fn resolve(
        &self,
        key: &BundleKey,
        version: Option<u32>,
    ) -> Result<std::sync::Arc<Bundle>, crate::ServiceError>;

    /// The version one request is served by: `pinned` when the request names one, otherwise the
    /// active version — or the A/B candidate, for the share of conversations assigned to it (the
    /// same `conversation_id` always lands on the same side).
    fn route(
        &self,
        key: &BundleKey,
        pinned: Option<u32>,
        _conversation_id: &str,
    ) -> Result<std::sync::Arc<Bundle>, crate::ServiceError> {
        self.resolve(key, pinned)
    }

    /// Counts a request served by `bundle` (registries without traffic counters ignore it).
    fn record(&self, _bundle: &Bundle, _served: Served) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn every_outcome_sits_at_its_index_in_all() {
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome.index(), i, "{outcome:?}");
        }
    }

    #[test]
    fn an_artifact_edited_after_the_version_was_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tensors.safetensors");
        std::fs::write(&path, b"trained bytes").unwrap();
        let artifact = ArtifactRef {
            name: "tone-soft-prompt".into(),
            path: path.clone(),
            base_model_fingerprint: "llama:0".into(),
            sha256: hex::encode(Sha256::digest(b"trained bytes")),
        };
        assert_eq!(artifact.read_unchanged().unwrap(), b"trained bytes");
        std::fs::write(&path, b"edited in place").unwrap();
        let err = artifact.read_unchanged().unwrap_err();
        assert!(err.contains("changed on disk"), "{err}");
        std::fs::remove_file(&path).unwrap();
        assert!(artifact.read_unchanged().unwrap_err().contains("cannot be read"));
    }
}
