//! The `redact` filter on whole events, and its config checks.

use serde_json::json;

use super::*;
use crate::event::test_event;
use crate::metrics::Metrics;

fn spec(toml_text: &str) -> Result<RedactSpec, Diagnostic> {
    let config: RedactConfig = toml::from_str(toml_text).expect("parses");
    config.validate(0..1)
}

fn run(spec: &RedactSpec, text: &str) -> (bool, Value) {
    let mut filter = spec.build(Metrics::new().component("redact"));
    let mut out = FilterOutput::default();
    filter.apply(test_event(text), &mut out);
    let event = out.passed.pop().expect("redact always passes");
    let unchanged = event.record.is_unchanged();
    let mut bytes = Vec::new();
    event.record.write_json(&mut bytes);
    (
        unchanged,
        serde_json::from_slice(&bytes).expect("written JSON"),
    )
}

#[test]
fn events_without_secrets_keep_their_bytes() {
    let spec = spec("").expect("defaults");
    let text = r#"{"verb":"create","objectRef":{"resource":"configmaps"},"requestObject":{"kind":"ConfigMap","data":{"k":"v"}} }"#;
    let (unchanged, _) = run(&spec, text);
    assert!(unchanged);
}

#[test]
fn secret_bodies_are_masked_with_the_marker() {
    let spec = spec(r#"marker = "***""#).expect("valid");
    let text = r#"{"verb":"update","objectRef":{"resource":"secrets","namespace":"a","name":"s"},"requestObject":{"data":{"k":"c2VjcmV0"}},"responseObject":{"kind":"Secret","data":{"k":"c2VjcmV0"}}}"#;
    let (unchanged, out) = run(&spec, text);
    assert!(!unchanged);
    assert_eq!(out["requestObject"]["data"]["k"], "***");
    assert_eq!(out["responseObject"]["data"]["k"], "***");
}

#[test]
fn secret_bodies_without_object_ref_are_found_by_kind() {
    let spec = spec("").expect("valid");
    let text = r#"{"responseObject":{"kind":"SecretList","items":[{"data":{"k":"c2VjcmV0"}}]}}"#;
    let (_, out) = run(&spec, text);
    assert_eq!(out["responseObject"]["items"][0]["data"]["k"], "<redacted>");
}

#[test]
fn listed_paths_are_masked_and_missing_ones_ignored() {
    let spec =
        spec(r#"paths = ["requestObject.spec.password", "annotations.\"x.io/key\"", "nope.nope"]"#)
            .expect("valid");
    let text =
        r#"{"requestObject":{"spec":{"password":"p","user":"u"}},"annotations":{"x.io/key":"k"}}"#;
    let (_, out) = run(&spec, text);
    assert_eq!(
        out,
        json!({"requestObject":{"spec":{"password":"<redacted>","user":"u"}},"annotations":{"x.io/key":"<redacted>"}})
    );
}

#[test]
fn hmac_mode_hashes_with_the_key_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("key");
    std::fs::write(&key, "Jefe\n").expect("write key");
    let spec = spec(&format!(
        "mode = \"hmac\"\nkey_file = \"{}\"\npaths = [\"x\"]",
        key.display()
    ))
    .expect("valid");
    let (_, out) = run(&spec, r#"{"x":"what do ya want for nothing?"}"#);
    // RFC 4231 case 2 (the trailing newline of the key file is not part of the key).
    assert_eq!(out["x"], "hmac-sha256:5bdcc146bf60754e6a042426089575c7");
}

#[test]
fn config_mistakes_are_diagnostics() {
    let err = spec(r#"mode = "hmac""#).expect_err("no key");
    assert!(
        err.message.contains("needs a `key_file`"),
        "{}",
        err.message
    );
    let err = spec(r#"key_file = "/k""#).expect_err("key without hmac");
    assert!(
        err.message.contains("`key_file` only applies"),
        "{}",
        err.message
    );
    let err =
        spec("mode = \"hmac\"\nmarker = \"x\"\nkey_file = \"/k\"").expect_err("marker with hmac");
    assert!(
        err.message.contains("`marker` does not apply"),
        "{}",
        err.message
    );
    let err = spec("mode = \"hmac\"\nkey_file = \"/nonexistent/key\"").expect_err("missing file");
    assert!(
        err.message
            .contains("failed to read the redaction key file"),
        "{}",
        err.message
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let err = spec(&format!(
        "mode = \"hmac\"\nkey_file = \"{}\"",
        empty.display()
    ))
    .expect_err("empty key");
    assert!(err.message.contains("is empty"), "{}", err.message);
}
