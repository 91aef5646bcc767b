//! Turns one input line into records, per the source's `format`, and finds
//! each record's event time (`time_key`, else the time it was read). The audit
//! formats (`access_json`, `legacy`) go through the source's `policy` first (see
//! `audit_input.rs`). [`DecodeSpec`] is the part of a source's config every
//! line-reading source shares: checked at config load, built once per source.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::audit_input::AuditInput;
use super::bad_line::{BadLine, BadLineKind};
use crate::audit::CompiledPolicy;
use crate::config::{Diagnostic, Duration, load_policy_key};
use crate::event::{Ack, FieldPath, LineError, Record};
use crate::metrics::ComponentMetrics;

/// How a source reads its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// One JSON object per line (audit events as kube-apiserver writes them).
    #[default]
    Json,
    /// Any text; the record is `{"message": "<line>"}`.
    Text,
    /// kube-apiserver's legacy `AUDIT:` lines (the two-line request/response form and
    /// the one-line-per-stage form), audited through `policy`.
    Legacy,
    /// One access record (JSON) per API request, audited through `policy`.
    AccessJson,
}

impl InputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Legacy => "legacy",
            Self::AccessJson => "access_json",
        }
    }

    /// Whether lines are raw requests that a policy turns into audit Events.
    pub fn is_audited(self) -> bool {
        matches!(self, Self::Legacy | Self::AccessJson)
    }
}

/// Where the event time comes from.
#[derive(Debug, Clone)]
pub struct TimeSpec {
    pub key: FieldPath,
    /// strftime format; RFC 3339 (or Unix seconds as a number) when absent.
    pub format: Option<String>,
}

/// The field audit events carry their time in when no `time_key` is set:
/// kube-apiserver writes it on every event, so a replayed log lands in the
/// day (index, file slice) the events happened, not the day it was read.
pub(super) const DEFAULT_TIME_KEY: &str = "stageTimestamp";

impl TimeSpec {
    /// Where a source of `format` reads event times: `time_key` when set, else
    /// [`DEFAULT_TIME_KEY`] for JSON lines (a record without it is stamped
    /// with the time it was read). `text` lines have no fields, and the audit
    /// formats take their times from the request's stages.
    pub fn for_format(
        format: InputFormat,
        time_key: Option<&FieldPath>,
        time_format: Option<&str>,
    ) -> Option<Self> {
        let key = match (format, time_key) {
            (_, Some(key)) => key.clone(),
            (InputFormat::Json, None) => {
                FieldPath::parse(DEFAULT_TIME_KEY).expect("a plain field name")
            }
            _ => return None,
        };
        Some(Self {
            key,
            format: time_format.map(str::to_owned),
        })
    }

    /// The record's time, if it has a readable one.
    pub fn read(&self, record: &Record) -> Option<DateTime<Utc>> {
        match record.plain_top_level_str(&self.key) {
            Some(text) => parse_time_text(text, self.format.as_deref()),
            None => parse_time(&*record.get(&self.key)?, self.format.as_deref()),
        }
    }
}

/// How long a legacy request line waits for its response line by default.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The decoding keys of a line-reading source's table, as written. Every such source
/// (`stdin`, `tail`) has these same keys with the same meaning:
///
/// ```toml
/// format = "legacy"          # json (default) | text | legacy | access_json
/// policy = "/etc/kubernetes/audit-policy.yaml"   # required for legacy/access_json
/// join_timeout = "10s"       # legacy only: how long a request waits for its response
/// time_key = "stageTimestamp"                    # json/text only
/// time_format = "%d/%m/%Y %H:%M:%S"              # with time_key
/// ```
pub struct DecodeKeys<'a> {
    pub format: InputFormat,
    pub time_key: Option<&'a Spanned<FieldPath>>,
    pub time_format: Option<&'a str>,
    pub policy: Option<&'a Spanned<PathBuf>>,
    pub join_timeout: Option<&'a Spanned<Duration>>,
    /// The source table's span, for errors about a missing key.
    pub table_span: Range<usize>,
}

/// A source's validated decoding settings (with its audit policy loaded).
#[derive(Debug, Clone, Default)]
pub struct DecodeSpec {
    format: InputFormat,
    time: Option<TimeSpec>,
    audit: Option<AuditSpec>,
}

