//! The audit log: who changed which bundle, when, from which version to which, and why. Append-only
//! `audit.jsonl`, each entry synced before the change it records is made.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    sync::Mutex,
};

use rudder_core::{BundleKey, ServiceError};
use serde::{Deserialize, Serialize};

pub const AUDIT_FILE: &str = "audit.jsonl";
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    Publish,
    Activate,
    Rollback,
    StartCandidate,
    PromoteCandidate,
    AbortCandidate,
    Reload,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339 UTC.
    pub at: String,
    pub actor: String,
    pub action: AuditAction,
    pub region: String,
    #[serde(default)]
    pub brand: Option<String>,
    /// 0 where not applicable.
    pub from_version: u32,
    pub to_version: u32,
    pub reason: String,
    /// The evaluation gate was overridden.
    #[serde(default)]
    pub forced: bool,
}

impl AuditEntry {
    pub fn new(action: AuditAction, key: &BundleKey, from_version: u32, to_version: u32) -> Self {
        Self {
            at: rudder_core::time::now_rfc3339(),
            actor: String::new(),
            action,
            region: key.region.clone(),
            brand: key.brand.clone(),
            from_version,
            to_version,
            reason: String::new(),
            forced: false,
        }
    }

    pub fn by(mut self, actor: &str, reason: &str) -> Self {
        self.actor = if actor.trim().is_empty() { "anonymous".to_owned() } else { actor.trim().to_owned() };
        self.reason = reason.trim().to_owned();
        self
    }
}

#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(dir: &Path) -> Result<Self, ServiceError> {
        let path = dir.join(AUDIT_FILE);
        let io = |err: std::io::Error| ServiceError::Internal(format!("{}: {err}", path.display()));
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        rudder_core::jsonl::drop_torn_tail(&file).map_err(io)?;
        Ok(Self { path, file: Mutex::new(file) })
    }

    /// Appends `entry`, durably.
    pub fn append(&self, entry: &AuditEntry) -> Result<(), ServiceError> {
        let line = serde_json::to_string(entry)
            .map_err(|err| ServiceError::Internal(format!("cannot encode an audit entry: {err}")))?;
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rudder_core::jsonl::append_line(&mut file, &line).map_err(|err| {
            ServiceError::Unavailable(format!("cannot write the audit log {}: {err}", self.path.display()))
        })
    }

    /// Entries of `region` (and `brand`) or all, newest first, one page at a time, with the next
    /// page's token (empty after the last).
    pub fn page(
        &self,
        region: Option<&str>,
        brand: Option<&str>,
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<AuditEntry>, String), ServiceError> {
        let page_size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            _ => return Err(ServiceError::invalid("page_size", format!("must be 0 to {MAX_PAGE_SIZE}"))),
        };
        let offset = rudder_generation::feedback::page_offset(page_token)?;
        let text = std::fs::read_to_string(&self.path)
            .map_err(|err| ServiceError::Internal(format!("{}: {err}", self.path.display())))?;
        let matching: Vec<AuditEntry> = text
            .lines()
            .rev()
            // A torn last line (crash mid-append) is not an entry.
            .filter_map(|line| serde_json::from_str::<AuditEntry>(line).ok())
            .filter(|e| region.is_none_or(|r| e.region == r))
            .filter(|e| brand.is_none_or(|b| e.brand.as_deref() == Some(b)))
            .collect();
        let page: Vec<AuditEntry> = matching.iter().skip(offset).take(page_size).cloned().collect();
        let next = offset + page.len();
        Ok((page, if next < matching.len() { next.to_string() } else { String::new() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_newest_first_filtered_and_paged() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        let uk = BundleKey { region: "uk".into(), brand: None };
        let us = BundleKey { region: "us".into(), brand: None };
        log.append(&AuditEntry::new(AuditAction::Publish, &uk, 0, 3).by("ann", "new tone")).unwrap();
        log.append(&AuditEntry::new(AuditAction::Activate, &us, 1, 2).by("", "")).unwrap();
        log.append(&AuditEntry::new(AuditAction::Activate, &uk, 2, 3).by("bob", "gate passed")).unwrap();
        let (page, next) = log.page(Some("uk"), None, 1, "").unwrap();
        assert_eq!((page[0].actor.as_str(), page[0].to_version, next.as_str()), ("bob", 3, "1"));
        let (page, next) = log.page(Some("uk"), None, 1, &next).unwrap();
        assert_eq!((page[0].action, next.as_str()), (AuditAction::Publish, ""));
        let (all, _) = AuditLog::open(dir.path()).unwrap().page(None, None, 0, "").unwrap();
        assert_eq!(all.len(), 3, "entries survive a reopen");
        assert_eq!(all[1].actor, "anonymous");
    }
}
