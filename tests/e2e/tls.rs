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

/// mTLS: a client certificate signed by `server.tls_client_ca_file`'s CA and added to the key file
/// is that principal, held to its role and regions; a client with no certificate and no key is
/// UNAUTHENTICATED, and one with an API key still gets in.
#[tokio::test]
async fn a_client_certificate_in_the_key_file_stands_in_for_a_key() -> anyhow::Result<()> {
    use rudder_core::access::Role;
    use rudder_proto::v1::{
        GetAuditLogRequest, RetrieveRequest, prompt_service_client::PromptServiceClient,
        retrieval_service_client::RetrievalServiceClient,
    };
    use tonic::{
        Code,
        transport::{Certificate, Channel, ClientTlsConfig, Identity},
    };

    let dir = tempfile::tempdir()?;
    let (cert, key, client_ca, keys_path) = (
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
        dir.path().join("client-ca.pem"),
        dir.path().join("keys.toml"),
    );
    std::fs::write(&cert, fixture("server1.pem")?)?;
    std::fs::write(&key, fixture("server1.key")?)?;
    std::fs::write(&client_ca, fixture("client-ca.pem")?)?;
    let mut keys = rudder_server::auth::KeyFile::default();
    keys.add_certificate("agent-uk", Role::Agent, &["uk".into()], &[], &fixture("agent-uk.pem")?)?;
    let auditor = keys.create("auditor", Role::Auditor, &[], &[])?;
    keys.write(&keys_path)?;
    let server = TestServer::start_with(|c| {
        c.server.tls_cert_file = cert.display().to_string();
        c.server.tls_key_file = key.display().to_string();
        c.server.tls_client_ca_file = client_ca.display().to_string();
        c.auth.keys_file = keys_path.display().to_string();
    })
    .await?;
    let https = format!("https://localhost:{}", server.server.addr().port());
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(fixture("ca1.pem")?));
    let with_certificate = Channel::from_shared(https.clone())?
        .tls_config(
            tls.clone().identity(Identity::from_pem(fixture("agent-uk.pem")?, fixture("agent-uk.key")?)),
        )?
        .connect()
        .await?;
    let without = Channel::from_shared(https)?.tls_config(tls)?.connect().await?;

    let ask = |region: &str| RetrieveRequest {
        query: "refunds".into(),
        region: region.into(),
        ..Default::default()
    };
    let mut retrieval = RetrievalServiceClient::new(with_certificate.clone());
    retrieval.retrieve(ask("uk")).await?;
    let elsewhere = retrieval.retrieve(ask("us")).await.unwrap_err();
    assert_eq!(elsewhere.code(), Code::PermissionDenied, "the certificate's regions: {elsewhere:?}");
    let audit = PromptServiceClient::new(with_certificate).get_audit_log(GetAuditLogRequest::default()).await;
    assert_eq!(audit.unwrap_err().code(), Code::PermissionDenied, "an agent's role");

    let anonymous = RetrievalServiceClient::new(without.clone()).retrieve(ask("uk")).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    let mut request = tonic::Request::new(GetAuditLogRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {auditor}").parse()?);
    PromptServiceClient::new(without).get_audit_log(request).await?;
    server.server.shutdown().await
}
