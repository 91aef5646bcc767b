//! The optional duplicate filter. kube-apiserver resends a whole batch after
//! any error, so events the agent already delivered can arrive again. An
//! event's (`auditID`, `stage`) is remembered only once its request was
//! delivered: a batch that failed must pass again in full, or it would be lost.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::event::Record;

/// One event's identity: `auditID` and `stage` joined by a NUL.
pub(super) type Key = Box<str>;

/// Longest key remembered. kube-apiserver's audit IDs are UUIDs (36 bytes);
/// a longer one comes from some other client and is never taken for a
/// duplicate, so content cannot make the window's memory large.
const MAX_KEY_LEN: usize = 256;

/// The fields that identify an audit event; everything else is skipped.
#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(rename = "auditID", borrow, default)]
    audit_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stage: Option<Cow<'a, str>>,
}

/// The key of a record, or `None` for records without an `auditID` (those
/// are never taken for duplicates).
pub(super) fn key_of(record: &Record) -> Option<Key> {
    let raw = record.raw()?;
    let identity: Identity<'_> = serde_json::from_str(raw).ok()?;
    let audit_id = identity.audit_id?;
    let stage = identity.stage.unwrap_or_default();
    if audit_id.len() + 1 + stage.len() > MAX_KEY_LEN {
        return None;
    }
    Some(format!("{audit_id}\0{stage}").into_boxed_str())
}

/// Recently delivered keys, bounded by age, count and bytes.
#[derive(Debug)]
pub(super) struct Dedupe {
    max_age: Duration,
    max_entries: usize,
    max_bytes: usize,
    seen: HashMap<Key, Instant>,
    /// Keys in the order they were remembered, for eviction.
    order: VecDeque<(Key, Instant)>,
    /// Bytes of the keys in `order`.
    bytes: usize,
}

impl Dedupe {
    pub(super) fn new(max_age: Duration, max_entries: usize, max_bytes: usize) -> Self {
        Self {
            max_age,
            max_entries,
            max_bytes,
            seen: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Whether `key` was delivered within the window.
    pub(super) fn contains(&mut self, key: &str, now: Instant) -> bool {
        self.evict(now);
        self.seen.contains_key(key)
    }

    /// Remembers keys whose events were delivered.
    pub(super) fn remember(&mut self, keys: impl IntoIterator<Item = Key>, now: Instant) {
        for key in keys {
            if self.seen.contains_key(&key) {
                continue;
            }
            self.seen.insert(key.clone(), now);
            self.bytes += key.len();
            self.order.push_back((key, now));
        }
        self.evict(now);
    }

    fn evict(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) > self.max_age;
            if !expired && self.order.len() <= self.max_entries && self.bytes <= self.max_bytes {
                break;
            }
            // The map holds each key once, with the time it was remembered.
            if self.seen.get(key) == Some(at) {
                self.seen.remove(key);
            }
            self.bytes -= key.len();
            self.order.pop_front();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use bytestring::ByteString;

    use super::*;

    fn record(text: &str) -> Record {
        Record::from_json(ByteString::from(text.to_owned())).unwrap()
    }

    #[test]
    fn keys_are_audit_id_and_stage() {
        let a = key_of(&record(r#"{"auditID":"x","stage":"ResponseComplete"}"#));
        let b = key_of(&record(r#"{"stage":"ResponseStarted","auditID":"x"}"#));
        assert_eq!(a.as_deref(), Some("x\0ResponseComplete"));
        assert_eq!(b.as_deref(), Some("x\0ResponseStarted"));
        assert_eq!(key_of(&record(r#"{"stage":"ResponseComplete"}"#)), None);
    }

    #[test]
    fn remembers_within_age_and_count() {
        let start = Instant::now();
        let mut dedupe = Dedupe::new(Duration::from_secs(60), 2, 1 << 20);
        dedupe.remember(["a".into(), "b".into()], start);
        assert!(dedupe.contains("a", start));
        dedupe.remember(["c".into()], start);
        assert!(!dedupe.contains("a", start), "oldest evicted by count");
        assert!(dedupe.contains("c", start));
        let later = start + Duration::from_secs(61);
        assert!(!dedupe.contains("c", later), "evicted by age");
        assert_eq!(dedupe.len(), 0);
    }

    #[test]
    fn only_remembered_keys_are_duplicates() {
        let now = Instant::now();
        let mut dedupe = Dedupe::new(Duration::from_secs(60), 10, 1 << 20);
        // A batch that failed is never remembered, so its resend passes.
        assert!(!dedupe.contains("a", now));
        dedupe.remember(["a".into(), "a".into()], now);
        assert!(dedupe.contains("a", now));
        assert_eq!(dedupe.len(), 1);
    }

    #[test]
    fn memory_is_bounded_by_key_length_and_total_bytes() {
        let huge = format!(
            r#"{{"auditID":"{}","stage":"ResponseComplete"}}"#,
            "x".repeat(1 << 20)
        );
        assert_eq!(key_of(&record(&huge)), None, "never taken for a duplicate");
        let now = Instant::now();
        let mut dedupe = Dedupe::new(Duration::from_secs(60), 1000, 100);
        let keys: Vec<Key> = (0..10).map(|n| format!("{n:020}").into()).collect();
        dedupe.remember(keys, now);
        assert_eq!(dedupe.len(), 5, "five 20-byte keys fit in 100 bytes");
        assert!(dedupe.bytes <= 100);
        assert!(dedupe.contains(&format!("{:020}", 9), now));
        assert!(!dedupe.contains(&format!("{:020}", 0), now));
    }
}
