//! T-SEC-1, canary secrets: known values pushed through every body shape (create,
//! update with the last-applied annotation, JSON / merge / strategic-merge / apply
//! patches, get, list, Table, delete, watch events, TokenReview, TokenRequest) and
//! through bad lines, via the real binary at `RequestResponse` with debug logs. No
//! canary, nor its base64 form, may appear on stdout or in the agent's stderr.

use std::path::Path;

use serde_json::{Value, json};

use super::{base64, run_with_input};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn canary(n: u32) -> String {
    format!("CANARY{n:02}-x7Qz9-secret")
}

fn b64(n: u32) -> String {
    base64(canary(n).as_bytes())
}

fn last_applied(n: u32) -> String {
    json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": b64(n)},
           "metadata": {"name": "s1", "namespace": "ns"}})
    .to_string()
}

fn secret(data_canary: u32) -> Value {
    json!({"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
           "metadata": {"name": "s1", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
           "data": {"k": b64(data_canary)}})
}

fn record(n: u32, method: &str, uri: &str, request: Value, response: Value) -> String {
    let mut record = json!({
        "id": format!("canary-{n:02}"), "time": "2026-11-22T10:00:00Z", "method": method,
        "uri": uri, "user": {"username": "admin", "groups": ["system:masters"]},
        "status": 200, "completed": "2026-11-22T10:00:00.5Z"
    });
    if !request.is_null() {
        record["request_body"] = request;
    }
    if !response.is_null() {
        record["response_body"] = response;
    }
    record.to_string()
}

/// Access records: 13 requests (two events each at RequestResponse), then two bad
/// lines holding canaries.
fn access_records() -> String {
    let secrets = "/api/v1/namespaces/ns/secrets";
    let one = "/api/v1/namespaces/ns/secrets/s1";
    let mut created = secret(1);
    created["stringData"] = json!({"p": canary(2)});
    let mut updated = secret(3);
    updated["metadata"]["annotations"] = json!({LAST_APPLIED: last_applied(3)});
    let mut applied = secret(11);
    applied["stringData"] = json!({"k": canary(11)});
    let lines = [
        record(1, "POST", secrets, created, secret(1)),
        record(2, "PUT", one, updated.clone(), updated),
        record(
            3,
            "PATCH",
            one,
            json!([
                {"op": "add", "path": "/data/k", "value": b64(4)},
                {"op": "test", "path": "/data/old", "value": b64(5)},
                {"op": "replace", "path": "/stringData", "value": {"x": canary(6)}},
                {"op": "add", "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", "value": last_applied(7)}
            ]),
            secret(4),
        ),
        record(
            4,
            "PATCH",
            one,
            json!({"data": {"k": b64(8)}, "metadata": {"annotations": {LAST_APPLIED: last_applied(9)}}}),
            secret(8),
        ),
        record(
            5,
            "PATCH",
            one,
            json!({"$setElementOrder/finalizers": [], "stringData": {"k": canary(10)}}),
            secret(10),
        ),
        record(
            6,
            "PATCH",
            &format!("{one}?fieldManager=kubectl"),
            applied,
            secret(11),
        ),
        record(
            7,
            "PATCH",
            &format!("{one}?fieldManager=kubectl&force=true"),
            Value::from(format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s1\nstringData:\n  k: {}\n",
                canary(12)
            )),
            secret(12),
        ),
        record(8, "GET", one, Value::Null, secret(13)),
        record(
            9,
            "GET",
            secrets,
            Value::Null,
            json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {},
                   "items": [{"metadata": {"name": "s1"}, "data": {"k": b64(14)}}]}),
        ),
        record(
            10,
            "GET",
            &format!("{secrets}?includeObject=Metadata"),
            Value::Null,
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [{"cells": ["s1"], "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "s1", "annotations": {LAST_APPLIED: last_applied(15)}}}}]}),
        ),
        record(11, "DELETE", one, Value::Null, secret(16)),
        record(
            12,
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": canary(17)}}),
            json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1", "spec": {"token": canary(17)},
                   "status": {"authenticated": true, "user": {"username": "system:serviceaccount:ns:sa"}}}),
        ),
        record(
            13,
            "POST",
            "/api/v1/namespaces/ns/serviceaccounts/sa/token",
            json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {"audiences": ["api"]}}),
            json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {"audiences": ["api"]},
                   "status": {"token": canary(18), "expirationTimestamp": "2026-11-22T11:00:00Z"}}),
        ),
        format!("not a record at all {}", canary(19)),
        format!(
            r#"{{"time":"2026-11-22T10:00:00Z","method":"GET","uri":"/api/v1/%zz?token={}","user":{{"username":"a"}}}}"#,
            canary(20)
        ),
    ];
    lines.join("\n") + "\n"
}

/// Audit Events (as kube-apiserver or a webhook delivers them) with the shapes an
/// access record cannot carry: watch events, a generic List, bodies without objectRef.
fn audit_events() -> String {
    let event = |n: u32, object_ref: Value, request: Value, response: Value| {
        json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
               "auditID": format!("event-{n:02}"), "stage": "ResponseComplete", "requestURI": "/x",
               "verb": "get", "user": {"username": "admin"}, "objectRef": object_ref,
               "requestObject": request, "responseObject": response,
               "stageTimestamp": "2026-11-22T10:00:00.000000Z"})
        .to_string()
    };
    [
        event(
            21,
            json!({"resource": "secrets", "namespace": "ns"}),
            Value::Null,
            json!({"type": "ADDED", "object": secret(21)}),
        ),
        event(
            22,
            json!({"resource": "configmaps", "namespace": "ns"}),
            Value::Null,
            json!({"kind": "List", "items": [{"kind": "ConfigMap", "data": {"a": "b"}}, secret(22)]}),
        ),
        event(23, Value::Null, secret(23), Value::Null),
        event(
            24,
            json!({"resource": "serviceaccounts", "subresource": "token", "name": "sa"}),
            Value::Null,
            json!({"status": {"token": canary(24)}}),
        ),
    ]
    .join("\n")
        + "\n"
}

