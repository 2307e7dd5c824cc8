//! Per-version traffic since the server started: requests, errors, and latency percentiles over the
//! most recent requests — what an A/B comparison reads next to the evaluation scores.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use rudder_core::bundle::Served;

/// Requests whose latencies the percentiles are taken over, per version.
const LATENCY_WINDOW: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficSummary {
    pub requests: u64,
    pub errors: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub time_to_first_token_p50_ms: f64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: u64,
    errors: u64,
    latencies_ms: VecDeque<f64>,
    first_token_ms: VecDeque<f64>,
}

/// Counters by bundle id (`region[/brand]@version`).
#[derive(Debug, Default)]
pub struct Traffic {
    by_version: Mutex<HashMap<String, Counters>>,
}

impl Traffic {
    pub fn record(&self, bundle_id: &str, served: Served) {
        let mut all = self.by_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let counters = all.entry(bundle_id.to_owned()).or_default();
        counters.requests += 1;
        if !served.ok {
            counters.errors += 1;
            return;
        }
        push_bounded(&mut counters.latencies_ms, millis(served.latency));
        if let Some(ttft) = served.time_to_first_token {
            push_bounded(&mut counters.first_token_ms, millis(ttft));
        }
    }

    pub fn summary(&self, bundle_id: &str) -> TrafficSummary {
        let all = self.by_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(c) = all.get(bundle_id) else { return TrafficSummary::default() };
        TrafficSummary {
            requests: c.requests,
            errors: c.errors,
            latency_p50_ms: percentile(&c.latencies_ms, 0.50),
            latency_p99_ms: percentile(&c.latencies_ms, 0.99),
            time_to_first_token_p50_ms: percentile(&c.first_token_ms, 0.50),
        }
    }
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

    #[test]
    fn counts_errors_apart_and_takes_percentiles_per_version() {
        let traffic = Traffic::default();
        for ms in 1..=100 {
            let served = Served {
                ok: true,
                latency: Duration::from_millis(ms),
                time_to_first_token: Some(Duration::from_millis(ms / 2)),
            };
            traffic.record("uk@2", served);
        }
        traffic
            .record("uk@2", Served { ok: false, latency: Duration::from_secs(9), time_to_first_token: None });
        traffic.record(
            "uk@3",
            Served { ok: true, latency: Duration::from_millis(7), time_to_first_token: None },
        );
        let uk2 = traffic.summary("uk@2");
        assert_eq!((uk2.requests, uk2.errors), (101, 1));
        assert_eq!(
            (uk2.latency_p50_ms, uk2.latency_p99_ms, uk2.time_to_first_token_p50_ms),
            (50.0, 99.0, 25.0)
        );
        assert_eq!(traffic.summary("uk@3").latency_p50_ms, 7.0);
        assert_eq!(traffic.summary("uk@9"), TrafficSummary::default());
    }
}
