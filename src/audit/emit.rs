//! Access record + policy → the audit Events kube-apiserver would emit for it: the stage
//! sequence of its audit filter minus omitted stages, bodies only where the level and
//! handler allow, `objectRef` from request info completed from the body.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::access_record::AccessRecord;
use super::policy::{CompiledPolicy, PolicyDecision, UserAttributes};
use super::request_info::{RequestInfo, RequestInfoError, first_query_value, split_uri};
use super::types::{
    API_VERSION_V1, Event, Level, MicroTime, ObjectReference, Stage, Status, UserInfo,
};

/// kube-apiserver cuts longer `User-Agent` headers to this many bytes.
const MAX_USER_AGENT_BYTES: usize = 1024;

/// The outcome of auditing one access record: the policy's decision and the events
/// it lets through (none for level `None` or when every stage is omitted).
#[derive(Debug, Clone)]
pub struct Audited {
    pub decision: PolicyDecision,
    pub events: Vec<Event>,
}

impl AccessRecord {
    /// Resolves the request, evaluates `policy` with the authenticated user and builds
    /// the events of every stage the policy keeps. Level `None` yields no events.
    pub fn to_events(&self, policy: &CompiledPolicy) -> Result<Vec<Event>, RequestInfoError> {
        self.audit(policy).map(|audited| audited.events)
    }

    /// Like [`AccessRecord::to_events`], also returning the decision, so a caller can
    /// tell a request the policy drops (level `None`) from one whose stages are omitted.
    pub fn audit(&self, policy: &CompiledPolicy) -> Result<Audited, RequestInfoError> {
        let mut info = RequestInfo::resolve(&self.method, &self.uri)?;
        if let Some(verb) = &self.verb {
            info.verb.clone_from(verb);
        }
        if let Some(error) = self.timeout_rejection(&info) {
            // Rejected before authentication: audited with no user at all.
            let decision = policy.evaluate(&info.attributes(None));
            if decision.level == Level::None
                || decision.omit_stages.contains(Stage::ResponseStarted)
            {
                return Ok(Audited {
                    decision,
                    events: Vec::new(),
                });
            }
            let mut event = self.snapshot(
                &self.base_event(&info, decision),
                &info,
                Stage::ResponseStarted,
                self.response_started
                    .or(self.completed)
                    .unwrap_or(self.time),
            );
            // Nothing of the handler's: no user, no body, no objectRef fields from it.
            event.user = UserInfo::default();
            event.impersonated_user = None;
            event.request_object = None;
            event.response_object = None;
            event.object_ref = info.is_resource_request.then(|| object_ref(&info));
            event.response_status = Some(Status {
                status: Some("Failure".to_owned()),
                reason: Some("BadRequest".to_owned()),
                message: Some(error),
                ..Status::with_code(400)
            });
            return Ok(Audited {
                decision,
                events: vec![event],
            });
        }
        let user = self.user.as_ref().map(|u| UserAttributes {
            name: u.username.as_deref().unwrap_or(""),
            groups: u.groups.as_deref().unwrap_or(&[]),
        });
        let decision = policy.evaluate(&info.attributes(user));
        Ok(Audited {
            decision,
            events: self.events_for(&info, decision),
        })
    }

    /// The request-deadline filter refuses a short request whose `timeout` query value
    /// is not a Go duration (400) before authentication, emitting one ResponseStarted.
    fn timeout_rejection(&self, info: &RequestInfo) -> Option<String> {
        if info.is_long_running() {
            return None;
        }
        let value = first_query_value(&self.uri, "timeout").filter(|v| !v.is_empty())?;
        (!is_go_duration(&value)).then(|| format!("time: invalid duration {value:?}"))
    }

