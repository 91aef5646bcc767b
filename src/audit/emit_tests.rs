//! Access record → events: stages, bodies per level, managed fields, statuses.

use serde_json::json;

use crate::audit::access_record::AccessRecord;
use crate::audit::policy::CompiledPolicy;
use crate::audit::types::{Event, Level, Policy, Stage, UserInfo};

fn policy(yaml_rules: &str) -> CompiledPolicy {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{yaml_rules}");
    let policy = Policy::from_yaml_str(&text, "<test>").expect("policy");
    CompiledPolicy::new(&policy).expect("compiles")
}

fn record(method: &str, uri: &str) -> AccessRecord {
    AccessRecord::from_json(
        &json!({
            "id": "id-1",
            "time": "2026-11-22T10:00:00.123456789Z",
            "method": method,
            "uri": uri,
            "user": {"username": "alice", "groups": ["dev"]},
            "status": 200,
            "completed": "2026-11-22T10:00:01Z",
        })
        .to_string(),
    )
    .expect("record")
}

fn stages(events: &[Event]) -> Vec<Stage> {
    events.iter().map(|e| e.stage).collect()
}

#[test]
fn level_none_emits_nothing() {
    let p = policy("rules:\n- level: None\n");
    assert!(
        record("GET", "/api/v1/pods")
            .to_events(&p)
            .expect("ok")
            .is_empty()
    );
}

#[test]
fn short_and_long_running_stage_sequences() {
    let p = policy("rules:\n- level: Metadata\n");
    let short = record("GET", "/api/v1/namespaces/a/pods")
        .to_events(&p)
        .expect("ok");
    assert_eq!(
        stages(&short),
        [Stage::RequestReceived, Stage::ResponseComplete]
    );
    let watch = record("GET", "/api/v1/pods?watch=1")
        .to_events(&p)
        .expect("ok");
    assert_eq!(
        stages(&watch),
        [
            Stage::RequestReceived,
            Stage::ResponseStarted,
            Stage::ResponseComplete
        ]
    );
    let first = &short[0];
    assert_eq!(first.stage_timestamp, first.request_received_timestamp);
    assert_eq!(
        first
            .request_received_timestamp
            .as_ref()
            .map(|t| t.0.as_str()),
        Some("2026-11-22T10:00:00.123456Z")
    );
    assert!(first.response_status.is_none());
    assert_eq!(
        short[1].stage_timestamp.as_ref().map(|t| t.0.as_str()),
        Some("2026-11-22T10:00:01.000000Z")
    );
    assert!(short.iter().all(|e| e.audit_id == "id-1"));
}

#[test]
fn omit_stages_union_applies() {
    let p = policy(
        "omitStages: [RequestReceived]\nrules:\n- level: Metadata\n  omitStages: [ResponseStarted]\n",
    );
    let events = record("GET", "/api/v1/pods?watch=1")
        .to_events(&p)
        .expect("ok");
    assert_eq!(stages(&events), [Stage::ResponseComplete]);
}

#[test]
fn bodies_follow_level_and_verb() {
    let body = json!({"kind": "ConfigMap", "metadata": {"name": "cm", "managedFields": [{}]}});
    let mut create = record("POST", "/api/v1/namespaces/a/configmaps");
    create.request_body = Some(body.clone());
    create.response_body = Some(body.clone());
    let metadata = policy("rules:\n- level: Metadata\n");
    let last = create
        .to_events(&metadata)
        .expect("ok")
        .pop()
        .expect("event");
    assert!(last.request_object.is_none() && last.response_object.is_none());
    // objectRef.name comes from the body even at Metadata.
    assert_eq!(last.object_ref.and_then(|r| r.name).as_deref(), Some("cm"));

    let request = policy("rules:\n- level: Request\n");
    let last = create
        .to_events(&request)
        .expect("ok")
        .pop()
        .expect("event");
    assert_eq!(last.request_object, Some(body.clone()));
    assert!(last.response_object.is_none());

    let rr = policy("omitManagedFields: true\nrules:\n- level: RequestResponse\n");
    let events = create.to_events(&rr).expect("ok");
    let last = events.last().expect("event");
    let stripped = json!({"kind": "ConfigMap", "metadata": {"name": "cm"}});
    assert_eq!(last.request_object, Some(stripped.clone()));
    assert_eq!(last.response_object, Some(stripped));
    assert!(
        events[0].request_object.is_none(),
        "RequestReceived carries no body"
    );

    // A get never logs a request body, even if a record carries one.
    let mut get = record("GET", "/api/v1/namespaces/a/configmaps/cm");
    get.request_body = Some(body);
    assert!(
        get.to_events(&rr)
            .expect("ok")
            .iter()
            .all(|e| e.request_object.is_none())
    );
}

