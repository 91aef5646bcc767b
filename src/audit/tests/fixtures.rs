//! Real third-party fixtures: events and webhook bodies round-trip, policies load (or
//! fail for the documented reason), legacy lines parse and join.

use chrono::Duration;
use serde_json::Value;

use super::{files_in, read_json, read_text};
use crate::audit::legacy::{LegacyJoiner, LegacyLine};
use crate::audit::policy::{CompiledPolicy, PolicyError};
use crate::audit::types::{API_VERSION_V1, Event, EventList, Level, Policy};

/// The only change re-serialisation may make: an older `audit.k8s.io` version is written
/// as v1.
fn upgraded(mut value: Value) -> Value {
    if let Some(version) = value.get_mut("apiVersion")
        && version
            .as_str()
            .is_some_and(|v| v.starts_with("audit.k8s.io/"))
    {
        *version = Value::String(API_VERSION_V1.to_owned());
    }
    value
}

fn assert_event_round_trips(original: &Value, origin: &str) {
    let event: Event = serde_json::from_value(original.clone())
        .unwrap_or_else(|e| panic!("{origin}: {e}\n{original}"));
    let written = serde_json::to_value(&event).expect("serialises");
    assert_eq!(written, upgraded(original.clone()), "{origin}");
}

#[allow(clippy::print_stdout)]
#[test]
fn fixture_events_round_trip() {
    let mut files = files_in("fixtures/events", ".jsonl");
    files.push("fixtures/real-apiserver/run1-batch/audit/audit.log".to_owned());
    files.push("fixtures/real-apiserver/run2-blocking/audit/audit.log".to_owned());
    let mut count = 0;
    for file in files {
        for (n, line) in read_text(&file).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line).expect("fixture line is JSON");
            assert_event_round_trips(&value, &format!("{file}:{}", n + 1));
            // Also from the text directly, as the pipeline will parse it.
            let event: Event = serde_json::from_str(line).expect("parses from text");
            assert_eq!(serde_json::to_value(&event).expect("ser"), upgraded(value));
            count += 1;
        }
    }
    println!("fixture events: {count} round-tripped");
    assert!(count > 2000);
}

#[allow(clippy::print_stdout)]
#[test]
fn fixture_webhook_bodies_round_trip() {
    let mut count = 0;
    for file in files_in("fixtures/webhook", ".json") {
        let original = read_json(&file);
        let list: EventList =
            serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let items = original["items"].as_array().expect("items");
        assert_eq!(list.items.len(), items.len());
        for (i, item) in items.iter().enumerate() {
            assert_event_round_trips(item, &format!("{file} item {i}"));
            // Items carry no kind/apiVersion, and must not gain them.
            assert_eq!(item.get("kind").is_some(), list.items[i].kind.is_some());
        }
        count += items.len();
        assert_eq!(
            serde_json::to_value(&list).expect("ser"),
            upgraded(original)
        );
    }
    println!("fixture webhook items: {count} round-tripped");
}

#[test]
fn malformed_event_is_rejected() {
    let text = read_text("fixtures/malformed/falco-fal-01-003.jsonl");
    assert!(serde_json::from_str::<Event>(text.trim()).is_err());
}

#[test]
fn fixture_policies_load() {
    let ok = [
        "audit2rbac-demo-policy.yaml",
        "falco-example-audit-policy-v1beta1.yaml",
        "gce-configure-helper-master-audit-policy.yaml",
        "k8s-website-example-audit-policy.yaml",
    ];
    for name in ok {
        let path = super::data_path(&format!("fixtures/policies/{name}"));
        let policy = Policy::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        CompiledPolicy::new(&policy).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let gce = Policy::load(&super::data_path(
        "fixtures/policies/gce-configure-helper-master-audit-policy.yaml",
    ))
    .expect("gce");
    assert_eq!(gce.rules.as_ref().map(Vec::len), Some(17));
    // Not a kube-apiserver Policy: no apiVersion/kind (cluster-logging-operator format).
    let err = Policy::load(&super::data_path(
        "fixtures/policies/openshift-clo-filter-policy-nonstandard.yaml",
    ))
    .expect_err("nonstandard");
    assert!(
        matches!(err, PolicyError::UnknownGroupVersion { .. }),
        "{err}"
    );
    // Real policies with a typo: `resource:` in a resources entry. kube-apiserver's
    // lenient fallback would drop the key (and so match every resource of the group);
    // strict loading refuses it.
    for name in [
        "openshift-library-go-oauth.yaml",
        "openshift-library-go-writerequestbodies.yaml",
    ] {
        let err = Policy::load(&super::data_path(&format!("fixtures/policies/{name}")))
            .expect_err("typo");
        let message = err.to_string();
        assert!(
            matches!(err, PolicyError::UnknownKey { .. })
                && message.contains(
                    "line 38, column 5: unknown key `resource` in a resources entry (did you mean `resources`?)"
                ),
            "{message}"
        );
    }
    let real =
        Policy::load(&super::data_path("fixtures/real-apiserver/policy.yaml")).expect("real");
    assert_eq!(real.rules.as_ref().map(Vec::len), Some(13));
}

#[test]
fn fixture_legacy_logs_parse_and_join() {
    let mut joiner = LegacyJoiner::new(Duration::seconds(30));
    let mut complete = Vec::new();
    let mut lines = 0;
    for file in files_in("fixtures/legacy", ".log") {
        for line in read_text(&file).lines() {
            let parsed = LegacyLine::parse(line).unwrap_or_else(|e| panic!("{file}: {e}: {line}"));
            complete.extend(joiner.push(parsed));
            lines += 1;
        }
    }
    assert_eq!(lines, 7);
    // Two request/response pairs and one one-line-form request (RequestReceived +
    // ResponseComplete) complete; the Tectonic request line has no response line.
    assert_eq!(complete.len(), 3);
    assert!(complete.iter().all(|r| r.status == Some(200)));
    let rest = joiner.flush_all();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].status, None);

    let policy = CompiledPolicy::new(
        &Policy::from_yaml_str(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
            "<test>",
        )
        .expect("policy"),
    )
    .expect("compiles");
    let stage_form = complete
        .iter()
        .find(|r| r.verb.is_some())
        .expect("one-line form record");
    let events = stage_form.to_events(&policy).expect("events");
    let stages: Vec<_> = events.iter().map(|e| e.stage.as_str()).collect();
    assert_eq!(stages, ["RequestReceived", "ResponseComplete"]);
    let last = events.last().expect("event");
    assert_eq!(last.verb, "update");
    assert_eq!(last.level, Level::Metadata);
    let object_ref = last.object_ref.as_ref().expect("objectRef");
    assert_eq!(object_ref.name.as_deref(), Some("kube-controller-manager"));
    assert_eq!(object_ref.namespace.as_deref(), Some("kube-system"));
    assert_eq!(
        last.response_status.as_ref().and_then(|s| s.code),
        Some(200)
    );
}
