//! API keys: the key file (`auth.keys_file`, TOML), issuing, listing and revoking keys, and checking a
//! presented key. A key is `rudder_<id>_<secret>`; the file keeps only the SHA-256 of the whole key,
//! so reading it does not give a key away. The id in the key finds its entry; the hash is compared
//! in constant time. Keys are never logged: errors name the key id at most.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use rand::RngCore;
use rudder_core::access::{Principal, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One key, or one client certificate standing in for a key (mTLS, `server.tls_client_ca_file`), as
/// the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Public name of the key: what the audit log records.
    pub id: String,
    /// Lower-case hex SHA-256 of the whole key, or of a certificate's DER bytes (so a renewed
    /// certificate is added anew).
    pub sha256: String,
    pub role: Role,
    /// Regions the key may touch; empty: all.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Brands the key may touch; empty: all.
    #[serde(default)]
    pub brands: Vec<String>,
    #[serde(default)]
    pub revoked: bool,
    /// Calls the key may make per minute (all at once, then at that rate); absent: the server's
    /// `auth.requests_per_minute`; 0: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// RFC 3339 UTC.
    #[serde(default)]
    pub created_at: String,
}

impl KeyEntry {
    /// The principal this entry grants, unless it is revoked.
    fn granted(&self) -> Result<Authenticated, String> {
        if self.revoked {
            return Err(format!("key {:?} is revoked", self.id));
        }
        let principal = Principal {
            id: self.id.clone(),
            role: self.role,
            regions: self.regions.clone(),
            brands: self.brands.clone(),
        };
        Ok(Authenticated { principal, requests_per_minute: self.requests_per_minute })
    }
}

/// Who a new key or certificate is: its id, role and scopes.
#[derive(Debug, Clone, Copy)]
struct Grant<'a> {
    id: &'a str,
    role: Role,
    regions: &'a [String],
    brands: &'a [String],
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default, rename = "key")]
    pub keys: Vec<KeyEntry>,
    #[serde(default, rename = "certificate", skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<KeyEntry>,
}

const PREFIX: &str = "rudder_";

impl KeyFile {
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|err| {
                anyhow::anyhow!("{} (auth.keys_file) is not a valid key file: {err}", path.display())
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(anyhow::anyhow!("cannot read {} (auth.keys_file): {err}", path.display())),
        }
    }

    /// Writes the file whole (temp file, then rename): a reader never sees half of it.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "# rudder API keys (rudder keys create|list|revoke). Only hashes: a key cannot be read back.\n{}",
            toml::to_string(self)?
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, text)?;
        std::fs::rename(&temp, path)?;
        Ok(())
    }

    /// Adds a key for `id` and returns it: the only time it is ever shown.
    pub fn create(
        &mut self,
        id: &str,
        role: Role,
        regions: &[String],
        brands: &[String],
    ) -> anyhow::Result<String> {
        let grant = Grant { id, role, regions, brands };
        let id = self.new_id(grant.id)?;
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let key = format!("{PREFIX}{id}_{}", hex::encode(secret));
        self.keys.push(entry(Grant { id: &id, ..grant }, digest(&key)));
        Ok(key)
    }

    /// Adds the client certificate in `pem` (its first certificate) as principal `id`.
    pub fn add_certificate(
        &mut self,
        id: &str,
        role: Role,
        regions: &[String],
        brands: &[String],
        pem: &[u8],
    ) -> anyhow::Result<()> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let grant = Grant { id, role, regions, brands };
        let id = self.new_id(grant.id)?;
        let der = CertificateDer::from_pem_slice(pem)
            .map_err(|err| anyhow::anyhow!("not a PEM certificate: {err}"))?;
        self.certificates.push(entry(Grant { id: &id, ..grant }, hex::encode(Sha256::digest(der.as_ref()))));
        Ok(())
    }

    /// `id` trimmed, if it is well-formed and names no key or certificate yet.
    fn new_id(&self, id: &str) -> anyhow::Result<String> {
        let id = id.trim();
        anyhow::ensure!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "--id {id:?}: letters, digits and '-' only"
        );
        anyhow::ensure!(
            !self.keys.iter().chain(&self.certificates).any(|k| k.id == id),
            "a key or certificate with id {id:?} exists; revoke it or pick another id"
        );
        Ok(id.to_owned())
    }

    pub fn revoke(&mut self, id: &str) -> anyhow::Result<()> {
        self.entry(id)?.revoked = true;
        Ok(())
    }

    /// Who a verified client certificate (DER) is, or why it is not anyone.
    pub fn authenticate_certificate(&self, der: &[u8]) -> Result<Authenticated, String> {
        let digest = hex::encode(Sha256::digest(der));
        self.certificates
            .iter()
            .find(|c| same(c.sha256.as_bytes(), digest.as_bytes()))
            .ok_or_else(|| {
                "the client certificate is not in the key file (rudder keys add-certificate)".to_owned()
            })?
            .granted()
    }

    /// Sets the calls per minute key `id` may make (None: the server's default; 0: unlimited).
    pub fn limit(&mut self, id: &str, requests_per_minute: Option<u32>) -> anyhow::Result<()> {
        self.entry(id)?.requests_per_minute = requests_per_minute;
        Ok(())
    }

    /// The key or certificate `id`.
    fn entry(&mut self, id: &str) -> anyhow::Result<&mut KeyEntry> {
        self.keys
            .iter_mut()
            .chain(&mut self.certificates)
            .find(|k| k.id == id)
            .ok_or_else(|| anyhow::anyhow!("no key or certificate with id {id:?}"))
    }

    /// Who `key` authenticates, or why not (naming the key id at most).
    pub fn authenticate(&self, key: &str) -> Result<Authenticated, String> {
        let id = key
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.rsplit_once('_'))
            .map(|(id, _)| id)
            .ok_or_else(|| "the key is not a rudder key (rudder_<id>_<secret>)".to_owned())?;
        let entry = self.keys.iter().find(|k| k.id == id).ok_or_else(|| format!("unknown key id {id:?}"))?;
        if !same(digest(key).as_bytes(), entry.sha256.as_bytes()) {
            return Err(format!("wrong secret for key id {id:?}"));
        }
        entry.granted()
    }
}

