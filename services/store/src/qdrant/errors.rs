//! Turning qdrant-client errors and write acknowledgements into [`StoreError`]s: a server that cannot
//! be reached (refused or failed connection, unavailable, timed out, overloaded) is `Unavailable`
//! with the URL named; anything else is `Backend` with the operation that failed. The API key is
//! scrubbed from every message (qdrant-client quotes a malformed key in its error).

use qdrant_client::{
    QdrantError,
    qdrant::{PointsOperationResponse, UpdateStatus},
};
use rudder_core::{Secret, StoreError};
use std::fmt;
use tonic::{Code, Status};

pub(super) const QDRANT: &str = "qdrant";

/// Where the store connects: the URL for messages, and the API key only to scrub it from them.
pub(super) struct Endpoint {
    url: String,
    api_key: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| Secret::REDACTED))
            .finish()
    }
}

impl Endpoint {
    pub(super) fn new(url: &str, api_key: Option<&str>) -> Self {
        Self { url: url.to_owned(), api_key: api_key.filter(|key| !key.is_empty()).map(str::to_owned) }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The store error for a failed call during `operation`.
    pub(super) fn error(&self, operation: &'static str, err: QdrantError) -> StoreError {
        match &err {
            QdrantError::ResponseError { status } if unreachable(status) => {
                self.unavailable(format!("{}: {}", self.url, status.message()))
            }
            QdrantError::ResourceExhaustedError { status, retry_after_seconds } => self.unavailable(format!(
                "{}: {} (retry after {retry_after_seconds} s)",
                self.url,
                status.message()
            )),
            QdrantError::InvalidUri(uri) => {
                self.unavailable(format!("{:?} is not a valid URL: {uri}", self.url))
            }
            QdrantError::Io(io) => self.unavailable(format!("{}: {io}", self.url)),
            QdrantError::ResponseError { status } => {
                self.backend(operation, format!("{:?}: {}", status.code(), status.message()))
            }
            other => self.backend(operation, other.to_string()),
        }
    }

    /// Checks the server's answer to a write sent with `wait = true`: it must have been applied.
    pub(super) fn confirm(
        &self,
        operation: &'static str,
        response: &PointsOperationResponse,
    ) -> Result<(), StoreError> {
        match response.result.map(|result| result.status) {
            Some(status) if status == UpdateStatus::WaitTimeout as i32 => Err(self.unavailable(format!(
                "{}: the server accepted the request to {operation} but did not apply it within its timeout",
                self.url
            ))),
            Some(status) if status == UpdateStatus::ClockRejected as i32 => {
                Err(self.backend(operation, "the server rejected the update (outdated clock)".to_owned()))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn backend(&self, operation: &'static str, reason: String) -> StoreError {
        StoreError::Backend { backend: QDRANT, operation, reason: self.scrub(reason) }
    }

    fn unavailable(&self, reason: String) -> StoreError {
        StoreError::Unavailable { backend: QDRANT, reason: self.scrub(reason) }
    }

    fn scrub(&self, text: String) -> String {
        match &self.api_key {
            Some(key) if text.contains(key.as_str()) => text.replace(key.as_str(), Secret::REDACTED),
            _ => text,
        }
    }
}

/// Whether a gRPC status means the server could not be reached or did not answer in time (worth
/// retrying later), as opposed to the server refusing the request.
fn unreachable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded => true,
        // tonic reports the client's own request timeout as `Cancelled` ("Timeout expired").
        Code::Cancelled => true,
        // qdrant-client reports a failed (re)connection as `Internal` "Failed to connect to <uri>: ...".
        Code::Internal => status.message().starts_with("Failed to connect"),
        // A connection broken under a request (the server restarting) surfaces as `Unknown`
        // "transport error": the next request reconnects.
        Code::Unknown => status.message().contains("transport error"),
        _ => false,
    }
}