#[test]
fn patch_bodies_keep_managed_fields_and_lists_are_stripped() {
    let rr = policy("omitManagedFields: true\nrules:\n- level: RequestResponse\n");
    let mut patch = record("PATCH", "/api/v1/namespaces/a/configmaps/cm");
    let patch_body = json!({"metadata": {"managedFields": []}});
    patch.request_body = Some(patch_body.clone());
    let last = patch.to_events(&rr).expect("ok").pop().expect("event");
    assert_eq!(last.request_object, Some(patch_body));

    let mut list = record("GET", "/api/v1/namespaces/a/configmaps");
    list.response_body = Some(json!({"kind": "ConfigMapList", "items": [
        {"metadata": {"name": "a", "managedFields": [{}]}},
        {"metadata": {"name": "b"}}]}));
    let last = list.to_events(&rr).expect("ok").pop().expect("event");
    assert_eq!(
        last.response_object,
        Some(
            json!({"kind": "ConfigMapList", "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})
        )
    );
}

/// kube-apiserver completes `objectRef` from the decoded body in the handler, after
/// the RequestReceived event was emitted: only later stages carry those fields.
#[test]
fn request_received_has_no_object_ref_fields_from_the_body() {
    let p = policy("rules:\n- level: RequestResponse\n");
    let mut create = record("POST", "/api/v1/namespaces/a/configmaps");
    create.status = Some(201);
    create.request_body = Some(json!({
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "uid": "u-1", "resourceVersion": "7"},
    }));
    let events = create.to_events(&p).expect("ok");
    assert_eq!(
        stages(&events),
        [Stage::RequestReceived, Stage::ResponseComplete]
    );
    let object_ref = |e: &Event| serde_json::to_value(&e.object_ref).expect("objectRef");
    assert_eq!(
        object_ref(&events[0]),
        json!({"resource": "configmaps", "namespace": "a", "apiVersion": "v1"})
    );
    assert_eq!(
        object_ref(&events[1]),
        json!({"resource": "configmaps", "namespace": "a", "name": "cm", "uid": "u-1",
               "apiVersion": "v1", "resourceVersion": "7"})
    );

    // An update names its object in the URL; uid and resourceVersion still come later.
    let mut update = record("PUT", "/api/v1/namespaces/a/configmaps/cm");
    update.request_body = create.request_body.clone();
    let events = update.to_events(&p).expect("ok");
    assert_eq!(
        object_ref(&events[0]),
        json!({"resource": "configmaps", "namespace": "a", "name": "cm", "apiVersion": "v1"})
    );
    assert_eq!(
        events[1].object_ref.as_ref().and_then(|r| r.uid.as_deref()),
        Some("u-1")
    );
}

fn impersonating(status: i32, response_body: serde_json::Value) -> AccessRecord {
    let mut r = record("GET", "/api/v1/namespaces?limit=500");
    r.user = Some(UserInfo {
        username: Some("dave".to_owned()),
        ..UserInfo::default()
    });
    r.impersonated_user = Some(UserInfo {
        username: Some("kubernetes-admin".to_owned()),
        groups: Some(vec!["system:masters".to_owned()]),
        ..UserInfo::default()
    });
    r.status = Some(status);
    r.response_body = Some(response_body);
    r
}

/// The impersonation filter's refusal (a 403 `Status` about `users`, `groups`,
/// `serviceaccounts`, ...) comes before the impersonated identity is recorded.
#[test]
fn refused_impersonation_records_no_impersonated_user() {
    let p = policy("rules:\n- level: Metadata\n");
    let refused = |kind: &str, group: Option<&str>, name: &str| {
        let mut details = json!({"name": name, "kind": kind});
        if let Some(group) = group {
            details["group"] = json!(group);
        }
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" is forbidden: User \"dave\" cannot impersonate resource \"{kind}\" in API group \"{}\" at the cluster scope", group.unwrap_or("")),
            "reason": "Forbidden", "details": details, "code": 403,
        })
    };
    for body in [
        refused("users", None, "kubernetes-admin"),
        refused("groups", None, "system:masters"),
        refused("serviceaccounts", None, "builder"),
        refused("uids", Some("authentication.k8s.io"), "1234"),
        refused("userextras", Some("authentication.k8s.io"), "scopes"),
    ] {
        let events = impersonating(403, body.clone()).to_events(&p).expect("ok");
        let last = events.last().expect("event");
        assert_eq!(last.impersonated_user, None, "{body}");
        assert_eq!(
            last.response_status.as_ref().and_then(|s| s.code),
            Some(403)
        );
    }

    // Impersonation succeeded, then authorization refused the impersonated user: the
    // event names who was impersonated.
    let denied = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "namespaces is forbidden: User \"kubernetes-admin\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope",
        "reason": "Forbidden", "details": {"kind": "namespaces"}, "code": 403,
    });
    let events = impersonating(403, denied).to_events(&p).expect("ok");
    assert_eq!(
        events
            .last()
            .and_then(|e| e.impersonated_user.as_ref())
            .and_then(|u| u.username.as_deref()),
        Some("kubernetes-admin")
    );
    // A denied `list serviceaccounts` is not an impersonation refusal either.
    let denied = json!({
        "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "serviceaccounts is forbidden: User \"kubernetes-admin\" cannot list resource \"serviceaccounts\" in API group \"\" at the cluster scope",
        "details": {"kind": "serviceaccounts"},
    });
    let events = impersonating(403, denied).to_events(&p).expect("ok");
    assert!(events.last().expect("event").impersonated_user.is_some());
}

