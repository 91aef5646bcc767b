//! Turns one input line into records, per the source's `format`, and finds
//! each record's event time (`time_key`, else the time it was read).

use bytes::Bytes;
use bytestring::ByteString;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::bad_line::{BadLine, BadLineKind};
use crate::event::{FieldPath, Record};

/// How a source reads its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// One JSON object per line (audit events as kube-apiserver writes them).
    #[default]
    Json,
    /// Any text; the record is `{"message": "<line>"}`.
    Text,
}

/// Where the event time comes from.
#[derive(Debug, Clone)]
pub struct TimeSpec {
    pub key: FieldPath,
    /// strftime format; RFC 3339 (or Unix seconds as a number) when absent.
    pub format: Option<String>,
}

/// A record and its event time.
#[derive(Debug)]
pub struct Decoded {
    pub record: Record,
    pub time: DateTime<Utc>,
}

/// Per-source line decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    format: InputFormat,
    time: Option<TimeSpec>,
}

impl Decoder {
    pub fn new(format: InputFormat, time: Option<TimeSpec>) -> Self {
        Self { format, time }
    }

    /// Decodes one line (without its newline). Blank lines yield nothing.
    pub fn decode(
        &mut self,
        line: Bytes,
        now: DateTime<Utc>,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let text = ByteString::try_from(line)
            .map_err(|e| BadLine::new(BadLineKind::NotUtf8, format!("invalid UTF-8: {e}")))?;
        match self.format {
            InputFormat::Json => {
                let (record, time) = match &self.time {
                    Some(spec) => {
                        let (record, value) =
                            Record::from_json_reading(text, &spec.key).map_err(not_json)?;
                        let time = value.and_then(|v| parse_time(&v, spec.format.as_deref()));
                        (record, time.unwrap_or(now))
                    }
                    None => (Record::from_json(text).map_err(not_json)?, now),
                };
                out.push(Decoded { record, time });
            }
            InputFormat::Text => {
                let mut fields = serde_json::Map::new();
                fields.insert("message".into(), Value::String(text.to_string()));
                out.push(Decoded {
                    record: Record::from_fields(fields),
                    time: now,
                });
            }
        }
        Ok(())
    }
}

fn not_json(e: serde_json::Error) -> BadLine {
    BadLine::new(BadLineKind::NotJson, format!("not a JSON object: {e}"))
}

/// Reads an event time from a field value: RFC 3339 or the given strftime
/// format for strings, Unix seconds for numbers.
pub fn parse_time(value: &Value, format: Option<&str>) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => match format {
            None => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Some(format) => DateTime::parse_from_str(text, format)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| NaiveDateTime::parse_from_str(text, format).map(|t| t.and_utc()))
                .ok(),
        },
        Value::Number(n) => {
            let secs = n.as_f64()?;
            #[allow(clippy::cast_possible_truncation)]
            let nanos = (secs.fract() * 1e9) as u32;
            #[allow(clippy::cast_possible_truncation)]
            Utc.timestamp_opt(secs.trunc() as i64, nanos).single()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(decoder: &mut Decoder, line: &'static [u8]) -> Result<Vec<Decoded>, BadLine> {
        let mut out = Vec::new();
        decoder.decode(
            Bytes::from_static(line),
            Utc.timestamp_opt(0, 0).unwrap(),
            &mut out,
        )?;
        Ok(out)
    }

    #[test]
    fn takes_event_time_from_time_key() {
        let spec = TimeSpec {
            key: FieldPath::parse("stageTimestamp").unwrap(),
            format: None,
        };
        let mut d = Decoder::new(InputFormat::Json, Some(spec));
        let out = decode(
            &mut d,
            br#"{"stageTimestamp":"2026-11-22T10:00:00.123456Z"}"#,
        )
        .unwrap();
        assert_eq!(out[0].time.to_rfc3339(), "2026-11-22T10:00:00.123456+00:00");
        // Missing or unparsable times fall back to the read time.
        let out = decode(&mut d, br#"{"stageTimestamp":"yesterday"}"#).unwrap();
        assert_eq!(out[0].time.timestamp(), 0);
    }

    #[test]
    fn classifies_bad_lines() {
        let mut d = Decoder::new(InputFormat::Json, None);
        assert_eq!(
            decode(&mut d, b"\xff\xfe").unwrap_err().kind,
            BadLineKind::NotUtf8
        );
        assert_eq!(
            decode(&mut d, b"{\"a\":").unwrap_err().kind,
            BadLineKind::NotJson
        );
        assert_eq!(
            decode(&mut d, b"[1,2]").unwrap_err().kind,
            BadLineKind::NotJson
        );
        assert!(decode(&mut d, b"   ").unwrap().is_empty());
    }

    #[test]
    fn text_lines_become_messages() {
        let mut d = Decoder::new(InputFormat::Text, None);
        let out = decode(&mut d, b"hello").unwrap();
        assert_eq!(out[0].record.fields()["message"], "hello");
    }

    #[test]
    fn parses_time_formats() {
        let t = parse_time(
            &Value::from("22/11/2026 10:00:00"),
            Some("%d/%m/%Y %H:%M:%S"),
        )
        .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00+00:00");
        let t = parse_time(&Value::from(1.5), None).unwrap();
        assert_eq!(t.timestamp_millis(), 1500);
    }
}