#[derive(Debug, Clone)]
struct AuditSpec {
    policy: Arc<CompiledPolicy>,
    /// Set for `legacy`.
    join_timeout: Option<chrono::Duration>,
}

impl DecodeSpec {
    /// Checks the keys together and loads the policy: `legacy`/`access_json` need a
    /// `policy` and take their event time from the stage timestamps (no `time_key`);
    /// `policy` and `join_timeout` mean nothing for the other formats.
    pub fn from_keys(keys: &DecodeKeys<'_>) -> Result<Self, Diagnostic> {
        let format = keys.format;
        if let (false, Some(policy)) = (format.is_audited(), keys.policy) {
            return Err(Diagnostic::new(format!(
                "`policy` does not apply to `format = \"{}\"`",
                format.as_str()
            ))
            .at(policy.span())
            .with_label("only `legacy` and `access_json` lines are audited through a policy")
            .with_help(
                "to apply a policy to audit events, use an `audit_policy` filter; or set `format = \"legacy\"` or `\"access_json\"`",
            ));
        }
        if let (false, Some(timeout)) = (format == InputFormat::Legacy, keys.join_timeout) {
            return Err(Diagnostic::new(format!(
                "`join_timeout` does not apply to `format = \"{}\"`",
                format.as_str()
            ))
            .at(timeout.span())
            .with_label("only legacy request and response lines are joined")
            .with_help("remove `join_timeout`"));
        }
        if let (true, Some(time_key)) = (format.is_audited(), keys.time_key) {
            return Err(Diagnostic::new(format!(
                "`time_key` does not apply to `format = \"{}\"`",
                format.as_str()
            ))
            .at(time_key.span())
            .with_label("audited events take their time from `stageTimestamp`")
            .with_help("remove `time_key`"));
        }
        let audit = if format.is_audited() {
            let Some(policy) = keys.policy else {
                let start = keys.table_span.start;
                return Err(Diagnostic::new(format!(
                    "`format = \"{}\"` needs a `policy`",
                    format.as_str()
                ))
                .at(start..start + 1)
                .with_help(
                    "add `policy = \"/path/to/audit-policy.yaml\"`: raw requests become audit events as that policy decides",
                ));
            };
            let join_timeout = (format == InputFormat::Legacy).then(|| {
                let timeout = keys
                    .join_timeout
                    .map_or(DEFAULT_JOIN_TIMEOUT, |t| *t.get_ref());
                chrono::Duration::from_std(timeout.0).unwrap_or(chrono::Duration::MAX)
            });
            Some(AuditSpec {
                policy: load_policy_key(policy)?,
                join_timeout,
            })
        } else {
            None
        };
        Ok(Self {
            format,
            time: TimeSpec::for_format(
                format,
                keys.time_key.map(Spanned::get_ref),
                keys.time_format,
            ),
            audit,
        })
    }

    /// Settings for an audit format with an already loaded policy (the offline
    /// `auditrail audit` command). `join_timeout` only matters for `legacy`.
    pub fn audited(
        format: InputFormat,
        policy: Arc<CompiledPolicy>,
        join_timeout: Duration,
    ) -> Self {
        Self {
            format,
            time: None,
            audit: format.is_audited().then(|| AuditSpec {
                policy,
                join_timeout: (format == InputFormat::Legacy).then(|| {
                    chrono::Duration::from_std(join_timeout.0).unwrap_or(chrono::Duration::MAX)
                }),
            }),
        }
    }

    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// A fresh decoder counting into the source's metrics.
    pub fn build(&self, metrics: &ComponentMetrics) -> Decoder {
        Decoder {
            format: self.format,
            time: self.time.clone(),
            audit: self
                .audit
                .as_ref()
                .map(|audit| AuditInput::new(audit.policy.clone(), audit.join_timeout, metrics)),
        }
    }
}

/// A record and its event time.
#[derive(Debug)]
pub struct Decoded {
    pub record: Record,
    pub time: DateTime<Utc>,
    /// The acknowledgement of the batches of earlier lines joined into this
    /// record (a legacy request line waiting for its response), to combine
    /// with the current batch's ([`Ack::join`]) so those batches stay
    /// unacknowledged until the record is delivered. [`Ack::none`] for
    /// records of one line.
    pub joined: Ack,
}

impl Decoded {
    /// A record made from the current line alone.
    pub fn new(record: Record, time: DateTime<Utc>) -> Self {
        Self {
            record,
            time,
            joined: Ack::none(),
        }
    }
}

