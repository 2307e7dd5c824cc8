//! The bundle registry: every published version, which one serves each region/brand, the A/B
//! candidate, and every change to that in the audit log.
//!
//! Versions come from two directories with the same layout: the shipped bundles
//! (`prompts.bundles_dir`, read only) and the ones published through PromptService
//! (`<state dir>/published`). Activation lives in `<state dir>/state.json`; a region/brand found on
//! disk for the first time (at start or by a reload) starts on its highest version, one published
//! through the service waits for ActivateBundle. Versions are immutable: a version whose files change
//! on disk keeps serving what it was, and the reload says so.
//!
//! Order of writes for every change: the audit entry (synced), then the state file (a synced temp
//! file renamed over it), then the in-memory swap. Changes are serialised by their own mutex and
//! take the write lock only for the swap, so requests resolving a bundle never wait for an fsync.
//! Requests hold the `Arc<Bundle>` they started with, so a swap never changes a request in flight.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use rudder_core::{Bundle, BundleKey, BundleRegistry, ServiceError, bundle::Served, metrics::Exposition};
use sha2::{Digest, Sha256};

use super::{
    audit::{AuditAction, AuditEntry, AuditLog},
    file::{self, BundleFileError, VersionOnDisk},
    gate::{self, EvalRecord, EvalStore, GateCheck},
    state::{Activation, Candidate, State, state_path},
    traffic::{Traffic, TrafficSummary, version_labels},
};

/// Where the registry reads and writes.
#[derive(Debug, Clone)]
pub struct RegistryPaths {
    /// Shipped bundles (read only); may be missing.
    pub shipped: PathBuf,
    /// State, audit log, published versions and evaluations.
    pub state_dir: PathBuf,
    /// `<dir>/<region>/heldout.jsonl`: the held-out sets evaluations run on.
    pub eval_data: PathBuf,
}

/// What a region/brand looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleSummary {
    pub key: BundleKey,
    pub active: u32,
    pub candidate: Option<Candidate>,
    pub versions: Vec<u32>,
}

/// One version with everything known about it.
#[derive(Debug, Clone)]
pub struct VersionView {
    pub version: Arc<VersionOnDisk>,
    pub active: bool,
    pub candidate: bool,
    pub evaluation: Option<EvalRecord>,
    pub traffic: TrafficSummary,
}

/// Who asks for a change, and why.
#[derive(Debug, Clone, Default)]
pub struct ChangeBy {
    pub actor: String,
    pub reason: String,
}

/// What a reload found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reloaded {
    /// New versions, as `region[/brand]@version`.
    pub added: Vec<String>,
    /// Versions whose files changed on disk (refused: the registry keeps what it read; a request
    /// that needs an edited artifact loaded again is refused by its sha256 check).
    pub changed: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    versions: BTreeMap<BundleKey, BTreeMap<u32, Arc<VersionOnDisk>>>,
    state: State,
}

#[derive(Debug)]
pub struct Registry {
    paths: RegistryPaths,
    inner: RwLock<Inner>,
    audit: AuditLog,
    evals: EvalStore,
    traffic: Traffic,
    /// Region/brands with an activation under way (its gate may run an evaluation for minutes).
    activating: Mutex<HashSet<BundleKey>>,
    /// Serialises publishing, so two publishes never pick the same version number.
    publishing: Mutex<()>,
    /// Held from reading the activation state to swapping in its changed copy, so no change is lost;
    /// the slow part (the synced audit entry and state file) runs outside `inner`'s write lock.
    state_changes: Mutex<()>,
}

const PUBLISHED_DIR: &str = "published";
const EVALS_DIR: &str = "evals";

