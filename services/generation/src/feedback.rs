//! Support agents' feedback on served answers — the human-in-the-loop path back into tuning.
//!
//! The service remembers the most recent answers it served (question, passages, answer, bundle
//! version) in memory so that feedback can name one by its `request_id`; a rating joins the answer
//! it rates and is appended to `feedback.jsonl` (one JSON object per line, synced before the call
//! returns), so what agents said survives a restart. `rudder prompts export-feedback` turns the
//! corrections into training examples.

use std::{
    collections::{HashMap, VecDeque},
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    sync::Mutex,
};

use rudder_core::{Passage, ServiceError, access::Principal};
use serde::{Deserialize, Serialize};

/// The file under the feedback directory.
pub const FEEDBACK_FILE: &str = "feedback.jsonl";
/// Answers kept for feedback by default.
pub const DEFAULT_RECENT_ANSWERS: usize = 10_000;
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// One turn of earlier conversation, as the trainer's `messages` spell it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

/// An answer as it was served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedAnswer {
    pub request_id: String,
    pub conversation_id: String,
    pub region: String,
    pub brand: Option<String>,
    pub bundle_version: u32,
    pub history: Vec<Turn>,
    pub question: String,
    /// The passages the model saw, numbered from 1 in this order.
    pub passages: Vec<Passage>,
    pub answer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Good,
    Bad,
}

/// A stored rating with the answer it rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEntry {
    pub feedback_id: String,
    pub rating: Rating,
    /// Empty when the agent gave none.
    pub corrected_answer: String,
    pub reason: String,
    pub author: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub served: ServedAnswer,
}

/// What a caller submits.
#[derive(Debug, Clone)]
pub struct NewFeedback {
    pub request_id: String,
    pub rating: Rating,
    pub corrected_answer: String,
    pub reason: String,
    /// Who the request says wrote it.
    pub author: String,
    /// Who sent it: it may rate answers of its own regions and brands only, and is recorded as the
    /// author (the claimed name kept beside its id).
    pub by: Principal,
}

/// Which feedback to list.
#[derive(Debug, Clone, Default)]
pub struct FeedbackFilter {
    pub region: Option<String>,
    pub corrections_only: bool,
    pub page_size: usize,
    /// Offset into the newest-first list, as returned by the previous page.
    pub page_token: String,
}

#[derive(Debug)]
pub struct FeedbackBook {
    path: PathBuf,
    recent_capacity: usize,
    inner: Mutex<Book>,
}

#[derive(Debug)]
struct Book {
    recent: HashMap<String, ServedAnswer>,
    recent_order: VecDeque<String>,
    entries: Vec<FeedbackEntry>,
    file: File,
}

