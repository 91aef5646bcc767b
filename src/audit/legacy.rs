//! Legacy `AUDIT:` text lines: the pre-1.7 two-line form (a request line, then a
//! `response=` line with the same id) and the one-line-per-stage form
//! `--audit-log-format=legacy` writes. Both become [`AccessRecord`]s.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::access_record::AccessRecord;
use super::types::{Stage, UserInfo};

/// Why a line is not a usable legacy audit line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyError {
    /// No ` AUDIT: ` marker (or `AUDIT:` at the start) in the line.
    #[error("line has no `AUDIT:` marker")]
    NotAuditLine,
    /// The token before `AUDIT:` is not an RFC 3339 time.
    #[error("legacy audit line has an invalid timestamp `{0}`")]
    BadTimestamp(String),
    /// A quoted value is not a valid Go-quoted string.
    #[error("legacy audit line has a badly quoted value for `{0}`")]
    BadQuoting(String),
    /// A field the line kind needs is absent.
    #[error("legacy audit line has no `{0}` field")]
    Missing(&'static str),
    /// `stage=` names no known stage.
    #[error("legacy audit line has an unknown stage `{0}`")]
    UnknownStage(String),
}

/// One parsed legacy line.
#[derive(Debug, Clone, PartialEq)]
pub enum LegacyLine {
    /// First line of the two-line form: the request, `method` is the HTTP method.
    Request(AccessRecord),
    /// Second line of the two-line form.
    Response {
        id: String,
        time: DateTime<Utc>,
        status: Option<i32>,
    },
    /// One stage of the one-line form; the record's `verb` is set (it logs verbs).
    Stage { stage: Stage, record: AccessRecord },
}

impl LegacyLine {
    /// Parses one line. Never panics on any input.
    pub fn parse(line: &str) -> Result<LegacyLine, LegacyError> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (head, body) = if let Some(rest) = line.strip_prefix("AUDIT: ") {
            ("", rest)
        } else {
            line.split_once(" AUDIT: ")
                .ok_or(LegacyError::NotAuditLine)?
        };
        // Anything before the timestamp (e.g. a klog prefix) is ignored.
        let stamp = head.rsplit(' ').next().unwrap_or("");
        let time = DateTime::parse_from_rfc3339(stamp)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| LegacyError::BadTimestamp(stamp.to_owned()))?;
        let fields = parse_fields(body)?;
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let id = get("id").ok_or(LegacyError::Missing("id"))?.to_owned();
        let status = get("response").and_then(|r| r.parse::<i32>().ok());
        if get("uri").is_none() && get("method").is_none() {
            if get("response").is_none() {
                return Err(LegacyError::Missing("response"));
            }
            return Ok(LegacyLine::Response { id, time, status });
        }
        let method = get("method").ok_or(LegacyError::Missing("method"))?;
        let mut record = AccessRecord {
            id: Some(id),
            time,
            method: method.to_owned(),
            uri: get("uri").ok_or(LegacyError::Missing("uri"))?.to_owned(),
            user: parse_user(get("user"), get("groups"))?,
            impersonated_user: parse_impersonation(get("as"), get("asgroups"))?,
            source_ips: match get("ip") {
                None | Some("<unknown>") => Vec::new(),
                Some(ip) => vec![ip.to_owned()],
            },
            user_agent: get("user-agent").map(str::to_owned),
            status,
            ..AccessRecord::default()
        };
        match get("stage") {
            None => Ok(LegacyLine::Request(record)),
            Some(name) => {
                let stage = Stage::from_name(name)
                    .ok_or_else(|| LegacyError::UnknownStage(name.to_owned()))?;
                record.method = method_for_verb(method);
                record.verb = Some(method.to_owned());
                record.panic = stage == Stage::Panic;
                Ok(LegacyLine::Stage { stage, record })
            }
        }
    }
}

/// The HTTP method a verb implies, so request-info resolves the same resource.
pub(crate) fn method_for_verb(verb: &str) -> String {
    match verb {
        "get" | "list" | "watch" | "proxy" => "GET".to_owned(),
        "create" => "POST".to_owned(),
        "update" => "PUT".to_owned(),
        "patch" => "PATCH".to_owned(),
        "delete" | "deletecollection" => "DELETE".to_owned(),
        other => other.to_uppercase(),
    }
}

fn parse_user(user: Option<&str>, groups: Option<&str>) -> Result<Option<UserInfo>, LegacyError> {
    match user {
        None | Some("<none>") => Ok(None),
        Some(name) => Ok(Some(UserInfo {
            username: Some(name.to_owned()),
            groups: parse_group_list(groups, "groups")?,
            ..UserInfo::default()
        })),
    }
}