    /// Builds the events for an already resolved request and policy decision.
    pub fn events_for(&self, info: &RequestInfo, decision: PolicyDecision) -> Vec<Event> {
        if decision.level == Level::None {
            return Vec::new();
        }
        let base = self.base_event(info, decision);
        self.stages(info)
            .into_iter()
            .filter(|(stage, _)| !decision.omit_stages.contains(*stage))
            .map(|(stage, at)| self.snapshot(&base, info, stage, at))
            .collect()
    }

    /// The stage sequence of the audit filter, each with the time it was reached.
    fn stages(&self, info: &RequestInfo) -> Vec<(Stage, DateTime<Utc>)> {
        let started = self
            .response_started
            .or(self.completed)
            .unwrap_or(self.time);
        let finished = self
            .completed
            .or(self.response_started)
            .unwrap_or(self.time);
        // A request without a user failed authentication: that filter emits a single
        // ResponseStarted event and nothing else.
        if self.user.is_none() {
            return vec![(Stage::ResponseStarted, started)];
        }
        let mut stages = vec![(Stage::RequestReceived, self.time)];
        if self.panic {
            // A long-running request that wrote its status before panicking had already
            // reached ResponseStarted.
            if info.is_long_running() && self.response_started.is_some() {
                stages.push((Stage::ResponseStarted, started));
            }
            stages.push((Stage::Panic, finished));
        } else {
            if info.is_long_running() {
                stages.push((Stage::ResponseStarted, started));
            }
            stages.push((Stage::ResponseComplete, finished));
        }
        stages
    }

