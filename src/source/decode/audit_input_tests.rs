//! The audit formats through the shared decoder: config checks, `policy_none`
//! counting, legacy joins on the log clock, and bad lines.

use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use toml::Spanned;

use super::*;
use crate::config::Duration as ConfigDuration;
use crate::metrics::Metrics;
use crate::source::{DecodeKeys, DecodeSpec, Decoder, InputFormat};

const POLICY: &str = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: [\"system:kube-proxy\"]\n- level: Metadata\n";

fn policy_file() -> (tempfile::TempDir, Spanned<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).expect("write policy");
    (dir, Spanned::new(10..20, path))
}

fn keys<'a>(format: InputFormat, policy: Option<&'a Spanned<PathBuf>>) -> DecodeKeys<'a> {
    DecodeKeys {
        format,
        time_key: None,
        time_format: None,
        policy,
        join_timeout: None,
        table_span: 0..5,
    }
}

fn decoder(format: InputFormat, metrics: &Metrics) -> (tempfile::TempDir, Decoder) {
    let (dir, policy) = policy_file();
    let spec = DecodeSpec::from_keys(&keys(format, Some(&policy))).expect("valid keys");
    (dir, spec.build(&metrics.component("src")))
}

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

fn decode(d: &mut Decoder, line: &str, now: DateTime<Utc>) -> Result<Vec<Value>, BadLine> {
    let mut out = Vec::new();
    d.decode(Bytes::from(line.to_owned()), now, &mut out)?;
    Ok(values(out))
}

fn values(out: Vec<Decoded>) -> Vec<Value> {
    out.into_iter().map(|d| d.record.into_value()).collect()
}

fn stages(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["stage"].as_str().expect("stage"))
        .collect()
}

#[test]
fn access_records_become_events_timed_by_their_stage() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::AccessJson, &metrics);
    let mut out = Vec::new();
    d.decode(
        Bytes::from_static(br#"{"id":"x","time":"2026-11-22T10:00:00Z","method":"GET","uri":"/api/v1/pods","user":{"username":"alice"},"status":200,"completed":"2026-11-22T10:00:02Z"}"#),
        t("2030-01-01T00:00:00Z"),
        &mut out,
    )
    .expect("good line");
    let times: Vec<DateTime<Utc>> = out.iter().map(|d| d.time).collect();
    assert_eq!(
        times,
        [t("2026-11-22T10:00:00Z"), t("2026-11-22T10:00:02Z")]
    );
    let events = values(out);
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    assert_eq!(events[1]["level"], "Metadata");
    assert_eq!(events[1]["verb"], "list");
}

#[test]
fn level_none_emits_nothing_and_is_counted() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::AccessJson, &metrics);
    let line = r#"{"time":"2026-11-22T10:00:00Z","method":"GET","uri":"/api/v1/endpoints?watch=1","user":{"username":"system:kube-proxy"},"status":200}"#;
    for _ in 0..2 {
        assert!(decode(&mut d, line, Utc::now()).expect("good").is_empty());
    }
    let text = metrics.render();
    assert!(
        text.contains(r#"auditrail_events_dropped_total{component="src",reason="policy_none"} 2"#),
        "{text}"
    );
    // In and dropped: the source's in = out + dropped holds.
    assert!(
        text.contains(r#"auditrail_events_in_total{component="src"} 2"#),
        "{text}"
    );
}

#[test]
fn access_record_problems_are_bad_lines_of_the_right_kind() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::AccessJson, &metrics);
    let now = Utc::now();
    let not_json = decode(&mut d, "{nope", now).expect_err("bad");
    assert_eq!(not_json.kind, BadLineKind::NotJson);
    let missing = decode(
        &mut d,
        r#"{"time":"2026-01-01T00:00:00Z","method":"GET","uri":"/"}"#,
        now,
    )
    .expect_err("bad");
    assert_eq!(missing.kind, BadLineKind::Rejected);
    assert!(missing.reason.contains("`user`"), "{}", missing.reason);
    let secret_uri = r#"{"time":"2026-01-01T00:00:00Z","method":"GET","uri":"/api/v1/%zz?token=hunter2","user":{"username":"a"}}"#;
    let unresolvable = decode(&mut d, secret_uri, now).expect_err("bad");
    assert!(
        !unresolvable.reason.contains("hunter2"),
        "{}",
        unresolvable.reason
    );
}

