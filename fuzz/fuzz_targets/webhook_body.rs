//! The webhook source's body decoding: `Content-Type`/`Content-Encoding`
//! checks, bounded gunzip, and the split of an `EventList`, an `Event`, a JSON
//! array or NDJSON into records.
//!
//! The first byte picks the headers; the rest is the body. Mode 2 gzips the
//! body first, so the splitter is reached through the gzip path too.

#![no_main]

use std::io::Write;

use auditrail::event::FieldPath;
use auditrail::source::TimeSpec;
use auditrail::source::http::decode_body;
use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/x-ndjson"),
    Some("application/json; charset=utf-8"),
    Some("application/jsonl"),
    Some("text/plain"),
];

/// The limit the handler passes to gunzip (small, so zip bombs stop early).
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Some(kind) = CONTENT_TYPES[usize::from(selector & 0x7) % CONTENT_TYPES.len()] {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    let body = match (selector >> 3) & 0x3 {
        0 => Bytes::copy_from_slice(body),
        1 => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            Bytes::copy_from_slice(body)
        }
        _ => {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body).unwrap();
            Bytes::from(encoder.finish().unwrap())
        }
    };
    // Half the runs read `stageTimestamp` as the event time, as the source does.
    let time = (selector & 0x20 != 0).then(|| TimeSpec {
        key: FieldPath::parse("stageTimestamp").unwrap(),
        format: None,
    });
    let Ok(decoded) = decode_body(&headers, body, LIMIT, time.as_ref()) else {
        return;
    };
    for item in &decoded {
        let raw = item
            .record
            .raw()
            .expect("a decoded record keeps its JSON text");
        // Line-oriented outputs write the text as it is: one event, one line.
        assert!(!raw.contains(['\n', '\r']), "a record spans lines: {raw:?}");
        let value: serde_json::Value = serde_json::from_str(raw).expect("records are JSON");
        assert!(value.is_object(), "a record is not an object: {raw}");
    }
});
