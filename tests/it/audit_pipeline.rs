//! Audit semantics through the running agent: the legacy and access-record examples,
//! join timeouts on a live pipe, the `audit_policy` filter on real kube-apiserver
//! events, and the `redact` canary (no secret value in any output or log).

use std::io::{BufRead, BufReader, Write};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{auditrail, data, repo};

/// Runs `auditrail run -c <config>` from the repository root with `input` on stdin.
fn run_with_input(config: &std::path::Path, input: &[u8], log_level: &str) -> Output {
    let mut child = auditrail()
        .current_dir(repo(""))
        .env("AUDITRAIL_LOG", log_level)
        .args(["run", "-c"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start auditrail");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn events(stdout: &[u8]) -> Vec<Value> {
    std::str::from_utf8(stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn summary(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("?").to_owned();
            (s("auditID"), s("stage"), s("level"))
        })
        .collect()
}

fn triple(id: &str, stage: &str, level: &str) -> (String, String, String) {
    (id.to_owned(), stage.to_owned(), level.to_owned())
}

/// DESIGN scenario 7 with the docs' policy: pods at RequestResponse, endpoints at
/// Request, Secrets at Metadata, RequestReceived omitted; the unanswered request is
/// still recorded.
#[test]
fn legacy_example_audits_through_the_docs_policy() {
    let input = std::fs::read(repo("examples/data/legacy-audit.log")).expect("input");
    let out = run_with_input(&repo("examples/legacy-audit.toml"), &input, "warn");
    let events = events(&out.stdout);
    assert_eq!(
        summary(&events),
        [
            triple(
                "5c3b8227-4af9-4322-8a71-542231c3887b",
                "ResponseComplete",
                "RequestResponse"
            ),
            triple(
                "c939d2a7-1c37-4ef1-b2f7-4ba9b1e43b53",
                "ResponseComplete",
                "RequestResponse"
            ),
            triple(
                "591e9fde-6a98-46f6-b7bc-ec8ef575696d",
                "ResponseComplete",
                "Request"
            ),
            triple(
                "8e2ad929-8da1-4ce5-8776-751421157483",
                "ResponseComplete",
                "Metadata"
            ),
        ]
    );
    assert_eq!(
        events[1]["user"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(
        events[1]["requestReceivedTimestamp"],
        "2017-03-21T07:57:09.106841Z"
    );
    assert_eq!(events[1]["responseStatus"]["code"], 200);
    assert!(events[3].get("responseStatus").is_none());
    assert!(events[3]["annotations"]["auditrail.io/legacy-join"].is_string());
}

/// Access records through the docs' policy: the kube-proxy watch and the `/version`
/// probe are dropped (level None), the failed authentication is one
/// ResponseStarted, the watch keeps ResponseStarted, bodies follow the levels.
#[test]
fn access_records_example_audits_through_the_docs_policy() {
    let input = std::fs::read(repo("examples/data/access-records.jsonl")).expect("input");
    let out = run_with_input(&repo("examples/access-records.toml"), &input, "warn");
    let events = events(&out.stdout);
    let id = |n: u32| format!("0b7c6f1e-000{n}-4a8e-9d6f-00000000000{n}");
    let mut got = summary(&events);
    // The last record has no `id`: it gets a fresh UUID v4.
    let minted = got.last().expect("events").0.clone();
    assert_eq!(minted.len(), 36);
    assert_eq!(&minted[14..15], "4", "{minted}");
    got.pop();
    assert_eq!(
        got,
        [
            triple(&id(1), "ResponseComplete", "RequestResponse"),
            triple(&id(2), "ResponseComplete", "Request"),
            triple(&id(3), "ResponseComplete", "Metadata"),
            triple(&id(6), "ResponseStarted", "RequestResponse"),
            triple(&id(6), "ResponseComplete", "RequestResponse"),
            triple(&id(7), "ResponseStarted", "RequestResponse"),
        ]
    );
    assert_eq!(events[0]["responseObject"]["kind"], "PodList");
    assert_eq!(events[1]["requestObject"]["data"]["mode"], "fast");
    assert!(events[1].get("responseObject").is_none());
    assert_eq!(
        events[1]["objectRef"]["name"], "settings",
        "completed from the body"
    );
    assert!(
        events[2].get("responseObject").is_none(),
        "Secrets at Metadata"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("aHVudGVyMg=="));
    assert_eq!(events[5]["responseStatus"]["code"], 401);
    assert_eq!(events[5]["user"], json!({}));
    assert_eq!(events[6]["verb"], "delete");
    assert_eq!(events[6]["level"], "Metadata");
}

/// On a live pipe, a request line whose response never comes is emitted after
/// `join_timeout`; a response arriving later is a bad line, not a second event.
#[test]
fn legacy_request_without_response_is_emitted_after_join_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("legacy.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\nformat = \"legacy\"\npolicy = \"{}\"\njoin_timeout = \"1s\"\n\n[[output]]\ntype = \"stdout\"\nmatch = \"audit\"\n",
            data("audit/metadata-all.yaml").display()
        ),
    )
    .expect("write config");
    let mut child = auditrail()
        .args(["run", "-c"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(
        stdin,
        r#"{now} AUDIT: id="live-1" ip="10.0.0.1" method="GET" user="alice" groups="<none>" as="<self>" asgroups="<lookup>" namespace="default" uri="/api/v1/namespaces/default/secrets/s""#
    )
    .expect("write request");
    stdin.flush().expect("flush");
    let started = Instant::now();
    let mut lines = Vec::new();
    while lines.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the unanswered request is emitted within 10s");
        lines.push(line);
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "emitted before join_timeout"
    );
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(events[0]["stage"], "RequestReceived");
    assert_eq!(events[1]["stage"], "ResponseComplete");
    assert!(events[1].get("responseStatus").is_none());
    // Too late to join.
    writeln!(stdin, r#"{now} AUDIT: id="live-1" response="200""#).expect("write response");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success());
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_err(),
        "no further event"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("without a pending request"), "{stderr}");
}

/// Re-filtering real kube-apiserver events: watches dropped (None),
/// ResponseStarted dropped (omitted), bodies cut to each request's level, and
/// every event the policy leaves alone written byte for byte.
#[test]
fn audit_policy_filter_refilters_real_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [ResponseStarted]\nrules:\n- level: None\n  verbs: [watch]\n- level: RequestResponse\n  resources: [{group: \"\", resources: [pods, configmaps]}]\n- level: Metadata\n",
    )
    .expect("write policy");
    let config = dir.path().join("refilter.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\n\n[[filter]]\ntype = \"audit_policy\"\nmatch = \"audit\"\npolicy = \"{}\"\n\n[[output]]\ntype = \"stdout\"\nmatch = \"audit\"\n",
            policy.display()
        ),
    )
    .expect("write config");
    let input = std::fs::read_to_string(data("fixtures/events/openshift-clo-apiaudit-in-v1.jsonl"))
        .expect("fixture");
    let out = run_with_input(&config, input.as_bytes(), "warn");
    let written: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("UTF-8")
        .lines()
        .collect();
    // The expectation, computed from the input by the policy's plain meaning.
    let mut expected: Vec<(Option<&str>, Value)> = Vec::new();
    for line in input.lines() {
        let mut event: Value = serde_json::from_str(line).expect("JSON");
        if event["verb"] == "watch" || event["stage"] == "ResponseStarted" {
            continue;
        }
        let object_ref = &event["objectRef"];
        let core_pods_or_config_maps = object_ref.is_object()
            && object_ref.get("apiGroup").is_none()
            && object_ref.get("subresource").is_none()
            && matches!(object_ref["resource"].as_str(), Some("pods" | "configmaps"));
        if core_pods_or_config_maps || event["level"] == "Metadata" {
            expected.push((Some(line), event));
            continue;
        }
        let map = event.as_object_mut().expect("object");
        map.shift_remove("requestObject");
        map.shift_remove("responseObject");
        map.insert("level".into(), json!("Metadata"));
        expected.push((None, event));
    }
    assert!(
        expected.len() > 50 && expected.len() < 100,
        "{}",
        expected.len()
    );
    assert_eq!(written.len(), expected.len());
    for ((raw, want), got) in expected.iter().zip(&written) {
        match raw {
            Some(raw) => assert_eq!(got, raw, "unchanged events keep their bytes"),
            None => assert_eq!(&serde_json::from_str::<Value>(got).expect("JSON"), want),
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_helper_is_standard() {
    assert_eq!(base64(b"hunter2"), "aHVudGVyMg==");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"abc"), "YWJj");
}

mod canary;
mod multi_cluster;
