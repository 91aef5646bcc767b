//! The `audit_policy` filter on single events: what it drops, strips and keeps.

use serde_json::{Value, json};

use super::*;
use crate::audit::Policy;
use crate::event::test_event;
use crate::metrics::Metrics;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-proxy"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets"]
- level: None
  resources:
  - group: ""
    resources: ["configmaps"]
    resourceNames: ["controller-leader"]
- level: Request
  resources:
  - group: ""
    resources: ["configmaps"]
- level: RequestResponse
  omitManagedFields: true
  resources:
  - group: ""
    resources: ["pods"]
- level: Metadata
"#;

fn filter(metrics: &Metrics) -> AuditPolicy {
    let policy = Policy::from_yaml_str(POLICY, "<test>").expect("valid policy");
    let spec = AuditPolicySpec {
        policy: Arc::new(CompiledPolicy::new(&policy).expect("compiles")),
    };
    spec.build(metrics.component("policy"))
}

fn event(value: &Value) -> Event {
    test_event(&serde_json::to_string(value).expect("serialises"))
}

fn audit_event(verb: &str, uri: &str, object_ref: &Value, level: &str) -> Value {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
        "auditID": "a1", "stage": "ResponseComplete", "requestURI": uri, "verb": verb,
        "user": {"username": "alice", "groups": ["dev", "system:authenticated"]},
        "objectRef": object_ref,
        "requestObject": {"kind": "X", "metadata": {"name": "n", "managedFields": [{"manager": "m"}]}},
        "responseObject": {"kind": "X", "metadata": {"name": "n", "managedFields": [{"manager": "m"}]}},
        "stageTimestamp": "2026-01-01T00:00:00.000000Z"
    })
}

/// Runs one event through; returns the passed record (as written) if any.
fn run(filter: &mut AuditPolicy, value: &Value) -> Option<(bool, Value)> {
    let mut out = FilterOutput::default();
    filter.apply(event(value), &mut out);
    let passed = out.passed.pop()?;
    let unchanged = passed.record.is_unchanged();
    let mut text = Vec::new();
    passed.record.write_json(&mut text);
    Some((
        unchanged,
        serde_json::from_slice(&text).expect("written JSON"),
    ))
}

fn dropped(metrics: &Metrics, reason: &str) -> bool {
    metrics.render().contains(&format!(
        r#"auditrail_events_dropped_total{{component="policy",reason="{reason}"}} 1"#
    ))
}

#[test]
fn level_none_is_dropped_and_counted() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let mut e = audit_event(
        "watch",
        "/api/v1/endpoints?watch=true",
        &json!({"resource": "endpoints", "apiVersion": "v1"}),
        "Metadata",
    );
    e["user"] = json!({"username": "system:kube-proxy"});
    assert!(run(&mut f, &e).is_none());
    assert!(dropped(&metrics, "policy_none"), "{}", metrics.render());
}

#[test]
fn omitted_stage_is_dropped_and_counted() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let mut e = audit_event(
        "get",
        "/api/v1/namespaces/default/pods/p",
        &json!({"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"}),
        "RequestResponse",
    );
    e["stage"] = json!("RequestReceived");
    assert!(run(&mut f, &e).is_none());
    assert!(
        dropped(&metrics, "policy_omit_stage"),
        "{}",
        metrics.render()
    );
}

#[test]
fn metadata_strips_both_bodies_and_lowers_the_level() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let e = audit_event(
        "update",
        "/api/v1/namespaces/default/secrets/s",
        &json!({"resource": "secrets", "namespace": "default", "name": "s", "apiVersion": "v1"}),
        "RequestResponse",
    );
    let (unchanged, out) = run(&mut f, &e).expect("passed");
    assert!(!unchanged);
    assert_eq!(out["level"], "Metadata");
    assert!(out.get("requestObject").is_none());
    assert!(out.get("responseObject").is_none());
    // Everything else is as it was.
    let mut expected = e.clone();
    let map = expected.as_object_mut().expect("object");
    map.shift_remove("requestObject");
    map.shift_remove("responseObject");
    map.insert("level".into(), json!("Metadata"));
    assert_eq!(out, expected);
}

