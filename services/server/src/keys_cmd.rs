//! `rudder keys create | add-certificate | list | limit | revoke`: the API keys of `auth.keys_file` (or `--file`). A created
//! key is printed once; the file keeps its hash. A running server picks changes up within a second.

use std::path::PathBuf;

use rudder_core::access::Role;

use crate::{ConfigFlags, auth::KeyFile};

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create a key: prints it once (send it as `authorization: Bearer <key>`).
    Create {
        #[command(flatten)]
        file: KeysFile,
        #[command(flatten)]
        who: Who,
        /// Calls per minute (0: unlimited; absent: the server's auth.requests_per_minute).
        #[arg(long)]
        requests_per_minute: Option<u32>,
    },
    /// Set a key's calls per minute: a running server applies it within a second.
    Limit {
        #[command(flatten)]
        file: KeysFile,
        #[arg(long)]
        id: String,
        /// Calls per minute (0: unlimited).
        #[arg(long, conflicts_with = "server_default", required_unless_present = "server_default")]
        requests_per_minute: Option<u32>,
        /// Back to the server's auth.requests_per_minute.
        #[arg(long)]
        server_default: bool,
    },
    /// Let a client certificate (mTLS, server.tls_client_ca_file) stand in for a key: it is
    /// recognised by its SHA-256, so a renewed certificate is added again.
    AddCertificate {
        #[command(flatten)]
        file: KeysFile,
        #[command(flatten)]
        who: Who,
        /// The client certificate (PEM).
        #[arg(long)]
        pem: PathBuf,
    },
    /// List the keys (ids, roles, scopes, revoked or not; never a key).
    List {
        #[command(flatten)]
        file: KeysFile,
    },
    /// Revoke a key: refused by a running server within a second.
    Revoke {
        #[command(flatten)]
        file: KeysFile,
        #[arg(long)]
        id: String,
    },
}

/// Who a new key or certificate is.
#[derive(Debug, Clone, clap::Args)]
pub struct Who {
    /// Its public name, e.g. "agent-uk-7": what the audit log records.
    #[arg(long)]
    id: String,
    /// agent, editor, prompt-owner, auditor or admin.
    #[arg(long)]
    role: String,
    /// A region it may touch (repeatable; none: all).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// A brand it may touch (repeatable; none: all).
    #[arg(long = "brand")]
    brands: Vec<String>,
}

impl Who {
    fn role(&self) -> anyhow::Result<Role> {
        Role::parse(&self.role).ok_or_else(|| {
            anyhow::anyhow!("--role {:?}: agent, editor, prompt-owner, auditor or admin", self.role)
        })
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct KeysFile {
    /// The key file (default: auth.keys_file).
    #[arg(long = "file", value_name = "FILE")]
    path: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigFlags,
}

impl KeysFile {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.path {
            return Ok(path.clone());
        }
        let configured = self.config.load()?.auth.keys_file;
        anyhow::ensure!(
            !configured.trim().is_empty(),
            "name the key file: --file FILE, or set auth.keys_file"
        );
        Ok(PathBuf::from(configured.trim()))
    }
}

pub fn run(command: &KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { file, who, requests_per_minute } => {
            let (role, id) = (who.role()?, &who.id);
            let path = file.path()?;
            let mut keys = KeyFile::read(&path)?;
            let key = keys.create(id, role, &who.regions, &who.brands)?;
            keys.limit(id, *requests_per_minute)?;
            keys.write(&path)?;
            eprintln!("key {id:?} ({}) added to {}; it is shown once:", role.as_str(), path.display());
            println!("{key}");
        }
        KeysCommand::AddCertificate { file, who, pem } => {
            let (role, id) = (who.role()?, &who.id);
            let bytes =
                std::fs::read(pem).map_err(|err| anyhow::anyhow!("cannot read {}: {err}", pem.display()))?;
            let path = file.path()?;
            let mut keys = KeyFile::read(&path)?;
            keys.add_certificate(id, role, &who.regions, &who.brands, &bytes)
                .map_err(|err| anyhow::anyhow!("{}: {err}", pem.display()))?;
            keys.write(&path)?;
            eprintln!("certificate {id:?} ({}) added to {}", role.as_str(), path.display());
        }
        KeysCommand::List { file } => {
            let keys = KeyFile::read(&file.path()?)?;
            println!(
                "{:<24} {:<13} {:<16} {:<16} {:<10} state",
                "id", "role", "regions", "brands", "per min"
            );
            let scope = |items: &[String]| if items.is_empty() { "all".to_owned() } else { items.join(",") };
            let keys_then_certificates = keys
                .keys
                .iter()
                .map(|k| (k, ""))
                .chain(keys.certificates.iter().map(|c| (c, " (client certificate)")));
            for (key, kind) in keys_then_certificates {
                let per_minute = match key.requests_per_minute {
                    Some(0) => "unlimited".to_owned(),
                    Some(n) => n.to_string(),
                    None => "default".to_owned(),
                };
                println!(
                    "{:<24} {:<13} {:<16} {:<16} {:<10} {}{kind}",
                    key.id,
                    key.role.as_str(),
                    scope(&key.regions),
                    scope(&key.brands),
                    per_minute,
                    if key.revoked { "revoked" } else { "active" }
                );
            }
        }
        KeysCommand::Limit { file, id, requests_per_minute, .. } => {
            let path = file.path()?;
            let mut keys = KeyFile::read(&path)?;
            keys.limit(id, *requests_per_minute)?;
            keys.write(&path)?;
            let limit = match requests_per_minute {
                Some(0) => "unlimited".to_owned(),
                Some(n) => format!("{n} calls per minute"),
                None => "the server's auth.requests_per_minute".to_owned(),
            };
            eprintln!("key {id:?}: {limit}, in {}", path.display());
        }
        KeysCommand::Revoke { file, id } => {
            let path = file.path()?;
            let mut keys = KeyFile::read(&path)?;
            keys.revoke(id)?;
            keys.write(&path)?;
            eprintln!("key {id:?} revoked in {}", path.display());
        }
    }
    Ok(())
}
