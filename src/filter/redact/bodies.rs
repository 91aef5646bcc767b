//! The built-in rules: where secret values sit in request and response bodies.
//!
//! - Secrets: every value of `data` and `stringData`, and the
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation (it holds the
//!   whole applied Secret). In single objects, `SecretList` items, Table rows,
//!   watch events, kind-less bodies of requests on `secrets` (merge, strategic-merge
//!   and apply patches), JSON patch operations whose path is under those fields, and
//!   raw text bodies (e.g. a YAML apply patch kept as a string).
//! - `TokenReview.spec.token` (also echoed in the response) and
//!   `TokenRequest.status.token` (`serviceaccounts/token`).
//!
//! Keys stay; values are masked. Nothing is removed, so a reader sees that there was
//! a value.

use serde_json::{Map, Value};

use super::mask::Mask;

pub(super) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the request's `objectRef` says the bodies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Implied {
    Secret,
    TokenReview,
    TokenRequest,
}

impl Implied {
    /// From `objectRef`: any `secrets` resource (a same-named custom resource is
    /// treated alike: masking too much is the safe mistake), TokenReviews, and the
    /// `serviceaccounts/token` subresource.
    pub(super) fn from_object_ref(object_ref: &Value) -> Option<Implied> {
        let text = |key| object_ref.get(key).and_then(Value::as_str).unwrap_or("");
        match (text("resource"), text("subresource")) {
            ("secrets", _) => Some(Implied::Secret),
            ("tokenreviews", _) => Some(Implied::TokenReview),
            ("serviceaccounts", "token") => Some(Implied::TokenRequest),
            _ => None,
        }
    }

    fn from_kind(kind: &str) -> Option<Implied> {
        match kind {
            "Secret" => Some(Implied::Secret),
            "TokenReview" => Some(Implied::TokenReview),
            "TokenRequest" => Some(Implied::TokenRequest),
            _ => None,
        }
    }
}

/// Whether a body of this `kind` needs a look even without an `objectRef` hint.
pub(super) fn kind_may_hold_secrets(kind: &str) -> bool {
    matches!(
        kind,
        "Secret" | "SecretList" | "TokenReview" | "TokenRequest" | "List" | "Table"
    )
}

/// Masks the secret values of one body; returns whether anything changed.
pub(super) fn redact_body(body: &mut Value, implied: Option<Implied>, mask: &Mask) -> bool {
    match body {
        Value::Object(map) => redact_object(map, implied, mask),
        Value::Array(ops) if implied == Some(Implied::Secret) => redact_json_patch(ops, mask),
        // A body kept as raw text (e.g. a YAML apply patch) cannot be taken apart:
        // on a sensitive resource, all of it goes.
        Value::String(_) if implied.is_some() => mask.apply(body),
        _ => false,
    }
}

fn redact_object(map: &mut Map<String, Value>, implied: Option<Implied>, mask: &Mask) -> bool {
    let kind = map.get("kind").and_then(Value::as_str).map(str::to_owned);
    let mut changed = false;
    match kind.as_deref() {
        Some("Status") => return false,
        Some("SecretList") => {
            return for_each_item(map, Some(Implied::Secret), mask);
        }
        Some("Table") => {
            if let Some(rows) = map.get_mut("rows").and_then(Value::as_array_mut) {
                for row in rows {
                    if let Some(Value::Object(object)) = row.get_mut("object") {
                        changed |= redact_object(object, implied, mask);
                    }
                }
            }
            return changed;
        }
        _ => {}
    }
    // Lists (typed items carry no `kind`; the list's or the request's says what they
    // are) and watch events.
    changed |= for_each_item(map, implied, mask);
    if map.get("type").is_some_and(Value::is_string)
        && let Some(Value::Object(object)) = map.get_mut("object")
    {
        changed |= redact_object(object, implied, mask);
    }
    match kind.as_deref().and_then(Implied::from_kind).or(implied) {
        Some(Implied::Secret) => changed |= redact_secret(map, mask),
        Some(Implied::TokenReview) => changed |= mask_at(map, &["spec", "token"], mask),
        Some(Implied::TokenRequest) => changed |= mask_at(map, &["status", "token"], mask),
        None => {}
    }
    changed
}

fn for_each_item(map: &mut Map<String, Value>, implied: Option<Implied>, mask: &Mask) -> bool {
    let mut changed = false;
    if let Some(items) = map.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Value::Object(object) = item {
                changed |= redact_object(object, implied, mask);
            }
        }
    }
    changed
}

/// `data`, `stringData` and the last-applied annotation of one Secret (or patch).
fn redact_secret(map: &mut Map<String, Value>, mask: &Mask) -> bool {
    let mut changed = false;
    for field in ["data", "stringData"] {
        if let Some(values) = map.get_mut(field) {
            changed |= mask_values(values, mask);
        }
    }
    if let Some(annotations) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
        && let Some(value) = annotations.get_mut(LAST_APPLIED)
    {
        changed |= mask.apply(value);
    }
    changed
}

/// Each value of a map (its keys are names, kept), or the whole value otherwise.
fn mask_values(values: &mut Value, mask: &Mask) -> bool {
    match values {
        Value::Object(entries) => {
            let mut changed = false;
            for value in entries.values_mut() {
                changed |= mask.apply(value);
            }
            changed
        }
        other => mask.apply(other),
    }
}

fn mask_at(map: &mut Map<String, Value>, path: &[&str], mask: &Mask) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = map;
    for key in parents {
        match current.get_mut(*key).and_then(Value::as_object_mut) {
            Some(next) => current = next,
            None => return false,
        }
    }
    current
        .get_mut(*last)
        .is_some_and(|value| mask.apply(value))
}

/// JSON patch (RFC 6902) operations on a Secret: the `value` of every operation
/// (including `test`, which compares against a secret) whose path is the whole
/// object, `metadata`, the annotations, or anything under `data`/`stringData`.
fn redact_json_patch(ops: &mut [Value], mask: &Mask) -> bool {
    let mut changed = false;
    for op in ops {
        let Some(path) = op.get("path").and_then(Value::as_str) else {
            continue;
        };
        let segments = pointer_segments(path);
        let Some(value) = op.get_mut("value") else {
            continue;
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        changed |= match segments.as_slice() {
            [] => match value {
                Value::Object(object) => redact_secret(object, mask),
                other => mask.apply(other),
            },
            ["data" | "stringData"] => mask_values(value, mask),
            ["data" | "stringData", ..] => mask.apply(value),
            ["metadata"] => value
                .get_mut("annotations")
                .and_then(|a| a.get_mut(LAST_APPLIED))
                .is_some_and(|v| mask.apply(v)),
            ["metadata", "annotations"] => {
                value.get_mut(LAST_APPLIED).is_some_and(|v| mask.apply(v))
            }
            ["metadata", "annotations", key, ..] if *key == LAST_APPLIED => mask.apply(value),
            _ => false,
        };
    }
    changed
}

/// A JSON pointer's unescaped reference tokens (`~1` is `/`, `~0` is `~`); `""` and
/// `"/"`-less text are the whole document.
fn pointer_segments(pointer: &str) -> Vec<String> {
    match pointer.strip_prefix('/') {
        None => Vec::new(),
        Some(rest) => rest
            .split('/')
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect(),
    }
}

#[cfg(test)]
#[path = "bodies_tests.rs"]
mod tests;