impl FeedbackBook {
    /// Opens (or creates) `<dir>/feedback.jsonl` and reads what it holds.
    pub fn open(dir: &Path, recent_capacity: usize) -> Result<Self, ServiceError> {
        let io = |err: std::io::Error| ServiceError::Internal(format!("{}: {err}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FEEDBACK_FILE);
        let entries = if path.exists() { read_entries(&path)? } else { Vec::new() };
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        rudder_core::jsonl::drop_torn_tail(&file).map_err(io)?;
        let inner = Book { recent: HashMap::new(), recent_order: VecDeque::new(), entries, file };
        Ok(Self { path, recent_capacity: recent_capacity.max(1), inner: Mutex::new(inner) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remembers a served answer so feedback can name it; the oldest is forgotten beyond capacity.
    pub fn remember(&self, answer: ServedAnswer) {
        let mut book = self.lock();
        let id = answer.request_id.clone();
        if book.recent.insert(id.clone(), answer).is_none() {
            book.recent_order.push_back(id);
        }
        while book.recent_order.len() > self.recent_capacity {
            if let Some(oldest) = book.recent_order.pop_front() {
                book.recent.remove(&oldest);
            }
        }
    }

    /// Stores feedback on a remembered answer; durable when this returns.
    pub fn submit(&self, feedback: NewFeedback) -> Result<FeedbackEntry, ServiceError> {
        if feedback.request_id.trim().is_empty() {
            return Err(ServiceError::invalid("request_id", "must name the answer being rated"));
        }
        let mut book = self.lock();
        let served =
            book.recent.get(&feedback.request_id).cloned().ok_or_else(|| ServiceError::NotFound {
                what: "request_id",
                name: feedback.request_id.clone(),
                known: vec![format!("the last {} answers this server served", self.recent_capacity)],
            })?;
        feedback.by.check(&served.region, served.brand.as_deref())?;
        let entry = FeedbackEntry {
            feedback_id: uuid::Uuid::new_v4().to_string(),
            rating: feedback.rating,
            corrected_answer: feedback.corrected_answer.trim().to_owned(),
            reason: feedback.reason,
            author: feedback.by.named_actor(&feedback.author),
            created_at: rudder_core::time::now_rfc3339(),
            served,
        };
        let line = serde_json::to_string(&entry)
            .map_err(|err| ServiceError::Internal(format!("cannot encode feedback: {err}")))?;
        rudder_core::jsonl::append_line(&mut book.file, &line).map_err(|err| {
            ServiceError::Unavailable(format!("cannot store feedback in {}: {err}", self.path.display()))
        })?;
        book.entries.push(entry.clone());
        Ok(entry)
    }

    /// Stored feedback, newest first, one page at a time; the token of the next page or empty.
    pub fn list(&self, filter: &FeedbackFilter) -> Result<(Vec<FeedbackEntry>, String), ServiceError> {
        let page_size = match filter.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            _ => return Err(ServiceError::invalid("page_size", format!("must be 0 to {MAX_PAGE_SIZE}"))),
        };
        let offset = page_offset(&filter.page_token)?;
        let book = self.lock();
        let matching: Vec<&FeedbackEntry> = book
            .entries
            .iter()
            .rev()
            .filter(|e| filter.region.as_ref().is_none_or(|region| &e.served.region == region))
            .filter(|e| !filter.corrections_only || !e.corrected_answer.is_empty())
            .collect();
        let page: Vec<FeedbackEntry> =
            matching.iter().skip(offset).take(page_size).map(|e| (*e).clone()).collect();
        let next = offset + page.len();
        let token = if next < matching.len() { next.to_string() } else { String::new() };
        Ok((page, token))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic while holding the lock cannot leave the book half-updated (each change is one push
        // or one insert), so a poisoned lock is safe to use.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A page token: the offset of the next page (empty for the first).
pub fn page_offset(token: &str) -> Result<usize, ServiceError> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .parse()
        .map_err(|_| ServiceError::invalid("page_token", "is not a token returned by a previous page"))
}

/// Every entry of a feedback file. A torn last line (a crash mid-append) is skipped with a warning;
/// any other unreadable line is an error naming the file and line.
pub fn read_entries(path: &Path) -> Result<Vec<FeedbackEntry>, ServiceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ServiceError::Internal(format!("{}: {err}", path.display())))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut entries = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(err) if index + 1 == lines.len() && !text.ends_with('\n') => {
                tracing::warn!(file = %path.display(), line = index + 1, %err, "skipping a torn last line");
            }
            Err(err) => {
                return Err(ServiceError::Internal(format!("{}:{}: {err}", path.display(), index + 1)));
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(request_id: &str, region: &str) -> ServedAnswer {
        ServedAnswer {
            request_id: request_id.into(),
            conversation_id: "c1".into(),
            region: region.into(),
            brand: None,
            bundle_version: 2,
            history: Vec::new(),
            question: "How long do refunds take?".into(),
            passages: vec![Passage {
                doc_id: "refunds-uk".into(),
                text: "Five days.".into(),
                ..Passage::default()
            }],
            answer: "Ten days.".into(),
        }
    }

    fn rate(request_id: &str, corrected: &str) -> NewFeedback {
        NewFeedback {
            request_id: request_id.into(),
            rating: Rating::Bad,
            corrected_answer: corrected.into(),
            reason: "wrong number".into(),
            author: "agent-7".into(),
            by: Principal::local(),
        }
    }

    #[test]
    fn a_key_rates_answers_of_its_own_regions_only_and_is_recorded_as_the_author() {
        let dir = tempfile::tempdir().unwrap();
        let book = FeedbackBook::open(dir.path(), 10).unwrap();
        book.remember(served("r1", "uk"));
        let agent = |region: &str| Principal {
            id: format!("agent-{region}"),
            role: rudder_core::access::Role::Agent,
            regions: vec![region.into()],
            brands: Vec::new(),
        };
        let refused = book.submit(NewFeedback { by: agent("us"), ..rate("r1", "") }).unwrap_err();
        assert!(matches!(refused, ServiceError::PermissionDenied(_)), "{refused:?}");
        assert!(book.list(&FeedbackFilter::default()).unwrap().0.is_empty(), "nothing stored");
        let stored = book.submit(NewFeedback { by: agent("uk"), ..rate("r1", "") }).unwrap();
        assert_eq!(stored.author, "agent-uk (as agent-7)");
    }

    #[test]
    fn feedback_joins_the_served_answer_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let book = FeedbackBook::open(dir.path(), 10).unwrap();
        book.remember(served("r1", "uk"));
        let entry = book.submit(rate("r1", "Refunds take five days [1].")).unwrap();
        assert_eq!(entry.served.answer, "Ten days.");
        drop(book);
        let reopened = FeedbackBook::open(dir.path(), 10).unwrap();
        let (page, next) = reopened.list(&FeedbackFilter::default()).unwrap();
        assert_eq!(page, [entry]);
        assert!(next.is_empty());
    }

    #[test]
    fn unknown_or_forgotten_requests_and_blank_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let book = FeedbackBook::open(dir.path(), 2).unwrap();
        for id in ["r1", "r2", "r3"] {
            book.remember(served(id, "uk"));
        }
        assert!(
            matches!(book.submit(rate("r1", "")), Err(ServiceError::NotFound { .. })),
            "r1 was forgotten"
        );
        assert!(book.submit(rate("r3", "")).is_ok());
        let err = book.submit(rate("  ", "")).unwrap_err();
        assert!(
            matches!(&err, ServiceError::InvalidArgument { field, .. } if field == "request_id"),
            "{err}"
        );
        assert_eq!(read_entries(book.path()).unwrap().len(), 1, "nothing else was written");
    }

    #[test]
    fn listing_filters_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let book = FeedbackBook::open(dir.path(), 10).unwrap();
        for (id, region, corrected) in
            [("a", "uk", "fixed"), ("b", "us", ""), ("c", "uk", ""), ("d", "uk", "x")]
        {
            book.remember(served(id, region));
            book.submit(rate(id, corrected)).unwrap();
        }
        let uk = |page_token: &str| FeedbackFilter {
            region: Some("uk".into()),
            page_size: 2,
            page_token: page_token.into(),
            ..FeedbackFilter::default()
        };
        let ids =
            |page: &[FeedbackEntry]| page.iter().map(|e| e.served.request_id.clone()).collect::<Vec<_>>();
        let (first, token) = book.list(&uk("")).unwrap();
        assert_eq!(ids(&first), ["d", "c"]);
        let (second, token) = book.list(&uk(&token)).unwrap();
        assert_eq!((ids(&second), token.as_str()), (vec!["a".to_owned()], ""));
        let corrections = FeedbackFilter { corrections_only: true, ..FeedbackFilter::default() };
        assert_eq!(ids(&book.list(&corrections).unwrap().0), ["d", "a"]);
        assert!(book.list(&FeedbackFilter { page_token: "zz".into(), ..FeedbackFilter::default() }).is_err());
    }

    #[test]
    fn a_torn_last_line_is_skipped_but_a_bad_middle_line_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let book = FeedbackBook::open(dir.path(), 10).unwrap();
        book.remember(served("r1", "uk"));
        book.submit(rate("r1", "ok")).unwrap();
        drop(book);
        let path = dir.path().join(FEEDBACK_FILE);
        let good = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{good}{{\"feedback_id\": \"tor")).unwrap();
        let reopened = FeedbackBook::open(dir.path(), 10).unwrap();
        assert_eq!(reopened.list(&FeedbackFilter::default()).unwrap().0.len(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), good, "the torn line is cut before appending");
        drop(reopened);
        std::fs::write(&path, format!("not json\n{good}")).unwrap();
        let err = FeedbackBook::open(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("feedback.jsonl:1"), "{err}");
    }
}
