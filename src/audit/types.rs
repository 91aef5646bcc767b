//! `audit.k8s.io/v1` wire types: events, event lists and policies, with exact JSON keys.
//! Events keep unknown keys and bodies verbatim so a parse/serialise round trip loses
//! nothing; v1alpha1/v1beta1 documents are read and written back as v1.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only API version this crate writes.
pub const API_VERSION_V1: &str = "audit.k8s.io/v1";
/// Older versions accepted on input and upgraded to v1 on output.
pub const API_VERSION_V1BETA1: &str = "audit.k8s.io/v1beta1";
/// The 1.7-era version, seen in old webhook payloads.
pub const API_VERSION_V1ALPHA1: &str = "audit.k8s.io/v1alpha1";

/// How much of a request is recorded. Ordered: `None < Metadata < Request < RequestResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    /// Parses a level name exactly as Kubernetes spells it (case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "None" => Some(Self::None),
            "Metadata" => Some(Self::Metadata),
            "Request" => Some(Self::Request),
            "RequestResponse" => Some(Self::RequestResponse),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Metadata => "Metadata",
            Self::Request => "Request",
            Self::RequestResponse => "RequestResponse",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The point in request handling at which an event is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    /// All stages in the order a request passes through them.
    pub const ALL: [Stage; 4] = [
        Stage::RequestReceived,
        Stage::ResponseStarted,
        Stage::ResponseComplete,
        Stage::Panic,
    ];

    /// Parses a stage name exactly as Kubernetes spells it (case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RequestReceived" => Some(Self::RequestReceived),
            "ResponseStarted" => Some(Self::ResponseStarted),
            "ResponseComplete" => Some(Self::ResponseComplete),
            "Panic" => Some(Self::Panic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestReceived => "RequestReceived",
            Self::ResponseStarted => "ResponseStarted",
            Self::ResponseComplete => "ResponseComplete",
            Self::Panic => "Panic",
        }
    }

    /// Bit used in [`StageSet`].
    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of stages as a bit mask: copying it costs nothing, so policy decisions stay
/// allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct StageSet(u8);

impl StageSet {
    pub const EMPTY: StageSet = StageSet(0);

    pub fn contains(self, stage: Stage) -> bool {
        self.0 & stage.bit() != 0
    }

    pub fn insert(&mut self, stage: Stage) {
        self.0 |= stage.bit();
    }

    #[must_use]
    pub fn union(self, other: StageSet) -> StageSet {
        StageSet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The member stages in request order.
    pub fn iter(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Stage> for StageSet {
    fn from_iter<I: IntoIterator<Item = Stage>>(iter: I) -> Self {
        let mut set = StageSet::EMPTY;
        for stage in iter {
            set.insert(stage);
        }
        set
    }
}

/// A `metav1.MicroTime` as written on the wire. The original text is kept so events
/// round-trip byte-exactly even when a producer used more or fewer fractional digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MicroTime(pub String);

impl MicroTime {
    /// Formats like Kubernetes: UTC, exactly six fractional digits, truncated.
    pub fn from_datetime(time: DateTime<Utc>) -> Self {
        Self(time.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    /// The instant, if the text is RFC 3339.
    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.0)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// `authentication.k8s.io/v1` UserInfo; an unknown user serialises as `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Sorted by key, as Go sorts map keys when encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<BTreeMap<String, Option<Vec<String>>>>,
}

/// The object a resource request refers to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Keys newer or older API versions add (e.g. v1alpha1 oddities), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `meta/v1` Status as used in `responseStatus`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Status {
    /// Always emitted by Go as `{}` (an empty ListMeta).
    #[serde(default = "empty_object")]
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Status {
    /// A bare status carrying only the HTTP code, as for a plain successful request.
    pub fn with_code(code: i32) -> Self {
        Self {
            metadata: empty_object(),
            code: Some(code),
            ..Self::default()
        }
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// One audit event. Field order is the serialisation order of kube-apiserver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `"Event"` on top-level events; absent on `EventList` items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Read as any `audit.k8s.io` version; always written as v1 when present.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_api_version"
    )]
    pub api_version: Option<String>,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: UserInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_metadata: Option<Value>,
    #[serde(default, rename = "sourceIPs", skip_serializing_if = "Option::is_none")]
    pub source_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<Status>,
    /// Arbitrary JSON (an object, or an array for JSON patches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    /// Absent in 1.8-era v1beta1 logs, which carried `timestamp` instead (kept in `extra`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_received_timestamp: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_timestamp: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Keys this version does not know (v1beta1 `metadata`/`timestamp`, future fields).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A batch of events as the webhook backend POSTs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_api_version"
    )]
    pub api_version: Option<String>,
    /// Go always writes `{}`; the 1.7 documentation example has none, so keep absence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub items: Vec<Event>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn serialize_api_version<S: serde::Serializer>(
    _version: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    // Only called when present (skip_serializing_if): every accepted version is written as v1.
    serializer.serialize_str(API_VERSION_V1)
}

/// An audit Policy document as written (before validation). Lists are `Option` because
/// YAML `key:` with no value is null, which Kubernetes treats as empty. Unknown keys are
/// refused (kube-apiserver's strict decode), here and in rules and resources entries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    #[serde(default)]
    pub rules: Option<Vec<PolicyRule>>,
    /// Stage names as written; validation reports unknown ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_stages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_managed_fields: Option<bool>,
}

/// A Policy's `metadata` (`metav1.ObjectMeta`): only its keys are accepted, as in
/// kube-apiserver's strict decode; the values are not used.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_link: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<Value>,
}

/// One rule of a Policy. Level and stages stay strings so validation can report them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<GroupResources>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Option::is_none"
    )]
    pub non_resource_urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_stages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one API group a rule selects.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_names: Option<Vec<String>>,
}

/// Borrows an optional list as a slice, treating absent as empty.
pub(crate) fn list<T>(items: &Option<Vec<T>>) -> &[T] {
    items.as_deref().unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(Level::None < Level::Metadata);
        assert!(Level::Metadata < Level::Request);
        assert!(Level::Request < Level::RequestResponse);
    }

    #[test]
    fn micro_time_has_six_digits_and_truncates() {
        let t = DateTime::parse_from_rfc3339("2026-05-01T12:00:00.123456789Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid time");
        assert_eq!(MicroTime::from_datetime(t).0, "2026-05-01T12:00:00.123456Z");
    }

    #[test]
    fn v1beta1_event_is_written_as_v1_and_keeps_unknown_keys() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","metadata":{"creationTimestamp":"2017-09-11T00:00:00Z"},"level":"Metadata","timestamp":"2017-09-11T00:00:00Z","auditID":"a","stage":"ResponseComplete","requestURI":"/api?x=1\u0026y=2","verb":"get","user":{},"sourceIPs":["::1"]}"#;
        let event: Event = serde_json::from_str(line).expect("parses");
        assert_eq!(event.request_uri, "/api?x=1&y=2");
        let out = serde_json::to_value(&event).expect("serialises");
        assert_eq!(out["apiVersion"], API_VERSION_V1);
        assert_eq!(out["timestamp"], "2017-09-11T00:00:00Z");
        assert_eq!(out["user"], serde_json::json!({}));
    }
}
