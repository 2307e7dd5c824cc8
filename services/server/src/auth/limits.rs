//! Per-key rate limits: a token bucket per key id holding up to a minute's allowance, refilled
//! continuously, so a key may send its whole allowance at once and then its rate. A refused call is
//! RESOURCE_EXHAUSTED and says when to retry, three ways: in the message, in a `retry-after`
//! metadata entry (whole seconds), and as a `google.rpc.RetryInfo` in the status details, which
//! gRPC client libraries read. Buckets outlive key-file reloads (they are keyed by id), so editing
//! the file does not hand out a fresh allowance.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use prost::Message;
use prost_types::{Any, Duration as ProtoDuration};
use tonic::{Code, Status};

#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Takes one call from `key`'s allowance of `per_minute` (0: unlimited), or says how long until
    /// the next call would be admitted.
    pub fn admit(&self, key: &str, per_minute: u32, now: Instant) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let (capacity, per_second) = (f64::from(per_minute), f64::from(per_minute) / 60.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: capacity, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// The refusal of a call over `key`'s limit.
pub fn over_limit(key: &str, per_minute: u32, retry_after: Duration) -> Status {
    let seconds = retry_after.as_secs_f64();
    let message =
        format!("key {key:?} is over its limit of {per_minute} requests per minute; retry in {seconds:.1} s");
    let details = RpcStatus {
        code: Code::ResourceExhausted as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration {
                    seconds: retry_after.as_secs() as i64,
                    nanos: retry_after.subsec_nanos() as i32,
                }),
            }
            .encode_to_vec(),
        }],
    };
    let mut status = Status::with_details(Code::ResourceExhausted, message, details.encode_to_vec().into());
    if let Ok(value) = retry_after.as_secs_f64().ceil().to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

// The two google.rpc messages the details need (google/rpc/status.proto, error_details.proto),
// with their field numbers; Any and Duration come from prost-types.

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// The retry delay a refusal carries in its details, for clients and tests.
pub fn retry_delay(status: &Status) -> Option<Duration> {
    let details = RpcStatus::decode(status.details()).ok()?;
    let info = details.details.iter().find(|any| any.type_url.ends_with("google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    Some(Duration::new(u64::try_from(delay.seconds).ok()?, u32::try_from(delay.nanos).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_allowance_at_once_then_its_rate() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.admit("agent", 3, start).is_ok());
        }
        let wait = limiter.admit("agent", 3, start).unwrap_err();
        assert!((wait.as_secs_f64() - 20.0).abs() < 0.01, "{wait:?}: one call per 20 s");
        assert!(limiter.admit("other", 3, start).is_ok(), "each key has its own bucket");
        assert!(limiter.admit("agent", 3, start + Duration::from_secs(21)).is_ok());
        assert!(limiter.admit("agent", 3, start + Duration::from_secs(21)).is_err());
        assert!((0..100).all(|_| limiter.admit("unlimited", 0, start).is_ok()));
    }

    #[test]
    fn a_refusal_says_when_to_retry_in_its_details_and_metadata() {
        let status = over_limit("agent-uk", 60, Duration::from_millis(1500));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(retry_delay(&status), Some(Duration::from_millis(1500)));
        assert_eq!(status.metadata().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
        assert!(status.message().contains("60 requests per minute"), "{}", status.message());
    }
}
