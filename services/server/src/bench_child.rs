//! What the serving benchmarks share: a `rudder serve ...` child process on a data directory of
//! its own (its peak RSS read from /proc, stopped on drop), and the percentile they report.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rudder_core::Config;

/// `rudder <args>` (e.g. `serve retrieval`) as a child process on `data_dir`, listening on a free
/// loopback port.
pub(crate) struct ChildServer {
    child: Child,
    pub(crate) url: String,
}

impl ChildServer {
    /// `env`: configuration overrides for the child (`RUDDER__SECTION__KEY`).
    pub(crate) fn start(
        args: &[&str],
        data_dir: &Path,
        config: &Config,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let addr_file = data_dir.join("addr");
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--models-dir")
            .arg(&config.models.dir)
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(addr) = std::fs::read_to_string(&addr_file)
                && !addr.trim().is_empty()
            {
                return Ok(Self { child, url: format!("http://{}", addr.trim()) });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        anyhow::bail!("rudder {} did not start within 120 s", args.join(" "))
    }

    pub(crate) fn peak_rss_mib(&self) -> f64 {
        crate::bench::peak_rss_mib_of(&self.child.id().to_string())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Nearest-rank percentile of `samples`.
pub(crate) fn pct(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}
