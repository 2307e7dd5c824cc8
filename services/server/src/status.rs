//! `rudder status`: what a running server says about itself, asked the way any gRPC client would —
//! `grpc.health.v1` per service and server reflection's service list.

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

/// One service's health as reported by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHealth {
    pub service: String,
    pub status: ServingStatus,
}

/// Connects to `url` (e.g. `http://127.0.0.1:50051`, or `https://...` trusting the CA in
/// `RUDDER_TLS_CA_FILE`), failing with the URL in the message.
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    let ca = match std::env::var_os(TLS_CA_ENV) {
        Some(path) if url.starts_with("https://") => Some(std::fs::read(&path).map_err(|err| {
            anyhow::anyhow!("cannot read {} ({TLS_CA_ENV}): {err}", Path::new(&path).display())
        })?),
        _ => None,
    };
    connect_trusting(url, ca).await
}

/// The CA (PEM file) client commands trust for an `https://` server URL.
pub const TLS_CA_ENV: &str = "RUDDER_TLS_CA_FILE";

/// A channel to `url`; for `https://`, trusting only the CA certificate(s) in `ca_pem`.
pub async fn connect_trusting(url: &str, ca_pem: Option<Vec<u8>>) -> anyhow::Result<Channel> {
    let mut endpoint = Channel::from_shared(url.to_owned())
        .map_err(|err| anyhow::anyhow!("invalid server URL {url:?}: {err}"))?;
    if url.starts_with("https://") {
        let ca = ca_pem.ok_or_else(|| {
            anyhow::anyhow!(
                "{url} is https: set {TLS_CA_ENV} to the PEM file of the CA that signed its certificate"
            )
        })?;
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        endpoint = endpoint.tls_config(tls).map_err(|err| anyhow::anyhow!("TLS for {url}: {err}"))?;
    }
    endpoint.connect().await.map_err(|err| anyhow::anyhow!("cannot reach rudder at {url}: {err}"))
}

/// The API key client commands send (`RUDDER_API_KEY`), for a server that checks keys.
pub fn api_key() -> Option<String> {
    std::env::var("RUDDER_API_KEY").ok().map(|key| key.trim().to_owned()).filter(|key| !key.is_empty())
}

/// `message` as a request carrying [`api_key`] in its `authorization` header, when one is set.
pub fn authorized<T>(message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = api_key() {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| anyhow::anyhow!("RUDDER_API_KEY is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Health of the whole server ("") and of each rudder service.
pub async fn health(channel: Channel) -> anyhow::Result<Vec<ServiceHealth>> {
    let mut client = HealthClient::new(channel);
    let mut report = Vec::new();
    for service in std::iter::once("").chain(rudder_proto::SERVICE_NAMES) {
        let response = client.check(HealthCheckRequest { service: service.to_owned() }).await?;
        report.push(ServiceHealth { service: service.to_owned(), status: response.into_inner().status() });
    }
    Ok(report)
}

/// Sends one ListServices request over a reflection module's generated client (v1 and v1alpha have the
/// same shape under different packages).
macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use $version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await?
            .into_inner();
        match responses.message().await?.and_then(|r| r.message_response) {
            Some(MessageResponse::ListServicesResponse(list)) => {
                Ok(list.service.into_iter().map(|s| s.name).collect())
            }
            other => {
                anyhow::bail!("reflection {} answered ListServices with {other:?}", stringify!($version))
            }
        }
    }};
}

/// Service names listed by reflection v1.
pub async fn list_services_v1(channel: Channel) -> anyhow::Result<Vec<String>> {
    list_services!(v1, channel)
}

/// Service names listed by reflection v1alpha (what Python's grpcio-reflection speaks).
pub async fn list_services_v1alpha(channel: Channel) -> anyhow::Result<Vec<String>> {
    list_services!(v1alpha, channel)
}
