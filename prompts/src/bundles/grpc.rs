//! PromptService over gRPC: request validation and wire conversions around the [`Registry`], the
//! artifact checks of `PublishBundle`, and the evaluation gate of `ActivateBundle` (which runs missing
//! evaluations on the model worker through [`Evaluator`]).

use std::{collections::HashMap, sync::Arc};

use rudder_core::{BundleKey, ServiceError, access::Principal};
use rudder_generation::{
    Engine, ModelInfo,
    steering::{self, PREFIX_KEYS, PREFIX_VALUES, SOFT_PROMPT, check_prefix, check_soft_prompt},
    validation::{repetition_penalty_ok, temperature_ok, top_p_ok},
};
use rudder_proto::{convert::principal, status, timestamp, v1};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status, Streaming};

use super::{
    audit::{AuditAction, AuditEntry},
    file::{
        self, ArtifactFile, ArtifactInfo, BundleFile, GenerationFile, RetrievalScope, VersionOnDisk, hex,
    },
    gate::{self, EvalRecord, GateCheck},
    registry::{BundleSummary, ChangeBy, GateOutcome, Registry},
};
use crate::{
    artifact::{self, ArtifactManifest, MANIFEST_FILE, TENSORS_FILE, Training},
    train::Kind,
};

/// Largest artifact a publish may upload (the shipped model's prefix is under 1 MiB).
pub const MAX_ARTIFACT_BYTES: usize = 64 << 20;

/// Runs a bundle version's held-out evaluation on the model worker.
#[derive(Debug, Clone)]
pub struct Evaluator {
    pub engine: Engine,
    /// Held-out examples evaluated (None: all).
    pub limit: Option<usize>,
    pub max_new_tokens: usize,
}

impl Evaluator {
    pub async fn evaluate(
        &self,
        registry: &Registry,
        version: Arc<VersionOnDisk>,
    ) -> Result<EvalRecord, ServiceError> {
        let (heldout, dataset_sha256) = registry.heldout(&version.bundle.key.region)?;
        let (limit, max_new_tokens) = (self.limit, self.max_new_tokens);
        let bundle = Arc::clone(&version.bundle);
        let path = heldout.clone();
        tracing::info!(bundle = %bundle.id(), heldout = %heldout.display(), "evaluating");
        let result = self
            .engine
            .run_exclusive(move |model| {
                crate::eval::run::evaluate_bundle(model, &bundle, &path, limit, max_new_tokens)
            })
            .await
            .map_err(ServiceError::from)?
            .map_err(|err| ServiceError::FailedPrecondition(format!("evaluation failed: {err}")))?;
        let record = EvalRecord {
            metrics: result.metrics(),
            dataset: heldout.display().to_string(),
            dataset_sha256,
            examples: result.examples,
            bundle_digest: version.digest.clone(),
            evaluated_at: rudder_core::time::now_rfc3339(),
        };
        registry.store_evaluation(&version, &record)?;
        Ok(record)
    }
}

#[derive(Debug, Clone)]
pub struct PromptServiceImpl {
    registry: Arc<Registry>,
    model: ModelInfo,
    /// Regions a bundle may be published for (the store's).
    regions: Vec<String>,
    evaluator: Option<Evaluator>,
}

impl PromptServiceImpl {
    pub fn new(
        registry: Arc<Registry>,
        model: ModelInfo,
        regions: Vec<String>,
        evaluator: Option<Evaluator>,
    ) -> Self {
        Self { registry, model, regions, evaluator }
    }

    /// The bundle key a request names, within the caller's regions and brands.
    fn key(
        &self,
        who: &Principal,
        region: &str,
        brand: &str,
        field: &str,
    ) -> Result<BundleKey, ServiceError> {
        let region = rudder_core::names::region(region);
        if region.is_empty() {
            return Err(ServiceError::invalid(format!("{field}region"), "must be set (e.g. \"uk\")"));
        }
        let brand = rudder_core::names::brand(brand);
        who.check(&region, brand.as_deref())?;
        Ok(BundleKey { region, brand })
    }