const REQUEST: &str = r#"2017-03-21T07:57:09.106841886Z AUDIT: id="c9" ip="127.0.0.1" method="GET" user="admin" groups="\"system:masters\"" as="<self>" asgroups="<lookup>" namespace="default" uri="/api/v1/namespaces/default/pods""#;
const RESPONSE: &str = r#"2017-03-21T07:57:09.108403639Z AUDIT: id="c9" response="200""#;

#[test]
fn legacy_pairs_join_on_the_response_line() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    let now = Utc::now();
    assert!(decode(&mut d, REQUEST, now).expect("request").is_empty());
    let events = decode(&mut d, RESPONSE, now).expect("response");
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    assert_eq!(events[1]["responseStatus"]["code"], 200);
    assert_eq!(events[1]["stageTimestamp"], "2017-03-21T07:57:09.108403Z");
    // The same response again has nothing to join.
    let orphan = decode(&mut d, RESPONSE, now).expect_err("orphan");
    assert!(
        orphan.reason.contains("without a pending request"),
        "{}",
        orphan.reason
    );
}

/// Old lines replayed at once join as they would live: the timeout runs on the
/// log's clock, not on the years between the lines and now.
#[test]
fn legacy_join_timeout_runs_on_the_log_clock() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    let read_at = t("2030-01-01T00:00:00Z");
    assert!(
        decode(&mut d, REQUEST, read_at)
            .expect("request")
            .is_empty()
    );
    let mut out = Vec::new();
    d.flush_expired(read_at + Duration::seconds(5), &mut out);
    assert!(out.is_empty(), "5s of wall time is within the 10s default");
    d.flush_expired(read_at + Duration::seconds(11), &mut out);
    let events = values(out);
    assert_eq!(stages(&events), ["RequestReceived", "ResponseComplete"]);
    assert!(events[1].get("responseStatus").is_none());
    assert_eq!(
        events[1]["annotations"][UNANSWERED_KEY],
        "no response line within join_timeout; the outcome is unknown"
    );
    // A later line 20s on in the log also pushes the clock past the timeout.
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    assert!(
        decode(&mut d, REQUEST, read_at)
            .expect("request")
            .is_empty()
    );
    let later = r#"2017-03-21T07:57:30Z AUDIT: id="d1" ip="1.2.3.4" method="GET" user="u" groups="<none>" as="<self>" asgroups="<lookup>" namespace="<none>" uri="/healthz""#;
    let events = decode(&mut d, later, read_at).expect("later request");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["auditID"], "c9");
    let mut out = Vec::new();
    d.flush_all(&mut out);
    assert_eq!(values(out)[0]["auditID"], "d1");
}

#[test]
fn decode_keys_are_checked_together() {
    let (_dir, policy) = policy_file();
    let err = DecodeSpec::from_keys(&keys(InputFormat::Legacy, None)).expect_err("no policy");
    assert!(err.message.contains("needs a `policy`"), "{}", err.message);
    let err =
        DecodeSpec::from_keys(&keys(InputFormat::Json, Some(&policy))).expect_err("json policy");
    assert!(
        err.message.contains("`policy` does not apply"),
        "{}",
        err.message
    );
    assert_eq!(err.span, Some(10..20));
    let timeout = Spanned::new(30..34, ConfigDuration::from_secs(1));
    let mut k = keys(InputFormat::AccessJson, Some(&policy));
    k.join_timeout = Some(&timeout);
    let err = DecodeSpec::from_keys(&k).expect_err("join_timeout");
    assert!(
        err.message.contains("`join_timeout` does not apply"),
        "{}",
        err.message
    );
    let time_key = Spanned::new(40..44, crate::event::FieldPath::parse("x").expect("path"));
    let mut k = keys(InputFormat::Legacy, Some(&policy));
    k.time_key = Some(&time_key);
    let err = DecodeSpec::from_keys(&k).expect_err("time_key");
    assert!(
        err.message.contains("`time_key` does not apply"),
        "{}",
        err.message
    );
    // A decoder built without a spec refuses audit lines rather than guessing.
    let mut bare = Decoder::new(InputFormat::Legacy, None);
    assert!(decode(&mut bare, REQUEST, Utc::now()).is_err());
}

