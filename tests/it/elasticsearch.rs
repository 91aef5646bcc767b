//! The `elasticsearch` output end to end: stdin -> auditrail -> an
//! Elasticsearch-compatible `_bulk` test server.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::http_output::{event, start_piped};
use crate::support::{data, wait_until};
use crate::test_server::{Mode, TestServer};

/// An agent from stdin to one `elasticsearch` output named `es`;
/// `endpoints` is the TOML array's content.
pub fn config(endpoints: &str, extra: &str) -> String {
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
fn run(config: &str, lines: &str) -> crate::support::Exit {
    let (agent, mut stdin) = start_piped(config);
    stdin.write_all(lines.as_bytes()).unwrap();
    drop(stdin);
    agent.wait().assert_success()
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

/// Runs the agent over `lines` and returns how long it took to deliver
/// everything and exit.
fn timed_run(config: &str, lines: &str) -> Duration {
    let started = std::time::Instant::now();
    run(config, lines);
    started.elapsed()
}

/// Issue 17: one document in seven answered 429 (`es_rejected_execution_exception`)
/// once must not hold up the batches behind it. 20,000 events are indexed
/// exactly once, in at most twice the time they take with no rejections
/// (best of two runs each, compared as a ratio in this one run).
#[test]
fn rejected_items_go_back_into_the_stream_without_holding_up_other_batches() {
    const EVENTS: usize = 20_000;
    let lines = synthetic(EVENTS, 10);
    let measure = |reject: Option<usize>| {
        let mut best = Duration::MAX;
        for _ in 0..2 {
            let server = TestServer::start();
            server.es(|es| es.reject_one_in = reject);
            let took = timed_run(&config(&endpoint(&server), ""), &lines);
            let (docs, statuses) = server.es(|es| (es.docs.len(), es.item_statuses.clone()));
            assert_eq!(docs, EVENTS, "every event indexed");
            assert_eq!(statuses.get(&201), Some(&EVENTS), "each indexed once");
            assert_eq!(statuses.get(&409), None, "nothing indexed was sent again");
            if let Some(n) = reject {
                assert_eq!(statuses.get(&429), Some(&(EVENTS / n)));
            }
            best = best.min(took);
        }
        best
    };
    let clean = measure(None);
    let rejected = measure(Some(7));
    let ratio = rejected.as_secs_f64() / clean.as_secs_f64();
    println!(
        "{EVENTS} events: {clean:.2?} without rejections, {rejected:.2?} with one in seven rejected once (ratio {ratio:.2})"
    );
    assert!(
        ratio <= 2.0,
        "rejections made delivery {ratio:.2} times slower"
    );
}

/// A remote that answers badly: while it does, the events are retried and
/// the agent (whose stdin has ended) keeps them, unacknowledged, reporting
/// the failure once with the server's own reason; once it answers like
/// Elasticsearch, every event is indexed exactly once and nothing is
/// dead-lettered. The emulated server plays the bad remote: a real node
/// cannot be made to answer these on demand.
fn bad_answers_are_retried_with_the_servers_reason(bad: Mode, short_answers: usize, reason: &str) {
    const EVENTS: usize = 300;
    let server = TestServer::start();
    server.set_mode(bad);
    server.es(|es| es.short_answers = short_answers);
    let (mut agent, mut stdin) =
        start_piped(&config(&endpoint(&server), r#"batch = { max_size = 100 }"#));
    stdin.write_all(synthetic(EVENTS, 10).as_bytes()).unwrap();
    drop(stdin);
    if short_answers == 0 {
        assert!(
            wait_until(Duration::from_secs(30), || server.requests().len() >= 6),
            "the batches were retried"
        );
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "nothing was given up"
        );
        server.set_mode(Mode::Ok);
    }
    let agent = agent.wait().assert_success();
    let reported = agent.log.lines().filter(|l| l.contains(reason)).count();
    assert_eq!(reported, 1, "one report of `{reason}` in:\n{}", agent.log);
    let (docs, statuses) = server.es(|es| (es.docs.len(), es.item_statuses.clone()));
    assert_eq!(docs, EVENTS);
    assert_eq!(statuses.get(&201), Some(&EVENTS), "each indexed once");
    assert!(!agent.path("dead-letter/es.ndjson").exists());
}

const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// A proxy in front of the cluster answers its HTML error page.
#[test]
fn a_proxy_answering_html_is_retried_and_reported_with_its_title() {
    bad_answers_are_retried_with_the_servers_reason(
        Mode::Respond(502, "text/html", NGINX_502),
        0,
        "HTTP 502 Bad Gateway: an HTML page: 502 Bad Gateway",
    );
}

/// A 200 whose body is not a `_bulk` answer (a captive portal's page,
/// another API) acknowledges nothing.
#[test]
fn a_200_that_is_not_a_bulk_answer_acknowledges_nothing() {
    bad_answers_are_retried_with_the_servers_reason(
        Mode::Respond(
            200,
            "text/html",
            "<html><head><title>Sign in to continue</title></head><body>…</body></html>",
        ),
        0,
        "not a bulk response (an HTML page: Sign in to continue)",
    );
}

/// Wrong credentials: Elasticsearch's own reason, and the events wait for
/// the credentials to be fixed rather than being dropped.
#[test]
fn wrong_credentials_are_reported_with_elasticsearchs_reason_and_retried() {
    bad_answers_are_retried_with_the_servers_reason(
        Mode::Respond(
            401,
            "application/json",
            r#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user [auditrail] for REST request [/_bulk]"}],"type":"security_exception","reason":"unable to authenticate user [auditrail] for REST request [/_bulk]"},"status":401}"#,
        ),
        0,
        "HTTP 401 Unauthorized: security_exception: unable to authenticate user [auditrail] for REST request [/_bulk] (check the output's `auth`)",
    );
}

/// An answer with fewer items than documents sent proves nothing about the
/// missing ones: the whole request goes again, and the documents already
/// indexed answer 409 (counted as delivered), so each is indexed once.
#[test]
fn an_answer_with_missing_items_sends_the_request_again() {
    bad_answers_are_retried_with_the_servers_reason(Mode::Ok, 1, "99 items for 100 documents sent");
}

/// `api_key_file` and `password_file` are read at config load: the key is
/// sent, and a missing file is a config error at its line and column.
#[test]
fn credential_files_are_read_at_load_and_a_missing_one_is_a_config_error() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("es-api-key");
    std::fs::write(&key, "c2VjcmV0LWtleQ==\n").unwrap();
    let extra = format!("auth = {{ api_key_file = \"{}\" }}", key.display());
    run(&config(&endpoint(&server), &extra), &synthetic(3, 10));
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.headers["authorization"] == "ApiKey c2VjcmV0LWtleQ==")
    );

    let missing = dir.path().join("no-such-password");
    let text = config(
        &endpoint(&server),
        &format!(
            "auth = {{ user = \"auditrail\", password_file = \"{}\" }}",
            missing.display()
        ),
    )
    .replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("auditrail.toml");
    std::fs::write(&path, &text).unwrap();
    let output = crate::support::auditrail()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("password_file"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("cannot read `{}`", missing.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("auditrail.toml:{line}:")),
        "{stderr}"
    );
}