/// A new, unrevoked entry for `grant`, recognised by `sha256`.
fn entry(grant: Grant, sha256: String) -> KeyEntry {
    KeyEntry {
        id: grant.id.to_owned(),
        sha256,
        role: grant.role,
        regions: normalised(grant.regions),
        brands: normalised(grant.brands),
        revoked: false,
        requests_per_minute: None,
        created_at: rudder_core::time::now_rfc3339(),
    }
}

/// A key that checked out: its principal and its own rate limit, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub requests_per_minute: Option<u32>,
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key's regions or brands in the form they are compared in (see `rudder_core::names`); blanks dropped.
fn normalised(items: &[String]) -> Vec<String> {
    items.iter().map(|item| rudder_core::names::region(item)).filter(|item| !item.is_empty()).collect()
}

/// Equality that takes as long whatever the first difference: a timing side channel would leak the
/// hash byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key file as the server serves it: read at start and again whenever it changes on disk
/// (checked every `RELOAD_EVERY`), so keys are added and revoked without a restart.
#[derive(Debug, Clone)]
pub struct KeyStore {
    path: PathBuf,
    current: Arc<RwLock<(KeyFile, Option<SystemTime>)>>,
}

/// How often the key file's modification time is checked: a revoked key is refused within this.
pub const RELOAD_EVERY: Duration = Duration::from_millis(250);

impl KeyStore {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = KeyFile::read(path)?;
        let modified = modified(path);
        Ok(Self { path: path.to_owned(), current: Arc::new(RwLock::new((file, modified))) })
    }

    pub fn authenticate(&self, key: &str) -> Result<Authenticated, String> {
        match self.current.read() {
            Ok(current) => current.0.authenticate(key),
            Err(_) => Err("the key store is unavailable".to_owned()),
        }
    }

    pub fn authenticate_certificate(&self, der: &[u8]) -> Result<Authenticated, String> {
        match self.current.read() {
            Ok(current) => current.0.authenticate_certificate(der),
            Err(_) => Err("the key store is unavailable".to_owned()),
        }
    }

    /// Re-reads the file if it changed; a file that no longer parses keeps the keys already loaded.
    pub fn reload_if_changed(&self) {
        let modified = modified(&self.path);
        let unchanged = self.current.read().map(|c| c.1 == modified).unwrap_or(true);
        if unchanged {
            return;
        }
        match KeyFile::read(&self.path) {
            Ok(file) => {
                if let Ok(mut current) = self.current.write() {
                    tracing::info!(keys = file.keys.len(), file = %self.path.display(), "API keys reloaded");
                    *current = (file, modified);
                }
            }
            Err(err) => tracing::warn!(error = %err, "keeping the API keys already loaded"),
        }
    }

    /// Watches the file for the life of the runtime.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                store.reload_if_changed();
            }
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_authenticates_until_revoked_and_its_file_holds_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut file = KeyFile::default();
        let key = file.create("agent-uk", Role::Agent, &["UK".into()], &[]).unwrap();
        file.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key) && !text.contains(key.rsplit('_').next().unwrap()), "{text}");
        let read = KeyFile::read(&path).unwrap();
        let principal = read.authenticate(&key).unwrap().principal;
        assert_eq!(
            (principal.id.as_str(), principal.role, principal.regions.clone()),
            ("agent-uk", Role::Agent, vec!["uk".to_owned()])
        );
        let wrong = format!("{}0", &key[..key.len() - 1]);
        assert!(read.authenticate(&wrong).unwrap_err().contains("wrong secret"));
        assert!(read.authenticate("Bearer nonsense").is_err());
        let mut revoked = read.clone();
        revoked.revoke("agent-uk").unwrap();
        assert!(revoked.authenticate(&key).unwrap_err().contains("revoked"));
        assert!(file.create("agent-uk", Role::Admin, &[], &[]).is_err(), "ids are unique");
    }

    #[test]
    fn the_store_sees_a_revocation_once_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        let mut file = KeyFile::default();
        let key = file.create("editor", Role::Editor, &[], &[]).unwrap();
        file.write(&path).unwrap();
        let store = KeyStore::open(&path).unwrap();
        assert!(store.authenticate(&key).is_ok());
        file.revoke("editor").unwrap();
        // Modification times can be coarse: make the change visible.
        std::thread::sleep(Duration::from_millis(20));
        file.write(&path).unwrap();
        let later = SystemTime::now() + Duration::from_secs(1);
        let _ = std::fs::File::options().write(true).open(&path).and_then(|f| f.set_modified(later));
        store.reload_if_changed();
        assert!(store.authenticate(&key).is_err());
    }
}