impl Registry {
    /// Reads every version and the activation state; starts region/brands new on disk on their highest version.
    pub fn open(paths: RegistryPaths) -> Result<Self, ServiceError> {
        std::fs::create_dir_all(paths.state_dir.join(PUBLISHED_DIR)).map_err(|err| {
            ServiceError::Internal(format!("cannot create {}: {err}", paths.state_dir.display()))
        })?;
        let audit = AuditLog::open(&paths.state_dir)?;
        let evals = EvalStore::new(&paths.state_dir.join(EVALS_DIR));
        let versions = scan_all(&paths)?;
        let state = State::load(&state_path(&paths.state_dir))?;
        let registry = Self {
            paths,
            inner: RwLock::new(Inner { versions, state }),
            audit,
            evals,
            traffic: Traffic::default(),
            activating: Mutex::new(HashSet::new()),
            publishing: Mutex::new(()),
            state_changes: Mutex::new(()),
        };
        registry.start_new_keys()?;
        Ok(registry)
    }

    pub fn published_dir(&self) -> PathBuf {
        self.paths.state_dir.join(PUBLISHED_DIR)
    }

    /// `region[/brand]` of every bundle.
    pub fn keys(&self) -> Vec<String> {
        self.read().versions.keys().map(ToString::to_string).collect()
    }

    pub fn list(&self, region: Option<&str>) -> Vec<BundleSummary> {
        let inner = self.read();
        inner
            .versions
            .iter()
            .filter(|(key, _)| region.is_none_or(|r| key.region == r))
            .map(|(key, versions)| {
                let activation = inner.state.get(key).cloned().unwrap_or_default();
                BundleSummary {
                    key: key.clone(),
                    active: activation.active,
                    candidate: activation.candidate,
                    versions: versions.keys().copied().collect(),
                }
            })
            .collect()
    }

    /// The Prometheus families of the bundles: which version is active, what share an A/B candidate
    /// gets, and each version's requests and latencies.
    pub fn export_metrics(&self, out: &mut Exposition) {
        let bundles = self.list(None);
        out.family(
            "rudder_bundle_active_version",
            "gauge",
            "The version serving a region/brand (0: none active yet).",
        );
        for b in &bundles {
            let brand = b.key.brand.as_deref().unwrap_or("");
            out.sample(
                "rudder_bundle_active_version",
                &[("region", b.key.region.as_str()), ("brand", brand)],
                f64::from(b.active),
            );
        }
        out.family(
            "rudder_bundle_candidate_traffic_percent",
            "gauge",
            "Share of conversations routed to an A/B candidate version (absent: no candidate).",
        );
        for b in &bundles {
            if let Some(candidate) = &b.candidate {
                let version = candidate.version.to_string();
                out.sample(
                    "rudder_bundle_candidate_traffic_percent",
                    &version_labels(&b.key, &version, None),
                    f64::from(candidate.percent),
                );
            }
        }
        self.traffic.export(out);
    }

    pub fn summary(&self, key: &BundleKey) -> Result<BundleSummary, ServiceError> {
        let found = self.list(Some(&key.region)).into_iter().find(|s| &s.key == key);
        found.ok_or_else(|| unknown_key(&self.read(), key))
    }

    /// One version (the active one for `None`) with its evaluation and traffic.
    pub fn get(&self, key: &BundleKey, version: Option<u32>) -> Result<VersionView, ServiceError> {
        let (activation, version) = {
            let inner = self.read();
            let activation = inner.state.get(key).cloned().unwrap_or_default();
            let version = self.version_in(&inner, key, version.unwrap_or(activation.active))?;
            (activation, version)
        };
        // Reading the stored evaluation touches files: not under the lock every request takes.
        let number = version.bundle.version;
        Ok(VersionView {
            evaluation: self.fresh_evaluation(&version),
            traffic: self.traffic.summary(&version.bundle.key, number),
            active: activation.active == number,
            candidate: activation.candidate.is_some_and(|c| c.version == number),
            version,
        })
    }

