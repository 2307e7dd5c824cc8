//! Helpers shared by the end-to-end tests: a real all-in-one server on 127.0.0.1:0 over a fresh data
//! directory, using the real models directory (`RUDDER_MODELS_DIR` or the default, as `make test` fills).

use rudder_core::Config;
use rudder_server::{ConfigFlags, RunningServer};

/// The repository root (the shipped bundles and corpus live there).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
        let server = RunningServer::start(&config).await?;
        Ok(Self { server, config, _data_dir: data_dir })
    }

    /// Stops the server and starts a new one on the same data directory (and a new port).
    pub async fn restart(self) -> anyhow::Result<Self> {
        let Self { server, mut config, _data_dir } = self;
        server.shutdown().await?;
        config.server.listen = "127.0.0.1:0".parse()?;
        let server = RunningServer::start(&config).await?;
        Ok(Self { server, config, _data_dir })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        rudder_server::status::connect(&self.url()).await
    }
}