fn parse_impersonation(
    as_user: Option<&str>,
    as_groups: Option<&str>,
) -> Result<Option<UserInfo>, LegacyError> {
    match as_user {
        None | Some("<self>") => Ok(None),
        Some(name) => Ok(Some(UserInfo {
            username: Some(name.to_owned()),
            groups: parse_group_list(as_groups, "asgroups")?,
            ..UserInfo::default()
        })),
    }
}

/// `"a","b"` (already unquoted once) → `[a, b]`; `<none>`/`<lookup>` → absent.
fn parse_group_list(value: Option<&str>, key: &str) -> Result<Option<Vec<String>>, LegacyError> {
    let Some(value) = value else { return Ok(None) };
    if value == "<none>" || value == "<lookup>" {
        return Ok(None);
    }
    let mut groups = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (group, after) =
            take_quoted(rest).ok_or_else(|| LegacyError::BadQuoting(key.to_owned()))?;
        groups.push(group);
        rest = match after.strip_prefix(',') {
            Some(next) => next,
            None if after.is_empty() => after,
            None => return Err(LegacyError::BadQuoting(key.to_owned())),
        };
    }
    Ok(Some(groups))
}

/// `key="go-quoted" key=bare ...` pairs in order.
fn parse_fields(mut body: &str) -> Result<Vec<(String, String)>, LegacyError> {
    let mut fields = Vec::new();
    loop {
        body = body.trim_start();
        if body.is_empty() {
            return Ok(fields);
        }
        let Some((key, rest)) = body.split_once('=') else {
            return Ok(fields);
        };
        let key = key.trim().to_owned();
        if rest.starts_with('"') {
            let (value, after) =
                take_quoted(rest).ok_or_else(|| LegacyError::BadQuoting(key.clone()))?;
            fields.push((key, value));
            body = after;
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            fields.push((key, rest[..end].to_owned()));
            body = &rest[end..];
        }
    }
}

/// Reads one Go-quoted string at the start of `input` (which begins with `"`), returning
/// the unquoted text and the remainder after the closing quote.
fn take_quoted(input: &str) -> Option<(String, &str)> {
    let mut chars = input.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let offset = 1;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                flush_bytes(&mut bytes, &mut out);
                return Some((out, &input[offset + i + 1..]));
            }
            '\\' => {
                let (_, esc) = chars.next()?;
                match esc {
                    'x' => bytes.push(u8::try_from(hex(&mut chars, 2)?).ok()?),
                    'u' | 'U' => {
                        flush_bytes(&mut bytes, &mut out);
                        let n = hex(&mut chars, if esc == 'u' { 4 } else { 8 })?;
                        out.push(char::from_u32(n)?);
                    }
                    '0'..='7' => {
                        let mut n = esc.to_digit(8)?;
                        for _ in 0..2 {
                            n = n * 8 + chars.next()?.1.to_digit(8)?;
                        }
                        bytes.push(u8::try_from(n).ok()?);
                    }
                    _ => {
                        flush_bytes(&mut bytes, &mut out);
                        out.push(match esc {
                            'a' => '\u{7}',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            'v' => '\u{b}',
                            '\\' | '"' | '\'' => esc,
                            _ => return None,
                        });
                    }
                }
            }
            _ => {
                flush_bytes(&mut bytes, &mut out);
                out.push(c);
            }
        }
    }
    None
}

/// `\x` escapes are raw bytes; they only form text together, so they are collected first.
fn flush_bytes(bytes: &mut Vec<u8>, out: &mut String) {
    if !bytes.is_empty() {
        out.push_str(&String::from_utf8_lossy(bytes));
        bytes.clear();
    }
}

fn hex(chars: &mut std::str::CharIndices<'_>, digits: usize) -> Option<u32> {
    let mut n: u32 = 0;
    for _ in 0..digits {
        n = n.checked_mul(16)? + chars.next()?.1.to_digit(16)?;
    }
    Some(n)
}

/// Joins legacy lines into complete access records: two-line pairs by id, and the
/// stages of the one-line form until ResponseComplete or Panic arrives.
#[derive(Debug, Clone)]
pub struct LegacyJoiner {
    pending: HashMap<String, AccessRecord>,
    join_timeout: Duration,
    orphan_responses: u64,
}

impl LegacyJoiner {
    /// Entries whose request time is older than `join_timeout` are emitted as they are
    /// by [`LegacyJoiner::flush_expired`].
    pub fn new(join_timeout: Duration) -> LegacyJoiner {
        LegacyJoiner {
            pending: HashMap::new(),
            join_timeout,
            orphan_responses: 0,
        }
    }

