//! The all-in-one server speaks the contract a stock gRPC client expects: health, reflection v1 and
//! v1alpha listing the four rudder services.

use rudder_server::status;
use rudder_tests::TestServer;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_reports_every_service_serving() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let mut health = HealthClient::new(server.channel().await?);
    for service in std::iter::once("").chain(rudder_proto::SERVICE_NAMES) {
        let status =
            health.check(HealthCheckRequest { service: service.into() }).await?.into_inner().status();
        assert_eq!(status, ServingStatus::Serving, "health of {service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "rudder.v1.NoSuchService".into() }).await;
    assert_eq!(unknown.map_err(|s| s.code()).err(), Some(tonic::Code::NotFound));
    server.server.shutdown().await
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_four_services() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    for listed in [
        status::list_services_v1(server.channel().await?).await?,
        status::list_services_v1alpha(server.channel().await?).await?,
    ] {
        for service in rudder_proto::SERVICE_NAMES {
            assert!(listed.iter().any(|name| name == service), "{service} missing from {listed:?}");
        }
        assert!(listed.iter().any(|name| name == "grpc.health.v1.Health"), "{listed:?}");
    }
    server.server.shutdown().await
}

#[tokio::test]
async fn shutdown_stops_accepting_connections() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let url = server.url();
    let mut health = HealthClient::new(server.channel().await?);
    assert_eq!(
        health.check(HealthCheckRequest::default()).await?.into_inner().status(),
        ServingStatus::Serving
    );
    server.server.shutdown().await?;
    assert!(status::connect(&url).await.is_err(), "a stopped server must refuse new connections");
    Ok(())
}
