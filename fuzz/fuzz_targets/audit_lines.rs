//! Raw access records and kube-apiserver's legacy `AUDIT:` lines: each line
//! of the input goes through `AccessRecord::from_json` and `LegacyLine::parse`
//! (the legacy lines into a `LegacyJoiner`), then the whole input through the
//! line decoders a `tail`/`stdin` source builds for `format = "access_json"`
//! and `format = "legacy"`, which audit the records through a policy that
//! logs at every level.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration as StdDuration;

use auditrail::audit::{AccessRecord, CompiledPolicy, LegacyJoiner, LegacyLine, Policy};
use auditrail::config::Duration;
use auditrail::metrics::{ComponentMetrics, Metrics};
use auditrail::source::{DecodeSpec, Decoded, InputFormat};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

/// Rules at every level, with omitted stages and managed fields, so emitting
/// is reached in all its forms.
const POLICY: &str = include_str!(
    "../../tests/data/fixtures/policies/gce-configure-helper-master-audit-policy.yaml"
);

static SETUP: LazyLock<(Arc<CompiledPolicy>, ComponentMetrics)> = LazyLock::new(|| {
    let policy = Policy::from_yaml_str(POLICY, "gce policy").expect("the seed policy loads");
    let compiled = CompiledPolicy::new(&policy).expect("the seed policy compiles");
    (Arc::new(compiled), Metrics::new().component("fuzz"))
});

fn check(decoded: &[Decoded]) {
    for item in decoded {
        let mut out = Vec::new();
        item.record.write_json(&mut out);
        let value: serde_json::Value =
            serde_json::from_slice(&out).expect("an emitted event is JSON");
        assert!(value.is_object());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();

    let mut joiner = LegacyJoiner::new(chrono::Duration::seconds(10));
    for line in text.lines() {
        let _ = AccessRecord::from_json(line);
        if let Ok(parsed) = LegacyLine::parse(line) {
            let _ = joiner.push(parsed);
        }
    }
    let _ = joiner.flush_expired(start + chrono::Duration::days(3650));
    let _ = joiner.flush_all();

    let (policy, metrics) = &*SETUP;
    for format in [InputFormat::AccessJson, InputFormat::Legacy] {
        let spec =
            DecodeSpec::audited(format, policy.clone(), Duration(StdDuration::from_secs(10)));
        let mut decoder = spec.build(metrics);
        let mut out = Vec::new();
        for line in data.split(|&b| b == b'\n') {
            let _ = decoder.decode(Bytes::copy_from_slice(line), start, &mut out);
        }
        decoder.flush_expired(start + chrono::Duration::seconds(5), &mut out);
        decoder.flush_all(&mut out);
        check(&out);
    }
});
