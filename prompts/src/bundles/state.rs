//! Which version of each bundle serves, persisted so activation and rollback survive a restart:
//! `state.json` under the registry's state directory, replaced whole through a synced temp file and
//! a rename (a crash leaves the old state or the new one, never half of either).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rudder_core::{BundleKey, ServiceError};
use serde::{Deserialize, Serialize};

use crate::artifact;

pub const STATE_FILE: &str = "state.json";
const FORMAT: u32 = 1;

/// An A/B candidate: a version serving a share of conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub version: u32,
    /// 1..=99.
    pub percent: u32,
}

/// One bundle's activation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activation {
    pub active: u32,
    /// Versions active before, oldest first: rollback returns to the last one.
    #[serde(default)]
    pub previous: Vec<u32>,
    #[serde(default)]
    pub candidate: Option<Candidate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By `region[/brand]`.
    pub bundles: BTreeMap<String, Activation>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    bundles: BTreeMap<String, Activation>,
}

impl State {
    /// Reads `path`; a missing file is the empty state.
    pub fn load(path: &Path) -> Result<Self, ServiceError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => return Err(ServiceError::Internal(format!("{}: {err}", path.display()))),
        };
        let file: StateFile = serde_json::from_str(&text)
            .map_err(|err| ServiceError::Internal(format!("{}: {err}", path.display())))?;
        if file.format != FORMAT {
            return Err(ServiceError::Internal(format!(
                "{}: state format {} is not the supported {FORMAT}",
                path.display(),
                file.format
            )));
        }
        Ok(Self { bundles: file.bundles })
    }

    /// Replaces the file at `path` with this state, durably.
    pub fn save(&self, path: &Path) -> Result<(), ServiceError> {
        let file = StateFile { format: FORMAT, bundles: self.bundles.clone() };
        let json = serde_json::to_string_pretty(&file)
            .map_err(|err| ServiceError::Internal(format!("cannot encode the bundle state: {err}")))?;
        artifact::write_file(path, json.as_bytes())
            .map_err(|err| ServiceError::Unavailable(format!("cannot save the bundle state: {err}")))
    }

    pub fn get(&self, key: &BundleKey) -> Option<&Activation> {
        self.bundles.get(&key.to_string())
    }

    pub fn set(&mut self, key: &BundleKey, activation: Activation) {
        self.bundles.insert(key.to_string(), activation);
    }
}

/// Where the state lives under a state directory.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        assert_eq!(State::load(&path).unwrap(), State::default());
        let mut state = State::default();
        let uk = BundleKey { region: "uk".into(), brand: None };
        state.set(
            &uk,
            Activation {
                active: 3,
                previous: vec![1, 2],
                candidate: Some(Candidate { version: 4, percent: 10 }),
            },
        );
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), state);
        std::fs::write(&path, "{\"format\": 9, \"bundles\": {}}").unwrap();
        assert!(State::load(&path).unwrap_err().to_string().contains("format 9"));
    }
}
