//! Where a request on a bundle version is written down, exactly once: the version's traffic
//! counters (by outcome) and, for a finished answer, the answers remembered for feedback. A ledger
//! dropped before anything was recorded belongs to a request the client abandoned (hung up,
//! deadline passed).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rudder_core::{
    Bundle, BundleRegistry, Passage,
    bundle::{Outcome, Served},
};

use crate::feedback::{FeedbackBook, ServedAnswer};

#[derive(Debug)]
pub(crate) struct Ledger {
    bundles: Arc<dyn BundleRegistry>,
    feedback: Arc<FeedbackBook>,
    bundle: Arc<Bundle>,
    received_at: Instant,
    served: ServedAnswer,
    recorded: bool,
}

impl Ledger {
    pub(crate) fn new(
        bundles: Arc<dyn BundleRegistry>,
        feedback: Arc<FeedbackBook>,
        bundle: Arc<Bundle>,
        received_at: Instant,
        served: ServedAnswer,
    ) -> Self {
        Self { bundles, feedback, bundle, received_at, served, recorded: false }
    }

    pub(crate) fn finished(&mut self, passages: &[Passage], answer: &str, ttft: Duration) {
        self.record(Outcome::Ok, Some(ttft));
        self.feedback.remember(ServedAnswer {
            passages: passages.to_vec(),
            answer: answer.to_owned(),
            ..self.served.clone()
        });
    }

    pub(crate) fn record(&mut self, outcome: Outcome, time_to_first_token: Option<Duration>) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let served = Served { outcome, latency: self.received_at.elapsed(), time_to_first_token };
        self.bundles.record(&self.bundle, served);
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.record(Outcome::Cancelled, None);
    }
}