    /// The stored fresh evaluation of `version`, or a new one when an evaluator is configured and
    /// `run` allows it.
    async fn evaluation(&self, version: Arc<VersionOnDisk>, run: bool) -> Result<EvalRecord, String> {
        if let Some(stored) = self.registry.fresh_evaluation(&version) {
            return Ok(stored);
        }
        let id = version.bundle.id();
        match (&self.evaluator, run) {
            (Some(evaluator), true) => {
                evaluator.evaluate(&self.registry, version).await.map_err(|err| format!("{id}: {err}"))
            }
            _ => Err(format!("{id} has no fresh evaluation (run EvaluateBundle on it first)")),
        }
    }

    async fn gate(&self, key: &BundleKey, version: u32, force: bool) -> Result<GateOutcome, ServiceError> {
        let candidate = self.registry.get(key, Some(version))?;
        let active = match self.registry.get(key, None) {
            Ok(active) if active.version.bundle.version != version => active,
            _ => return Ok(GateOutcome::NotNeeded),
        };
        // Forced: use stored evaluations where they exist, never spend minutes evaluating.
        let (candidate, active) =
            (self.evaluation(candidate.version, !force).await, self.evaluation(active.version, !force).await);
        Ok(match (candidate, active) {
            (Ok(c), Ok(a)) if c.examples != a.examples => GateOutcome::Unavailable(format!(
                "the evaluations ran on {} and {} examples; re-run EvaluateBundle on both",
                c.examples, a.examples
            )),
            (Ok(c), Ok(a)) => GateOutcome::Checked(gate::compare(&c, &a)),
            (Err(why), _) | (_, Err(why)) => GateOutcome::Unavailable(why),
        })
    }
}

/// Who made a change, for the audit log: the authenticated key's id (a different `actor` the request
/// names is kept beside it); with authentication off, the request's `actor`.
fn by(who: &Principal, actor: String, reason: String) -> ChangeBy {
    ChangeBy { actor: who.named_actor(&actor), reason }
}

fn summary(s: &BundleSummary) -> v1::BundleSummary {
    v1::BundleSummary {
        region: s.key.region.clone(),
        brand: s.key.brand.clone().unwrap_or_default(),
        active_version: s.active,
        candidate_version: s.candidate.map_or(0, |c| c.version),
        candidate_traffic_percent: s.candidate.map_or(0, |c| c.percent),
        versions: s.versions.clone(),
    }
}

fn artifact_kind(kind: Kind) -> v1::ArtifactKind {
    match kind {
        Kind::Prefix => v1::ArtifactKind::PolicyPrefix,
        Kind::SoftPrompt => v1::ArtifactKind::ToneSoftPrompt,
    }
}

