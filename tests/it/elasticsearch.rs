//! The `elasticsearch` output end to end: stdin -> auditrail -> an
//! Elasticsearch-compatible `_bulk` test server.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::http_output::{event, start_piped};
use crate::support::{data, wait_until};
use crate::test_server::{Mode, TestServer};

fn config(endpoints: &str, extra: &str) -> String {
    format!(
        r#"data_dir = "{{dir}}"
[[source]]
type = "stdin"
tag = "audit"
[[output]]
name = "es"
type = "elasticsearch"
match = "**"
endpoints = [{endpoints}]
initial_backoff = "100ms"
max_backoff = "500ms"
{extra}
"#
    )
}

fn endpoint(server: &TestServer) -> String {
    format!("\"{}\"", server.url(""))
}

/// Runs the agent over `lines` until it exits.
fn run(config: &str, lines: &str) -> crate::support::Agent {
    let (mut agent, mut stdin) = start_piped(config);
    stdin.write_all(lines.as_bytes()).unwrap();
    drop(stdin);
    assert!(agent.wait(Duration::from_secs(60)).success());
    agent
}

fn synthetic(n: usize, pad: usize) -> String {
    (0..n).map(|i| event(i, pad) + "\n").collect()
}

/// Real kube-apiserver events: `_bulk` NDJSON with `create` + `<auditID>-<stage>`
/// ids, `@timestamp` from `stageTimestamp`, bodies as strings, daily index.
#[test]
fn real_events_are_indexed_with_ids_timestamps_and_string_bodies() {
    let server = TestServer::start();
    let lines = std::fs::read_to_string(data("netout/real-apiserver-audit-300.log")).unwrap();
    let extra = r#"encode_bodies = true
batch = { throttle_enable = false }"#;
    let agent = run(&config(&endpoint(&server), extra), &lines);
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.uri,
            "/_bulk?filter_path=errors%2Citems.*.status%2Citems.*.error"
        );
        assert_eq!(r.headers["content-type"], "application/x-ndjson");
        assert!(r.body.ends_with(b"\n"));
    }
    let first_action: Value =
        serde_json::from_slice(requests[0].body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    let keys: HashSet<String> = lines
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            format!(
                "{}-{}",
                v["auditID"].as_str().unwrap(),
                v["stage"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(first_action["create"]["_index"], "kube-audit-2026.11.22");
    assert!(keys.contains(first_action["create"]["_id"].as_str().unwrap()));
    let docs = server.es(|es| es.docs.clone());
    assert_eq!(docs.len(), keys.len(), "one document per (auditID, stage)");
    for line in lines.lines() {
        let original: Value = serde_json::from_str(line).unwrap();
        let key = format!(
            "kube-audit-2026.11.22/{}-{}",
            original["auditID"].as_str().unwrap(),
            original["stage"].as_str().unwrap()
        );
        let doc = &docs[&key];
        assert_eq!(doc["@timestamp"], original["stageTimestamp"]);
        assert_eq!(doc["requestURI"], original["requestURI"]);
        if let Some(body) = original.get("responseObject") {
            let text = doc["responseObject"].as_str().expect("a JSON string");
            assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), body);
        }
    }
    assert!(!agent.path("dead-letter/es.ndjson").exists());
}

/// Items answered 429 are sent again alone; nothing is duplicated.
#[test]
fn partial_failures_are_retried_item_by_item_without_duplicates() {
    let server = TestServer::start();
    server.es(|es| es.reject_next_items = 30);
    let extra = r#"batch = { throttle_enable = false, max_size = 100 }"#;
    run(&config(&endpoint(&server), extra), &synthetic(100, 10));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one bulk, one retry of the failed items");
    let retried = requests[1]
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
        / 2;
    assert_eq!(retried, 30);
    let (docs, statuses) = server.es(|es| (es.docs.len(), es.item_statuses.clone()));
    assert_eq!(docs, 100);
    assert_eq!(statuses.get(&429), Some(&30));
    assert_eq!(
        statuses.get(&409),
        None,
        "no item was sent twice after it succeeded"
    );
}

/// A replay (as after a crash, or a response lost after indexing) answers
/// 409 for every item: counted as delivered, no duplicates, no dead letters.
#[test]
fn replayed_events_conflict_and_count_as_delivered() {
    let server = TestServer::start();
    let extra = r#"batch = { throttle_enable = false }"#;
    let lines = synthetic(50, 10);
    run(&config(&endpoint(&server), extra), &lines);
    let agent = run(&config(&endpoint(&server), extra), &lines);
    let (docs, statuses) = server.es(|es| (es.docs.len(), es.item_statuses.clone()));
    assert_eq!(docs, 50);
    assert_eq!(statuses.get(&409), Some(&50));
    assert!(!agent.path("dead-letter/es.ndjson").exists());
}

