//! Every body shape a secret can hide in, masked with a plain marker.

use serde_json::{Value, json};

use super::*;

fn mask() -> Mask {
    Mask::Marker("<redacted>".into())
}

fn redacted(mut body: Value, implied: Option<Implied>) -> (bool, Value) {
    let changed = redact_body(&mut body, implied, &mask());
    (changed, body)
}

fn last_applied(data: &str) -> String {
    format!(r#"{{"apiVersion":"v1","data":{{"password":"{data}"}},"kind":"Secret"}}"#)
}

#[test]
fn secret_object_keeps_keys_and_masks_values() {
    let body = json!({
        "kind": "Secret", "apiVersion": "v1", "type": "Opaque",
        "metadata": {"name": "s", "annotations": {LAST_APPLIED: last_applied("c2VjcmV0"), "team": "a"}},
        "data": {"password": "c2VjcmV0", "user": "YWRtaW4="},
        "stringData": {"token": "plain"}
    });
    let (changed, out) = redacted(body, None);
    assert!(changed);
    assert_eq!(
        out,
        json!({
            "kind": "Secret", "apiVersion": "v1", "type": "Opaque",
            "metadata": {"name": "s", "annotations": {LAST_APPLIED: "<redacted>", "team": "a"}},
            "data": {"password": "<redacted>", "user": "<redacted>"},
            "stringData": {"token": "<redacted>"}
        })
    );
}

#[test]
fn secret_list_items_have_no_kind_but_are_secrets() {
    let body = json!({"kind": "SecretList", "items": [
        {"metadata": {"name": "a"}, "data": {"k": "djE="}},
        {"metadata": {"name": "b"}, "data": {"k": "djI="}}
    ]});
    let (_, out) = redacted(body, None);
    assert_eq!(out["items"][0]["data"]["k"], "<redacted>");
    assert_eq!(out["items"][1]["data"]["k"], "<redacted>");
}

#[test]
fn generic_list_masks_only_its_secrets() {
    let body = json!({"kind": "List", "items": [
        {"kind": "ConfigMap", "data": {"k": "visible"}},
        {"kind": "Secret", "data": {"k": "hidden"}}
    ]});
    let (_, out) = redacted(body, None);
    assert_eq!(out["items"][0]["data"]["k"], "visible");
    assert_eq!(out["items"][1]["data"]["k"], "<redacted>");
}

#[test]
fn table_rows_and_watch_events_on_secrets() {
    let table = json!({"kind": "Table", "rows": [{"cells": ["s"], "object": {
        "kind": "PartialObjectMetadata",
        "metadata": {"name": "s", "annotations": {LAST_APPLIED: last_applied("eA==")}}
    }}]});
    let (_, out) = redacted(table, Some(Implied::Secret));
    assert_eq!(
        out["rows"][0]["object"]["metadata"]["annotations"][LAST_APPLIED],
        "<redacted>"
    );
    let watch = json!({"type": "ADDED", "object": {"kind": "Secret", "data": {"k": "eA=="}}});
    let (_, out) = redacted(watch, None);
    assert_eq!(out["object"]["data"]["k"], "<redacted>");
}

#[test]
fn merge_and_apply_patches_on_secrets() {
    // Merge / strategic-merge patch: no kind, known from objectRef.
    let merge = json!({"data": {"password": "bmV3"}, "stringData": {"x": "y"}, "metadata": {"labels": {"a": "b"}}});
    let (_, out) = redacted(merge, Some(Implied::Secret));
    assert_eq!(out["data"]["password"], "<redacted>");
    assert_eq!(out["stringData"]["x"], "<redacted>");
    assert_eq!(out["metadata"]["labels"]["a"], "b");
    // A key deleted by a merge patch (null) holds nothing.
    let delete_key = json!({"data": {"old": null}});
    let (changed, out) = redacted(delete_key, Some(Implied::Secret));
    assert!(!changed);
    assert_eq!(out["data"]["old"], Value::Null);
    // A YAML apply patch logged as text is masked whole.
    let (_, out) = redacted(
        Value::from("apiVersion: v1\nkind: Secret\nstringData:\n  x: y\n"),
        Some(Implied::Secret),
    );
    assert_eq!(out, "<redacted>");
}

#[test]
fn json_patch_values_under_secret_fields() {
    let patch = json!([
        {"op": "add", "path": "/data/password", "value": "bmV3"},
        {"op": "replace", "path": "/stringData", "value": {"a": "b"}},
        {"op": "test", "path": "/data/old", "value": "b2xk"},
        {"op": "add", "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", "value": "{}"},
        {"op": "add", "path": "/metadata/annotations", "value": {LAST_APPLIED: "{}", "keep": "me"}},
        {"op": "replace", "path": "", "value": {"kind": "Secret", "data": {"k": "dg=="}}},
        {"op": "add", "path": "/metadata/labels/app", "value": "web"},
        {"op": "remove", "path": "/data/gone"},
        {"op": "copy", "from": "/data/a", "path": "/data/b"}
    ]);
    let (changed, out) = redacted(patch, Some(Implied::Secret));
    assert!(changed);
    assert_eq!(
        out,
        json!([
            {"op": "add", "path": "/data/password", "value": "<redacted>"},
            {"op": "replace", "path": "/stringData", "value": {"a": "<redacted>"}},
            {"op": "test", "path": "/data/old", "value": "<redacted>"},
            {"op": "add", "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", "value": "<redacted>"},
            {"op": "add", "path": "/metadata/annotations", "value": {LAST_APPLIED: "<redacted>", "keep": "me"}},
            {"op": "replace", "path": "", "value": {"kind": "Secret", "data": {"k": "<redacted>"}}},
            {"op": "add", "path": "/metadata/labels/app", "value": "web"},
            {"op": "remove", "path": "/data/gone"},
            {"op": "copy", "from": "/data/a", "path": "/data/b"}
        ])
    );
    // The same patch on a ConfigMap is left alone.
    let patch = json!([{"op": "add", "path": "/data/k", "value": "v"}]);
    assert!(!redacted(patch, None).0);
}

#[test]
fn tokens_of_token_reviews_and_requests() {
    let review = json!({"kind": "TokenReview", "spec": {"token": "eyJhbGciOi"}, "status": {"authenticated": true, "user": {"username": "u"}}});
    let (_, out) = redacted(review, None);
    assert_eq!(out["spec"]["token"], "<redacted>");
    assert_eq!(out["status"]["user"]["username"], "u");
    // A request body without kind, known from objectRef.
    let (_, out) = redacted(json!({"spec": {"token": "t"}}), Some(Implied::TokenReview));
    assert_eq!(out["spec"]["token"], "<redacted>");
    let request = json!({"kind": "TokenRequest", "spec": {"audiences": ["a"]}, "status": {"token": "eyJ", "expirationTimestamp": "2026-01-01T00:00:00Z"}});
    let (_, out) = redacted(request, Some(Implied::TokenRequest));
    assert_eq!(out["status"]["token"], "<redacted>");
    assert_eq!(out["spec"]["audiences"][0], "a");
}

#[test]
fn status_and_unrelated_objects_are_untouched() {
    let status =
        json!({"kind": "Status", "status": "Success", "details": {"name": "s", "kind": "secrets"}});
    assert!(!redacted(status, Some(Implied::Secret)).0);
    let config_map = json!({"kind": "ConfigMap", "data": {"k": "v"}});
    assert!(!redacted(config_map, None).0);
}

#[test]
fn implied_kind_comes_from_object_ref() {
    let secret = json!({"resource": "secrets", "namespace": "a", "apiVersion": "v1"});
    assert_eq!(Implied::from_object_ref(&secret), Some(Implied::Secret));
    let token = json!({"resource": "serviceaccounts", "subresource": "token"});
    assert_eq!(
        Implied::from_object_ref(&token),
        Some(Implied::TokenRequest)
    );
    let review = json!({"resource": "tokenreviews", "apiGroup": "authentication.k8s.io"});
    assert_eq!(
        Implied::from_object_ref(&review),
        Some(Implied::TokenReview)
    );
    assert_eq!(
        Implied::from_object_ref(&json!({"resource": "serviceaccounts"})),
        None
    );
}