    fn version_in(
        &self,
        inner: &Inner,
        key: &BundleKey,
        version: u32,
    ) -> Result<Arc<VersionOnDisk>, ServiceError> {
        let versions = inner.versions.get(key).ok_or_else(|| unknown_key(inner, key))?;
        versions.get(&version).cloned().ok_or_else(|| ServiceError::NotFound {
            what: "bundle version",
            name: format!("{key}@{version}"),
            known: versions.keys().map(|v| format!("{key}@{v}")).collect(),
        })
    }

    // ----- evaluations -----

    /// The held-out set of a region and its sha256.
    pub fn heldout(&self, region: &str) -> Result<(PathBuf, String), ServiceError> {
        let path = self.paths.eval_data.join(region).join("heldout.jsonl");
        let bytes = std::fs::read(&path).map_err(|err| {
            ServiceError::FailedPrecondition(format!(
                "no held-out set for region {region} to evaluate on ({}: {err})",
                path.display()
            ))
        })?;
        Ok((path, file::hex(&Sha256::digest(&bytes))))
    }

    /// The stored evaluation of `version`, if it still describes it and its held-out set.
    pub fn fresh_evaluation(&self, version: &VersionOnDisk) -> Option<EvalRecord> {
        let (_, dataset_sha256) = self.heldout(&version.bundle.key.region).ok()?;
        self.evals.get(&version.bundle).filter(|e| e.is_fresh(&version.digest, &dataset_sha256))
    }

    pub fn store_evaluation(&self, version: &VersionOnDisk, record: &EvalRecord) -> Result<(), ServiceError> {
        self.evals.put(&version.bundle, record)
    }

    // ----- publishing -----

