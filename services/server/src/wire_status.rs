//! One status tonic gets wrong for rudder's clients: a request message over the size limit is
//! answered OUT_OF_RANGE by tonic's decoder, where gRPC's status codes say RESOURCE_EXHAUSTED (and
//! clients retry or split on that). A tower layer in front of every service rewrites that one
//! trailers-only answer; everything else passes untouched.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

/// gRPC status codes as they travel in the `grpc-status` header.
const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";

#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Oversize<S> {
        Oversize { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Oversize<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Oversize<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            let mut response = ready.call(request).await?;
            if oversize(response.headers()) {
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static(RESOURCE_EXHAUSTED));
            }
            Ok(response)
        })
    }
}

/// Whether the headers are tonic's answer to a request message over the decoding limit.
fn oversize(headers: &http::HeaderMap) -> bool {
    let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or_default();
    headers.get("grpc-status").is_some_and(|s| s == OUT_OF_RANGE)
        && (message.contains("too large") || message.contains("too%20large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tonics_oversize_answer_is_rewritten() {
        let headers = |status: &'static str, message: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-status", http::HeaderValue::from_static(status));
            h.insert("grpc-message", http::HeaderValue::from_static(message));
            h
        };
        assert!(oversize(&headers("11", "Error,%20decoded%20message%20length%20too%20large")));
        assert!(!oversize(&headers("11", "offset out of range")));
        assert!(!oversize(&headers("3", "too large")));
    }
}
