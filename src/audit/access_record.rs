//! Access records: one API request as an authenticating proxy logs it
//! (`format = "access_json"`, documented field by field in
//! `docs/access-records.md`), and the intermediate form legacy `AUDIT:` lines become.
//! [`AccessRecord::to_events`] (in `emit.rs`) turns one into audit Events via a policy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::request_info::RequestInfoError;
use super::types::UserInfo;

/// Why an access record line was refused; each names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum AccessRecordError {
    /// The line is not JSON.
    #[error("access record is not valid JSON")]
    Json(#[source] serde_json::Error),
    /// The line is JSON but not an object.
    #[error("access record is not a JSON object")]
    NotAnObject,
    /// A required field is absent (`time`, `method`, `uri`, `user`, `user.username`).
    #[error("access record has no `{0}`")]
    Missing(&'static str),
    /// A field has the wrong JSON type or an unparsable value.
    #[error("access record field `{field}` {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// The method and URI do not resolve (kube-apiserver would not audit the request).
    #[error("access record request cannot be resolved")]
    RequestInfo(#[from] RequestInfoError),
}

/// The identity fields of an access record.
pub type RecordUser = UserInfo;

/// One API request, as observed from outside kube-apiserver.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessRecord {
    /// Becomes `auditID`; a fresh UUID v4 is minted when absent.
    pub id: Option<String>,
    /// When the request arrived (`requestReceivedTimestamp`).
    pub time: DateTime<Utc>,
    /// HTTP method as sent, e.g. `GET`.
    pub method: String,
    /// Request target: escaped path plus optional `?query` (or an absolute URL).
    pub uri: String,
    /// Authenticated identity; `None` means authentication failed (`"user": null`).
    pub user: Option<UserInfo>,
    pub impersonated_user: Option<UserInfo>,
    pub source_ips: Vec<String>,
    pub user_agent: Option<String>,
    /// HTTP status; `None` when the response never started.
    pub status: Option<i32>,
    pub request_body: Option<Value>,
    pub response_body: Option<Value>,
    pub response_started: Option<DateTime<Utc>>,
    pub completed: Option<DateTime<Utc>>,
    /// The handler panicked (a Panic stage replaces ResponseComplete).
    pub panic: bool,
    /// Audit annotations known before the audit filter ran (e.g. from authenticators).
    pub annotations: BTreeMap<String, String>,
    /// The Kubernetes verb when the source states it instead of deriving it (the legacy
    /// one-line format logs verbs, not HTTP methods).
    pub verb: Option<String>,
}

impl AccessRecord {
    /// Parses one `access_json` line. Only `time`, `method`, `uri` and `user.username`
    /// are required; `"user": null` explicitly records a failed authentication.
    pub fn from_json(line: &str) -> Result<AccessRecord, AccessRecordError> {
        let value: Value = serde_json::from_str(line).map_err(AccessRecordError::Json)?;
        let Value::Object(map) = value else {
            return Err(AccessRecordError::NotAnObject);
        };
        AccessRecord::from_map(&map)
    }

    /// Like [`AccessRecord::from_json`] for an already parsed object.
    pub fn from_map(map: &Map<String, Value>) -> Result<AccessRecord, AccessRecordError> {
        let time = time_field(map, "time")?.ok_or(AccessRecordError::Missing("time"))?;
        let method = string_field(map, "method")?.ok_or(AccessRecordError::Missing("method"))?;
        let uri = string_field(map, "uri")?.ok_or(AccessRecordError::Missing("uri"))?;
        let user = match map.get("user") {
            None => return Err(AccessRecordError::Missing("user")),
            Some(Value::Null) => None,
            Some(value) => {
                let user = user_field(value, "user")?;
                if user.username.is_none() {
                    return Err(AccessRecordError::Missing("user.username"));
                }
                Some(user)
            }
        };
        let impersonated_user = match map.get("impersonated_user") {
            None | Some(Value::Null) => None,
            Some(value) => Some(user_field(value, "impersonated_user")?),
        };
        Ok(AccessRecord {
            id: string_field(map, "id")?,
            time,
            method,
            uri,
            user,
            impersonated_user,
            source_ips: string_list(map.get("source_ips"), "source_ips")?.unwrap_or_default(),
            user_agent: string_field(map, "user_agent")?,
            status: status_field(map)?,
            request_body: body_field(map, "request_body"),
            response_body: body_field(map, "response_body"),
            response_started: time_field(map, "response_started")?,
            completed: time_field(map, "completed")?,
            panic: match map.get("panic") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(invalid("panic", "must be a boolean")),
            },
            annotations: annotations_field(map)?,
            verb: None,
        })
    }
}

