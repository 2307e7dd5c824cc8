//! Per-version traffic since the server started: requests by outcome, latency percentiles over the
//! most recent requests (what `GetBundle` shows next to the evaluation scores for an A/B comparison)
//! and latency histograms (what Prometheus scrapes).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use rudder_core::{
    BundleKey,
    bundle::{Outcome, Served},
    metrics::{Exposition, Histogram, LATENCY_BUCKETS_SECONDS},
};

/// Requests whose latencies the percentiles are taken over, per version.
const LATENCY_WINDOW: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficSummary {
    /// Every request, whatever its outcome.
    pub requests: u64,
    pub errors: u64,
    pub cancelled: u64,
    pub rejected: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub time_to_first_token_p50_ms: f64,
}

#[derive(Debug)]
struct Counters {
    /// Requests by outcome, indexed by [`Outcome::index`].
    by_outcome: [u64; Outcome::ALL.len()],
    latencies_ms: VecDeque<f64>,
    first_token_ms: VecDeque<f64>,
    latency: Histogram,
    first_token: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            by_outcome: [0; Outcome::ALL.len()],
            latencies_ms: VecDeque::new(),
            first_token_ms: VecDeque::new(),
            latency: Histogram::new(&LATENCY_BUCKETS_SECONDS),
            first_token: Histogram::new(&LATENCY_BUCKETS_SECONDS),
        }
    }
}

impl Counters {
    fn count(&self, outcome: Outcome) -> u64 {
        self.by_outcome[outcome.index()]
    }
}

/// Picks one of a version's histograms.
type HistogramOf = fn(&Counters) -> &Histogram;

/// A bundle version: its region/brand and version number.
type VersionKey = (BundleKey, u32);

/// Counters by bundle version, ordered so the exported metrics are stable.
#[derive(Debug, Default)]
pub struct Traffic {
    by_version: Mutex<BTreeMap<VersionKey, Counters>>,
}

impl Traffic {
    pub fn record(&self, key: &BundleKey, version: u32, served: Served) {
        let mut all = self.by_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let counters = all.entry((key.clone(), version)).or_default();
        counters.by_outcome[served.outcome.index()] += 1;
        // Failed and abandoned requests say nothing about how fast an answer is.
        if served.outcome != Outcome::Ok {
            return;
        }
        push_bounded(&mut counters.latencies_ms, millis(served.latency));
        counters.latency.observe(served.latency.as_secs_f64());
        if let Some(ttft) = served.time_to_first_token {
            push_bounded(&mut counters.first_token_ms, millis(ttft));
            counters.first_token.observe(ttft.as_secs_f64());
        }
    }

    pub fn summary(&self, key: &BundleKey, version: u32) -> TrafficSummary {
        let all = self.by_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(c) = all.get(&(key.clone(), version)) else { return TrafficSummary::default() };
        TrafficSummary {
            requests: c.by_outcome.iter().sum(),
            errors: c.count(Outcome::Error),
            cancelled: c.count(Outcome::Cancelled),
            rejected: c.count(Outcome::Rejected),
            latency_p50_ms: percentile(&c.latencies_ms, 0.50),
            latency_p99_ms: percentile(&c.latencies_ms, 0.99),
            time_to_first_token_p50_ms: percentile(&c.first_token_ms, 0.50),
        }
    }

    /// Writes the request counters and latency histograms of every version that served a request.
    pub fn export(&self, out: &mut Exposition) {
        let all = self.by_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        out.family(
            "rudder_generate_requests_total",
            "counter",
            "Generate requests by bundle version and outcome (ok, error, cancelled, rejected).",
        );
        for ((key, version), c) in all.iter() {
            let version = version.to_string();
            for outcome in Outcome::ALL {
                let labels = version_labels(key, &version, Some(outcome));
                out.sample("rudder_generate_requests_total", &labels, c.count(outcome) as f64);
            }
        }
        let histograms: [(&str, &str, HistogramOf); 2] = [
            (
                "rudder_generate_latency_seconds",
                "From receipt to the last event, for answers streamed to the end.",
                |c| &c.latency,
            ),
            (
                "rudder_generate_time_to_first_token_seconds",
                "From receipt to the first token (retrieval and prefill included).",
                |c| &c.first_token,
            ),
        ];
        for (name, help, histogram) in histograms {
            out.family(name, "histogram", help);
            for ((key, version), c) in all.iter() {
                let version = version.to_string();
                out.histogram(name, &version_labels(key, &version, None), histogram(c));
            }
        }
    }
}