fn manifest_message(info: &ArtifactInfo) -> v1::ArtifactManifest {
    let manifest = info.manifest.as_ref();
    let training = manifest.and_then(|m| m.training.as_ref());
    v1::ArtifactManifest {
        kind: artifact_kind(info.kind) as i32,
        name: manifest.map_or_else(|| info.reference.name.clone(), |m| m.name.clone()),
        shapes: manifest
            .map(|m| {
                m.tensors
                    .iter()
                    .map(|(name, dims)| {
                        (name.clone(), v1::TensorShape { dims: dims.iter().map(|&d| d as u64).collect() })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        base_model_fingerprint: info.reference.base_model_fingerprint.clone(),
        training_data_sha256: training
            .map(|t| t.data_sha256.values().cloned().collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        hyperparameters: training
            .and_then(|t| t.hyper_parameters.as_object())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                    .collect()
            })
            .unwrap_or_default(),
        validation_loss_before: training.map_or(0.0, |t| t.validation_loss_before),
        validation_loss_after: training.map_or(0.0, |t| t.validation_loss_after),
        steps: training.map_or(0, |t| u32::try_from(t.steps).unwrap_or(u32::MAX)),
        wall_time_seconds: training.map_or(0.0, |t| t.wall_time_s),
        created_at: manifest.and_then(|m| timestamp(&m.created_at)),
        sha256: info.sha256.clone(),
    }
}

fn eval_report(record: &EvalRecord) -> v1::EvalReport {
    v1::EvalReport {
        metrics: record.metrics.clone().into_iter().collect(),
        dataset: record.dataset.clone(),
        dataset_sha256: record.dataset_sha256.clone(),
        evaluated_at: timestamp(&record.evaluated_at),
    }
}

fn gate_check(check: &GateCheck) -> v1::GateCheck {
    v1::GateCheck {
        metric: check.metric.clone(),
        candidate: check.candidate,
        active: check.active,
        tolerance: check.tolerance,
        passed: check.passed,
    }
}

fn audit_entry(entry: &AuditEntry) -> v1::AuditEntry {
    let action = match entry.action {
        AuditAction::Publish => v1::AuditAction::Publish,
        AuditAction::Activate => v1::AuditAction::Activate,
        AuditAction::Rollback => v1::AuditAction::Rollback,
        AuditAction::StartCandidate => v1::AuditAction::StartCandidate,
        AuditAction::PromoteCandidate => v1::AuditAction::PromoteCandidate,
        AuditAction::AbortCandidate => v1::AuditAction::AbortCandidate,
        AuditAction::Reload => v1::AuditAction::Reload,
    };
    v1::AuditEntry {
        at: timestamp(&entry.at),
        actor: entry.actor.clone(),
        action: action as i32,
        region: entry.region.clone(),
        brand: entry.brand.clone().unwrap_or_default(),
        from_version: entry.from_version,
        to_version: entry.to_version,
        reason: entry.reason.clone(),
        forced: entry.forced,
    }
}

/// A publish as received: the spec and each artifact's bytes.
#[derive(Debug)]
struct Upload {
    spec: v1::BundleSpec,
    data: HashMap<String, Vec<u8>>,
}

async fn receive(mut stream: Streaming<v1::PublishBundleRequest>) -> Result<Upload, ServiceError> {
    use v1::publish_bundle_request::Message;
    let first = stream.message().await.map_err(|err| ServiceError::Cancelled(err.to_string()))?;
    let spec = match first.and_then(|m| m.message) {
        Some(Message::Spec(spec)) => spec,
        _ => return Err(ServiceError::invalid("spec", "the first message must be the BundleSpec")),
    };
    // Checked before any bytes are buffered: at most one artifact of each kind.
    if spec.artifacts.len() > 2 {
        return Err(ServiceError::invalid(
            "spec.artifacts",
            "at most two: a policy prefix and a tone soft prompt",
        ));
    }
    let mut data: HashMap<String, Vec<u8>> = HashMap::new();
    while let Some(message) =
        stream.message().await.map_err(|err| ServiceError::Cancelled(err.to_string()))?
    {
        match message.message {
            Some(Message::Data(piece)) => {
                if !spec.artifacts.iter().any(|a| a.name == piece.artifact_name) {
                    return Err(ServiceError::invalid(
                        "data.artifact_name",
                        format!("{:?} is not an artifact the spec lists", piece.artifact_name),
                    ));
                }
                let bytes = data.entry(piece.artifact_name.clone()).or_default();
                if bytes.len() + piece.content.len() > MAX_ARTIFACT_BYTES {
                    return Err(ServiceError::invalid(
                        "data.content",
                        format!(
                            "artifact {} is over the limit of {MAX_ARTIFACT_BYTES} bytes",
                            piece.artifact_name
                        ),
                    ));
                }
                bytes.extend_from_slice(&piece.content);
            }
            Some(Message::Spec(_)) => {
                return Err(ServiceError::invalid("spec", "only the first message may be a BundleSpec"));
            }
            None => {}
        }
    }
    Ok(Upload { spec, data })
}

/// An artifact that passed every check, ready to be written.
#[derive(Debug)]
struct CheckedArtifact {
    kind: Kind,
    manifest: ArtifactManifest,
    bytes: Vec<u8>,
}

impl PromptServiceImpl {
    fn check_region(&self, region: &str, field: &str) -> Result<(), ServiceError> {
        let well_formed = !region.is_empty()
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err(ServiceError::invalid(field, "must be lowercase letters, digits and '-'"));
        }
        if !self.regions.iter().any(|r| r == region) {
            return Err(ServiceError::NotFound {
                what: "region",
                name: region.to_owned(),
                known: self.regions.clone(),
            });
        }
        Ok(())
    }

    /// Every check of a publish, before anything is written.
    fn check_upload(&self, upload: &mut Upload) -> Result<Vec<CheckedArtifact>, ServiceError> {
        let spec = &upload.spec;
        self.check_region(&spec.region, "spec.region")?;
        let brand = spec.brand.trim();
        check_brand(brand, "spec.brand")?;
        // On disk a brand is a directory beside the region's `v<N>` version directories.
        if brand.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            return Err(ServiceError::invalid("spec.brand", "must not look like a version (v1, v2, ...)"));
        }
        if spec.system_text.trim().is_empty() {
            return Err(ServiceError::invalid("spec.system_text", "must not be empty"));
        }
        for (i, region) in spec.retrieval_regions.iter().enumerate() {
            self.check_region(region, &format!("spec.retrieval_regions[{i}]"))?;
        }
        if spec.retrieval_regions.len() > 1 {
            return Err(ServiceError::invalid("spec.retrieval_regions", file::MULTIPLE_REGIONS));
        }
        for (i, brand) in spec.retrieval_brands.iter().enumerate() {
            check_brand(brand, &format!("spec.retrieval_brands[{i}]"))?;
        }
        if spec.retrieval_brands.len() > 1 {
            return Err(ServiceError::invalid("spec.retrieval_brands", file::MULTIPLE_BRANDS));
        }
        if let Some(g) = &spec.generation {
            check_generation(g, self.model.config.max_position)?;
        }
        let mut checked: Vec<CheckedArtifact> = Vec::new();
        for (i, manifest) in spec.artifacts.iter().enumerate() {
            let field = |name: &str| format!("spec.artifacts[{i}].{name}");
            let kind = match v1::ArtifactKind::try_from(manifest.kind) {
                Ok(v1::ArtifactKind::PolicyPrefix) => Kind::Prefix,
                Ok(v1::ArtifactKind::ToneSoftPrompt) => Kind::SoftPrompt,
                _ => {
                    return Err(ServiceError::invalid(
                        field("kind"),
                        "must be POLICY_PREFIX or TONE_SOFT_PROMPT",
                    ));
                }
            };
            if checked.iter().any(|c| c.kind == kind) {
                return Err(ServiceError::invalid(
                    field("kind"),
                    "a bundle holds at most one artifact of each kind",
                ));
            }
            if manifest.name.trim().is_empty() || spec.artifacts[..i].iter().any(|a| a.name == manifest.name)
            {
                return Err(ServiceError::invalid(field("name"), "must be set and unique within the bundle"));
            }
            if manifest.base_model_fingerprint != self.model.fingerprint {
                return Err(ServiceError::FailedPrecondition(format!(
                    "{}: artifact {} was trained on base model {:?}; this server runs {}",
                    field("base_model_fingerprint"),
                    manifest.name,
                    manifest.base_model_fingerprint,
                    self.model.fingerprint
                )));
            }
            let bytes = upload.data.remove(&manifest.name).ok_or_else(|| {
                ServiceError::invalid(
                    "data",
                    format!("no ArtifactData was sent for artifact {}", manifest.name),
                )
            })?;
            let invalid = |reason: String| ServiceError::invalid(format!("data[{}]", manifest.name), reason);
            if !manifest.sha256.is_empty() && manifest.sha256 != hex(&Sha256::digest(&bytes)) {
                return Err(invalid("does not match the manifest's sha256".into()));
            }
            let tensors = steering::read_tensors(&bytes).map_err(invalid)?;
            let tensor =
                |name: &str| tensors.get(name).ok_or_else(|| invalid(format!("has no tensor {name}")));
            let config = &self.model.config;
            match kind {
                Kind::Prefix => check_prefix(config, tensor(PREFIX_KEYS)?, tensor(PREFIX_VALUES)?),
                Kind::SoftPrompt => check_soft_prompt(config, tensor(SOFT_PROMPT)?),
            }
            .map_err(invalid)?;
            for (name, t) in &tensors {
                if let Some(claimed) = manifest.shapes.get(name) {
                    let actual: Vec<u64> = t.dims().iter().map(|&d| d as u64).collect();
                    if claimed.dims != actual {
                        return Err(invalid(format!(
                            "tensor {name} has shape {actual:?}, the manifest says {:?}",
                            claimed.dims
                        )));
                    }
                }
            }
            let shapes = tensors.iter().map(|(name, t)| (name.clone(), t.dims().to_vec())).collect();
            checked.push(CheckedArtifact {
                kind,
                manifest: self.stored_manifest(manifest, kind, shapes, &spec.actor),
                bytes,
            });
        }
        if let Some(name) = upload.data.keys().next() {
            return Err(ServiceError::invalid("data", format!("artifact {name} was sent twice")));
        }
        Ok(checked)
    }

    /// The trainer's manifest format for an uploaded artifact.
    fn stored_manifest(
        &self,
        m: &v1::ArtifactManifest,
        kind: Kind,
        tensors: std::collections::BTreeMap<String, Vec<usize>>,
        actor: &str,
    ) -> ArtifactManifest {
        let trained = m.steps > 0 || !m.training_data_sha256.is_empty();
        let hyper: serde_json::Map<String, serde_json::Value> = m
            .hyperparameters
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        ArtifactManifest {
            format: artifact::FORMAT_VERSION,
            name: m.name.clone(),
            kind,
            tensors,
            base_model_fingerprint: m.base_model_fingerprint.clone(),
            base_model_name: self.model.name.clone(),
            created_at: m
                .created_at
                .as_ref()
                .and_then(|t| u64::try_from(t.seconds).ok())
                .map_or_else(rudder_core::time::now_rfc3339, rudder_core::time::rfc3339),
            training: trained.then(|| Training {
                data_sha256: [("training data".to_owned(), m.training_data_sha256.clone())].into(),
                train_examples: 0,
                validation_examples: 0,
                hyper_parameters: serde_json::Value::Object(hyper),
                validation_loss_before: m.validation_loss_before,
                validation_loss_after: m.validation_loss_after,
                steps: u64::from(m.steps),
                best_step: None,
                companion: None,
                wall_time_s: m.wall_time_seconds,
                train_tokens_per_s: 0.0,
                stopped_by: String::new(),
                command: String::new(),
            }),
            imported_from: Some(format!(
                "PublishBundle by {}",
                if actor.is_empty() { "anonymous" } else { actor }
            )),
        }
    }
}

/// Brands are stored and matched lowercase (a request's brand is lowercased).
fn check_brand(brand: &str, field: &str) -> Result<(), ServiceError> {
    if !brand.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(ServiceError::invalid(field, "must be lowercase letters, digits and '-'"));
    }
    Ok(())
}

