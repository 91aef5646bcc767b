//! Request bodies of the `http` output. Each event is written byte for byte
//! as it arrived (when unchanged), so a forwarded batch carries exactly what
//! kube-apiserver wrote.
//!
//! - `event_list`: what kube-apiserver's webhook backend POSTs,
//!   `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[…]}`;
//! - `ndjson`: one event per line, each line ending in `\n`;
//! - `json_array`: `[…]`.
//!
//! The JSON bodies end with a newline, as kube-apiserver's (Go's encoder) do.

use serde::Deserialize;

use crate::event::Event;

/// `body = "event_list" | "ndjson" | "json_array"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    #[default]
    EventList,
    Ndjson,
    JsonArray,
}

const EVENT_LIST_HEAD: &[u8] =
    br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#;

impl BodyFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::EventList | BodyFormat::JsonArray => "application/json",
            BodyFormat::Ndjson => "application/x-ndjson",
        }
    }

    /// Encodes `events` as one request body.
    pub fn encode(self, events: &[Event], size_hint: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size_hint);
        for event in events {
            self.encode_one(event, &mut out);
        }
        self.finish(&mut out);
        out
    }

    /// Appends one event to a body being built (`out` is empty before the
    /// first).
    pub fn encode_one(self, event: &Event, out: &mut Vec<u8>) {
        match self {
            BodyFormat::EventList | BodyFormat::JsonArray => {
                if out.is_empty() {
                    self.open(out);
                } else {
                    out.push(b',');
                }
                event.record.write_json(out);
            }
            BodyFormat::Ndjson => {
                event.record.write_json(out);
                out.push(b'\n');
            }
        }
    }

    /// Starts a JSON body: the `EventList` head or `[`.
    fn open(self, out: &mut Vec<u8>) {
        if self == BodyFormat::EventList {
            out.extend_from_slice(EVENT_LIST_HEAD);
        } else {
            out.push(b'[');
        }
    }

    /// Closes a body after its last event.
    pub fn finish(self, out: &mut Vec<u8>) {
        match self {
            BodyFormat::EventList | BodyFormat::JsonArray => {
                if out.is_empty() {
                    self.open(out);
                }
                out.push(b']');
                if self == BodyFormat::EventList {
                    out.push(b'}');
                }
                // kube-apiserver's encoder ends the body with a newline.
                out.push(b'\n');
            }
            BodyFormat::Ndjson => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::test_event as event;

    #[test]
    fn event_list_wraps_items_byte_for_byte() {
        let a = r#"{"auditID":"a", "requestURI":"/x?a=1\u0026b=2"}"#;
        let b = r#"{"auditID":"b"}"#;
        let body = BodyFormat::EventList.encode(&[event(a), event(b)], 0);
        let expected = format!(
            "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{{}},\"items\":[{a},{b}]}}\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
    }

    #[test]
    fn empty_event_list_still_has_items() {
        let body = BodyFormat::EventList.encode(&[], 0);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["items"], serde_json::json!([]));
        assert_eq!(value["metadata"], serde_json::json!({}));
    }

    #[test]
    fn ndjson_and_json_array() {
        let events = [event(r#"{"a":1}"#), event(r#"{"b":2}"#)];
        assert_eq!(
            BodyFormat::Ndjson.encode(&events, 0),
            b"{\"a\":1}\n{\"b\":2}\n"
        );
        assert_eq!(
            BodyFormat::JsonArray.encode(&events, 0),
            b"[{\"a\":1},{\"b\":2}]\n"
        );
    }

    #[test]
    fn changed_records_are_serialised() {
        let mut e = event(r#"{"a":1,"b":2}"#);
        e.record
            .remove(&crate::event::FieldPath::parse("b").unwrap());
        assert_eq!(BodyFormat::JsonArray.encode(&[e], 0), b"[{\"a\":1}]\n");
    }
}
