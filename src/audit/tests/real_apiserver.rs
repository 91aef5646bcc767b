//! Replays the client requests recorded against a real kube-apiserver v1.20.2 as access
//! records through the same policy, and compares the events with the server's audit log.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Value, json};

use super::{data_path, read_json, read_text};
use crate::audit::access_record::AccessRecord;
use crate::audit::policy::CompiledPolicy;
use crate::audit::request_info::split_uri;
use crate::audit::types::{Event, Policy};

/// One comparable fact about an event.
type Tuple = (String, String, String, String, String);

fn tuple(event: &Event, keep_uid: bool) -> Tuple {
    let mut user = serde_json::to_value(&event.user).expect("user");
    if !keep_uid && let Some(map) = user.as_object_mut() {
        map.remove("uid");
    }
    (
        event.stage.as_str().to_owned(),
        event.level.as_str().to_owned(),
        event.verb.clone(),
        // Both serialise from our structs, so key order is canonical.
        serde_json::to_string(&event.object_ref).expect("objectRef"),
        user.to_string(),
    )
}

/// The event's `requestURI` for a recorded URL: path and query, no scheme or host.
fn request_uri(url: &str) -> String {
    let (path, query) = split_uri(url);
    query.map_or_else(|| path.to_owned(), |q| format!("{path}?{q}"))
}