    /// Publishes a new version from `write`, which fills the (temporary) version directory it is
    /// given; the directory becomes `v<N>` only once complete and readable.
    pub fn publish(
        &self,
        key: &BundleKey,
        by: &ChangeBy,
        write: impl FnOnce(&Path) -> Result<(), ServiceError>,
    ) -> Result<Arc<VersionOnDisk>, ServiceError> {
        let _one_at_a_time = self.publishing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let number = self.next_version(key)?;
        let parent = self.published_dir().join(key_path(key));
        let internal = |what: &str, err: &dyn std::fmt::Display| {
            ServiceError::Internal(format!("cannot {what} under {}: {err}", parent.display()))
        };
        std::fs::create_dir_all(&parent).map_err(|err| internal("create the bundle directory", &err))?;
        let partial = parent.join(format!(".v{number}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(|err| internal("create a version directory", &err))?;
        let staged = write(&partial).and_then(|()| {
            file::read_version(&partial, key, number)
                .map(|_| ())
                .map_err(|err| ServiceError::invalid("spec", err.to_string()))
        });
        if let Err(err) = staged {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(err);
        }
        self.audit
            .append(&AuditEntry::new(AuditAction::Publish, key, 0, number).by(&by.actor, &by.reason))?;
        let final_dir = parent.join(format!("v{number}"));
        std::fs::rename(&partial, &final_dir)
            .map_err(|err| internal("move the new version in place", &err))?;
        sync_dir(&parent);
        let version = Arc::new(file::read_version(&final_dir, key, number).map_err(file_error)?);
        let _changing = self.lock_state_changes();
        let new_key_state = {
            let inner = self.read();
            inner.state.get(key).is_none().then(|| {
                // Recorded as "no active version", so a restart does not start it on its own either.
                let mut state = inner.state.clone();
                state.set(key, Activation::default());
                state
            })
        };
        let mut inner = match new_key_state {
            Some(state) => self.save_state(state)?,
            None => self.write(),
        };
        inner.versions.entry(key.clone()).or_default().insert(number, Arc::clone(&version));
        drop(inner);
        // A first version of a new region/brand is not started here: like every published version it
        // serves once ActivateBundle says so.
        tracing::info!(bundle = %version.bundle.id(), actor = %by.actor, "bundle version published");
        Ok(version)
    }

    /// One past the highest version known in memory or present on disk.
    fn next_version(&self, key: &BundleKey) -> Result<u32, ServiceError> {
        let in_memory =
            self.read().versions.get(key).and_then(|v| v.keys().next_back().copied()).unwrap_or(0);
        let on_disk = [self.paths.shipped.clone(), self.published_dir()]
            .iter()
            .map(|dir| file::version_dirs(dir).map_err(file_error))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .filter(|(k, _, _)| k == key)
            .map(|(_, v, _)| v)
            .max()
            .unwrap_or(0);
        Ok(in_memory.max(on_disk) + 1)
    }

    // ----- activation -----

    /// Marks `key` as being activated until the guard drops: a second activation of the same
    /// region/brand meanwhile is refused instead of silently overriding the first.
    pub fn begin_activation(&self, key: &BundleKey) -> Result<ActivationGuard<'_>, ServiceError> {
        let mut activating = self.activating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !activating.insert(key.clone()) {
            return Err(ServiceError::FailedPrecondition(format!(
                "another activation, rollback or promotion of {key} is under way; retry when it has finished"
            )));
        }
        Ok(ActivationGuard { registry: self, key: key.clone() })
    }

    /// Makes `version` active for all traffic (`percent` 0 or 100) or the A/B candidate for
    /// `percent` of conversations. `gate` is what the evaluation gate found, run by the caller while
    /// holding the [`ActivationGuard`]; a failed gate refuses unless `force` (which needs a reason).
    pub fn activate(
        &self,
        guard: &ActivationGuard<'_>,
        version: u32,
        percent: u32,
        gate: &GateOutcome,
        force: bool,
        by: &ChangeBy,
    ) -> Result<BundleSummary, ServiceError> {
        if percent > 100 {
            return Err(ServiceError::invalid(
                "traffic_percent",
                "must be 0 or 100 (all traffic) or 1..=99 (A/B)",
            ));
        }
        let key = &guard.key;
        let _changing = self.lock_state_changes();
        let mut activation = {
            let inner = self.read();
            self.version_in(&inner, key, version)?;
            inner.state.get(key).cloned().unwrap_or_default()
        };
        let forced = gate.admits(force, by)?;
        let entry = if percent == 0 || percent == 100 {
            if activation.active == version && activation.candidate.is_none() {
                return Err(ServiceError::FailedPrecondition(format!("{key}@{version} is already active")));
            }
            let from = activation.active;
            if from != version && from != 0 {
                activation.previous.push(from);
            }
            activation.active = version;
            activation.candidate = None;
            AuditEntry::new(AuditAction::Activate, key, from, version)
        } else {
            if activation.active == version {
                return Err(ServiceError::FailedPrecondition(format!(
                    "{key}@{version} is the active version; an A/B candidate must be another version"
                )));
            }
            activation.candidate = Some(Candidate { version, percent });
            AuditEntry::new(AuditAction::StartCandidate, key, activation.active, version)
        };
        self.commit(key, activation, AuditEntry { forced, ..entry.by(&by.actor, &by.reason) })
    }

    /// Re-activates the version active before the current one.
    pub fn rollback(&self, key: &BundleKey, by: &ChangeBy) -> Result<BundleSummary, ServiceError> {
        self.change_activation(key, by, |activation| {
            let from = activation.active;
            let to = activation.previous.pop().ok_or_else(|| {
                ServiceError::FailedPrecondition(format!(
                    "{key} has no previous version to roll back to (active: {from})"
                ))
            })?;
            activation.active = to;
            activation.candidate = None;
            Ok(AuditEntry::new(AuditAction::Rollback, key, from, to))
        })
    }

    /// The A/B candidate becomes the active version for all traffic.
    pub fn promote(&self, key: &BundleKey, by: &ChangeBy) -> Result<BundleSummary, ServiceError> {
        self.change_activation(key, by, |activation| {
            let candidate = activation.candidate.take().ok_or_else(|| {
                ServiceError::FailedPrecondition(format!("{key} has no A/B candidate to promote"))
            })?;
            let from = activation.active;
            if from != 0 {
                activation.previous.push(from);
            }
            activation.active = candidate.version;
            Ok(AuditEntry::new(AuditAction::PromoteCandidate, key, from, candidate.version))
        })
    }

    /// Stops the A/B candidate: all traffic goes to the active version.
    pub fn abort_candidate(&self, key: &BundleKey, by: &ChangeBy) -> Result<BundleSummary, ServiceError> {
        self.change_activation(key, by, |activation| {
            let candidate = activation.candidate.take().ok_or_else(|| {
                ServiceError::FailedPrecondition(format!("{key} has no A/B candidate to abort"))
            })?;
            Ok(AuditEntry::new(AuditAction::AbortCandidate, key, candidate.version, activation.active))
        })
    }

    /// The steps every change of an existing key's activation takes: hold its activation slot and
    /// the state-change lock, apply `change` to a copy of its activation (which returns the audit
    /// entry, or refuses and nothing changes), then commit that copy.
    fn change_activation(
        &self,
        key: &BundleKey,
        by: &ChangeBy,
        change: impl FnOnce(&mut Activation) -> Result<AuditEntry, ServiceError>,
    ) -> Result<BundleSummary, ServiceError> {
        let _slot = self.begin_activation(key)?;
        let _changing = self.lock_state_changes();
        let mut activation = self.activation_of(key)?;
        let entry = change(&mut activation)?.by(&by.actor, &by.reason);
        self.commit(key, activation, entry)
    }

    fn activation_of(&self, key: &BundleKey) -> Result<Activation, ServiceError> {
        let inner = self.read();
        inner.state.get(key).cloned().ok_or_else(|| unknown_key(&inner, key))
    }

    /// Audit entry, then state file, then memory; nothing changes if a write fails. The caller holds
    /// `state_changes` since it read the activation it changed.
    fn commit(
        &self,
        key: &BundleKey,
        activation: Activation,
        entry: AuditEntry,
    ) -> Result<BundleSummary, ServiceError> {
        let mut state = self.read().state.clone();
        state.set(key, activation.clone());
        self.audit.append(&entry)?;
        let inner = self.save_state(state)?;
        tracing::info!(bundle = %key, action = ?entry.action, from = entry.from_version, to = entry.to_version, actor = %entry.actor, "bundle activation changed");
        Ok(BundleSummary {
            key: key.clone(),
            active: activation.active,
            candidate: activation.candidate,
            versions: inner.versions.get(key).map(|v| v.keys().copied().collect()).unwrap_or_default(),
        })
    }

    // ----- audit and reload -----

    pub fn audit_page(
        &self,
        region: Option<&str>,
        brand: Option<&str>,
        page_size: usize,
        page_token: &str,
    ) -> Result<(Vec<AuditEntry>, String), ServiceError> {
        self.audit.page(region, brand, page_size, page_token)
    }

    /// Re-reads both directories: adds new versions, refuses changed ones.
    pub fn reload(&self, by: &ChangeBy) -> Result<Reloaded, ServiceError> {
        let found = scan_all(&self.paths)?;
        let mut reloaded = Reloaded::default();
        let mut inner = self.write();
        for (key, versions) in found {
            for (number, version) in versions {
                let known = inner.versions.get(&key).and_then(|v| v.get(&number));
                match known {
                    Some(known) if known.digest == version.digest => {}
                    Some(_) => reloaded.changed.push(version.bundle.id()),
                    None => {
                        reloaded.added.push(version.bundle.id());
                        inner.versions.entry(key.clone()).or_default().insert(number, version);
                    }
                }
            }
        }
        drop(inner);
        for id in &reloaded.added {
            let (key, version) = parse_id(id);
            self.audit
                .append(&AuditEntry::new(AuditAction::Reload, &key, 0, version).by(&by.actor, &by.reason))?;
        }
        if !reloaded.changed.is_empty() {
            tracing::warn!(versions = ?reloaded.changed, "bundle versions changed on disk; published versions are immutable: the registry keeps what it read, and an edited artifact is refused when it is loaded again");
        }
        self.start_new_keys()?;
        Ok(reloaded)
    }

    /// Region/brands without an activation start on their highest version.
    fn start_new_keys(&self) -> Result<(), ServiceError> {
        let _changing = self.lock_state_changes();
        let started = {
            let inner = self.read();
            let mut state = inner.state.clone();
            let mut changed = false;
            for (key, versions) in &inner.versions {
                if state.get(key).is_none()
                    && let Some(&highest) = versions.keys().next_back()
                {
                    state.set(key, Activation { active: highest, ..Activation::default() });
                    changed = true;
                }
            }
            changed.then_some(state)
        };
        if let Some(state) = started {
            drop(self.save_state(state)?);
        }
        Ok(())
    }

    /// Makes `state` durable, then current; returns the write lock taken for the swap. The caller
    /// holds `state_changes`.
    fn save_state(&self, state: State) -> Result<RwLockWriteGuard<'_, Inner>, ServiceError> {
        state.save(&state_path(&self.paths.state_dir))?;
        let mut inner = self.write();
        inner.state = state;
        Ok(inner)
    }