/// `region`, `brand` (empty for none), `version` and, for counters, `outcome`.
pub fn version_labels<'a>(
    key: &'a BundleKey,
    version: &'a str,
    outcome: Option<Outcome>,
) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![
        ("region", key.region.as_str()),
        ("brand", key.brand.as_deref().unwrap_or("")),
        ("version", version),
    ];
    if let Some(outcome) = outcome {
        labels.push(("outcome", outcome.as_str()));
    }
    labels
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn push_bounded(window: &mut VecDeque<f64>, value: f64) {
    if window.len() == LATENCY_WINDOW {
        window.pop_front();
    }
    window.push_back(value);
}

/// Nearest-rank percentile; 0 for no samples.
fn percentile(samples: &VecDeque<f64>, q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted: Vec<f64> = samples.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(region: &str) -> BundleKey {
        BundleKey { region: region.into(), brand: None }
    }

    fn served(outcome: Outcome, latency_ms: u64) -> Served {
        Served {
            outcome,
            latency: Duration::from_millis(latency_ms),
            time_to_first_token: (outcome == Outcome::Ok).then(|| Duration::from_millis(latency_ms / 2)),
        }
    }

    #[test]
    fn counts_outcomes_apart_and_takes_percentiles_per_version() {
        let traffic = Traffic::default();
        for ms in 1..=100 {
            traffic.record(&key("uk"), 2, served(Outcome::Ok, ms));
        }
        traffic.record(&key("uk"), 2, served(Outcome::Error, 9000));
        traffic.record(&key("uk"), 2, served(Outcome::Cancelled, 9000));
        traffic.record(&key("uk"), 2, served(Outcome::Rejected, 0));
        traffic.record(&key("uk"), 2, served(Outcome::Rejected, 0));
        traffic.record(&key("uk"), 3, served(Outcome::Ok, 7));
        let uk2 = traffic.summary(&key("uk"), 2);
        assert_eq!((uk2.requests, uk2.errors, uk2.cancelled, uk2.rejected), (104, 1, 1, 2));
        assert_eq!(
            (uk2.latency_p50_ms, uk2.latency_p99_ms, uk2.time_to_first_token_p50_ms),
            (50.0, 99.0, 25.0)
        );
        assert_eq!(traffic.summary(&key("uk"), 3).latency_p50_ms, 7.0);
        assert_eq!(traffic.summary(&key("uk"), 9), TrafficSummary::default());
    }

    #[test]
    fn exports_outcome_counters_and_histograms_per_version() {
        let traffic = Traffic::default();
        let branded = BundleKey { region: "uk".into(), brand: Some("outlet".into()) };
        traffic.record(&branded, 4, served(Outcome::Ok, 300));
        traffic.record(&branded, 4, served(Outcome::Cancelled, 100));
        let mut out = Exposition::default();
        traffic.export(&mut out);
        let text = out.finish();
        let lines: Vec<&str> = text.lines().collect();
        let labels = r#"region="uk",brand="outlet",version="4""#;
        for expected in [
            format!("rudder_generate_requests_total{{{labels},outcome=\"ok\"}} 1"),
            format!("rudder_generate_requests_total{{{labels},outcome=\"error\"}} 0"),
            format!("rudder_generate_requests_total{{{labels},outcome=\"cancelled\"}} 1"),
            format!("rudder_generate_requests_total{{{labels},outcome=\"rejected\"}} 0"),
            format!("rudder_generate_latency_seconds_bucket{{{labels},le=\"0.25\"}} 0"),
            format!("rudder_generate_latency_seconds_bucket{{{labels},le=\"0.5\"}} 1"),
            format!("rudder_generate_latency_seconds_count{{{labels}}} 1"),
            format!("rudder_generate_time_to_first_token_seconds_bucket{{{labels},le=\"0.25\"}} 1"),
        ] {
            assert!(lines.contains(&expected.as_str()), "missing {expected} in\n{text}");
        }
    }
}