fn decode_in(d: &mut Decoder, line: &str, batch: &Ack) -> Vec<Decoded> {
    let mut out = Vec::new();
    d.decode_in_batch(Bytes::from(line.to_owned()), Utc::now(), batch, &mut out)
        .expect("good line");
    out
}

/// A request line's batch stays unacknowledged until the event its response
/// completes is delivered, so a crash in between reads the request again.
#[test]
fn a_legacy_request_holds_its_batch_until_the_joined_events_settle() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    let (request_batch, mut request_waiter) = Ack::batch();
    assert!(decode_in(&mut d, REQUEST, &request_batch).is_empty());
    request_batch.settle();
    assert_eq!(
        request_waiter.try_status(),
        None,
        "held by the waiting request"
    );
    let (response_batch, _response_waiter) = Ack::batch();
    let out = decode_in(&mut d, RESPONSE, &response_batch);
    response_batch.settle();
    assert_eq!(out.len(), 2);
    let mut acks: Vec<Ack> = out.into_iter().map(|d| d.joined).collect();
    assert!(acks.iter().all(Ack::is_tracked));
    acks.pop().expect("two events").settle();
    assert_eq!(
        request_waiter.try_status(),
        None,
        "one event still unsettled"
    );
    acks.pop().expect("two events").settle();
    assert_eq!(
        request_waiter.try_status(),
        Some(crate::event::BatchStatus::Delivered)
    );
}

#[test]
fn a_legacy_request_dropped_while_waiting_fails_its_batch() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    let (batch, mut waiter) = Ack::batch();
    assert!(decode_in(&mut d, REQUEST, &batch).is_empty());
    batch.settle();
    drop(d);
    assert_eq!(waiter.try_status(), Some(crate::event::BatchStatus::Failed));
}

#[test]
fn a_flushed_legacy_request_carries_its_batch() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    let (batch, mut waiter) = Ack::batch();
    assert!(decode_in(&mut d, REQUEST, &batch).is_empty());
    batch.settle();
    let mut out = Vec::new();
    d.flush_all(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(waiter.try_status(), None);
    for decoded in out {
        decoded.joined.fail();
    }
    assert_eq!(waiter.try_status(), Some(crate::event::BatchStatus::Failed));
}

/// A request the policy audits at level `None` yields no event: its batch is
/// done with once the response comes, as for a bad line.
#[test]
fn a_legacy_request_at_level_none_settles_its_batch() {
    let metrics = Metrics::new();
    let (_dir, mut d) = decoder(InputFormat::Legacy, &metrics);
    let request = r#"2017-03-21T07:57:09Z AUDIT: id="k1" ip="1.2.3.4" method="GET" user="system:kube-proxy" groups="<none>" as="<self>" asgroups="<lookup>" namespace="<none>" uri="/api/v1/endpoints""#;
    let (batch, mut waiter) = Ack::batch();
    assert!(decode_in(&mut d, request, &batch).is_empty());
    batch.settle();
    assert_eq!(waiter.try_status(), None);
    let response = r#"2017-03-21T07:57:09.5Z AUDIT: id="k1" response="200""#;
    assert!(decode_in(&mut d, response, &Ack::none()).is_empty());
    assert_eq!(
        waiter.try_status(),
        Some(crate::event::BatchStatus::Delivered)
    );
}
