//! The Prometheus endpoint: `GET /metrics` on `server.metrics_listen`, plain HTTP beside the gRPC port
//! (scrapers speak HTTP/1.1, not gRPC). What it exports lives with its owners; this only serves it.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    http::{StatusCode, header},
    routing::get,
};
use rudder_core::metrics::Exposition;
use rudder_prompts::Registry;
use tokio::{net::TcpListener, task::JoinHandle};

/// The families one scrape answers with.
#[derive(Debug, Clone, Default)]
pub struct MetricsSources {
    /// The bundle registry, in a process that serves generation.
    pub bundles: Option<Arc<Registry>>,
}

impl MetricsSources {
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        out.family("rudder_build_info", "gauge", "Always 1; the labels say which rudder this is.");
        out.sample("rudder_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        if let Some(bundles) = &self.bundles {
            bundles.export_metrics(&mut out);
        }
        out.finish()
    }
}

/// Binds `listen` (the value of `server.metrics_listen`) and serves `/metrics` until aborted.
pub async fn serve(listen: &str, sources: MetricsSources) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let addr: SocketAddr = listen.trim().parse().map_err(|err| {
        anyhow::anyhow!("server.metrics_listen {listen:?} is not an address like 0.0.0.0:9464: {err}")
    })?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {addr} (server.metrics_listen): {err}"))?;
    let bound = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let sources = sources.clone();
            async move {
                // Rendering takes the registry's locks briefly; keep it off the accept loop anyway.
                match tokio::task::spawn_blocking(move || sources.render()).await {
                    Ok(text) => (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        text,
                    ),
                    // An empty 200 would read as "no series": say the scrape failed.
                    Err(err) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        format!("rendering the metrics failed: {err}\n"),
                    ),
                }
            }
        }),
    );
    let serving = tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics at http://{bound}/metrics");
    Ok((bound, serving))
}
