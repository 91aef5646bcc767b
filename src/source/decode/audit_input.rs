//! The audit stage of line-reading sources: `format = "access_json"` and `"legacy"`
//! lines are raw request records, turned into the `audit.k8s.io/v1` Events
//! kube-apiserver would have written under the source's `policy`. Requests the policy
//! gives level `None` yield nothing and are counted
//! (`auditrail_events_dropped_total{reason="policy_none"}`).
//!
//! Legacy two-line pairs (and one-line-per-stage sequences) are joined by id; an entry
//! still waiting after `join_timeout` is emitted with what is known. That timeout runs
//! on the log's own clock — the newest line time, advanced by wall time since that
//! line was read — so replaying an old file joins exactly as following a live one.
//! A waiting entry keeps its lines' batch acknowledgements and hands them to the
//! events it becomes: its lines' batches settle only once those are delivered, so
//! a crash while it waits reads its lines again instead of losing them.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;

use super::bad_line::{BadLine, BadLineKind};
use super::decoder::Decoded;
use crate::audit::{
    AccessRecord, AccessRecordError, CompiledPolicy, Event as AuditEvent, LegacyJoiner, LegacyLine,
    Level, RequestInfo, Stage,
};
use crate::event::{Ack, Record};
use crate::metrics::ComponentMetrics;

/// Annotation on the events of a legacy request emitted without its response.
pub(crate) const UNANSWERED_KEY: &str = "auditrail.io/legacy-join";
const UNANSWERED_VALUE: &str = "no response line within join_timeout; the outcome is unknown";

/// Per-source audit state: the policy, the legacy joiner, and the counters.
#[derive(Debug, Clone)]
pub(super) struct AuditInput {
    policy: Arc<CompiledPolicy>,
    /// Present for `format = "legacy"`.
    joiner: Option<LegacyJoiner>,
    /// The batch acknowledgements of the lines of each entry the joiner holds,
    /// by the joiner's key (the line's `id`).
    held: HashMap<String, Ack>,
    policy_none: Counter,
    /// The source's `events_in`: a request the policy drops counts as in and
    /// dropped, so in = out + dropped holds for policy sources too.
    events_in: Counter,
    errors: Counter,
    clock: Option<LogClock>,
    /// Log-clock time of the last expiry check (a check walks every pending entry).
    last_expiry_check: Option<DateTime<Utc>>,
}

/// The newest line time seen and the wall time it was read at.
#[derive(Debug, Clone, Copy)]
struct LogClock {
    newest: DateTime<Utc>,
    read_at: DateTime<Utc>,
}

impl AuditInput {
    pub(super) fn new(
        policy: Arc<CompiledPolicy>,
        join_timeout: Option<chrono::Duration>,
        metrics: &ComponentMetrics,
    ) -> Self {
        Self {
            policy,
            joiner: join_timeout.map(LegacyJoiner::new),
            held: HashMap::new(),
            policy_none: metrics.dropped("policy_none"),
            events_in: metrics.events_in.clone(),
            errors: metrics.errors.clone(),
            clock: None,
            last_expiry_check: None,
        }
    }

    pub(super) fn joins_lines(&self) -> bool {
        self.joiner.is_some()
    }

    /// One `access_json` line.
    pub(super) fn decode_access(
        &mut self,
        text: &str,
        now: DateTime<Utc>,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        let record = AccessRecord::from_json(text).map_err(|e| match e {
            AccessRecordError::Json(_) | AccessRecordError::NotAnObject => {
                BadLine::new(BadLineKind::NotJson, e.to_string())
            }
            AccessRecordError::RequestInfo(_) => unresolvable(),
            other => BadLine::new(BadLineKind::Rejected, other.to_string()),
        })?;
        self.emit(&record, false, now, Ack::none(), out)
    }

    /// One legacy `AUDIT:` line of the batch acknowledged by `batch`: joined, and
    /// emitted once its request is complete.
    pub(super) fn decode_legacy(
        &mut self,
        text: &str,
        now: DateTime<Utc>,
        batch: &Ack,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        let Some(joiner) = self.joiner.as_mut() else {
            return Err(BadLine::new(
                BadLineKind::Rejected,
                "the source reads legacy lines without a joiner",
            ));
        };
        let line = LegacyLine::parse(text)
            .map_err(|e| BadLine::new(BadLineKind::Rejected, e.to_string()))?;
        let (line_time, key, is_response) = match &line {
            LegacyLine::Request(record) | LegacyLine::Stage { record, .. } => {
                // Refuse now what could never become an event, rather than at join time
                // when there is no line to blame.
                RequestInfo::resolve(&record.method, &record.uri).map_err(|_| unresolvable())?;
                (record.time, record.id.clone().unwrap_or_default(), false)
            }
            LegacyLine::Response { time, id, .. } => (*time, id.clone(), true),
        };
        let orphans = joiner.orphan_responses();
        let completed = joiner.push(line);
        let orphaned = joiner.orphan_responses() > orphans;
        self.advance_clock(line_time, now);
        let mut result = Ok(());
        if let Some(record) = completed {
            // The current line's batch is the source's to add; the earlier lines'
            // batches go with the events.
            let joined = self.held.remove(&key).unwrap_or_else(Ack::none);
            result = self.emit(&record, false, now, joined, out);
        } else if !is_response {
            // The line waits in the joiner: so does its batch.
            let earlier = self.held.remove(&key).unwrap_or_else(Ack::none);
            self.held.insert(key, earlier.join(batch.clone()));
        }
        self.flush_expired(now, out);
        if orphaned {
            return Err(BadLine::new(
                BadLineKind::Rejected,
                "response line without a pending request line (unknown id, or its request was already emitted after `join_timeout`)",
            ));
        }
        result
    }