fn check_generation(g: &v1::GenerationDefaults, context: usize) -> Result<(), ServiceError> {
    if g.max_tokens as usize >= context {
        return Err(ServiceError::invalid(
            "spec.generation.max_tokens",
            format!("must be 0 (default) to {}", context - 1),
        ));
    }
    // 0 is "the server's default" in a bundle; any other value obeys the request's rules.
    if !temperature_ok(g.temperature) {
        return Err(ServiceError::invalid("spec.generation.temperature", "must be >= 0"));
    }
    if g.top_p != 0.0 && !top_p_ok(g.top_p) {
        return Err(ServiceError::invalid("spec.generation.top_p", "must be 0 (default) or in (0, 1]"));
    }
    if g.repetition_penalty != 0.0 && !repetition_penalty_ok(g.repetition_penalty) {
        return Err(ServiceError::invalid(
            "spec.generation.repetition_penalty",
            "must be 0 (default) or > 0",
        ));
    }
    Ok(())
}

/// Writes a checked publish into the version directory `dir`: artifacts first, `bundle.toml` last.
fn write_version(
    dir: &std::path::Path,
    spec: &v1::BundleSpec,
    artifacts: &[CheckedArtifact],
) -> Result<(), ServiceError> {
    let io = |err: artifact::ArtifactError| ServiceError::Internal(err.to_string());
    let (mut policy_prefix, mut tone_soft_prompt) = (None, None);
    for a in artifacts {
        let sub = match a.kind {
            Kind::Prefix => "policy-prefix",
            Kind::SoftPrompt => "tone-soft-prompt",
        };
        let artifact_dir = dir.join(sub);
        std::fs::create_dir_all(&artifact_dir).map_err(|err| ServiceError::Internal(err.to_string()))?;
        artifact::write_file(&artifact_dir.join(TENSORS_FILE), &a.bytes).map_err(io)?;
        let json = serde_json::to_string_pretty(&a.manifest)
            .map_err(|err| ServiceError::Internal(err.to_string()))?;
        artifact::write_file(&artifact_dir.join(MANIFEST_FILE), json.as_bytes()).map_err(io)?;
        let entry = ArtifactFile {
            file: std::path::Path::new(sub).join(TENSORS_FILE),
            base_model_fingerprint: a.manifest.base_model_fingerprint.clone(),
            sha256: Some(hex(&Sha256::digest(&a.bytes))),
        };
        match a.kind {
            Kind::Prefix => policy_prefix = Some(entry),
            Kind::SoftPrompt => tone_soft_prompt = Some(entry),
        }
    }
    let nonzero_u32 = |v: u32| (v != 0).then_some(v);
    let nonzero_f32 = |v: f32| (v != 0.0).then_some(v);
    let file = BundleFile {
        system_text: spec.system_text.clone(),
        handover_text: spec.handover_text.trim().to_owned(),
        description: spec.description.clone(),
        published_by: spec.actor.clone(),
        published_at: rudder_core::time::now_rfc3339(),
        retrieval: (!spec.retrieval_regions.is_empty()).then(|| RetrievalScope {
            regions: spec.retrieval_regions.clone(),
            brands: spec.retrieval_brands.clone(),
        }),
        generation: spec.generation.as_ref().map(|g| GenerationFile {
            max_tokens: nonzero_u32(g.max_tokens),
            // Temperature 0 is a real setting (greedy), so it is kept as given.
            temperature: Some(g.temperature),
            top_p: nonzero_f32(g.top_p),
            top_k: nonzero_u32(g.top_k),
            repetition_penalty: nonzero_f32(g.repetition_penalty),
        }),
        policy_prefix,
        tone_soft_prompt,
    };
    let text = toml::to_string(&file).map_err(|err| ServiceError::Internal(err.to_string()))?;
    artifact::write_file(&dir.join(super::file::BUNDLE_FILE), text.as_bytes()).map_err(io)
}