/// A config with `source`, a `redact` filter with the keys `redact` (none when
/// `None`), and stdout.
fn write_config(dir: &Path, name: &str, source: &str, redact: Option<&str>) -> std::path::PathBuf {
    let path = dir.join(name);
    let filter = redact.map_or_else(String::new, |keys| {
        format!("[[filter]]\ntype = \"redact\"\nmatch = \"audit\"\n{keys}\n")
    });
    std::fs::write(
        &path,
        format!("{source}\n{filter}\n[[output]]\ntype = \"stdout\"\nmatch = \"audit\"\n"),
    )
    .expect("write config");
    path
}

fn access_source(policy: &Path) -> String {
    format!(
        "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\nformat = \"access_json\"\npolicy = \"{}\"\n",
        policy.display()
    )
}

const JSON_SOURCE: &str = "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\n";

fn leaks(text: &str, canaries: std::ops::RangeInclusive<u32>) -> Vec<String> {
    canaries
        .flat_map(|n| [canary(n), b64(n)])
        .filter(|needle| text.contains(needle.as_str()))
        .collect()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("everything.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: RequestResponse\n",
    )
    .expect("write policy");
    (dir, policy)
}

/// Without `redact`, the canaries of every shape do reach the output: the test
/// input really carries them where the filter must look.
#[test]
fn canaries_reach_the_output_without_redact() {
    let (dir, policy) = setup();
    let config = write_config(dir.path(), "plain.toml", &access_source(&policy), None);
    let out = run_with_input(&config, access_records().as_bytes(), "warn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for n in 1..=18 {
        assert!(
            stdout.contains(&canary(n)) || stdout.contains(&b64(n)),
            "canary {n} never reached the output"
        );
    }
    let config = write_config(dir.path(), "plain-events.toml", JSON_SOURCE, None);
    let out = run_with_input(&config, audit_events().as_bytes(), "warn");
    assert_eq!(
        leaks(&String::from_utf8_lossy(&out.stdout), 21..=24).len(),
        4
    );
}

#[test]
fn no_canary_survives_redact_in_output_or_logs() {
    let (dir, policy) = setup();
    let config = write_config(dir.path(), "redact.toml", &access_source(&policy), Some(""));
    let out = run_with_input(&config, access_records().as_bytes(), "debug");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(leaks(&stdout, 1..=20), Vec::<String>::new(), "stdout leaks");
    assert_eq!(leaks(&stderr, 1..=20), Vec::<String>::new(), "stderr leaks");
    // Nothing vanished: every request is there, masked rather than deleted.
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(events.len(), 26, "13 requests, 2 stages each");
    for event in events.iter().filter(|e| e["stage"] == "ResponseComplete") {
        assert!(
            event.to_string().contains("<redacted>"),
            "nothing masked in {}",
            event["auditID"]
        );
    }
    assert!(stderr.contains("Skipped a bad line"), "{stderr}");
    // Events in the pipeline already (json source) get the same treatment.
    let config = write_config(dir.path(), "redact-events.toml", JSON_SOURCE, Some(""));
    let out = run_with_input(&config, audit_events().as_bytes(), "debug");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(leaks(&stdout, 21..=24), Vec::<String>::new());
    assert_eq!(
        leaks(&String::from_utf8_lossy(&out.stderr), 21..=24),
        Vec::<String>::new()
    );
    assert_eq!(stdout.matches("<redacted>").count(), 4, "{stdout}");
}

#[test]
fn hmac_mode_leaks_nothing_and_hashes_equal_values_alike() {
    let (dir, policy) = setup();
    let key = dir.path().join("redact.key");
    std::fs::write(&key, "a test key, not a secret\n").expect("write key");
    let config = write_config(
        dir.path(),
        "hmac.toml",
        &access_source(&policy),
        Some(&format!(
            "mode = \"hmac\"\nkey_file = \"{}\"",
            key.display()
        )),
    );
    let out = run_with_input(&config, access_records().as_bytes(), "debug");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(leaks(&stdout, 1..=20), Vec::<String>::new());
    assert_eq!(
        leaks(&String::from_utf8_lossy(&out.stderr), 1..=20),
        Vec::<String>::new()
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let get = events
        .iter()
        .find(|e| e["auditID"] == "canary-08" && e["stage"] == "ResponseComplete")
        .expect("the get");
    let create = events
        .iter()
        .find(|e| e["auditID"] == "canary-01" && e["stage"] == "ResponseComplete")
        .expect("the create");
    let hashed = get["responseObject"]["data"]["k"].as_str().expect("hashed");
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
    // The create's data holds canary 1, the get's canary 13: different hashes; the
    // create's request and response hold the same value: the same hash.
    assert_ne!(create["responseObject"]["data"]["k"], hashed);
    assert_eq!(
        create["requestObject"]["data"]["k"],
        create["responseObject"]["data"]["k"]
    );
    assert!(!stdout.contains("a test key"));
}