#[test]
fn non_resource_responses_only_when_api_objects() {
    let rr = policy("rules:\n- level: RequestResponse\n");
    let mut version = record("GET", "/version");
    version.response_body = Some(json!({"major": "1"}));
    let last = version.to_events(&rr).expect("ok").pop().expect("event");
    assert!(last.response_object.is_none());
    assert!(last.object_ref.is_none());
    let mut forbidden = record("GET", "/metrics");
    forbidden.status = Some(403);
    let status = json!({"kind": "Status", "status": "Failure", "reason": "Forbidden", "message": "forbidden: User \"alice\" cannot get path \"/metrics\"", "code": 403});
    forbidden.response_body = Some(status.clone());
    let last = forbidden.to_events(&rr).expect("ok").pop().expect("event");
    assert_eq!(last.response_object, Some(status));
    let rs = last.response_status.expect("status");
    assert_eq!(
        (rs.code, rs.reason.as_deref()),
        (Some(403), Some("Forbidden"))
    );
}

#[test]
fn missing_status_panic_and_failed_authentication() {
    let p = policy("rules:\n- level: Metadata\n");
    let mut early = record("GET", "/api/v1/pods");
    early.status = None;
    let last = early.to_events(&p).expect("ok").pop().expect("event");
    let rs = last.response_status.expect("status");
    assert_eq!(rs.message.as_deref(), Some("Connection closed early"));
    assert_eq!(rs.code, Some(200));

    let mut panicked = record("GET", "/api/v1/pods");
    panicked.panic = true;
    let events = panicked.to_events(&p).expect("ok");
    assert_eq!(stages(&events), [Stage::RequestReceived, Stage::Panic]);
    assert_eq!(
        events[1].response_status.as_ref().and_then(|s| s.code),
        Some(500)
    );

    let mut anonymous = record("GET", "/api/v1/pods");
    anonymous.user = None;
    anonymous.status = Some(401);
    let users_only = policy("rules:\n- level: None\n  users: [\"\"]\n- level: Request\n");
    let events = anonymous.to_events(&users_only).expect("ok");
    assert_eq!(stages(&events), [Stage::ResponseStarted]);
    assert_eq!(events[0].level, Level::Request);
    assert_eq!(
        serde_json::to_value(&events[0].user).expect("user"),
        json!({})
    );
}