/// `responseObject.status` is an object in one event and a string in the
/// next (a Status response): Elasticsearch's dynamic mapping rejects the
/// second with 400, which goes to the dead-letter file with the reason.
/// With `encode_bodies` the bodies are strings and both are indexed.
#[test]
fn mapping_conflicts_are_dead_lettered_and_encode_bodies_avoids_them() {
    let lines = concat!(
        r#"{"auditID":"a","stage":"ResponseComplete","responseObject":{"status":{"phase":"Running"}},"stageTimestamp":"2026-11-22T10:00:00.000001Z"}"#,
        "\n",
        r#"{"auditID":"b","stage":"ResponseComplete","responseObject":{"kind":"Status","status":"Failure"},"stageTimestamp":"2026-11-22T10:00:00.000002Z"}"#,
        "\n"
    );
    let server = TestServer::start();
    let extra = r#"batch = { throttle_enable = false }"#;
    let agent = run(&config(&endpoint(&server), extra), lines);
    assert_eq!(server.es(|es| es.docs.len()), 1);
    assert_eq!(server.requests().len(), 1, "a rejected item is not retried");
    let dead = std::fs::read_to_string(agent.path("dead-letter/es.ndjson")).unwrap();
    let dead: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event"]["auditID"], "b");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("status 400: mapper_parsing_exception"),
        "{reason}"
    );

    let server = TestServer::start();
    let extra = "encode_bodies = true\nbatch = { throttle_enable = false }";
    let agent = run(&config(&endpoint(&server), extra), lines);
    assert_eq!(server.es(|es| es.docs.len()), 2);
    assert!(!agent.path("dead-letter/es.ndjson").exists());
}

/// HTTP 413 splits the batch in halves until each part fits.
#[test]
fn too_large_requests_are_split_in_halves() {
    let server = TestServer::start();
    server.es(|es| es.max_body = Some(40_000));
    let extra = r#"batch = { throttle_enable = false, max_size = 200 }"#;
    run(&config(&endpoint(&server), extra), &synthetic(200, 500));
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.status == 413));
    assert!(
        requests
            .iter()
            .filter(|r| r.status == 200)
            .all(|r| r.body.len() <= 40_000)
    );
    assert_eq!(server.es(|es| es.docs.len()), 200);
}

/// gzip bodies carry `Content-Encoding: gzip`; a dead endpoint in the list
/// is skipped and the live one takes everything.
#[test]
fn gzip_and_a_dead_endpoint_among_live_ones() {
    let server = TestServer::start();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("\"http://{}\"", dead.local_addr().unwrap());
    drop(dead);
    let endpoints = format!("{dead_url}, {}", endpoint(&server));
    let extra = r#"compress = "gzip"
batch = { throttle_enable = false, max_size = 10 }"#;
    run(&config(&endpoints, extra), &synthetic(100, 10));
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.headers["content-encoding"] == "gzip")
    );
    assert_eq!(server.es(|es| es.docs.len()), 100);
}

/// An Elasticsearch that is down neither delays start-up nor holds back
/// another output.
#[test]
fn an_unreachable_cluster_does_not_block_other_outputs() {
    let webhook = TestServer::start();
    let es = TestServer::start();
    es.set_mode(Mode::Status(503, None));
    let config = format!(
        r#"data_dir = "{{dir}}"
shutdown_timeout = "1s"
[[source]]
type = "stdin"
[[output]]
type = "elasticsearch"
match = "**"
endpoints = ["{}"]
[[output]]
type = "http"
match = "**"
url = "{}"
batch = {{ max_wait = "100ms" }}
"#,
        es.url(""),
        webhook.url("/")
    );
    let (agent, mut stdin) = start_piped(&config);
    stdin.write_all(synthetic(100, 10).as_bytes()).unwrap();
    assert!(wait_until(Duration::from_secs(20), || webhook
        .accepted_events()
        .len()
        == 100));
    assert!(es.requests().iter().all(|r| r.status == 503));
    drop(stdin);
    drop(agent);
}

/// The shipped index template cannot let bodies explode the mapping:
/// nothing unlisted is mapped, bodies are not parsed, annotations are one
/// `flattened` field, and every field is well under the field limit.
#[test]
fn shipped_index_template_keeps_bodies_out_of_the_mapping() {
    let text = std::fs::read_to_string(crate::support::repo(
        "conf/elasticsearch/audit-index-template.json",
    ))
    .unwrap();
    let template: Value = serde_json::from_str(&text).unwrap();
    let mappings = &template["template"]["mappings"];
    assert_eq!(mappings["dynamic"], false);
    let properties = &mappings["properties"];
    for body in ["requestObject", "responseObject"] {
        assert_eq!(properties[body]["enabled"], false, "{body}");
    }
    assert_eq!(properties["annotations"]["type"], "flattened");
    assert_eq!(properties["@timestamp"]["type"], "date");
    assert_eq!(properties["auditID"]["type"], "keyword");
    fn count(props: &Value) -> usize {
        props
            .as_object()
            .map_or(0, |o| o.values().map(|f| 1 + count(&f["properties"])).sum())
    }
    assert!(count(properties) < 100);
    // Every top-level field of real events is either mapped or left to `_source`.
    let lines = std::fs::read_to_string(data("netout/real-apiserver-audit-300.log")).unwrap();
    let mapped: HashSet<&str> = properties
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for line in lines.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        for key in event.as_object().unwrap().keys() {
            assert!(
                mapped.contains(key.as_str()),
                "audit field `{key}` has no mapping"
            );
        }
    }
}
