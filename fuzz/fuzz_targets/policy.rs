//! The audit policy loader: YAML or JSON text is parsed, its type header
//! checked and its rules validated and compiled, as `policy = "..."` and the
//! `audit_policy` filter load it; a policy that compiles then audits real
//! access records, so evaluation and event emission run with fuzzed rules.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration as StdDuration;

use auditrail::audit::policy::{load_policy, validate_policy};
use auditrail::audit::{CompiledPolicy, Policy};
use auditrail::config::Duration;
use auditrail::metrics::{ComponentMetrics, Metrics};
use auditrail::source::{DecodeSpec, InputFormat};
use bytes::Bytes;
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

const RECORDS: &str = include_str!("../../examples/data/access-records.jsonl");

static METRICS: LazyLock<ComponentMetrics> = LazyLock::new(|| Metrics::new().component("fuzz"));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Errors are rendered as the CLI and the config diagnostics show them.
    if let Err(e) = Policy::from_yaml_str(text, "<fuzz>") {
        let _ = e.to_string();
    }
    let policy = match load_policy(text, "<fuzz>") {
        Ok(policy) => policy,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = policy.check_type_meta("<fuzz>");
    for error in validate_policy(&policy) {
        let _ = error.to_string();
    }
    let Ok(compiled) = CompiledPolicy::new(&policy) else {
        return;
    };
    let spec = DecodeSpec::audited(
        InputFormat::AccessJson,
        Arc::new(compiled),
        Duration(StdDuration::from_secs(10)),
    );
    let mut decoder = spec.build(&METRICS);
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut out = Vec::new();
    for line in RECORDS.lines() {
        let _ = decoder.decode(Bytes::from_static(line.as_bytes()), now, &mut out);
    }
    for item in &out {
        let mut json = Vec::new();
        item.record.write_json(&mut json);
        let value: serde_json::Value =
            serde_json::from_slice(&json).expect("an emitted event is JSON");
        assert!(value.is_object());
    }
});
