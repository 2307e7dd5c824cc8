//! TLS on rudder's own listener (rustls, the ring provider): the certificate chain and private key
//! come from PEM files (`server.tls_cert_file`, `server.tls_key_file`) and are read again within a
//! second of either file changing, so a renewed certificate is served without a restart (a pair
//! that does not load keeps the one already served, with a warning). Each handshake runs in its own
//! task under a deadline, so a client that stalls mid-handshake holds nothing but its own socket.
//! gRPC needs HTTP/2, negotiated by ALPN. With `server.tls_client_ca_file`, a client may present a
//! certificate signed by one of those CAs instead of an API key (mTLS); the key file maps the
//! certificate to its principal (`auth::keys`). A client without one still connects, and needs a key.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant, SystemTime},
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
        sign::CertifiedKey,
    },
    server::TlsStream,
};
use tokio_stream::wrappers::ReceiverStream;

/// How often the certificate files' modification times are looked at (on a handshake).
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// A handshake that takes longer is dropped.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The rustls configuration of the listener, serving the pair at `cert`/`key` (loaded now: a missing
/// or unreadable file fails the start, naming it).
/// `client_ca`: the CAs whose client certificates are verified (None: no client certificates).
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<Arc<ServerConfig>> {
    let resolver = ReloadingCert::open(cert, key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ServerConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| anyhow::anyhow!("{} (server.tls_client_ca_file): {err}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            anyhow::ensure!(
                added > 0,
                "{} (server.tls_client_ca_file) holds no CA certificate",
                path.display()
            );
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|err| anyhow::anyhow!("{} (server.tls_client_ca_file): {err}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS connections of `listener`, handshakes done, for tonic's `serve_with_incoming`.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (connections, incoming) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = connections.closed() => return, // the server stopped
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Small gRPC responses must not wait for the peer's delayed ACK.
            let _ = tcp.set_nodelay(true);
            let (acceptor, connections) = (acceptor.clone(), connections.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = connections.send(Ok(tls)).await;
                    }
                    Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(incoming)
}

/// The served certificate and key, re-read when their files change.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// When the files were last looked at, and their modification times then.
    checked: Mutex<(Instant, [Option<SystemTime>; 2])>,
}

impl ReloadingCert {
    fn open(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let modified = [modified(cert), modified(key)];
        Ok(Self {
            current: RwLock::new(Arc::new(load(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
            checked: Mutex::new((Instant::now(), modified)),
        })
    }

    fn reload_if_changed(&self) {
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        if checked.0.elapsed() < RELOAD_EVERY {
            return;
        }
        let modified = [modified(&self.cert), modified(&self.key)];
        checked.0 = Instant::now();
        if modified == checked.1 {
            return;
        }
        match load(&self.cert, &self.key) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
                checked.1 = modified;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            // Half-written files, or a key that does not match yet: keep serving the old pair and
            // try again on the next change.
            Err(err) => tracing::warn!(error = %err, "keeping the TLS certificate already served"),
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.reload_if_changed();
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The chain in `cert` and the key in `key`, checked to belong together.
fn load(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| anyhow::anyhow!("{} (server.tls_cert_file): {err}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} (server.tls_cert_file) holds no certificate", cert.display());
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| anyhow::anyhow!("{} (server.tls_key_file): {err}", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let pair = CertifiedKey::from_der(chain, private, &provider).map_err(|err| {
        anyhow::anyhow!(
            "{} and {} (server.tls_cert_file, server.tls_key_file) are not a certificate and its key: {err}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(pair)
}
