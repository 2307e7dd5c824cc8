//! A configuration value that must never reach a log line or `rudder config show`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Shown as `[redacted]` by `Debug` and when serialized; read the value with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub const REDACTED: &'static str = "[redacted]";

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself, for the one place that needs it (e.g. an API-key header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn shown(&self) -> &'static str {
        if self.0.is_empty() { "" } else { Self::REDACTED }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?})", self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.shown())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let shown =
            toml::to_string(&std::collections::BTreeMap::from([("key", secret.clone())])).unwrap_or_default();
        assert!(!shown.contains("hunter2") && shown.contains(Secret::REDACTED), "{shown}");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn an_empty_secret_shows_as_empty() {
        assert_eq!(format!("{:?}", Secret::default()), "Secret(\"\")");
    }
}