    /// Emits legacy entries that waited longer than `join_timeout` on the log clock.
    pub(super) fn flush_expired(&mut self, now: DateTime<Utc>, out: &mut Vec<Decoded>) {
        let Some(clock) = self.clock else { return };
        let log_now = clock.newest + (now - clock.read_at).max(chrono::Duration::zero());
        if self
            .last_expiry_check
            .is_some_and(|last| log_now - last < chrono::Duration::seconds(1))
        {
            return;
        }
        self.last_expiry_check = Some(log_now);
        let Some(joiner) = self.joiner.as_mut() else {
            return;
        };
        let expired = joiner.flush_expired(log_now);
        self.emit_all(expired, now, out);
    }

    /// Emits every pending legacy entry (end of input, shutdown).
    pub(super) fn flush_all(&mut self, now: DateTime<Utc>, out: &mut Vec<Decoded>) {
        let Some(joiner) = self.joiner.as_mut() else {
            return;
        };
        let pending = joiner.flush_all();
        self.emit_all(pending, now, out);
        // Nothing should be left; a share without an entry can never be delivered.
        self.held.clear();
    }

    fn advance_clock(&mut self, line_time: DateTime<Utc>, now: DateTime<Utc>) {
        if self.clock.is_none_or(|c| line_time > c.newest) {
            self.clock = Some(LogClock {
                newest: line_time,
                read_at: now,
            });
        }
    }

    /// Emits records flushed before they were complete.
    fn emit_all(&mut self, records: Vec<AccessRecord>, now: DateTime<Utc>, out: &mut Vec<Decoded>) {
        for record in records {
            let key = record.id.clone().unwrap_or_default();
            let joined = self.held.remove(&key).unwrap_or_else(Ack::none);
            // Their lines were accepted long ago; a failure here has no line to report.
            if let Err(bad) = self.emit(&record, record.status.is_none(), now, joined, out) {
                self.errors.inc();
                tracing::warn!(reason = %bad.reason, "Could not audit a joined legacy request.");
            }
        }
    }

    /// Audits one record and appends its events. `unanswered`: a legacy request
    /// whose response line never came — its outcome is unknown, so its later stages
    /// carry no `responseStatus` (rather than an invented one) and say why in an
    /// annotation; the request is still recorded. Each event carries a copy of
    /// `joined`, the acknowledgement of the record's earlier lines.
    fn emit(
        &self,
        record: &AccessRecord,
        unanswered: bool,
        now: DateTime<Utc>,
        joined: Ack,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        let result = self.emit_events(record, unanswered, now, &joined, out);
        // The events hold their copies. With none (level `None`, or a record that
        // can never become an event) the lines are done with, as a bad line is.
        joined.settle();
        result
    }

    fn emit_events(
        &self,
        record: &AccessRecord,
        unanswered: bool,
        now: DateTime<Utc>,
        joined: &Ack,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        let mut audited = record.audit(&self.policy).map_err(|_| unresolvable())?;
        if audited.decision.level == Level::None {
            self.policy_none.inc();
            self.events_in.inc();
            return Ok(());
        }
        for event in &mut audited.events {
            if unanswered && event.stage != Stage::RequestReceived {
                event.response_status = None;
                event
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(UNANSWERED_KEY.to_owned(), UNANSWERED_VALUE.to_owned());
            }
            let mut decoded = to_decoded(event, now)?;
            decoded.joined = joined.clone();
            out.push(decoded);
        }
        Ok(())
    }
}

/// Serialises an Event into a record; its time is the stage timestamp.
pub(crate) fn to_decoded(event: &AuditEvent, now: DateTime<Utc>) -> Result<Decoded, BadLine> {
    let text = serde_json::to_string(event).map_err(|e| {
        BadLine::new(
            BadLineKind::Rejected,
            format!("could not serialise the event: {e}"),
        )
    })?;
    let record = Record::from_json(ByteString::from(text)).map_err(|e| {
        BadLine::new(
            BadLineKind::Rejected,
            format!("the serialised event is not a JSON object: {e}"),
        )
    })?;
    let time = event
        .stage_timestamp
        .as_ref()
        .and_then(|t| t.to_datetime())
        .unwrap_or(now);
    Ok(Decoded::new(record, time))
}

/// Request-info errors quote the URI, which may carry tokens in its query: say what
/// is wrong without it.
fn unresolvable() -> BadLine {
    BadLine::new(
        BadLineKind::Rejected,
        "the method and URI do not form a Kubernetes API request (bad percent-escape, control character, or a watch/proxy path without a resource)",
    )
}

#[cfg(test)]
#[path = "audit_input_tests.rs"]
mod tests;