#[tonic::async_trait]
impl v1::prompt_service_server::PromptService for PromptServiceImpl {
    async fn list_bundles(
        &self,
        request: Request<v1::ListBundlesRequest>,
    ) -> Result<Response<v1::ListBundlesResponse>, Status> {
        let who = principal(&request);
        let region = who.listing_region(&request.into_inner().region).map_err(status)?;
        let bundles = self.registry.list(region.as_deref()).iter().map(summary).collect();
        Ok(Response::new(v1::ListBundlesResponse { bundles }))
    }

    async fn get_bundle(
        &self,
        request: Request<v1::GetBundleRequest>,
    ) -> Result<Response<v1::GetBundleResponse>, Status> {
        let who = principal(&request);
        let r = request.into_inner().r#ref.unwrap_or_default();
        let key = self.key(&who, &r.region, &r.brand, "ref.").map_err(status)?;
        let view = self.registry.get(&key, (r.version != 0).then_some(r.version)).map_err(status)?;
        let v = &view.version;
        let b = &v.bundle;
        let artifact = |kind: Kind| v.artifacts.iter().find(|a| a.kind == kind).map(manifest_message);
        let g = &b.generation;
        let t = &view.traffic;
        let bundle = v1::Bundle {
            r#ref: Some(v1::BundleRef {
                region: b.key.region.clone(),
                brand: b.key.brand.clone().unwrap_or_default(),
                version: b.version,
            }),
            system_text: b.system_text.clone(),
            handover_text: b.handover_text.clone(),
            policy_prefix: artifact(Kind::Prefix),
            tone_soft_prompt: artifact(Kind::SoftPrompt),
            retrieval_regions: b.retrieval_regions.clone(),
            retrieval_brands: b.retrieval_brands.clone(),
            generation: Some(v1::GenerationDefaults {
                max_tokens: g.max_tokens,
                temperature: g.temperature,
                top_p: g.top_p,
                top_k: g.top_k,
                repetition_penalty: g.repetition_penalty,
            }),
            description: v.description.clone(),
            published_at: timestamp(&v.published_at),
            published_by: v.published_by.clone(),
            evaluation: view.evaluation.as_ref().map(eval_report),
            traffic: Some(v1::TrafficStats {
                requests: t.requests,
                errors: t.errors,
                cancelled: t.cancelled,
                rejected: t.rejected,
                latency_p50_ms: t.latency_p50_ms,
                latency_p99_ms: t.latency_p99_ms,
                time_to_first_token_p50_ms: t.time_to_first_token_p50_ms,
            }),
        };
        Ok(Response::new(v1::GetBundleResponse {
            bundle: Some(bundle),
            active: view.active,
            candidate: view.candidate,
        }))
    }

    async fn publish_bundle(
        &self,
        request: Request<Streaming<v1::PublishBundleRequest>>,
    ) -> Result<Response<v1::PublishBundleResponse>, Status> {
        let who = principal(&request);
        let mut upload = receive(request.into_inner()).await.map_err(status)?;
        let key = self.key(&who, &upload.spec.region, &upload.spec.brand, "spec.").map_err(status)?;
        let artifacts = self.check_upload(&mut upload).map_err(status)?;
        let registry = Arc::clone(&self.registry);
        let change = by(&who, upload.spec.actor.clone(), upload.spec.description.clone());
        let version = tokio::task::spawn_blocking(move || {
            registry.publish(&key, &change, |dir| write_version(dir, &upload.spec, &artifacts))
        })
        .await
        .map_err(|err| Status::internal(err.to_string()))?
        .map_err(status)?;
        let b = &version.bundle;
        Ok(Response::new(v1::PublishBundleResponse {
            r#ref: Some(v1::BundleRef {
                region: b.key.region.clone(),
                brand: b.key.brand.clone().unwrap_or_default(),
                version: b.version,
            }),
        }))
    }

    async fn activate_bundle(
        &self,
        request: Request<v1::ActivateBundleRequest>,
    ) -> Result<Response<v1::ActivateBundleResponse>, Status> {
        let who = principal(&request);
        let v1::ActivateBundleRequest { r#ref, traffic_percent, force, reason, actor } = request.into_inner();
        let r = r#ref.unwrap_or_default();
        let key = self.key(&who, &r.region, &r.brand, "ref.").map_err(status)?;
        if r.version == 0 {
            return Err(status(ServiceError::invalid("ref.version", "name the version to activate")));
        }
        // Cheap checks first: the gate may run evaluations for minutes.
        if traffic_percent > 100 {
            return Err(status(ServiceError::invalid(
                "traffic_percent",
                "must be 0 or 100 (all traffic) or 1..=99 (A/B)",
            )));
        }
        if force && reason.trim().is_empty() {
            return Err(status(ServiceError::invalid(
                "reason",
                "force needs a reason (it goes into the audit log)",
            )));
        }
        let guard = self.registry.begin_activation(&key).map_err(status)?;
        let outcome = self.gate(&key, r.version, force).await.map_err(status)?;
        let change = by(&who, actor, reason);
        let summary_now = self
            .registry
            .activate(&guard, r.version, traffic_percent, &outcome, force, &change)
            .map_err(status)?;
        let gate = match &outcome {
            GateOutcome::Checked(checks) => checks.iter().map(gate_check).collect(),
            _ => Vec::new(),
        };
        Ok(Response::new(v1::ActivateBundleResponse { summary: Some(summary(&summary_now)), gate }))
    }

    async fn rollback_bundle(
        &self,
        request: Request<v1::RollbackBundleRequest>,
    ) -> Result<Response<v1::RollbackBundleResponse>, Status> {
        let who = principal(&request);
        let v1::RollbackBundleRequest { region, brand, reason, actor } = request.into_inner();
        let key = self.key(&who, &region, &brand, "").map_err(status)?;
        let s = self.registry.rollback(&key, &by(&who, actor, reason)).map_err(status)?;
        Ok(Response::new(v1::RollbackBundleResponse { summary: Some(summary(&s)) }))
    }

    async fn promote_candidate(
        &self,
        request: Request<v1::PromoteCandidateRequest>,
    ) -> Result<Response<v1::PromoteCandidateResponse>, Status> {
        let who = principal(&request);
        let v1::PromoteCandidateRequest { region, brand, reason, actor } = request.into_inner();
        let key = self.key(&who, &region, &brand, "").map_err(status)?;
        let s = self.registry.promote(&key, &by(&who, actor, reason)).map_err(status)?;
        Ok(Response::new(v1::PromoteCandidateResponse { summary: Some(summary(&s)) }))
    }

    async fn abort_candidate(
        &self,
        request: Request<v1::AbortCandidateRequest>,
    ) -> Result<Response<v1::AbortCandidateResponse>, Status> {
        let who = principal(&request);
        let v1::AbortCandidateRequest { region, brand, reason, actor } = request.into_inner();
        let key = self.key(&who, &region, &brand, "").map_err(status)?;
        let s = self.registry.abort_candidate(&key, &by(&who, actor, reason)).map_err(status)?;
        Ok(Response::new(v1::AbortCandidateResponse { summary: Some(summary(&s)) }))
    }

    async fn evaluate_bundle(
        &self,
        request: Request<v1::EvaluateBundleRequest>,
    ) -> Result<Response<v1::EvaluateBundleResponse>, Status> {
        let who = principal(&request);
        let r = request.into_inner().r#ref.unwrap_or_default();
        let key = self.key(&who, &r.region, &r.brand, "ref.").map_err(status)?;
        let view = self.registry.get(&key, (r.version != 0).then_some(r.version)).map_err(status)?;
        let evaluator = self.evaluator.as_ref().ok_or_else(|| {
            status(ServiceError::FailedPrecondition("this server has no model to evaluate with".into()))
        })?;
        let record = evaluator.evaluate(&self.registry, view.version).await.map_err(status)?;
        Ok(Response::new(v1::EvaluateBundleResponse { report: Some(eval_report(&record)) }))
    }

    async fn get_audit_log(
        &self,
        request: Request<v1::GetAuditLogRequest>,
    ) -> Result<Response<v1::GetAuditLogResponse>, Status> {
        let who = principal(&request);
        let v1::GetAuditLogRequest { region, brand, page_size, page_token } = request.into_inner();
        let region = who.listing_region(&region).map_err(status)?;
        let brand = rudder_core::names::brand(&brand);
        let (entries, next_page_token) = self
            .registry
            .audit_page(region.as_deref(), brand.as_deref(), page_size as usize, &page_token)
            .map_err(status)?;
        Ok(Response::new(v1::GetAuditLogResponse {
            entries: entries.iter().map(audit_entry).collect(),
            next_page_token,
        }))
    }

    async fn reload_bundles(
        &self,
        request: Request<v1::ReloadBundlesRequest>,
    ) -> Result<Response<v1::ReloadBundlesResponse>, Status> {
        let who = principal(&request);
        if !who.regions.is_empty() || !who.brands.is_empty() {
            return Err(status(ServiceError::PermissionDenied(format!(
                "key {:?} is scoped to some regions or brands; reloading touches them all",
                who.id
            ))));
        }
        let registry = Arc::clone(&self.registry);
        let reloaded = tokio::task::spawn_blocking(move || {
            registry.reload(&ChangeBy { actor: "ReloadBundles".into(), reason: "reload requested".into() })
        })
        .await
        .map_err(|err| Status::internal(err.to_string()))?
        .map_err(status)?;
        if !reloaded.changed.is_empty() {
            return Err(status(ServiceError::FailedPrecondition(format!(
                "published versions are immutable; these changed on disk and keep serving what they were: {} (publish a new version instead){}",
                reloaded.changed.join(", "),
                if reloaded.added.is_empty() {
                    String::new()
                } else {
                    format!("; loaded: {}", reloaded.added.join(", "))
                }
            ))));
        }
        let reloaded = reloaded.added.iter().map(|id| bundle_ref(id)).collect();
        Ok(Response::new(v1::ReloadBundlesResponse { reloaded }))
    }
}

fn bundle_ref(id: &str) -> v1::BundleRef {
    let (key, version) = super::registry::parse_id(id);
    v1::BundleRef { region: key.region, brand: key.brand.unwrap_or_default(), version }
}
