//! Replays the client requests recorded against a real kube-apiserver v1.20.2 as access
//! records through the same policy, and compares the events with the server's audit log.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Value, json};

use super::{data_path, read_json, read_text};
use crate::audit::access_record::AccessRecord;
use crate::audit::policy::CompiledPolicy;
use crate::audit::request_info::split_uri;
use crate::audit::types::{Event, Policy};

/// The parts of an event the recording lets us predict, as canonical JSON: every field
/// except `auditID` (a record joined by URI has none), the timestamps (the recording has
/// the client's command times), `annotations` (authorization annotations are made inside
/// the server) and the bodies, which are compared on presence only (the server logs its
/// own re-encoding of a body). `user.uid` counts only where the token file states it.
fn comparable(event: &Event, keep_uid: bool) -> Value {
    let mut value = serde_json::to_value(event).expect("event");
    let map = value.as_object_mut().expect("event object");
    for key in [
        "auditID",
        "requestReceivedTimestamp",
        "stageTimestamp",
        "annotations",
    ] {
        map.remove(key);
    }
    for key in ["requestObject", "responseObject"] {
        if map.contains_key(key) {
            map.insert(key.to_owned(), Value::Bool(true));
        }
    }
    if !keep_uid && let Some(user) = map.get_mut("user").and_then(Value::as_object_mut) {
        user.remove("uid");
    }
    value
}

/// kube-apiserver v1.20.2 copies only `status`, `reason` and `code` from a `Status`
/// response body into `responseStatus` (`message` and `details` came in later
/// versions): applied to our events where the record's response body is a `Status`.
fn as_v1_20(event: &mut Value, record: &AccessRecord) {
    let status_body = record
        .response_body
        .as_ref()
        .is_some_and(|b| b.get("kind").and_then(Value::as_str) == Some("Status"));
    if status_body
        && let Some(status) = event
            .get_mut("responseStatus")
            .and_then(Value::as_object_mut)
    {
        status.remove("message");
        status.remove("details");
    }
}

/// Pairs equal events of the two lists; returns what is left of each.
fn unmatched(ours: Vec<Value>, theirs: Vec<Value>) -> (Vec<Value>, Vec<Value>) {
    let mut ours = ours;
    let mut left = Vec::new();
    for event in theirs {
        match ours.iter().position(|o| *o == event) {
            Some(i) => {
                ours.swap_remove(i);
            }
            None => left.push(event),
        }
    }
    (ours, left)
}

/// What of the server's response the recording lacks.
#[derive(Clone, Copy, PartialEq)]
enum Gap {
    /// kubectl logged neither status nor body (its parallel discovery requests).
    Response,
    /// The status is known, the body is not (kubectl logs no body for retries, and the
    /// recording cuts bodies at 4 KiB).
    ResponseBody,
}

fn recording_gap(record: &AccessRecord) -> Option<Gap> {
    if record.status.is_none() {
        Some(Gap::Response)
    } else if record.response_body.is_none() {
        Some(Gap::ResponseBody)
    } else {
        None
    }
}

/// An event without the fields only the lost part of the response determines.
fn without_response(event: &Value, gap: Option<Gap>) -> Value {
    let mut event = event.clone();
    let map = event.as_object_mut().expect("event object");
    map.remove("responseObject");
    match gap {
        Some(Gap::Response) => {
            map.remove("responseStatus");
        }
        Some(Gap::ResponseBody) => {
            if let Some(status) = map.get_mut("responseStatus").and_then(Value::as_object_mut) {
                status.retain(|key, _| key == "code" || key == "metadata");
            }
        }
        None => {}
    }
    event
}

/// The event's `requestURI` for a recorded URL: path and query, no scheme or host.
fn request_uri(url: &str) -> String {
    let (path, query) = split_uri(url);
    query.map_or_else(|| path.to_owned(), |q| format!("{path}?{q}"))
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
    // The identity the impersonation filter builds from the headers: the requested
    // groups, plus `system:authenticated` for anyone but `system:anonymous`.
    let impersonated_user = header(headers, "Impersonate-User").map(|name| {
        let mut groups: Vec<&str> = header(headers, "Impersonate-Group").into_iter().collect();
        if name != "system:anonymous" && !groups.contains(&"system:authenticated") {
            groups.push("system:authenticated");
        }
        json!({"username": name, "groups": groups})
    });
    let status = request["status"]
        .as_str()
        .and_then(|s| s.split(' ').next())
        .and_then(|code| code.parse::<i64>().ok());
    // kubectl's HTTP cache revalidates with `If-None-Match` and logs the cached 200;
    // on the wire the server answered 304 Not Modified, without a body.
    let from_cache = header(&request["response_headers"], "X-From-Cache") == Some("1");
    let (status, response_body) = if from_cache {
        (Some(304), Value::Null)
    } else {
        (status, json_body(&request["response_body"]))
    };
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
        "response_body": response_body,
    })
}

