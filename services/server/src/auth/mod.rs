//! Authentication and role checks for every RPC, as one tower layer in front of all services: the
//! API key in `authorization: Bearer <key>` is checked against the key file (`keys`), the key's role
//! against the method called (`may_call`), and the principal is put into the request for the
//! handlers, which keep it inside its regions and brands and write it into the audit log. Each key's
//! calls are rate limited (`limits`). Health and reflection stay reachable without a key unless
//! `auth.open_health` is off. Without a key file
//! every caller is the local principal: allowed only on a loopback listener (see [`check_exposure`]).

pub mod keys;
pub mod limits;

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use rudder_core::access::{Principal, Role};
use tonic::{
    Status,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

pub use keys::{Authenticated, KeyFile, KeyStore};
pub use limits::RateLimiter;

/// Whether `role` may call `method` (`/<package.Service>/<Method>`).
pub fn may_call(role: Role, method: &str) -> bool {
    let Some((service, name)) = method.trim_start_matches('/').split_once('/') else { return false };
    let allowed: &[Role] = match (service, name) {
        ("rudder.v1.GenerationService", "Generate" | "GenerateOnce" | "SubmitFeedback") => &[Role::Agent],
        ("rudder.v1.GenerationService", "ListFeedback") => &[Role::Auditor],
        ("rudder.v1.GenerationService", "GetModelInfo") => {
            &[Role::Agent, Role::Editor, Role::PromptOwner, Role::Auditor]
        }
        ("rudder.v1.RetrievalService", "Retrieve") => &[Role::Agent],
        ("rudder.v1.IngestService", "Ingest" | "DeleteDocument") => &[Role::Editor],
        ("rudder.v1.IngestService", "ListDocuments" | "GetDocument") => &[Role::Editor, Role::Auditor],
        ("rudder.v1.PromptService", "ListBundles" | "GetBundle" | "GetAuditLog") => {
            &[Role::PromptOwner, Role::Auditor]
        }
        ("rudder.v1.PromptService", _) => &[Role::PromptOwner],
        _ => &[],
    };
    role == Role::Admin || allowed.contains(&role)
}

fn is_open(method: &str) -> bool {
    method.starts_with("/grpc.health.v1.") || method.starts_with("/grpc.reflection.")
}

/// Refuses to serve a non-loopback address without keys: anyone who can reach the port could
/// delete documents and change a region's steering.
pub fn check_exposure(listen: SocketAddr, keys_file: &str) -> anyhow::Result<()> {
    if keys_file.trim().is_empty() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "server.listen {listen} is not a loopback address and auth.keys_file is empty: create keys \
             (rudder keys create --file F --id ID --role ROLE) and set auth.keys_file, or listen on 127.0.0.1"
        );
    }
    Ok(())
}

/// The layer: `keys` None serves everyone as the local principal, unlimited.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    keys: Option<KeyStore>,
    open_health: bool,
    limiter: RateLimiter,
    /// Calls per minute of a key that sets none (`auth.requests_per_minute`; 0: unlimited).
    default_per_minute: u32,
}

impl AuthLayer {
    pub fn new(keys: Option<KeyStore>, open_health: bool, default_per_minute: u32) -> Self {
        Self { keys, open_health, limiter: RateLimiter::default(), default_per_minute }
    }

    /// Who `headers` (an API key) or the connection's client certificate (mTLS) authenticate for
    /// `method`, or the status that refuses them. A key, when sent, decides.
    fn decide(
        &self,
        method: &str,
        headers: &http::HeaderMap,
        client_certificate: Option<&[u8]>,
    ) -> Result<Principal, Status> {
        let Some(keys) = &self.keys else { return Ok(Principal::local()) };
        if self.open_health && is_open(method) {
            return Ok(Principal {
                id: "anonymous".into(),
                role: Role::Auditor,
                regions: Vec::new(),
                brands: Vec::new(),
            });
        }
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let authenticated = match (presented, client_certificate) {
            (Some(key), _) => keys.authenticate(key),
            (None, Some(certificate)) => keys.authenticate_certificate(certificate),
            (None, None) => Err("send an API key: authorization: Bearer rudder_<id>_<secret>".to_owned()),
        };
        let Authenticated { principal, requests_per_minute } = authenticated.map_err(|reason| {
            tracing::warn!(target: "audit", %method, %reason, "request refused: not authenticated");
            Status::unauthenticated(reason)
        })?;
        if !may_call(principal.role, method) {
            tracing::warn!(target: "audit", key = %principal.id, role = principal.role.as_str(), %method, "request refused: role");
            return Err(Status::permission_denied(format!(
                "key {:?} (role {}) may not call {}",
                principal.id,
                principal.role.as_str(),
                method.trim_start_matches('/')
            )));
        }
        let per_minute = requests_per_minute.unwrap_or(self.default_per_minute);
        self.limiter.admit(&principal.id, per_minute, Instant::now()).map_err(|wait| {
            tracing::warn!(target: "audit", key = %principal.id, %method, per_minute, "request refused: rate limit");
            limits::over_limit(&principal.id, per_minute, wait)
        })?;
        Ok(principal)
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, layer: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let certificate = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .and_then(|chain| chain.first().map(|leaf| leaf.as_ref().to_vec()));
        match self.layer.decide(request.uri().path(), request.headers(), certificate.as_deref()) {
            Ok(principal) => {
                request.extensions_mut().insert(principal);
                // The ready service answers this call; a fresh clone waits for the next one.
                let fresh = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, fresh);
                Box::pin(ready.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_calls_its_own_methods_and_admin_calls_all() {
        let generate = "/rudder.v1.GenerationService/Generate";
        let activate = "/rudder.v1.PromptService/ActivateBundle";
        let ingest = "/rudder.v1.IngestService/Ingest";
        let audit = "/rudder.v1.PromptService/GetAuditLog";
        assert!(
            may_call(Role::Agent, generate)
                && !may_call(Role::Agent, activate)
                && !may_call(Role::Agent, ingest)
        );
        assert!(may_call(Role::Editor, ingest) && !may_call(Role::Editor, generate));
        assert!(may_call(Role::PromptOwner, activate) && may_call(Role::PromptOwner, audit));
        assert!(may_call(Role::Auditor, audit) && !may_call(Role::Auditor, activate));
        assert!([generate, activate, ingest, audit].iter().all(|m| may_call(Role::Admin, m)));
        assert!(!may_call(Role::Agent, "/rudder.v1.Unknown/Call"));
    }

    #[test]
    fn a_public_address_needs_keys() {
        assert!(check_exposure("0.0.0.0:50051".parse().unwrap(), "").is_err());
        assert!(check_exposure("0.0.0.0:50051".parse().unwrap(), "/run/secrets/keys").is_ok());
        assert!(check_exposure("127.0.0.1:0".parse().unwrap(), "").is_ok());
        assert!(check_exposure("[::1]:0".parse().unwrap(), "").is_ok());
    }
}