    fn lock_state_changes(&self) -> MutexGuard<'_, ()> {
        self.state_changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // Every change replaces whole values after its writes succeed, so a panicked writer cannot
        // leave a half-made change behind: a poisoned lock is safe to keep using.
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Re-reads the bundle directories whenever their files change (checked every `every`), so bundles
/// edited on disk are picked up without a restart or a ReloadBundles call.
pub async fn watch(registry: Arc<Registry>, every: std::time::Duration) {
    let signature = |r: &Registry| {
        format!("{}{}", file::tree_signature(&r.paths.shipped), file::tree_signature(&r.published_dir()))
    };
    let mut seen = signature(&registry);
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let now = signature(&registry);
        if now == seen {
            continue;
        }
        seen = now;
        let by = ChangeBy { actor: "watcher".into(), reason: "bundle files changed on disk".into() };
        match registry.reload(&by) {
            Ok(reloaded) if !reloaded.added.is_empty() => {
                tracing::info!(added = ?reloaded.added, "bundles reloaded")
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "bundle reload failed; the loaded bundles keep serving"),
        }
    }
}

/// Holds a region/brand's activation slot; see [`Registry::begin_activation`].
#[derive(Debug)]
pub struct ActivationGuard<'a> {
    registry: &'a Registry,
    key: BundleKey,
}

