//! `_bulk` request bodies: for each event an action line
//! (`{"create":{"_index":…,"_id":"<auditID>-<stage>"}}`) and the document,
//! NDJSON ending in `\n`. The document is the event's bytes as they arrived,
//! with `"@timestamp":<stageTimestamp>,` spliced in after the opening `{`
//! rather than re-serialised. With `encode_bodies`, `requestObject` and
//! `responseObject` become JSON strings, so their shapes cannot explode or
//! conflict in the index mapping.
//!
//! One borrowed pass over the top-level keys finds `auditID`, `stage`,
//! `stageTimestamp` and an existing `@timestamp`; values stay raw slices.

use std::borrow::Cow;
use std::fmt;

use chrono::SecondsFormat;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::index::IndexName;
use crate::event::Event;

/// Where documents go.
#[derive(Debug, Clone)]
pub enum Target {
    /// An index name template (one index per day by default).
    Index(Box<IndexName>),
    /// A data stream: always `create`, and `@timestamp` is required.
    DataStream(String),
}

/// Writes `_bulk` bodies.
#[derive(Debug)]
pub struct BulkEncoder {
    pub target: Target,
    /// `_id` from (auditID, stage) with `create`, so a retried or replayed
    /// event is a 409, not a duplicate.
    pub idempotent: bool,
    pub encode_bodies: bool,
    scratch: Vec<u8>,
}

const BODY_FIELDS: [&str; 2] = ["requestObject", "responseObject"];

impl BulkEncoder {
    pub fn new(target: Target, idempotent: bool, encode_bodies: bool) -> Self {
        Self {
            target,
            idempotent,
            encode_bodies,
            scratch: Vec::new(),
        }
    }

    /// Whether duplicates answer 409 (`create`), which then count as delivered.
    pub fn uses_create(&self) -> bool {
        self.idempotent || matches!(self.target, Target::DataStream(_))
    }

    /// Appends the action and document lines of every event.
    pub fn encode(&mut self, events: &[Event], out: &mut Vec<u8>) {
        for event in events {
            self.encode_one(event, out);
        }
    }

    /// Appends one event's action and document lines.
    pub fn encode_one(&mut self, event: &Event, out: &mut Vec<u8>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let text: &str = match event.record.raw() {
            Some(raw) => raw,
            None => {
                scratch.clear();
                event.record.write_json(&mut scratch);
                // serde_json writes UTF-8.
                std::str::from_utf8(&scratch).unwrap_or("{}")
            }
        };
        // The record was validated as one JSON object when it was read.
        let fields =
            serde_json::from_str::<TopLevel<'_>>(text).map_or_else(|_| Vec::new(), |t| t.0);
        let get = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v);

        // Action line.
        let op = if self.uses_create() {
            "create"
        } else {
            "index"
        };
        out.extend_from_slice(b"{\"");
        out.extend_from_slice(op.as_bytes());
        out.extend_from_slice(b"\":{\"_index\":");
        match &mut self.target {
            Target::Index(template) => write_str(out, template.render(event)),
            Target::DataStream(name) => write_str(out, name),
        }
        if self.idempotent
            && let Some(audit_id) = get("auditID").and_then(as_str)
        {
            let mut id = audit_id.into_owned();
            if let Some(stage) = get("stage").and_then(as_str) {
                id.push('-');
                id.push_str(&stage);
            }
            out.extend_from_slice(b",\"_id\":");
            write_str(out, &id);
        }
        out.extend_from_slice(b"}}\n");

        // Document line.
        let timestamp: Option<Cow<'_, str>> = if get("@timestamp").is_some() {
            None
        } else {
            Some(
                match get("stageTimestamp").filter(|v| v.get().starts_with('"')) {
                    Some(raw) => Cow::Borrowed(raw.get()),
                    None => Cow::Owned(format!(
                        "\"{}\"",
                        event.time.to_rfc3339_opts(SecondsFormat::Micros, true)
                    )),
                },
            )
        };
        let rewrite = self.encode_bodies
            && fields
                .iter()
                .any(|(k, _)| BODY_FIELDS.contains(&k.as_ref()));
        if rewrite {
            out.push(b'{');
            let mut first = true;
            if let Some(ts) = &timestamp {
                out.extend_from_slice(b"\"@timestamp\":");
                out.extend_from_slice(ts.as_bytes());
                first = false;
            }
            for (key, value) in &fields {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_str(out, key);
                out.push(b':');
                if BODY_FIELDS.contains(&key.as_ref()) {
                    write_str(out, value.get());
                } else {
                    out.extend_from_slice(value.get().as_bytes());
                }
            }
            out.push(b'}');
        } else {
            splice_timestamp(text, timestamp.as_deref(), out);
        }
        out.push(b'\n');
        drop(fields);
        self.scratch = scratch;
    }
}

/// Writes `text` with `"@timestamp":<ts>` as its first member.
fn splice_timestamp(text: &str, timestamp: Option<&str>, out: &mut Vec<u8>) {
    let trimmed = text.trim();
    let (Some(ts), Some(inner)) = (timestamp, trimmed.strip_prefix('{')) else {
        out.extend_from_slice(trimmed.as_bytes());
        return;
    };
    out.extend_from_slice(b"{\"@timestamp\":");
    out.extend_from_slice(ts.as_bytes());
    if !inner.trim_start().starts_with('}') {
        out.push(b',');
    }
    out.extend_from_slice(inner.as_bytes());
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("serialising a str into a Vec cannot fail");
}

fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|t| t.0)
}

/// The top-level members of a JSON object, values unparsed.
struct TopLevel<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A string borrowed from the input when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel<'de>, A::Error> {
                let mut fields = Vec::with_capacity(24);
                while let Some((key, value)) = map.next_entry::<Text<'de>, &'de RawValue>()? {
                    fields.push((key.0, value));
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::{Template, TemplateKind};
    use crate::event::FieldPath;
    use crate::event::test_event;
    use crate::metrics::{EvalErrors, Metrics};
    use chrono::{DateTime, Utc};

    const EVENT: &str = r#"{"kind":"Event","auditID":"6f1c","stage":"ResponseComplete","requestURI":"/api?a=1\u0026b=2","requestObject":{"spec":[1,2]},"responseObject":{"status":"Success"},"stageTimestamp":"2026-11-22T10:00:00.123456Z"}"#;

    fn event(raw: &str) -> Event {
        Event {
            time: DateTime::parse_from_rfc3339("2026-11-22T10:00:01Z")
                .unwrap()
                .with_timezone(&Utc),
            ..test_event(raw)
        }
    }

    fn index_name(text: &str) -> IndexName {
        let template = Template::compile(text, TemplateKind::Path).unwrap();
        IndexName::new(template, EvalErrors::new(Metrics::new().component("es")))
    }

    fn encoder(encode_bodies: bool) -> BulkEncoder {
        let index = index_name("kube-audit-%Y.%m.%d");
        BulkEncoder::new(Target::Index(Box::new(index)), true, encode_bodies)
    }

    fn lines(out: &[u8]) -> Vec<&str> {
        std::str::from_utf8(out).unwrap().lines().collect()
    }

    #[test]
    fn action_has_index_and_audit_id_stage_and_document_gets_timestamp_spliced() {
        let mut out = Vec::new();
        encoder(false).encode(&[event(EVENT)], &mut out);
        assert!(out.ends_with(b"\n"));
        let lines = lines(&out);
        assert_eq!(
            lines[0],
            r#"{"create":{"_index":"kube-audit-2026.11.22","_id":"6f1c-ResponseComplete"}}"#
        );
        let expected = format!(
            r#"{{"@timestamp":"2026-11-22T10:00:00.123456Z",{}"#,
            &EVENT[1..]
        );
        assert_eq!(lines[1], expected);
    }

    #[test]
    fn existing_timestamp_is_kept_and_missing_stage_timestamp_uses_event_time() {
        let mut out = Vec::new();
        let mut enc = encoder(false);
        enc.encode(
            &[
                event(r#"{"@timestamp":"x","a":1}"#),
                event("{}"),
                event(r#"{ "a" : 1 }"#),
            ],
            &mut out,
        );
        let lines = lines(&out);
        assert_eq!(lines[0], r#"{"create":{"_index":"kube-audit-2026.11.22"}}"#);
        assert_eq!(lines[1], r#"{"@timestamp":"x","a":1}"#);
        assert_eq!(lines[3], r#"{"@timestamp":"2026-11-22T10:00:01.000000Z"}"#);
        assert_eq!(
            lines[5],
            r#"{"@timestamp":"2026-11-22T10:00:01.000000Z", "a" : 1 }"#
        );
        for doc in [lines[1], lines[3], lines[5]] {
            serde_json::from_str::<serde_json::Value>(doc).unwrap();
        }
    }

    #[test]
    fn encode_bodies_turns_request_and_response_objects_into_strings() {
        let mut out = Vec::new();
        encoder(true).encode(&[event(EVENT)], &mut out);
        let doc: serde_json::Value = serde_json::from_str(lines(&out)[1]).unwrap();
        assert_eq!(doc["requestObject"], r#"{"spec":[1,2]}"#);
        assert_eq!(doc["responseObject"], r#"{"status":"Success"}"#);
        assert_eq!(doc["requestURI"], "/api?a=1&b=2");
        assert_eq!(doc["@timestamp"], "2026-11-22T10:00:00.123456Z");
    }

    #[test]
    fn changed_records_are_serialised_then_spliced() {
        let mut e = event(EVENT);
        e.record.remove(&FieldPath::parse("requestObject").unwrap());
        let mut out = Vec::new();
        encoder(false).encode(&[e], &mut out);
        let doc: serde_json::Value = serde_json::from_str(lines(&out)[1]).unwrap();
        assert!(doc.get("requestObject").is_none());
        assert_eq!(doc["@timestamp"], "2026-11-22T10:00:00.123456Z");
    }

    #[test]
    fn data_streams_use_create_and_non_idempotent_indices_use_index() {
        let mut out = Vec::new();
        BulkEncoder::new(
            Target::DataStream("logs-k8s.audit-default".into()),
            false,
            false,
        )
        .encode(&[event(EVENT)], &mut out);
        assert_eq!(
            lines(&out)[0],
            r#"{"create":{"_index":"logs-k8s.audit-default"}}"#
        );
        let mut out = Vec::new();
        let index = index_name("a");
        BulkEncoder::new(Target::Index(Box::new(index)), false, false)
            .encode(&[event(EVENT)], &mut out);
        assert_eq!(lines(&out)[0], r#"{"index":{"_index":"a"}}"#);
    }
}