/// A rotated credential file takes effect on reload (SIGHUP): requests
/// after the reload carry the new key.
#[test]
fn a_rotated_credential_file_is_read_again_on_reload() {
    let server = TestServer::start();
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("es-api-key");
    std::fs::write(&key, "b2xkLWtleQ==\n").unwrap();
    let text = config(
        &endpoint(&server),
        &format!(
            "auth = {{ api_key_file = \"{}\" }}\nbatch = {{ max_wait = \"50ms\" }}",
            key.display()
        ),
    );
    let mut agent = crate::support::Agent::builder().stdin().start(&text);
    let mut stdin = agent.stdin.take().unwrap();
    stdin.write_all(synthetic(5, 10).as_bytes()).unwrap();
    stdin.flush().unwrap();
    assert!(wait_until(Duration::from_secs(30), || server
        .es(|es| es.docs.len())
        == 5));
    std::fs::write(&key, "bmV3LWtleQ==\n").unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(30), || agent
            .log_count("Config reloaded")
            == 1),
        "{}",
        agent.log()
    );
    let more: String = (5..10).map(|i| event(i, 10) + "\n").collect();
    stdin.write_all(more.as_bytes()).unwrap();
    drop(stdin);
    assert!(agent.wait_exit().success());
    let keys: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys.first().map(String::as_str),
        Some("ApiKey b2xkLWtleQ==")
    );
    assert_eq!(keys.last().map(String::as_str), Some("ApiKey bmV3LWtleQ=="));
    assert_eq!(server.es(|es| es.docs.len()), 10);
}