    /// Feeds one line; returns the record it completes, if any.
    pub fn push(&mut self, line: LegacyLine) -> Option<AccessRecord> {
        match line {
            LegacyLine::Request(record) => {
                let id = record.id.clone().unwrap_or_default();
                self.pending.insert(id, record);
                None
            }
            LegacyLine::Response { id, time, status } => match self.pending.remove(&id) {
                Some(mut record) => {
                    record.status = status;
                    record.completed = Some(time);
                    Some(record)
                }
                None => {
                    self.orphan_responses += 1;
                    None
                }
            },
            LegacyLine::Stage { stage, record } => {
                let id = record.id.clone().unwrap_or_default();
                let mut merged = match self.pending.remove(&id) {
                    Some(mut earlier) => {
                        earlier.status = record.status.or(earlier.status);
                        earlier.panic = record.panic;
                        earlier
                    }
                    None => record,
                };
                if matches!(stage, Stage::ResponseComplete | Stage::Panic) {
                    Some(merged)
                } else {
                    if stage == Stage::ResponseStarted {
                        // The line's time is requestReceivedTimestamp; the response-start
                        // time is unknown, so the request time stands in.
                        merged.response_started = Some(merged.time);
                    }
                    self.pending.insert(id, merged);
                    None
                }
            }
        }
    }

    /// Emits (oldest first) every pending entry whose request time is at least
    /// `join_timeout` before `now`, with whatever is known. For live tailing pass the
    /// wall clock; when replaying old logs pass the newest line's time.
    pub fn flush_expired(&mut self, now: DateTime<Utc>) -> Vec<AccessRecord> {
        let deadline = now - self.join_timeout;
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, r)| r.time <= deadline)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out: Vec<AccessRecord> = expired
            .iter()
            .filter_map(|id| self.pending.remove(id))
            .collect();
        out.sort_by_key(|r| r.time);
        out
    }

    /// Emits every pending entry (end of input), oldest first.
    pub fn flush_all(&mut self) -> Vec<AccessRecord> {
        let mut out: Vec<AccessRecord> = self.pending.drain().map(|(_, r)| r).collect();
        out.sort_by_key(|r| r.time);
        out
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Response lines that arrived without a pending request (dropped).
    pub fn orphan_responses(&self) -> u64 {
        self.orphan_responses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quoting_round_trips() {
        let (s, rest) = take_quoted(r#""a\"b\\c\n\x41\u00e9\303\251" tail"#).expect("quoted");
        assert_eq!(s, "a\"b\\c\nAéé");
        assert_eq!(rest, " tail");
        assert!(take_quoted(r#""unterminated"#).is_none());
        assert!(take_quoted(r#""bad \q""#).is_none());
    }

    #[test]
    fn two_line_pair_joins() {
        let request = r#"2017-03-21T03:57:09.106841886-04:00 AUDIT: id="c9" ip="127.0.0.1" method="GET" user="admin" groups="\"system:masters\",\"system:authenticated\"" as="<self>" asgroups="<lookup>" namespace="default" uri="/api/v1/namespaces/default/pods""#;
        let response = r#"2017-03-21T03:57:09.108403639-04:00 AUDIT: id="c9" response="200""#;
        let mut joiner = LegacyJoiner::new(Duration::seconds(30));
        assert!(
            joiner
                .push(LegacyLine::parse(request).expect("request"))
                .is_none()
        );
        let record = joiner
            .push(LegacyLine::parse(response).expect("response"))
            .expect("joined");
        assert_eq!(record.status, Some(200));
        let user = record.user.expect("user");
        assert_eq!(
            user.groups.expect("groups"),
            vec!["system:masters", "system:authenticated"]
        );
        assert_eq!(
            record.time.to_rfc3339(),
            "2017-03-21T07:57:09.106841886+00:00"
        );
    }

    #[test]
    fn unanswered_requests_flush_after_timeout() {
        let request = r#"2017-08-25T04:40:49.965969122Z AUDIT: id="8e" ip="1.2.3.4" method="GET" user="u" groups="<none>" as="<self>" asgroups="<lookup>" namespace="ns" uri="/api/v1/namespaces/ns/secrets/s""#;
        let mut joiner = LegacyJoiner::new(Duration::seconds(10));
        let line = LegacyLine::parse(request).expect("parses");
        let LegacyLine::Request(record) = &line else {
            panic!("request line")
        };
        let t = record.time;
        joiner.push(line);
        assert!(joiner.flush_expired(t + Duration::seconds(5)).is_empty());
        let flushed = joiner.flush_expired(t + Duration::seconds(10));
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].status, None);
        assert_eq!(joiner.pending_len(), 0);
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for line in [
            "",
            "AUDIT:",
            "x AUDIT: id=",
            "2017-01-01T00:00:00Z AUDIT: ",
            "2017-01-01T00:00:00Z AUDIT: id=\"a\" uri=\"/\"",
        ] {
            assert!(LegacyLine::parse(line).is_err(), "{line}");
        }
    }
}