    /// Everything a ResponseComplete event carries; earlier stages are cut down from it.
    fn base_event(&self, info: &RequestInfo, decision: PolicyDecision) -> Event {
        let level = decision.level;
        let (path, query) = split_uri(&self.uri);
        let request_uri = match query {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let response_status = self.response_status();
        let handler_reached = self.reached_handler();
        let body_logged = handler_reached && logs_request_body(info);
        let mut object_ref = info.is_resource_request.then(|| object_ref(info));
        if let (Some(object_ref), true, Some(body)) =
            (&mut object_ref, body_logged, &self.request_body)
            && info.verb != "patch"
        {
            complete_object_ref(object_ref, body);
        }
        let request_object = if level >= Level::Request && body_logged {
            self.request_body.clone().map(|mut body| {
                if decision.omit_managed_fields && info.verb != "patch" {
                    strip_managed_fields(&mut body);
                }
                body
            })
        } else {
            None
        };
        let response_object = if level >= Level::RequestResponse && !info.is_long_running() {
            self.response_body
                .as_ref()
                .filter(|body| is_api_object(body, info.is_resource_request))
                .cloned()
                .map(|mut body| {
                    if decision.omit_managed_fields {
                        strip_managed_fields(&mut body);
                    }
                    body
                })
        } else {
            None
        };
        Event {
            kind: Some("Event".to_owned()),
            api_version: Some(API_VERSION_V1.to_owned()),
            level,
            audit_id: self
                .id
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            stage: Stage::ResponseComplete,
            request_uri,
            verb: info.verb.clone(),
            user: self.user.clone().unwrap_or_default(),
            impersonated_user: self
                .impersonated_user
                .clone()
                .filter(|_| !self.impersonation_refused()),
            authentication_metadata: None,
            source_ips: (!self.source_ips.is_empty()).then(|| self.source_ips.clone()),
            user_agent: self.user_agent.as_deref().map(truncate_user_agent),
            object_ref,
            response_status: Some(response_status),
            request_object,
            response_object,
            request_received_timestamp: Some(MicroTime::from_datetime(self.time)),
            stage_timestamp: None,
            annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
            extra: Map::new(),
        }
    }

    /// The event as emitted at `stage`. RequestReceived is emitted before impersonation
    /// and before the handler decodes the body, so nothing taken from the body is in it:
    /// its `objectRef` is the request-info one (a create's has no name yet).
    fn snapshot(&self, base: &Event, info: &RequestInfo, stage: Stage, at: DateTime<Utc>) -> Event {
        let mut event = base.clone();
        event.stage = stage;
        event.stage_timestamp = Some(MicroTime::from_datetime(at));
        match stage {
            Stage::RequestReceived => {
                event.response_status = None;
                event.request_object = None;
                event.response_object = None;
                event.impersonated_user = None;
                event.object_ref = info.is_resource_request.then(|| object_ref(info));
                event.stage_timestamp = event.request_received_timestamp.clone();
            }
            Stage::ResponseStarted => {
                // Streamed responses have no response object; the status is what was
                // written first.
                event.response_object = None;
            }
            Stage::Panic => {
                event.response_status = Some(Status {
                    status: Some("Failure".to_owned()),
                    reason: Some("InternalError".to_owned()),
                    message: Some("APIServer panic'd".to_owned()),
                    ..Status::with_code(500)
                });
                event.response_object = None;
            }
            Stage::ResponseComplete => {}
        }
        event
    }

    /// The HTTP code, plus the copied fields when the body is a `Status`.
    fn response_status(&self) -> Status {
        if self.user.is_none() {
            // The authentication filter's own 401 (no body is rendered through the
            // audited writer).
            return Status {
                status: Some("Failure".to_owned()),
                reason: Some("Unauthorized".to_owned()),
                ..Status::with_code(self.status.unwrap_or(401))
            };
        }
        let Some(code) = self.status else {
            return Status {
                status: Some("Success".to_owned()),
                message: Some("Connection closed early".to_owned()),
                ..Status::with_code(200)
            };
        };
        let mut status = Status::with_code(code);
        if let Some(body) = self.response_body.as_ref().filter(|b| is_status(b)) {
            let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
            status.status = text("status");
            status.message = text("message");
            status.reason = text("reason");
            status.details = body.get("details").filter(|d| !d.is_null()).cloned();
        }
        status
    }

    /// Whether the impersonation filter refused the request: a 403 `Status` about an
    /// impersonation resource (`users`, `groups`, `serviceaccounts`, `uids`,
    /// `userextras/...`) with the `cannot impersonate` wording. kube-apiserver records
    /// the impersonated identity only once impersonation succeeded, so such events have
    /// no `impersonatedUser`.
    fn impersonation_refused(&self) -> bool {
        if self.status != Some(403) {
            return false;
        }
        let Some(body) = self.response_body.as_ref().filter(|b| is_status(b)) else {
            return false;
        };
        fn text(value: Option<&Value>) -> &str {
            value.and_then(Value::as_str).unwrap_or("")
        }
        let details = body.get("details");
        let kind = text(details.and_then(|d| d.get("kind")));
        let group = text(details.and_then(|d| d.get("group")));
        let resource = match group {
            "" => matches!(kind, "users" | "groups" | "serviceaccounts"),
            "authentication.k8s.io" => kind == "uids" || kind.starts_with("userextras"),
            _ => false,
        };
        resource && text(body.get("message")).contains(" cannot impersonate ")
    }

    /// Whether the request got past authentication and authorization into the handler
    /// (only then is a body decoded). An authorizer denial is a 403 `Status` whose
    /// message has the authorizers' `... cannot <verb> ...` wording; admission
    /// rejections (also 403) come after decoding.
    fn reached_handler(&self) -> bool {
        match self.status {
            Some(401) => false,
            Some(403) => !self.response_body.as_ref().is_some_and(|body| {
                is_status(body)
                    && body
                        .get("message")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.contains(" cannot "))
            }),
            _ => true,
        }
    }
}

