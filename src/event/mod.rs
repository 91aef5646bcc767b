//! The unit that flows through the pipeline: a tag, an event time, a JSON
//! record that keeps its original bytes, and the acknowledgement that tells
//! the source when every output is done with it.

mod ack;
mod json_scan;
mod path;
mod raw_lookup;
mod record;
mod tag;

pub use ack::{Ack, AckWaiter, BatchStatus};
pub use json_scan::JsonError;
pub use path::{FieldPath, PathError, PathSegment};
pub use record::{LineError, Record};
pub use tag::Tag;

use chrono::{DateTime, Utc};

/// One event in the pipeline.
#[derive(Debug)]
pub struct Event {
    /// Routing tag; filters may rewrite it.
    pub tag: Tag,
    /// Event time: from the source's `time_key`, else when it was read.
    pub time: DateTime<Utc>,
    /// The JSON object.
    pub record: Record,
    /// This copy's share of its source batch's acknowledgement.
    pub ack: Ack,
}

impl Event {
    pub fn new(tag: Tag, time: DateTime<Utc>, record: Record, ack: Ack) -> Self {
        Self {
            tag,
            time,
            record,
            ack,
        }
    }

    /// This copy's acknowledgement, to settle or fail, leaving an untracked
    /// one. Outputs done with a batch use it in place: moving each event
    /// out of the batch only to drop it would copy every event.
    pub fn take_ack(&mut self) -> Ack {
        std::mem::replace(&mut self.ack, Ack::none())
    }

    /// A copy for another output; both copies must be settled.
    pub fn fan_out(&self) -> Self {
        Self {
            tag: self.tag.clone(),
            time: self.time,
            record: self.record.clone(),
            ack: self.ack.clone(),
        }
    }
}

/// Events travel between stages in batches, never one by one.
pub type EventBatch = Vec<Event>;

/// The one way unit tests make an event: the JSON object `json` (panics if
/// it is not one), tag `audit`, a fixed time (2026-11-22T10:00:00Z, so no
/// test depends on today's date) and no acknowledgement. Change what a test
/// needs with struct update syntax: `Event { ack, ..test_event(json) }`.
#[cfg(test)]
pub(crate) fn test_event(json: &str) -> Event {
    use chrono::TimeZone;
    let record = Record::from_json(json.to_owned().into())
        .unwrap_or_else(|e| panic!("not a JSON object ({e:?}): {json}"));
    Event::new(
        Tag::new("audit"),
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        record,
        Ack::none(),
    )
}
