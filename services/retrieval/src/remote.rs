//! Retrieval over gRPC, for generation in split mode: the same [`PassageSource`] the all-in-one
//! server serves in process, answered by a RetrievalService elsewhere. The channel connects lazily and
//! reconnects by itself, so generation starts before retrieval does and recovers when it comes back;
//! meanwhile each request gets UNAVAILABLE naming the URL (or answers without passages, if it allows).

use std::time::Duration;

use rudder_core::{Passage, PassageQuery, PassageSource, ServiceError, passage::BoxFuture};
use rudder_proto::v1::{self, retrieval_service_client::RetrievalServiceClient};
use tonic::{Code, transport::Channel};

#[derive(Debug, Clone)]
pub struct RemoteRetrieval {
    url: String,
    client: RetrievalServiceClient<Channel>,
    /// `Bearer <key>` for a RetrievalService that checks keys.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl RemoteRetrieval {
    /// A client for the RetrievalService at `url` (e.g. `http://retrieval:50052`); nothing is
    /// connected until the first request. `timeout` bounds each retrieval.
    pub fn new(url: &str, timeout: Duration, api_key: &str) -> Result<Self, ServiceError> {
        let authorization = match api_key.trim() {
            "" => None,
            key => Some(format!("Bearer {key}").parse().map_err(|_| {
                ServiceError::invalid("generation.retrieval_api_key", "is not a valid header value")
            })?),
        };
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|err| ServiceError::invalid("generation.retrieval_url", format!("{url:?}: {err}")))?
            .connect_timeout(timeout)
            .timeout(timeout);
        Ok(Self {
            url: url.to_owned(),
            client: RetrievalServiceClient::new(endpoint.connect_lazy()),
            authorization,
        })
    }
}

impl PassageSource for RemoteRetrieval {
    fn retrieve(&self, query: PassageQuery) -> BoxFuture<Result<Vec<Passage>, ServiceError>> {
        let (mut client, url, authorization) =
            (self.client.clone(), self.url.clone(), self.authorization.clone());
        Box::pin(async move {
            let request = v1::RetrieveRequest {
                query: query.question,
                region: query.region,
                brand: query.brand.unwrap_or_default(),
                top_k: query.top_k,
                mode: rudder_proto::convert::retrieval_mode(query.mode) as i32,
                tags: query.tags,
                min_score: query.min_score,
                ..Default::default()
            };
            let mut request = tonic::Request::new(request);
            if let Some(authorization) = authorization {
                request.metadata_mut().insert("authorization", authorization);
            }
            match client.retrieve(request).await {
                Ok(response) => Ok(response.into_inner().passages.into_iter().map(Into::into).collect()),
                Err(status) => Err(service_error(&url, &status)),
            }
        })
    }
}

/// The remote status as this side's error: unreachable or overloaded retrieval is UNAVAILABLE with
/// its URL; the caller's own mistakes keep their kind.
fn service_error(url: &str, status: &tonic::Status) -> ServiceError {
    let message = status.message().to_owned();
    match status.code() {
        Code::InvalidArgument => ServiceError::invalid("retrieval", message),
        Code::NotFound => ServiceError::FailedPrecondition(format!("retrieval at {url}: {message}")),
        // A deployment mistake, not the caller's: this server's key for retrieval is missing or wrong.
        Code::Unauthenticated | Code::PermissionDenied => ServiceError::FailedPrecondition(format!(
            "retrieval at {url} refused this server's key (generation.retrieval_api_key): {message}"
        )),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Cancelled
        | Code::Unknown => ServiceError::Unavailable(format!("retrieval at {url} is unavailable: {message}")),
        _ => ServiceError::Internal(format!("retrieval at {url}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_retrieval_is_unavailable_with_its_url() {
        let err = service_error("http://retrieval:50052", &tonic::Status::unavailable("connection refused"));
        assert!(
            matches!(&err, ServiceError::Unavailable(m) if m.contains("http://retrieval:50052")),
            "{err}"
        );
        assert!(matches!(
            service_error("u", &tonic::Status::invalid_argument("query: empty")),
            ServiceError::InvalidArgument { .. }
        ));
    }

    #[test]
    fn a_malformed_url_names_the_setting() {
        let err = RemoteRetrieval::new("not a url", Duration::from_secs(1), "").unwrap_err();
        assert!(err.to_string().contains("generation.retrieval_url"), "{err}");
    }
}