#[derive(Default)]
struct Summary {
    by_audit_id: usize,
    by_uri: usize,
    none_and_absent: usize,
    /// Log events of the joined requests, and how many of them we reproduce.
    log_events: usize,
    reproduced: usize,
    /// Log events that differ from ours only in what the recording lost (see
    /// [`recording_gap`]).
    recording_gaps: usize,
    unjoinable: usize,
    misattributed_ids: usize,
    retried_bodies: usize,
    mismatches: Vec<String>,
}

/// kubectl logs a request body once: a retry (same command, method and URL) re-sends
/// the body of the first attempt without logging it again.
fn restore_retried_bodies(requests: &mut [Value]) -> usize {
    let mut restored = 0;
    for i in 0..requests.len() {
        let r = &requests[i];
        if !matches!(r["method"].as_str(), Some("POST" | "PUT")) || !r["request_body"].is_null() {
            continue;
        }
        let first = requests[..i].iter().find(|earlier| {
            earlier["cmd_id"] == r["cmd_id"]
                && earlier["method"] == r["method"]
                && earlier["url"] == r["url"]
                && !earlier["request_body"].is_null()
        });
        if let Some(body) = first.map(|e| e["request_body"].clone()) {
            requests[i]["request_body"] = body;
            restored += 1;
        }
    }
    restored
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
    let mut requests: Vec<Value> = read_text(&format!(
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

    let mut summary = Summary {
        retried_bodies: restore_retried_bodies(&mut requests),
        ..Summary::default()
    };
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
        let got: Vec<Value> = ours
            .iter()
            .map(|e| {
                let mut value = comparable(e, keep_uid);
                as_v1_20(&mut value, &record);
                value
            })
            .collect();
        let want: Vec<Value> = theirs.iter().map(|e| comparable(e, keep_uid)).collect();
        summary.log_events += want.len();
        let (unmatched_ours, unmatched_theirs) = unmatched(got, want);
        summary.reproduced += theirs.len() - unmatched_theirs.len();
        if unmatched_ours.is_empty() && unmatched_theirs.is_empty() {
            continue;
        }
        // The recording lost what the server sent back: compare without it.
        let gap = recording_gap(&record);
        let lost = |events: &[Value]| -> Vec<Value> {
            events.iter().map(|e| without_response(e, gap)).collect()
        };
        let (still_ours, still_theirs) = match gap {
            Some(_) => unmatched(lost(&unmatched_ours), lost(&unmatched_theirs)),
            None => (unmatched_ours.clone(), unmatched_theirs.clone()),
        };
        if still_ours.is_empty() && still_theirs.is_empty() {
            summary.recording_gaps += unmatched_theirs.len();
        } else {
            summary.mismatches.push(format!(
                "{run} {} {uri} ({:?}):\n  ours:   {}\n  theirs: {}",
                record.method,
                record.id,
                Value::from(unmatched_ours),
                Value::from(unmatched_theirs),
            ));
        }
    }
    summary
}

/// Compared per request, event by event: every field of [`comparable`], with
/// `responseStatus` as v1.20.2 writes it ([`as_v1_20`]).
#[allow(clippy::print_stdout)]
#[test]
fn replayed_client_requests_match_the_real_audit_log() {
    let mut all_mismatches = Vec::new();
    let mut counts = Vec::new();
    // (run, log events reproduced exactly, log events differing only in what the
    // recording lost); pinned so that no event slips from one count to the other.
    for (run, reproduced, gaps) in [("run1-batch", 169, 56), ("run2-blocking", 170, 55)] {
        let s = replay(run);
        println!(
            "real-apiserver {run}: {} requests joined by Audit-Id, {} by (user, requestURI) \
             ({} recorded Audit-Ids belonged to another request), {} predicted None and absent \
             from the log, {} retries given their first attempt's body; {} of {} log events \
             reproduced, {} more differ only where the recording lost the response; \
             {} requests mismatched, {} unjoinable",
            s.by_audit_id,
            s.by_uri,
            s.misattributed_ids,
            s.none_and_absent,
            s.retried_bodies,
            s.reproduced,
            s.log_events,
            s.recording_gaps,
            s.mismatches.len(),
            s.unjoinable,
        );
        all_mismatches.extend(s.mismatches);
        counts.push((run, (s.reproduced, s.recording_gaps), (reproduced, gaps)));
    }
    assert!(all_mismatches.is_empty(), "{}", all_mismatches.join("\n"));
    for (run, got, want) in counts {
        assert_eq!(
            got, want,
            "{run}: (reproduced, differing only in lost fields)"
        );
    }
}