/// Drops the `objectRef` fields only a request body can supply (§2.3) and which the
/// URL-derived reference lacks: used when the recording has no body for a create or
/// update (kubectl does not log the body of retried requests).
fn without_body_fields(tuples: &mut [Tuple], url_has_name: bool) {
    for t in tuples {
        let mut object_ref: Value = serde_json::from_str(&t.3).expect("objectRef JSON");
        if let Some(map) = object_ref.as_object_mut() {
            map.remove("uid");
            map.remove("resourceVersion");
            if !url_has_name {
                map.remove("name");
            }
        }
        t.3 = object_ref.to_string();
    }
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// A body recorded as text, if it is complete JSON.
fn json_body(value: &Value) -> Value {
    value
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

/// The access-record line an authenticating proxy in front of the server would have
/// written for this client request.
fn access_record(request: &Value, contexts: &Value, start_times: &HashMap<u64, String>) -> Value {
    let context = request["context"].as_str().expect("context");
    let user = contexts
        .get(context)
        .unwrap_or_else(|| panic!("context {context}"));
    let headers = &request["request_headers"];
    let mut source_ips: Vec<String> = header(headers, "X-Forwarded-For")
        .map(|h| h.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default();
    source_ips.push("127.0.0.1".to_owned());
    let impersonated_user = header(headers, "Impersonate-User").map(|name| {
        json!({"username": name, "groups": header(headers, "Impersonate-Group").map(|g| vec![g])})
    });
    let status = request["status"]
        .as_str()
        .and_then(|s| s.split(' ').next())
        .and_then(|code| code.parse::<i64>().ok());
    let cmd = request["cmd_id"].as_u64().expect("cmd_id");
    json!({
        "id": request["audit_id"],
        "time": start_times[&cmd],
        "method": request["method"],
        "uri": request["url"],
        "user": user,
        "impersonated_user": impersonated_user,
        "source_ips": source_ips,
        "user_agent": header(headers, "User-Agent"),
        "status": status,
        "request_body": json_body(&request["request_body"]),
        "response_body": json_body(&request["response_body"]),
    })
}

#[derive(Default)]
struct Summary {
    by_audit_id: usize,
    by_uri: usize,
    none_and_absent: usize,
    events_compared: usize,
    unjoinable: usize,
    misattributed_ids: usize,
    without_body_fields: usize,
    mismatches: Vec<String>,
}

fn replay(run: &str) -> Summary {
    let policy = Policy::load(&data_path(&format!(
        "fixtures/real-apiserver/{run}/policy.yaml"
    )))
    .expect("policy");
    let policy = CompiledPolicy::new(&policy).expect("compiles");
    let contexts = read_json("fixtures/real-apiserver/contexts.json");
    let start_times: HashMap<u64, String> =
        read_text(&format!("fixtures/real-apiserver/{run}/commands.jsonl"))
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("command"))
            .map(|c| {
                (
                    c["id"].as_u64().expect("id"),
                    c["start"].as_str().expect("start").to_owned(),
                )
            })
            .collect();
    let requests: Vec<Value> = read_text(&format!(
        "fixtures/real-apiserver/{run}/client-requests.jsonl"
    ))
    .lines()
    .map(|l| serde_json::from_str(l).expect("client request"))
    .collect();
    let log: Vec<Event> = read_text(&format!("fixtures/real-apiserver/{run}/audit/audit.log"))
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit event"))
        .collect();

    let mut by_id: HashMap<&str, Vec<&Event>> = HashMap::new();
    for event in &log {
        by_id
            .entry(event.audit_id.as_str())
            .or_default()
            .push(event);
    }
    // kubectl -v=9 interleaves the logs of parallel discovery requests, so the recording
    // occasionally pairs a request with another request's Audit-Id. An id counts only if
    // the log's requestURI for it is the recorded request's URI.
    let verified = |request: &Value| -> Option<String> {
        let id = request["audit_id"].as_str()?;
        let uri = request_uri(request["url"].as_str()?);
        let events = by_id.get(id)?;
        events
            .iter()
            .all(|e| e.request_uri == uri)
            .then(|| id.to_owned())
    };
    let verified_ids: Vec<Option<String>> = requests.iter().map(verified).collect();
    let claimed: HashSet<&str> = verified_ids.iter().flatten().map(String::as_str).collect();
    // Log requests no client record names, keyed by (username, requestURI), in log order.
    let mut unclaimed: HashMap<(String, String), VecDeque<&str>> = HashMap::new();
    let mut seen = HashSet::new();
    for event in &log {
        let id = event.audit_id.as_str();
        if !claimed.contains(id) && seen.insert(id) {
            let user = event.user.username.clone().unwrap_or_default();
            unclaimed
                .entry((user, event.request_uri.clone()))
                .or_default()
                .push_back(id);
        }
    }

    let mut summary = Summary::default();
    for (request, verified_id) in requests.iter().zip(&verified_ids) {
        if request["audit_id"].is_string() && verified_id.is_none() {
            summary.misattributed_ids += 1;
        }
        let line = access_record(request, &contexts, &start_times);
        let Value::Object(map) = &line else {
            unreachable!("built as an object")
        };
        let record = AccessRecord::from_map(map).unwrap_or_else(|e| panic!("{e}: {line}"));
        let ours = record.to_events(&policy).expect("resolves");
        let keep_uid = record.user.as_ref().is_none_or(|u| u.uid.is_some());
        let uri = request_uri(&record.uri);
        let theirs: Vec<&Event> = match verified_id.as_deref() {
            Some(id) => {
                summary.by_audit_id += 1;
                by_id.get(id).cloned().unwrap_or_default()
            }
            None => {
                let user = record
                    .user
                    .as_ref()
                    .and_then(|u| u.username.clone())
                    .unwrap_or_default();
                match unclaimed
                    .get_mut(&(user, uri.clone()))
                    .and_then(VecDeque::pop_front)
                {
                    Some(id) => {
                        summary.by_uri += 1;
                        by_id[id].clone()
                    }
                    None if ours.is_empty() => {
                        summary.none_and_absent += 1;
                        continue;
                    }
                    None => {
                        summary.unjoinable += 1;
                        summary.mismatches.push(format!(
                            "{run} {} {uri}: we emit {} events, no log event to compare",
                            record.method,
                            ours.len()
                        ));
                        continue;
                    }
                }
            }
        };
        let mut got: Vec<Tuple> = ours.iter().map(|e| tuple(e, keep_uid)).collect();
        let mut want: Vec<Tuple> = theirs.iter().map(|e| tuple(e, keep_uid)).collect();
        if matches!(record.method.as_str(), "POST" | "PUT") && record.request_body.is_none() {
            summary.without_body_fields += 1;
            let url_has_name = ours
                .first()
                .and_then(|e| e.object_ref.as_ref())
                .is_some_and(|r| r.name.is_some());
            without_body_fields(&mut got, url_has_name);
            without_body_fields(&mut want, url_has_name);
        }
        got.sort();
        want.sort();
        if got == want {
            summary.events_compared += got.len();
        } else {
            summary.mismatches.push(format!(
                "{run} {} {uri} ({:?}):\n  ours:   {got:?}\n  theirs: {want:?}",
                record.method, record.id
            ));
        }
    }
    summary
}

/// Compared per request: the multiset of (stage, level, verb, objectRef, user) tuples.
/// `user` is compared on username and groups, and on uid only where the token file states
/// it (service-account and certificate identities get server-side uids the recording
/// lacks). Not compared: timestamps, sourceIPs, userAgent, responseStatus details,
/// annotations and bodies (the server logs its own re-encoding of bodies, and the
/// recording cuts response bodies at 4 KiB).
#[allow(clippy::print_stdout)]
#[test]
fn replayed_client_requests_match_the_real_audit_log() {
    let mut all_mismatches = Vec::new();
    for run in ["run1-batch", "run2-blocking"] {
        let s = replay(run);
        println!(
            "real-apiserver {run}: {} requests joined by Audit-Id, {} by (user, requestURI) \
             ({} recorded Audit-Ids belonged to another request), {} predicted None and absent \
             from the log, {} events matched ({} requests without a recorded body compared \
             without body-derived objectRef fields); {} mismatches, {} unjoinable",
            s.by_audit_id,
            s.by_uri,
            s.misattributed_ids,
            s.none_and_absent,
            s.events_compared,
            s.without_body_fields,
            s.mismatches.len(),
            s.unjoinable,
        );
        all_mismatches.extend(s.mismatches);
    }
    assert!(all_mismatches.is_empty(), "{}", all_mismatches.join("\n"));
}
