//! Request bodies: read within a size and time limit, gunzip within the same
//! size limit (a zip bomb stops at `max_body_size`), then split into one
//! record per event. Splitting is all or nothing: a body with one bad item is
//! rejected whole, so a client's retry never duplicates half of it.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::IngestError;
use crate::event::Record;
use crate::source::{Decoded, TimeSpec};

/// How the body lists its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// `application/json`: an `EventList`, one `Event`, or an array of events.
    Json,
    /// `application/x-ndjson`: one event per line.
    Ndjson,
}

/// The body's format, from `Content-Type` (absent means JSON).
pub(super) fn format_of(headers: &HeaderMap) -> Result<Format, IngestError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Format::Json);
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim();
    match essence.to_ascii_lowercase().as_str() {
        "application/json" => Ok(Format::Json),
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => {
            Ok(Format::Ndjson)
        }
        _ => Err(IngestError::UnsupportedMediaType(format!(
            "content type `{}`; send `application/json` or `application/x-ndjson`",
            text.chars().take(80).collect::<String>()
        ))),
    }
}

/// Whether the body is gzip-compressed, from `Content-Encoding`.
pub(super) fn is_gzip(headers: &HeaderMap) -> Result<bool, IngestError> {
    let mut gzip = false;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        for coding in value.to_str().unwrap_or("?").split(',') {
            match coding.trim().to_ascii_lowercase().as_str() {
                "" | "identity" => {}
                "gzip" | "x-gzip" if !gzip => gzip = true,
                other => {
                    return Err(IngestError::UnsupportedMediaType(format!(
                        "content encoding `{}`; send `gzip` or none",
                        other.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
    }
    Ok(gzip)
}

/// Reads the whole body, failing fast when it is declared or grows over
/// `limit` bytes, or does not arrive within `timeout`.
pub(super) async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, IngestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(IngestError::TooLarge(limit));
    }
    let collect = async move {
        let mut body = body;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| IngestError::Malformed("the body was cut off".into()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            total += data.len();
            if total > limit {
                return Err(IngestError::TooLarge(limit));
            }
            chunks.push(data);
        }
        Ok(concat(chunks, total))
    };
    tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| IngestError::Timeout)?
}

fn concat(mut chunks: Vec<Bytes>, total: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(total);
    for chunk in chunks {
        out.extend_from_slice(&chunk);
    }
    out.freeze()
}

/// Decompresses a gzip body (all members), refusing to produce more than
/// `limit` bytes.
pub(super) fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, IngestError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::MultiGzDecoder::new(compressed).take(limit as u64 + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Malformed(format!("invalid gzip: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// Splits a body into records, each with its event time.
pub(super) fn decode(
    body: &Bytes,
    format: Format,
    time: Option<&TimeSpec>,
    now: DateTime<Utc>,
) -> Result<Vec<Decoded>, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::Malformed(format!("the body is not UTF-8: {e}")))?;
    let items = match format {
        Format::Json => json_items(text)?,
        Format::Ndjson => ndjson_items(text),
    };
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.into_iter().enumerate() {
        let number = n + 1;
        let not_object = |e: &dyn fmt::Display| {
            let what = if format == Format::Ndjson {
                "line"
            } else {
                "item"
            };
            IngestError::Malformed(format!("{what} {number} is not a JSON object: {e}"))
        };
        let raw = match item {
            // Pretty-printed items would break line-oriented outputs; their
            // tokens are kept, only the whitespace between them goes.
            Cow::Borrowed(slice) if slice.contains(['\n', '\r']) => {
                ByteString::from(compact(slice))
            }
            Cow::Borrowed(slice) => ByteString::try_from(body.slice_ref(slice.as_bytes()))
                .map_err(|e| not_object(&e))?,
            Cow::Owned(text) => ByteString::from(text),
        };
        let record = Record::from_json(raw).map_err(|e| not_object(&e))?;
        let time = time.and_then(|spec| spec.read(&record));
        out.push(Decoded::new(record, time.unwrap_or(now)));
    }
    Ok(out)
}

/// The items of a JSON body, as slices of `text`.
fn json_items(text: &str) -> Result<Vec<Cow<'_, str>>, IngestError> {
    let malformed = |e: serde_json::Error| IngestError::Malformed(format!("invalid JSON: {e}"));
    let trimmed = text.trim_ascii();
    match trimmed.as_bytes().first() {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(trimmed).map_err(malformed)?;
            Ok(items.into_iter().map(|i| Cow::Borrowed(i.get())).collect())
        }
        Some(b'{') => {
            let envelope: Envelope<'_> = serde_json::from_str(trimmed).map_err(malformed)?;
            let kind = envelope.kind.as_deref();
            match (kind, envelope.items) {
                (Some("EventList") | None, Items::List(items)) => {
                    Ok(items.into_iter().map(|i| Cow::Borrowed(i.get())).collect())
                }
                (Some("EventList"), Items::Null) => Ok(Vec::new()),
                (Some("EventList"), Items::Missing) => Err(IngestError::Malformed(
                    "an `EventList` without `items`".into(),
                )),
                (Some("Event") | None, _) => Ok(vec![Cow::Borrowed(trimmed)]),
                (Some(other), _) => Err(IngestError::Malformed(format!(
                    "unexpected kind `{}`: expected `EventList` or `Event`",
                    other.chars().take(64).collect::<String>()
                ))),
            }
        }
        _ => Err(IngestError::Malformed(
            "expected a JSON object: an `EventList` or an `Event`".into(),
        )),
    }
}

fn ndjson_items(text: &str) -> Vec<Cow<'_, str>> {
    text.split('\n')
        .map(str::trim_ascii)
        .filter(|line| !line.is_empty())
        .map(Cow::Borrowed)
        .collect()
}