impl Drop for ActivationGuard<'_> {
    fn drop(&mut self) {
        let mut activating =
            self.registry.activating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        activating.remove(&self.key);
    }
}

/// What the evaluation gate found before an activation.
#[derive(Debug, Clone, PartialEq)]
pub enum GateOutcome {
    /// Nothing to compare against (no active version, or it is the same one).
    NotNeeded,
    /// The comparisons made.
    Checked(Vec<GateCheck>),
    /// An evaluation was missing and could not be run.
    Unavailable(String),
}

impl GateOutcome {
    /// Whether the activation may go ahead, and if so whether only because of `force`.
    fn admits(&self, force: bool, by: &ChangeBy) -> Result<bool, ServiceError> {
        if force && by.reason.trim().is_empty() {
            return Err(ServiceError::invalid("reason", "force needs a reason (it goes into the audit log)"));
        }
        let refusal = match self {
            GateOutcome::Checked(checks) if checks.iter().any(|c| !c.passed) => {
                format!("the evaluation gate failed: {}", gate::describe_failures(checks))
            }
            GateOutcome::Unavailable(why) => format!("the evaluation gate could not run: {why}"),
            GateOutcome::NotNeeded | GateOutcome::Checked(_) => return Ok(false),
        };
        if force {
            return Ok(true);
        }
        Err(ServiceError::FailedPrecondition(format!(
            "{refusal}; activate with force and a reason to override"
        )))
    }
}