#[test]
fn request_level_keeps_the_request_body_only() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let e = audit_event(
        "update",
        "/api/v1/namespaces/default/configmaps/c",
        &json!({"resource": "configmaps", "namespace": "default", "name": "c", "apiVersion": "v1"}),
        "RequestResponse",
    );
    let (_, out) = run(&mut f, &e).expect("passed");
    assert_eq!(out["level"], "Request");
    assert_eq!(out["requestObject"], e["requestObject"]);
    assert!(out.get("responseObject").is_none());
}

#[test]
fn an_event_the_policy_does_not_change_keeps_its_bytes() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let text = r#"{"kind":"Event","level":"Metadata","auditID":"x","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/a/deployments/d","verb":"get","user":{"username":"alice"},"objectRef":{"resource":"deployments","namespace":"a","name":"d","apiGroup":"apps","apiVersion":"v1"},  "stageTimestamp":"2026-01-01T00:00:00Z"}"#;
    let mut out = FilterOutput::default();
    f.apply(test_event(text), &mut out);
    let passed = out.passed.pop().expect("passed");
    assert!(passed.record.is_unchanged());
    assert_eq!(passed.record.raw(), Some(text));
}

#[test]
fn level_is_never_raised() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let mut e = audit_event(
        "get",
        "/api/v1/namespaces/default/pods/p",
        &json!({"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"}),
        "Metadata",
    );
    let map = e.as_object_mut().expect("object");
    map.shift_remove("requestObject");
    map.shift_remove("responseObject");
    let (unchanged, out) = run(&mut f, &e).expect("passed");
    assert!(unchanged, "{out}");
    assert_eq!(out["level"], "Metadata");
}

#[test]
fn managed_fields_are_stripped_but_not_from_patches() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let mut e = audit_event(
        "list",
        "/api/v1/namespaces/default/pods",
        &json!({"resource": "pods", "namespace": "default", "apiVersion": "v1"}),
        "RequestResponse",
    );
    e["responseObject"] = json!({"kind": "PodList", "items": [
        {"metadata": {"name": "a", "managedFields": [{"manager": "m"}]}},
        {"metadata": {"name": "b"}}
    ]});
    e.as_object_mut()
        .expect("object")
        .shift_remove("requestObject");
    let (_, out) = run(&mut f, &e).expect("passed");
    assert_eq!(
        out["responseObject"]["items"],
        json!([{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}])
    );
    let e = audit_event(
        "patch",
        "/api/v1/namespaces/default/pods/p",
        &json!({"resource": "pods", "namespace": "default", "name": "p", "apiVersion": "v1"}),
        "RequestResponse",
    );
    let (_, out) = run(&mut f, &e).expect("passed");
    assert_eq!(out["requestObject"], e["requestObject"]);
    assert!(
        out["responseObject"]["metadata"]
            .get("managedFields")
            .is_none()
    );
}

/// The authorizer never saw a create's name (it is in the body), so a
/// `resourceNames` rule does not match it, even though the event's objectRef
/// was completed with the name.
#[test]
fn create_names_from_the_body_do_not_match_resource_names() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let object_ref = json!({"resource": "configmaps", "namespace": "kube-system", "name": "controller-leader", "apiVersion": "v1"});
    let create = audit_event(
        "create",
        "/api/v1/namespaces/kube-system/configmaps",
        &object_ref,
        "Request",
    );
    let (_, out) = run(&mut f, &create).expect("create passes at Request");
    assert_eq!(out["level"], "Request");
    let update = audit_event(
        "update",
        "/api/v1/namespaces/kube-system/configmaps/controller-leader",
        &object_ref,
        "Request",
    );
    assert!(run(&mut f, &update).is_none(), "update matches the name");
}

#[test]
fn records_that_are_not_audit_events_pass_unchanged_and_count() {
    let metrics = Metrics::new();
    let mut f = filter(&metrics);
    let (unchanged, out) = run(&mut f, &json!({"message": "hello"})).expect("passed");
    assert!(unchanged);
    assert_eq!(out, json!({"message": "hello"}));
    assert!(
        metrics
            .render()
            .contains(r#"auditrail_errors_total{component="policy"} 1"#),
        "{}",
        metrics.render()
    );
}

#[test]
fn config_loads_and_validates_the_policy() {
    let config = AuditPolicyConfig {
        policy: Spanned::new(0..1, PathBuf::from("/nonexistent/p.yaml")),
    };
    let d = config.validate().expect_err("missing file");
    assert!(d.message.contains("/nonexistent/p.yaml"), "{}", d.message);
}
