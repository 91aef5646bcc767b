//! Runs every vector of `tests/data/conformance/*.json` (Kubernetes v1.36 behaviour).

use serde_json::Value;

use super::read_json;
use crate::audit::policy::{CompiledPolicy, RequestAttributes, UserAttributes, load_policy};
use crate::audit::request_info::RequestInfo;
use crate::audit::types::{Level, Stage, StageSet};

/// The Kubernetes minor version these semantics target.
const TARGET_MINOR: u32 = 36;

fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("bad version {version}"))
}

/// Whether the case's version range includes the target version.
fn applies(case: &Value) -> bool {
    let min_ok = case["min_k8s_version"]
        .as_str()
        .is_none_or(|v| minor(v) <= TARGET_MINOR);
    let max_ok = case["max_k8s_version"]
        .as_str()
        .is_none_or(|v| minor(v) >= TARGET_MINOR);
    min_ok && max_ok
}

fn cases(file: &str) -> Vec<Value> {
    let doc = read_json(&format!("conformance/{file}"));
    let cases = doc["cases"].as_array().expect("cases").clone();
    assert_eq!(
        doc["count"].as_u64(),
        Some(cases.len() as u64),
        "{file} count"
    );
    cases
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` in {value}"))
}

#[allow(clippy::print_stdout)]
fn report(set: &str, passed: usize, skipped: usize, failures: &[String]) {
    println!(
        "{set}: {passed} passed, {} failed, {skipped} skipped (version range)",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{set} failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn policy_vectors() {
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for case in cases("policy-cases.json") {
        let name = str_of(&case, "name");
        if !applies(&case) {
            skipped += 1;
            continue;
        }
        let text = case["policy"].to_string();
        let policy = load_policy(&text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let compiled = CompiledPolicy::new(&policy).unwrap_or_else(|e| panic!("{name}: {e}"));
        let req = &case["request"];
        let groups: Vec<String> = req["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let attrs = RequestAttributes {
            user: req["user"].as_str().map(|name| UserAttributes {
                name,
                groups: &groups,
            }),
            verb: str_of(req, "verb"),
            is_resource_request: req["resource_request"].as_bool().expect("resource_request"),
            path: str_of(req, "path"),
            namespace: str_of(req, "namespace"),
            api_group: str_of(req, "api_group"),
            api_version: str_of(req, "api_version"),
            resource: str_of(req, "resource"),
            subresource: str_of(req, "subresource"),
            name: str_of(req, "name"),
        };
        let decision = compiled.evaluate(&attrs);
        let expect = &case["expect"];
        let level = Level::from_name(str_of(expect, "level")).expect("level");
        let stages: StageSet = expect["omit_stages"]
            .as_array()
            .expect("omit_stages")
            .iter()
            .map(|s| Stage::from_name(s.as_str().expect("stage")).expect("stage name"))
            .collect();
        let omit_mf = expect["omit_managed_fields"].as_bool().expect("omf");
        if (
            decision.level,
            decision.omit_stages,
            decision.omit_managed_fields,
        ) == (level, stages, omit_mf)
        {
            passed += 1;
        } else {
            failures.push(format!("{name}: got {decision:?}, expected {expect}"));
        }
    }
    report("policy", passed, skipped, &failures);
}

#[test]
fn validation_vectors() {
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for case in cases("validation-cases.json") {
        let name = str_of(&case, "name");
        if !applies(&case) {
            skipped += 1;
            continue;
        }
        let policy = load_policy(&case["policy"].to_string(), name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: Vec<(String, String)> = policy
            .validate()
            .into_iter()
            .map(|e| (e.field, e.kind.as_str().to_owned()))
            .collect();
        let expected: Vec<(String, String)> = case["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| (str_of(e, "field").to_owned(), str_of(e, "type").to_owned()))
            .collect();
        let valid = case["valid"].as_bool().expect("valid");
        if got == expected && got.is_empty() == valid {
            passed += 1;
        } else {
            failures.push(format!("{name}: got {got:?}, expected {expected:?}"));
        }
    }
    report("validation", passed, skipped, &failures);
}

#[test]
fn requestinfo_vectors() {
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for case in cases("requestinfo-cases.json") {
        let name = str_of(&case, "name");
        if !applies(&case) {
            skipped += 1;
            continue;
        }
        let result = RequestInfo::resolve(str_of(&case, "method"), str_of(&case, "url"));
        let expect = &case["expect"];
        let ok = match (&result, expect["error"].as_bool().expect("error")) {
            (Err(_), true) => true,
            (Ok(info), false) => {
                let parts: Vec<&str> = expect["parts"]
                    .as_array()
                    .expect("parts")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                info.is_resource_request == expect["is_resource_request"].as_bool().expect("irr")
                    && [
                        (info.verb.as_str(), "verb"),
                        (&info.api_prefix, "api_prefix"),
                        (&info.api_group, "api_group"),
                        (&info.api_version, "api_version"),
                        (&info.namespace, "namespace"),
                        (&info.resource, "resource"),
                        (&info.subresource, "subresource"),
                        (&info.name, "name"),
                        (&info.path, "path"),
                        (&info.field_selector, "field_selector"),
                        (&info.label_selector, "label_selector"),
                    ]
                    .iter()
                    .all(|(got, key)| *got == str_of(expect, key))
                    && info.parts == parts
            }
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{name}: got {result:?}, expected {expect}"));
        }
    }
    report("requestinfo", passed, skipped, &failures);
}