#[test]
fn fresh_audit_id_and_user_agent_truncation() {
    let p = policy("rules:\n- level: Metadata\n");
    let mut r = record("GET", "/api/v1/pods");
    r.id = None;
    r.user_agent = Some(format!("{}é", "a".repeat(1023)));
    let events = r.to_events(&p).expect("ok");
    let id = &events[0].audit_id;
    assert_eq!(
        uuid::Uuid::parse_str(id).map(|u| u.get_version_num()),
        Ok(4)
    );
    assert!(
        events.iter().all(|e| &e.audit_id == id),
        "stages share the id"
    );
    let agent = events[0].user_agent.as_deref().expect("agent");
    assert_eq!(agent, format!("{}\u{fffd}...TRUNCATED", "a".repeat(1023)));
}

#[test]
fn unresolvable_requests_are_errors() {
    let p = policy("rules:\n- level: Metadata\n");
    assert!(record("GET", "/apis/apps/v1/watch").to_events(&p).is_err());
}

#[test]
fn bad_timeout_is_one_user_less_response_started() {
    let p = policy("rules:\n- level: None\n  userGroups: [dev]\n- level: Metadata\n");
    let events = record("GET", "/api/v1/pods?timeout=soon")
        .to_events(&p)
        .expect("ok");
    assert_eq!(stages(&events), [Stage::ResponseStarted]);
    assert_eq!(
        serde_json::to_value(&events[0].user).expect("user"),
        json!({})
    );
    assert_eq!(
        events[0].response_status.as_ref().and_then(|s| s.code),
        Some(400)
    );
    // The request never reached the handler: a create's body names nothing.
    let mut create = record("POST", "/api/v1/namespaces/a/configmaps?timeout=soon");
    create.request_body = Some(json!({"metadata": {"name": "cm", "uid": "u-1"}}));
    let events = create.to_events(&p).expect("ok");
    assert_eq!(
        serde_json::to_value(&events[0].object_ref).expect("objectRef"),
        json!({"resource": "configmaps", "namespace": "a", "apiVersion": "v1"})
    );
    // Valid durations, and long-running requests, are unaffected.
    for uri in [
        "/api/v1/pods?timeout=32s",
        "/api/v1/pods?timeout=1h2m.5s",
        "/api/v1/pods?timeout=bad&watch=1",
    ] {
        assert!(
            record("GET", uri).to_events(&p).expect("ok").is_empty(),
            "{uri}"
        );
    }
}

#[test]
fn go_durations() {
    use super::is_go_duration;
    for ok in [
        "0",
        "1s",
        "-1.5h",
        "+.5m",
        "1h2m3s4ms5us6ns",
        "3\u{b5}s",
        "2562047h",
    ] {
        assert!(is_go_duration(ok), "{ok}");
    }
    for bad in ["", "1", "s", ".s", "1x", "-", "1.2.3s", "2562048h", "0s1"] {
        assert!(!is_go_duration(bad), "{bad}");
    }
}
