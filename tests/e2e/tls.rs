//! TLS on the listener over real gRPC: a client trusting the server's CA gets answers, a plaintext
//! client and a client trusting another CA do not, and a certificate renewed on disk is served to
//! new connections within a second or two, without a restart. Test certificates: tests/fixtures/tls.

use std::time::Duration;

use rudder_server::status::connect_trusting;
use rudder_tests::TestServer;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn fixture(name: &str) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(rudder_tests::workspace_root().join("tests/fixtures/tls").join(name))?)
}

/// Health over a channel to `url` trusting `ca`, or why it failed.
async fn health(url: &str, ca: Option<Vec<u8>>) -> anyhow::Result<i32> {
    let channel = connect_trusting(url, ca).await?;
    let response = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await?;
    Ok(response.into_inner().status)
}

#[tokio::test]
async fn the_listener_speaks_tls_and_serves_a_renewed_certificate_without_a_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert, fixture("server1.pem")?)?;
    std::fs::write(&key, fixture("server1.key")?)?;
    let server = TestServer::start_with(|c| {
        c.server.tls_cert_file = cert.display().to_string();
        c.server.tls_key_file = key.display().to_string();
    })
    .await?;
    let https = format!("https://localhost:{}", server.server.addr().port());

    assert_eq!(health(&https, Some(fixture("ca1.pem")?)).await?, ServingStatus::Serving as i32);
    assert!(health(&server.url(), None).await.is_err(), "plaintext gRPC is refused");
    assert!(health(&https, Some(fixture("ca2.pem")?)).await.is_err(), "another CA's clients do not trust it");

    // Renewed on disk (a new key, another CA): new connections get it; nothing restarts.
    std::fs::write(&cert, fixture("server2.pem")?)?;
    std::fs::write(&key, fixture("server2.key")?)?;
    let renewed = async {
        loop {
            if health(&https, Some(fixture("ca2.pem")?)).await.is_ok() {
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), renewed).await??;
    assert!(health(&https, Some(fixture("ca1.pem")?)).await.is_err(), "the old certificate is gone");
    server.server.shutdown().await
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_fails_the_start_naming_both_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert, fixture("server1.pem")?)?;
    std::fs::write(&key, fixture("server2.key")?)?;
    let started = TestServer::start_with(|c| {
        c.server.tls_cert_file = cert.display().to_string();
        c.server.tls_key_file = key.display().to_string();
    })
    .await;
    let err = started.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(err.contains("server.pem") && err.contains("server.key"), "{err}");
    Ok(())
}
