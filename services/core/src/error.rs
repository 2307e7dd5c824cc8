//! The error every service answers with, by kind. Each crate keeps its own error enum and converts it
//! into a [`ServiceError`]; rudder-proto maps a `ServiceError` to a gRPC status in exactly one place.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A request field is wrong; `field` names it as the API spells it.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// An unknown region, brand, bundle or document; `known` lists what exists.
    #[error("unknown {what} {name:?}; {}", known_list(known))]
    NotFound { what: &'static str, name: String, known: Vec<String> },
    /// The request is well-formed but the system is not in a state to serve it (e.g. an artifact
    /// trained on another base model).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A queue or limit is full; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency is unreachable; retry with back-off.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's key does not allow this (its role, or its regions and brands).
    #[error("{0}")]
    PermissionDenied(String),
    /// No valid key was presented.
    #[error("{0}")]
    Unauthenticated(String),
    /// The client went away or its deadline passed.
    #[error("{0}")]
    Cancelled(String),
    /// A bug or an unexpected failure inside rudder.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field: field.into(), reason: reason.into() }
    }
}

/// "known: a, b", or "none is known" for an empty list (a message ending in "known: " reads as cut off).
fn known_list(known: &[String]) -> String {
    if known.is_empty() { "none is known".to_owned() } else { format!("known: {}", known.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_lists_what_is_known_or_says_nothing_is() {
        let err = |known: &[&str]| {
            ServiceError::NotFound {
                what: "document",
                name: "x".into(),
                known: known.iter().map(|k| k.to_string()).collect(),
            }
            .to_string()
        };
        assert_eq!(err(&["a", "b"]), "unknown document \"x\"; known: a, b");
        assert_eq!(err(&[]), "unknown document \"x\"; none is known");
    }
}