/// Removes the whitespace between JSON tokens (never inside strings).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// The parts of a JSON body the source looks at; other keys are skipped.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    items: Items<'a>,
}

/// `items`, told apart from `null` and absent.
#[derive(Default)]
enum Items<'a> {
    #[default]
    Missing,
    Null,
    List(Vec<&'a RawValue>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Items<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemsVisitor(std::marker::PhantomData))
    }
}

struct ItemsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ItemsVisitor<'a> {
    type Value = Items<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`items` to be a list of audit events")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Items::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Items::List(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str, format: Format) -> Result<Vec<String>, IngestError> {
        let body = Bytes::from(body.to_owned());
        let decoded = decode(&body, format, None, Utc::now())?;
        Ok(decoded
            .into_iter()
            .map(|d| d.record.raw().unwrap().to_owned())
            .collect())
    }

    fn malformed(body: &str) -> String {
        match split(body, Format::Json) {
            Err(IngestError::Malformed(reason)) => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn event_list_items_keep_their_bytes() {
        let body = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"auditID":"a","x":"\u0026"} , {"auditID":"b","n":1.50}]}"#;
        assert_eq!(
            split(body, Format::Json).unwrap(),
            [
                r#"{"auditID":"a","x":"\u0026"}"#,
                r#"{"auditID":"b","n":1.50}"#
            ]
        );
    }

    #[test]
    fn single_events_and_arrays_are_accepted() {
        let event = r#"{"kind":"Event","auditID":"a"}"#;
        assert_eq!(split(&format!("{event}\n"), Format::Json).unwrap(), [event]);
        assert_eq!(
            split(r#"{"auditID":"a"}"#, Format::Json).unwrap(),
            [r#"{"auditID":"a"}"#]
        );
        assert_eq!(
            split(r#"[{"a":1},{"b":2}]"#, Format::Json).unwrap(),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
    }

    #[test]
    fn null_items_is_an_empty_batch() {
        assert!(
            split(r#"{"kind":"EventList","items":null}"#, Format::Json)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn pretty_printed_items_lose_only_whitespace() {
        let body = "{\"kind\":\"EventList\",\"items\":[\n  {\n    \"a\": \"x y\\\" z\",\n    \"b\": [1, 2]\n  }\n]}";
        assert_eq!(
            split(body, Format::Json).unwrap(),
            [r#"{"a":"x y\" z","b":[1,2]}"#]
        );
    }

    #[test]
    fn malformed_bodies_are_rejected_whole() {
        assert!(malformed(r#"{"kind":"EventList","items":[{"a":1},{"b""#).contains("invalid JSON"));
        assert!(
            malformed(r#"{"kind":"PodList","items":[]}"#).contains("unexpected kind `PodList`")
        );
        assert!(
            malformed(r#"{"kind":"EventList","items":{"a":1}}"#).contains("list of audit events")
        );
        assert!(malformed(r#"{"kind":"EventList","items":[{"a":1},2]}"#).contains("item 2"));
        assert!(malformed(r#"{"kind":"EventList"}"#).contains("without `items`"));
        assert!(malformed("42").contains("expected a JSON object"));
        assert!(malformed("").contains("expected a JSON object"));
    }

    #[test]
    fn ndjson_lines_are_events() {
        let body = "{\"a\":1}\r\n\n  {\"b\":2}\n";
        assert_eq!(
            split(body, Format::Ndjson).unwrap(),
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert!(matches!(
            split("{\"a\":1}\nnot json\n", Format::Ndjson),
            Err(IngestError::Malformed(reason)) if reason.contains("line 2")
        ));
    }

    #[test]
    fn gzip_output_is_bounded() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&vec![b' '; 1 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert_eq!(gunzip(&bomb, 1000), Err(IngestError::TooLarge(1000)));
        assert_eq!(gunzip(&bomb, 2 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            gunzip(b"not gzip", 1000),
            Err(IngestError::Malformed(_))
        ));
    }

    #[test]
    fn content_types_and_encodings() {
        let mut headers = HeaderMap::new();
        assert_eq!(format_of(&headers), Ok(Format::Json));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(format_of(&headers), Ok(Format::Json));
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-ndjson".parse().unwrap(),
        );
        assert_eq!(format_of(&headers), Ok(Format::Ndjson));
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(format_of(&headers).is_err());
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(is_gzip(&headers), Ok(true));
        headers.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(is_gzip(&headers).is_err());
    }
}