/// Only create/update/patch/delete handlers log a request body; connect subresources
/// (exec, attach, port-forward, proxy) never do, nor does any non-resource request.
fn logs_request_body(info: &RequestInfo) -> bool {
    info.is_resource_request
        && matches!(
            info.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
        && !matches!(
            info.subresource.as_str(),
            "exec" | "attach" | "portforward" | "proxy"
        )
}

fn object_ref(info: &RequestInfo) -> ObjectReference {
    let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ObjectReference {
        resource: set(&info.resource),
        namespace: set(&info.namespace),
        name: set(&info.name),
        api_group: set(&info.api_group),
        api_version: set(&info.api_version),
        subresource: set(&info.subresource),
        ..ObjectReference::default()
    }
}

/// Fills empty `objectRef` fields from the decoded body's object metadata.
fn complete_object_ref(object_ref: &mut ObjectReference, body: &Value) {
    let Some(meta) = body.get("metadata").and_then(Value::as_object) else {
        return;
    };
    let fill = |slot: &mut Option<String>, key: &str| {
        if slot.is_none()
            && let Some(value) = meta
                .get(key)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        {
            *slot = Some(value.to_owned());
        }
    };
    fill(&mut object_ref.namespace, "namespace");
    fill(&mut object_ref.name, "name");
    fill(&mut object_ref.uid, "uid");
    fill(&mut object_ref.resource_version, "resourceVersion");
}

fn is_status(body: &Value) -> bool {
    body.get("kind").and_then(Value::as_str) == Some("Status")
}

/// Resource handlers render API objects; of non-resource handlers only the
/// content-negotiating ones (discovery, error `Status`) do, and those carry a `kind`.
fn is_api_object(body: &Value, is_resource_request: bool) -> bool {
    match body {
        Value::Object(map) => is_resource_request || map.get("kind").is_some_and(Value::is_string),
        _ => false,
    }
}

/// Removes `metadata.managedFields` from an object, each list item and each Table row;
/// returns whether anything was removed.
pub(crate) fn strip_managed_fields(body: &mut Value) -> bool {
    fn strip_one(object: &mut Value) -> bool {
        object
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(|meta| meta.shift_remove("managedFields"))
            .is_some()
    }
    let mut removed = strip_one(body);
    if let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            removed |= strip_one(item);
        }
    }
    if let Some(rows) = body.get_mut("rows").and_then(Value::as_array_mut) {
        for row in rows {
            if let Some(object) = row.get_mut("object") {
                removed |= strip_one(object);
            }
        }
    }
    removed
}

/// Whether Go's `time.ParseDuration` accepts `text`:
/// `[-+]?([0-9]*(\.[0-9]*)?unit)+` or `0`, within ±2^63 ns.
fn is_go_duration(text: &str) -> bool {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    let limit: u128 = if negative { 1 << 63 } else { (1 << 63) - 1 };
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let int_len = digits(rest);
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(frac) => frac.split_at(digits(frac)),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return false;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return false,
        };
        let Ok(whole) = int_part
            .parse::<u128>()
            .or_else(|e| if int_part.is_empty() { Ok(0) } else { Err(e) })
        else {
            return false;
        };
        if whole > 1 << 63 {
            return false;
        }
        // Fractions only add less than one unit; Go drops digits beyond precision.
        let fraction = if frac_part.bytes().any(|b| b != b'0') {
            1
        } else {
            0
        };
        total = total
            .saturating_add(whole.saturating_mul(nanos))
            .saturating_add(fraction);
        if total > limit {
            return false;
        }
        rest = next;
    }
    true
}

/// Byte-wise cut as Go does; a split UTF-8 sequence shows up as one U+FFFD per byte,
/// which is how Go's JSON encoder writes the invalid bytes.
fn truncate_user_agent(agent: &str) -> String {
    if agent.len() <= MAX_USER_AGENT_BYTES {
        return agent.to_owned();
    }
    let cut = &agent.as_bytes()[..MAX_USER_AGENT_BYTES];
    let valid = match std::str::from_utf8(cut) {
        Ok(text) => text.len(),
        Err(e) => e.valid_up_to(),
    };
    let mut out = String::from_utf8_lossy(&cut[..valid]).into_owned();
    out.extend(std::iter::repeat_n('\u{fffd}', cut.len() - valid));
    out.push_str("...TRUNCATED");
    out
}

#[cfg(test)]
#[path = "emit_tests.rs"]
mod tests;
