//! The evaluation gate: a candidate version may replace the active one only if no gated metric of its
//! held-out evaluation is worse than the active version's by more than that metric's tolerance.
//! Evaluations are stored per version (`evals/<region>[_<brand>]@<version>.json`) with the digest of
//! the version and of the held-out file they ran on; one whose digests no longer match is stale.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rudder_core::{Bundle, ServiceError};
use serde::{Deserialize, Serialize};

use crate::artifact;

/// Scores of one version on its region's held-out set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Metric name to value (see [`GATED_METRICS`]).
    pub metrics: BTreeMap<String, f64>,
    pub dataset: String,
    pub dataset_sha256: String,
    /// Held-out examples evaluated.
    pub examples: usize,
    /// The digest of the bundle version evaluated.
    pub bundle_digest: String,
    /// RFC 3339 UTC.
    pub evaluated_at: String,
}

impl EvalRecord {
    /// Still describes this version on this data.
    pub fn is_fresh(&self, bundle_digest: &str, dataset_sha256: &str) -> bool {
        self.bundle_digest == bundle_digest && self.dataset_sha256 == dataset_sha256
    }
}

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// A gated metric: its name, which way is better, and how much worse a candidate may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateRule {
    pub metric: &'static str,
    pub better: Better,
    pub tolerance: f64,
}

/// The gated metrics (documented in prompts.proto). A metric either side lacks (e.g. British
/// spelling outside the UK, currency when no answer stated an amount) is not compared.
/// The answer's facts ([`crate::eval::facts`]) may not get worse at all.
pub const GATED_METRICS: [GateRule; 8] = [
    GateRule { metric: "fact_correct", better: Better::Higher, tolerance: 0.0 },
    GateRule { metric: "false_figure_rate", better: Better::Lower, tolerance: 0.0 },
    GateRule { metric: "heldout_nll", better: Better::Lower, tolerance: 0.05 },
    GateRule { metric: "currency_correct", better: Better::Higher, tolerance: 0.05 },
    GateRule { metric: "british_spelling", better: Better::Higher, tolerance: 0.05 },
    GateRule { metric: "apology_rate", better: Better::Lower, tolerance: 0.05 },
    GateRule { metric: "forbidden_promise_rate", better: Better::Lower, tolerance: 0.0 },
    GateRule { metric: "citation_rate", better: Better::Higher, tolerance: 0.05 },
];

/// One metric compared.
#[derive(Debug, Clone, PartialEq)]
pub struct GateCheck {
    pub metric: String,
    pub candidate: f64,
    pub active: f64,
    pub tolerance: f64,
    pub passed: bool,
}

/// Compares every gated metric both evaluations have.
pub fn compare(candidate: &EvalRecord, active: &EvalRecord) -> Vec<GateCheck> {
    GATED_METRICS
        .iter()
        .filter_map(|rule| {
            let (c, a) = (*candidate.metrics.get(rule.metric)?, *active.metrics.get(rule.metric)?);
            let worse_by = match rule.better {
                Better::Lower => c - a,
                Better::Higher => a - c,
            };
            Some(GateCheck {
                metric: rule.metric.to_owned(),
                candidate: c,
                active: a,
                tolerance: rule.tolerance,
                // A hair of float noise is not a regression.
                passed: worse_by <= rule.tolerance + 1e-9,
            })
        })
        .collect()
}

/// The failed checks as one line, e.g. "heldout_nll 1.30 vs 1.01 (tolerance 0.05)".
pub fn describe_failures(checks: &[GateCheck]) -> String {
    checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!("{} {:.3} vs active {:.3} (tolerance {})", c.metric, c.candidate, c.active, c.tolerance)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Stored evaluations, one JSON file per version.
#[derive(Debug, Clone)]
pub struct EvalStore {
    dir: PathBuf,
}

impl EvalStore {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    fn path(&self, bundle: &Bundle) -> PathBuf {
        let key = match &bundle.key.brand {
            Some(brand) => format!("{}_{brand}", bundle.key.region),
            None => bundle.key.region.clone(),
        };
        self.dir.join(format!("{key}@{}.json", bundle.version))
    }

    pub fn get(&self, bundle: &Bundle) -> Option<EvalRecord> {
        let text = std::fs::read_to_string(self.path(bundle)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn put(&self, bundle: &Bundle, record: &EvalRecord) -> Result<(), ServiceError> {
        let io = |err: String| ServiceError::Unavailable(format!("cannot store the evaluation: {err}"));
        std::fs::create_dir_all(&self.dir).map_err(|err| io(err.to_string()))?;
        let json = serde_json::to_string_pretty(record).map_err(|err| io(err.to_string()))?;
        artifact::write_file(&self.path(bundle), json.as_bytes()).map_err(|err| io(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(metrics: &[(&str, f64)]) -> EvalRecord {
        EvalRecord {
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            dataset: "heldout.jsonl".into(),
            dataset_sha256: "d".into(),
            examples: 16,
            bundle_digest: "b".into(),
            evaluated_at: "2026-11-21T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_metric_worse_beyond_its_tolerance_fails_and_better_or_close_passes() {
        let active = record(&[("heldout_nll", 1.00), ("apology_rate", 0.10), ("citation_rate", 0.50)]);
        let candidate = record(&[("heldout_nll", 1.04), ("apology_rate", 0.20), ("citation_rate", 0.90)]);
        let checks = compare(&candidate, &active);
        let passed: Vec<(&str, bool)> = checks.iter().map(|c| (c.metric.as_str(), c.passed)).collect();
        assert_eq!(passed, [("heldout_nll", true), ("apology_rate", false), ("citation_rate", true)]);
        assert_eq!(describe_failures(&checks), "apology_rate 0.200 vs active 0.100 (tolerance 0.05)");
    }

    #[test]
    fn any_loss_of_fact_correct_answers_or_any_more_false_figures_fails() {
        let active = record(&[("fact_correct", 0.75), ("false_figure_rate", 0.0)]);
        let candidate = record(&[("fact_correct", 0.70), ("false_figure_rate", 0.0625)]);
        let failed: Vec<String> =
            compare(&candidate, &active).into_iter().filter(|c| !c.passed).map(|c| c.metric).collect();
        assert_eq!(failed, ["fact_correct", "false_figure_rate"]);
        assert!(compare(&active, &candidate).iter().all(|c| c.passed));
    }

    #[test]
    fn metrics_one_side_lacks_are_not_compared() {
        let checks = compare(&record(&[("british_spelling", 0.2)]), &record(&[("heldout_nll", 1.0)]));
        assert!(checks.is_empty());
    }
}
