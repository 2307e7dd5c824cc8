//! Helpers shared by the end-to-end tests: a real all-in-one server on 127.0.0.1:0 over a fresh data
//! directory, using the real models directory (`RUDDER_MODELS_DIR` or the default, as `make test` fills).

use rudder_core::Config;
use rudder_server::{ConfigFlags, RunningServer};

/// The repository root (the shipped bundles and corpus live there).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped versions of a region's bundle (`prompts/bundles/<region>/v<N>`), in order. A fresh
/// server starts the region on the last one, so tests expect it to answer; they read it here rather
/// than hard-coding it, so shipping new steering as a new version needs no test edits.
pub fn shipped_versions(region: &str) -> anyhow::Result<Vec<rudder_prompts::bundles::VersionOnDisk>> {
    let bundles = rudder_prompts::bundles::file::scan(&workspace_root().join("prompts/bundles"))?;
    let key = rudder_core::BundleKey { region: region.to_owned(), brand: None };
    let versions = bundles.get(&key).ok_or_else(|| anyhow::anyhow!("no shipped bundle for {region}"))?;
    Ok(versions.values().cloned().collect())
}

/// The version a fresh server serves `region` with: its highest shipped one.
pub fn shipped_latest(region: &str) -> anyhow::Result<u32> {
    let versions = shipped_versions(region)?;
    versions.last().map(|v| v.bundle.version).ok_or_else(|| anyhow::anyhow!("{region}: no versions"))
}

/// A running server and the temporary data directory it owns.
#[derive(Debug)]
pub struct TestServer {
    pub server: RunningServer,
    pub config: Config,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts the all-in-one server on a free loopback port. Evaluations (the activation gate) cover
    /// two held-out examples with short answers, so tests that run them stay quick.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// [`TestServer::start`] with the configuration adjusted first (services, retrieval URL, ...).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let flags = ConfigFlags {
            listen: Some("127.0.0.1:0".parse()?),
            data_dir: Some(data_dir.path().to_owned()),
            ..ConfigFlags::default()
        };
        let mut config = flags.load()?;
        config.prompts.bundles_dir = workspace_root().join("prompts/bundles");
        config.prompts.eval_data_dir = workspace_root().join("prompts/data");
        config.prompts.eval_limit = 2;
        config.prompts.eval_max_new_tokens = 12;
        configure(&mut config);
        let server = RunningServer::start(&config).await?;
        Ok(Self { server, config, _data_dir: data_dir })
    }

    /// Stops the server and starts a new one on the same data directory and port.
    pub async fn restart(self) -> anyhow::Result<Self> {
        let (stopped, config) = self.stop().await?;
        stopped.start_again(config).await
    }

    /// Stops the server, keeping its data directory (and, in the returned config, its address) for
    /// [`Stopped::start_again`].
    pub async fn stop(self) -> anyhow::Result<(Stopped, Config)> {
        let Self { server, mut config, _data_dir } = self;
        config.server.listen = server.addr();
        server.shutdown().await?;
        Ok((Stopped { _data_dir }, config))
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        rudder_server::status::connect(&self.url()).await
    }
}

/// The body of `GET /metrics` on the server's Prometheus endpoint, read over a plain HTTP/1.1
/// connection as a scraper would.
pub async fn scrape_metrics(server: &RunningServer) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.metrics_addr().ok_or_else(|| anyhow::anyhow!("server.metrics_listen is not set"))?;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: rudder\r\nConnection: close\r\n\r\n").await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) =
        response.split_once("\r\n\r\n").ok_or_else(|| anyhow::anyhow!("not an HTTP response: {response}"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}");
    anyhow::ensure!(head.contains("text/plain; version=0.0.4"), "{head}");
    Ok(body.to_owned())
}

/// A stopped [`TestServer`]'s data directory, kept for a restart.
#[derive(Debug)]
pub struct Stopped {
    _data_dir: tempfile::TempDir,
}

impl Stopped {
    /// Starts the server again on the same data directory with `config` (the same port).
    pub async fn start_again(self, config: Config) -> anyhow::Result<TestServer> {
        let server = RunningServer::start(&config).await?;
        Ok(TestServer { server, config, _data_dir: self._data_dir })
    }
}