/// Per-source line decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    format: InputFormat,
    time: Option<TimeSpec>,
    audit: Option<AuditInput>,
}

impl Decoder {
    /// A decoder for `json` or `text` (the audit formats need a policy: build those
    /// with [`DecodeSpec::build`]).
    pub fn new(format: InputFormat, time: Option<TimeSpec>) -> Self {
        Self {
            format,
            time,
            audit: None,
        }
    }

    /// Whether lines may wait for later ones (legacy joins), so the source must call
    /// [`Decoder::flush_expired`] now and then and [`Decoder::flush_all`] at the end.
    pub fn joins_lines(&self) -> bool {
        self.audit.as_ref().is_some_and(AuditInput::joins_lines)
    }

    /// Decodes one line (without its newline) that no source waits to
    /// acknowledge. Blank lines yield nothing.
    pub fn decode(
        &mut self,
        line: Bytes,
        now: DateTime<Utc>,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        self.decode_in_batch(line, now, &Ack::none(), out)
    }

    /// Decodes one line of the batch acknowledged by `batch`. A line held for
    /// later ones (a legacy request waiting for its response) keeps a copy
    /// of `batch`, handed out in [`Decoded::joined`] with the record it ends
    /// up in, so a crash meanwhile cannot lose it; a held line still waiting
    /// when the decoder is dropped fails its batch.
    pub fn decode_in_batch(
        &mut self,
        line: Bytes,
        now: DateTime<Utc>,
        batch: &Ack,
        out: &mut Vec<Decoded>,
    ) -> Result<(), BadLine> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        match self.format {
            InputFormat::Json => {
                let record = Record::from_json_line(line).map_err(|e| {
                    let kind = match e {
                        LineError::NotUtf8(_) => BadLineKind::NotUtf8,
                        LineError::NotJson(_) => BadLineKind::NotJson,
                    };
                    BadLine::new(kind, e.to_string())
                })?;
                let time = self.time.as_ref().and_then(|spec| spec.read(&record));
                out.push(Decoded::new(record, time.unwrap_or(now)));
            }
            InputFormat::Text => {
                let mut fields = serde_json::Map::new();
                fields.insert("message".into(), Value::String(utf8(line)?.to_string()));
                out.push(Decoded::new(Record::from_fields(fields), now));
            }
            InputFormat::Legacy => {
                let text = utf8(line)?;
                self.audit_input()?.decode_legacy(&text, now, batch, out)?;
            }
            InputFormat::AccessJson => {
                let text = utf8(line)?;
                self.audit_input()?.decode_access(&text, now, out)?;
            }
        }
        Ok(())
    }

    /// Emits legacy requests whose response did not come within `join_timeout`.
    /// `now` is the wall clock.
    pub fn flush_expired(&mut self, now: DateTime<Utc>, out: &mut Vec<Decoded>) {
        if let Some(audit) = &mut self.audit {
            audit.flush_expired(now, out);
        }
    }

    /// Emits everything still waiting (end of input or shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Decoded>) {
        if let Some(audit) = &mut self.audit {
            audit.flush_all(Utc::now(), out);
        }
    }

    fn audit_input(&mut self) -> Result<&mut AuditInput, BadLine> {
        self.audit.as_mut().ok_or_else(|| {
            BadLine::new(
                BadLineKind::Rejected,
                "this format needs a `policy`; build the decoder from a `DecodeSpec`",
            )
        })
    }
}

fn utf8(line: Bytes) -> Result<ByteString, BadLine> {
    ByteString::try_from(line)
        .map_err(|e| BadLine::new(BadLineKind::NotUtf8, format!("invalid UTF-8: {e}")))
}

/// Reads an event time from a field value: RFC 3339 or the given strftime
/// format for strings, Unix seconds for numbers.
pub fn parse_time(value: &Value, format: Option<&str>) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => parse_time_text(text, format),
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

/// Reads a time string: RFC 3339, or the given strftime format.
fn parse_time_text(text: &str, format: Option<&str>) -> Option<DateTime<Utc>> {
    match format {
        None => parse_utc_rfc3339(text).or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }),
        Some(format) => DateTime::parse_from_str(text, format)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| NaiveDateTime::parse_from_str(text, format).map(|t| t.and_utc()))
            .ok(),
    }
}

