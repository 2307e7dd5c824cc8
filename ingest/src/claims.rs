//! Claims on doc_ids: one ingest of a document at a time between reading its stored versions and
//! finishing its write. Deciding a document's outcome reads what is stored of it and its write
//! changes that, so two ingests of the same document must not interleave; different documents may be
//! planned, embedded and written at the same time (that overlap is the pipeline's throughput). A
//! claim is an owned value: it travels with its document from the thread that decided it to the one
//! that writes it, and is released wherever it is dropped, also on failure or unwinding.

use std::{
    collections::BTreeSet,
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Duration,
};

use crate::error::IngestError;

/// How long an ingest waits for another one of the same document: far longer than any write takes.
const CLAIM_WAIT: Duration = Duration::from_secs(300);

/// The doc_ids currently claimed.
#[derive(Debug, Default)]
pub(crate) struct DocClaims {
    held: Mutex<BTreeSet<String>>,
    released: Condvar,
}

impl DocClaims {
    /// Waits until no other ingest holds `doc_id`, then holds it until the returned claim is dropped.
    /// Busy after [`CLAIM_WAIT`]: a holder that long is stuck in a store call.
    pub(crate) fn claim(self: &Arc<Self>, doc_id: &str) -> Result<Claim, IngestError> {
        self.claim_within(doc_id, CLAIM_WAIT)
    }

    fn claim_within(self: &Arc<Self>, doc_id: &str, wait: Duration) -> Result<Claim, IngestError> {
        // The guarded set stays consistent even if a holder panicked: insert and remove are single steps.
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut held, _) = self
            .released
            .wait_timeout_while(held, wait, |set| set.contains(doc_id))
            .unwrap_or_else(PoisonError::into_inner);
        if held.contains(doc_id) {
            return Err(IngestError::Busy { doc_id: doc_id.to_owned(), waited_secs: wait.as_secs() });
        }
        held.insert(doc_id.to_owned());
        Ok(Claim { claims: Arc::clone(self), doc_id: doc_id.to_owned() })
    }
}

/// One ingest's hold on a doc_id; dropping it lets the next ingest of that document go on.
#[derive(Debug)]
pub(crate) struct Claim {
    claims: Arc<DocClaims>,
    doc_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims.held.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.doc_id);
        self.claims.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::mpsc, thread};

    #[test]
    fn a_claimed_doc_id_waits_for_its_release_and_others_do_not() {
        let claims = Arc::new(DocClaims::default());
        let first = claims.claim("faq").unwrap();
        // Another document is not held up.
        drop(claims.claim("returns").unwrap());

        let (sender, receiver) = mpsc::channel();
        let waiter = {
            let claims = Arc::clone(&claims);
            thread::spawn(move || {
                let _second = claims.claim("faq").unwrap();
                sender.send(()).unwrap();
            })
        };
        assert!(receiver.recv_timeout(Duration::from_millis(200)).is_err(), "claimed twice at once");
        // Released on another thread than the one that claimed it, as the pipeline's writer does.
        thread::spawn(move || drop(first)).join().unwrap();
        receiver.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
        assert!(claims.held.lock().unwrap().is_empty());
    }

    #[test]
    fn a_claim_held_too_long_is_busy_not_a_wait_forever() {
        let claims = Arc::new(DocClaims::default());
        let _stuck = claims.claim("faq").unwrap();
        let err = claims.claim_within("faq", Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, IngestError::Busy { ref doc_id, .. } if doc_id == "faq"), "{err}");
    }
}
