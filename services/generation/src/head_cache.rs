//! The head cache: the KV state after everything constant per bundle version — policy prefix, tone
//! soft prompt, system text — computed once and reused, so a request only prefills its own passages
//! and question. Entries are keyed by bundle id@version (versions are immutable), bounded in bytes and
//! evicted least-recently-used. Owned by the model thread, so it needs no lock.

use std::sync::Arc;

use rudder_llm::KvCache;

/// A computed head.
#[derive(Debug)]
pub struct HeadState {
    pub cache: KvCache,
    /// Text tokens of the head (the system turn).
    pub head_tokens: Vec<u32>,
}

#[derive(Debug)]
pub struct HeadCache {
    capacity_bytes: usize,
    /// Least recently used first.
    entries: Vec<(String, Arc<HeadState>)>,
}

impl HeadCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self { capacity_bytes, entries: Vec::new() }
    }

    /// The head for `key` and whether it was cached; computes and stores it on a miss. A zero-capacity
    /// cache computes every time (the "without head cache" baseline of the benchmark).
    pub fn get_or_compute<E>(
        &mut self,
        key: &str,
        head_tokens: &[u32],
        compute: impl FnOnce() -> Result<HeadState, E>,
    ) -> Result<(Arc<HeadState>, bool), E> {
        // The key names the bundle version; the tokens guard against a caller reusing a key for other text.
        if let Some(index) =
            self.entries.iter().position(|(k, state)| k == key && state.head_tokens == head_tokens)
        {
            let entry = self.entries.remove(index);
            let state = Arc::clone(&entry.1);
            self.entries.push(entry);
            return Ok((state, true));
        }
        let state = Arc::new(compute()?);
        if state.cache.size_bytes() <= self.capacity_bytes {
            self.entries.retain(|(k, _)| k != key);
            self.entries.push((key.to_owned(), Arc::clone(&state)));
            while self.bytes() > self.capacity_bytes {
                self.entries.remove(0);
            }
        }
        Ok((state, false))
    }

    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, s)| s.cache.size_bytes()).sum()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