/// The UTC form of RFC 3339 that kube-apiserver writes
/// (`2026-11-22T10:00:00.123456Z`), read without chrono's general parser,
/// since every event's time goes through here. Anything else (an offset, a
/// leap second, lowercase letters) is `None`, left to the general parser.
fn parse_utc_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    fn number(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    }
    let (stamp, rest) = text.as_bytes().split_at_checked(19)?;
    if [stamp[4], stamp[7], stamp[10], stamp[13], stamp[16]] != *b"--T::" {
        return None;
    }
    let nanos = match rest {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            let scale = 10u32.pow(9 - u32::try_from(fraction.len()).ok()?);
            number(fraction)? * scale
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&stamp[..4])?).ok()?,
        number(&stamp[5..7])?,
        number(&stamp[8..10])?,
    )?;
    let time = NaiveTime::from_hms_nano_opt(
        number(&stamp[11..13])?,
        number(&stamp[14..16])?,
        number(&stamp[17..19])?,
        nanos,
    )?;
    Some(date.and_time(time).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kube_apiserver_timestamps_as_chrono_does() {
        let general = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        for text in [
            "2026-11-22T10:00:00Z",
            "2026-11-22T10:00:00.1Z",
            "2026-11-22T10:00:00.123456Z",
            "2026-11-22T23:59:59.999999999Z",
            "2024-02-29T00:00:00.000001Z",
        ] {
            assert!(general(text).is_some(), "{text}");
            assert_eq!(parse_utc_rfc3339(text), general(text), "{text}");
        }
        // Left to the general parser, which still reads the valid ones.
        for text in [
            "2026-11-22T10:00:00+01:00",
            "2026-11-22t10:00:00z",
            "2016-12-31T23:59:60Z",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00.1234567891Z",
            "2026-02-30T10:00:00Z",
            "2026-11-22 10:00:00Z",
            "+2026-11-22T10:00:00Z",
            "2026-11-22T10:00:00",
            "",
        ] {
            assert_eq!(parse_utc_rfc3339(text), None, "{text}");
        }
        let offset = parse_time(&Value::from("2026-11-22T10:00:00+01:00"), None).unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-11-22T09:00:00+00:00");
    }

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
        // Escaped, nested or numeric times are read through the parsed value.
        let out = decode(
            &mut d,
            br#"{"stageTimestamp":"2026-11-22T10:00:00\u002e5Z"}"#,
        )
        .unwrap();
        assert_eq!(out[0].time.to_rfc3339(), "2026-11-22T10:00:00.500+00:00");
        let out = decode(&mut d, br#"{"stageTimestamp":1.5}"#).unwrap();
        assert_eq!(out[0].time.timestamp_millis(), 1500);
        let nested = TimeSpec {
            key: FieldPath::parse("meta.at").unwrap(),
            format: None,
        };
        let mut nested = Decoder::new(InputFormat::Json, Some(nested));
        let out = decode(&mut nested, br#"{"meta":{"at":"2026-11-22T10:00:00Z"}}"#).unwrap();
        assert_eq!(out[0].time.to_rfc3339(), "2026-11-22T10:00:00+00:00");
        // Missing or unparsable times fall back to the read time.
        let out = decode(&mut d, br#"{"stageTimestamp":"yesterday"}"#).unwrap();
        assert_eq!(out[0].time.timestamp(), 0);
        let out = decode(&mut d, br#"{"other":"2026-11-22T10:00:00Z"}"#).unwrap();
        assert_eq!(out[0].time.timestamp(), 0);
    }

    #[test]
    fn json_lines_default_to_stage_timestamp() {
        let spec = TimeSpec::for_format(InputFormat::Json, None, None).unwrap();
        let mut d = Decoder::new(InputFormat::Json, Some(spec));
        let out = decode(&mut d, br#"{"stageTimestamp":"2025-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(out[0].time.to_rfc3339(), "2025-01-02T03:04:05+00:00");
        // An explicit key wins; text and audited lines have no default.
        let other = FieldPath::parse("at").unwrap();
        let spec = TimeSpec::for_format(InputFormat::Json, Some(&other), None).unwrap();
        assert_eq!(spec.key, other);
        assert!(TimeSpec::for_format(InputFormat::Text, None, None).is_none());
        assert!(TimeSpec::for_format(InputFormat::AccessJson, None, None).is_none());
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