fn invalid(field: &'static str, problem: &str) -> AccessRecordError {
    AccessRecordError::Invalid {
        field,
        problem: problem.to_owned(),
    }
}

fn string_field(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, AccessRecordError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn time_field(
    map: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, AccessRecordError> {
    let Some(text) = string_field(map, field)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| AccessRecordError::Invalid {
            field,
            problem: format!("is not an RFC 3339 time: `{text}` ({e})"),
        })
}

fn string_list(
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<Vec<String>>, AccessRecordError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid(field, "must be a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(field, "must be a list of strings")),
    }
}

fn user_field(value: &Value, field: &'static str) -> Result<UserInfo, AccessRecordError> {
    let Value::Object(map) = value else {
        return Err(invalid(field, "must be an object"));
    };
    let text = |key: &str| match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(field, &format!("key `{key}` must be a string"))),
    };
    let extra = match map.get("extra") {
        None | Some(Value::Null) => None,
        Some(Value::Object(extra)) => {
            let mut out = BTreeMap::new();
            for (key, values) in extra {
                out.insert(key.clone(), string_list(Some(values), field)?);
            }
            Some(out)
        }
        Some(_) => return Err(invalid(field, "key `extra` must map to lists of strings")),
    };
    Ok(UserInfo {
        username: text("username")?,
        uid: text("uid")?,
        groups: string_list(map.get("groups"), field)?,
        extra,
    })
}

fn status_field(map: &Map<String, Value>) -> Result<Option<i32>, AccessRecordError> {
    let problem = "must be an HTTP status code (100-999)";
    let code = match map.get("status") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match code {
        Some(code @ 100..=999) => Ok(i32::try_from(code).ok()),
        _ => Err(invalid("status", problem)),
    }
}

/// Bodies are JSON values; a string holding JSON text (as some proxies log raw bodies)
/// is parsed, any other string is kept as a JSON string.
fn body_field(map: &Map<String, Value>, field: &str) -> Option<Value> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())))
        }
        Some(value) => Some(value.clone()),
    }
}

fn annotations_field(
    map: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, AccessRecordError> {
    match map.get("annotations") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(items)) => items
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(invalid("annotations", "must map strings to strings")),
            })
            .collect(),
        Some(_) => Err(invalid("annotations", "must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example_parses() {
        let line = r#"{"id": "x", "time": "2026-11-22T10:00:00.123456Z", "method": "GET",
            "uri": "/api/v1/namespaces/default/pods?watch=true",
            "user": {"username": "alice", "uid": "42", "groups": ["dev", "system:authenticated"], "extra": {"scopes": ["a"]}},
            "impersonated_user": null, "source_ips": ["10.0.0.7"], "user_agent": "kubectl/v1.31.0",
            "status": 200, "request_body": null, "response_body": {"kind": "PodList"},
            "response_started": "2026-11-22T10:00:00.130Z", "completed": "2026-11-22T10:00:01Z", "panic": false}"#;
        let record = AccessRecord::from_json(line).expect("parses");
        assert_eq!(record.status, Some(200));
        assert_eq!(
            record.user.and_then(|u| u.username).as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let cases = [
            (
                r#"{"method":"GET","uri":"/","user":{"username":"a"}}"#,
                "`time`",
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","uri":"/","user":{"username":"a"}}"#,
                "`method`",
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","method":"GET","user":{"username":"a"}}"#,
                "`uri`",
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","method":"GET","uri":"/","user":{}}"#,
                "`user.username`",
            ),
            (
                r#"{"time":"yesterday","method":"GET","uri":"/","user":{"username":"a"}}"#,
                "`time`",
            ),
            (
                r#"{"time":"2026-01-01T00:00:00Z","method":"GET","uri":"/","user":{"username":"a"},"status":"ok"}"#,
                "`status`",
            ),
        ];
        for (line, field) in cases {
            let err = AccessRecord::from_json(line).expect_err(line);
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }
}