impl BundleRegistry for Registry {
    fn resolve(&self, key: &BundleKey, version: Option<u32>) -> Result<Arc<Bundle>, ServiceError> {
        let inner = self.read();
        let active = inner.state.get(key).map_or(0, |a| a.active);
        Ok(Arc::clone(&self.version_in(&inner, key, version.unwrap_or(active))?.bundle))
    }

    fn route(
        &self,
        key: &BundleKey,
        pinned: Option<u32>,
        conversation_id: &str,
    ) -> Result<Arc<Bundle>, ServiceError> {
        if pinned.is_some() {
            return self.resolve(key, pinned);
        }
        let inner = self.read();
        let activation = inner.state.get(key).cloned().unwrap_or_default();
        let version = match activation.candidate {
            Some(candidate) if ab_bucket(key, conversation_id) < candidate.percent => candidate.version,
            _ => activation.active,
        };
        Ok(Arc::clone(&self.version_in(&inner, key, version)?.bundle))
    }

    fn record(&self, bundle: &Bundle, served: Served) {
        self.traffic.record(&bundle.key, bundle.version, served);
    }
}

/// NOT_FOUND for `key`, listing the bundles `inner` holds. Takes the caller's guard: locking again
/// from under a held lock would deadlock.
fn unknown_key(inner: &Inner, key: &BundleKey) -> ServiceError {
    let known = inner.versions.keys().map(ToString::to_string).collect();
    ServiceError::NotFound { what: "region/brand bundle", name: key.to_string(), known }
}

/// The conversation's A/B bucket for `key`, 0..100: the same conversation always gets the same one.
pub fn ab_bucket(key: &BundleKey, conversation_id: &str) -> u32 {
    let digest = Sha256::digest(format!("{key}\n{conversation_id}").as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 100
}

/// Shipped and published versions; the same version in both is an error naming both.
fn scan_all(
    paths: &RegistryPaths,
) -> Result<BTreeMap<BundleKey, BTreeMap<u32, Arc<VersionOnDisk>>>, ServiceError> {
    let mut all: BTreeMap<BundleKey, BTreeMap<u32, Arc<VersionOnDisk>>> = BTreeMap::new();
    for dir in [paths.shipped.clone(), paths.state_dir.join(PUBLISHED_DIR)] {
        for (key, versions) in file::scan(&dir).map_err(file_error)? {
            let slot = all.entry(key).or_default();
            for (number, version) in versions {
                if let Some(existing) = slot.get(&number) {
                    return Err(ServiceError::Internal(format!(
                        "bundle {} is in both {} and {}",
                        version.bundle.id(),
                        existing.dir.display(),
                        version.dir.display()
                    )));
                }
                slot.insert(number, Arc::new(version));
            }
        }
    }
    Ok(all)
}

fn file_error(err: BundleFileError) -> ServiceError {
    ServiceError::Internal(err.to_string())
}

/// `region` or `region/brand` as a relative path.
fn key_path(key: &BundleKey) -> PathBuf {
    match &key.brand {
        Some(brand) => Path::new(&key.region).join(brand),
        None => PathBuf::from(&key.region),
    }
}

/// `region[/brand]@version` back into its parts (ids made by [`Bundle::id`]).
pub(crate) fn parse_id(id: &str) -> (BundleKey, u32) {
    let (key, version) = id.rsplit_once('@').unwrap_or((id, "0"));
    let (region, brand) = match key.split_once('/') {
        Some((region, brand)) => (region, Some(brand.to_owned())),
        None => (key, None),
    };
    (BundleKey { region: region.to_owned(), brand }, version.parse().unwrap_or(0))
}

/// Makes a rename inside `dir` durable.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
