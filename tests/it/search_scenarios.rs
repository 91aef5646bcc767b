//! The `elasticsearch` output against a real node (`tests/servers/*`), one
//! scenario a function, run on OpenSearch by `opensearch.rs` and on
//! Elasticsearch by `elasticsearch_node.rs`: real kube-apiserver events from
//! `tests/data`, checked with real queries. One node per product is shared
//! by the scenarios that need no node settings (each uses its own index,
//! template and pipeline names); the write-queue and restart scenarios start
//! their own.

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::http_output::start_piped;
use crate::servers::{Product, SearchServer, shared};
use crate::support::{Agent, Exit, data, metric, repo, wait_until};

/// One `#[test]` per scenario, on `$product`'s node.
macro_rules! scenario_tests {
    ($product:expr) => {
        scenario_tests!($product; real_events_are_searchable_and_a_replay_adds_no_duplicates,
            daily_indices_follow_the_events_stage_timestamp,
            a_data_stream_takes_every_event_once,
            real_mapping_errors_are_dead_lettered_with_the_servers_reason,
            the_shipped_template_takes_every_real_body,
            blocked_indices_hold_events_until_the_block_is_lifted,
            write_queue_rejections_are_retried_until_every_event_is_in,
            a_node_restart_mid_run_loses_nothing);
    };
    ($product:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                crate::search_scenarios::$name($product);
            }
        )*
    };
}
pub(crate) use scenario_tests;

/// How long events may take to show up once the node can take them.
const SETTLE: Duration = Duration::from_secs(120);

pub fn config(node: &SearchServer, extra: &str) -> String {
    crate::elasticsearch::config(&format!("\"{}\"", node.url()), extra)
}

/// The same with `[api]` for `/metrics`, and short batches, for agents
/// that stay up while the test changes the node under them.
pub fn live_config(node: &SearchServer, extra: &str) -> String {
    config(
        node,
        &format!("batch = {{ max_wait = \"100ms\", throttle_enable = false }}\n{extra}"),
    )
    .replacen(
        "[[source]]",
        "[api]\nlisten = \"127.0.0.1:0\"\n[[source]]",
        1,
    )
}

/// Runs the agent over `lines` until it has delivered them and exited.
pub fn run(config: &str, lines: &str) -> Exit {
    let (agent, mut stdin) = start_piped(config);
    stdin.write_all(lines.as_bytes()).expect("write events");
    drop(stdin);
    agent.wait().assert_success()
}

/// The 300 real kube-apiserver events (all of 2026-11-22, metadata only).
pub fn real_events() -> Vec<Value> {
    std::fs::read_to_string(data("netout/real-apiserver-audit-300.log"))
        .expect("real events")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event"))
        .collect()
}

/// The events of a real kube-apiserver's webhook posts, bodies included
/// (run1-batch has Deployments, Pods, `Status` answers, patches).
pub fn webhook_events() -> Vec<Value> {
    let posts = std::fs::read_to_string(data("real-apiserver/run1-batch/webhook-posts.jsonl"))
        .expect("webhook posts");
    let mut events = Vec::new();
    for post in posts.lines() {
        let post: Value = serde_json::from_str(post).expect("a post");
        let body: Value =
            serde_json::from_str(post["body"].as_str().expect("a body")).expect("an EventList");
        events.extend(body["items"].as_array().expect("items").iter().cloned());
    }
    events
}

pub fn lines(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

pub fn key(event: &Value) -> String {
    format!(
        "{}-{}",
        event["auditID"].as_str().expect("auditID"),
        event["stage"].as_str().expect("stage")
    )
}

pub fn unique(events: &[Value]) -> u64 {
    events.iter().map(key).collect::<HashSet<_>>().len() as u64
}

/// Events whose value at `pointer` equals `value`.
pub fn expected(events: &[Value], pointer: &str, value: &Value) -> u64 {
    events
        .iter()
        .filter(|e| e.pointer(pointer) == Some(value))
        .count() as u64
}

pub fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead-letter/es.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter"))
        .collect()
}

pub fn shipped_template(file: &str) -> Value {
    let text = std::fs::read_to_string(repo(&format!("conf/elasticsearch/{file}")))
        .expect("shipped template");
    serde_json::from_str(&text).expect("template JSON")
}

/// Installs the node's shipped template as `name` for `patterns`.
pub fn install_template(node: &SearchServer, name: &str, patterns: &[&str], data_stream: bool) {
    let mut template = shipped_template(node.product.template_file());
    template["index_patterns"] = json!(patterns);
    if data_stream {
        template["data_stream"] = json!({});
    }
    node.ok(
        "PUT",
        &format!("/_index_template/{name}"),
        &template.to_string(),
    );
}

/// Failed requests plus retried items of the agent's output `es`.
pub fn refusals(agent: &Agent) -> f64 {
    let (_, text) = agent.get("/metrics");
    metric(&text, r#"auditrail_errors_total{component="es"}"#)
        + metric(
            &text,
            r#"auditrail_output_retried_events_total{component="es"}"#,
        )
}

/// Waits until the agent's output `es` has met more refusals (failed
/// requests or retried items) than `before`.
pub fn wait_for_refusals(agent: &Agent, before: f64) {
    let refused = wait_until(SETTLE, || refusals(agent) > before);
    assert!(
        refused,
        "the agent never met a refusal; log:\n{}",
        agent.log()
    );
}

/// Real events through the shipped template: `create` with
/// `<auditID>-<stage>` ids, typed fields answer term queries, and a second
/// run of the same events (a replay after a crash) adds nothing.
pub fn real_events_are_searchable_and_a_replay_adds_no_duplicates(product: Product) {
    let node = shared(product);
    install_template(node, "it-ids", &["it-ids-*"], false);
    let events = real_events();
    let config = config(node, r#"index = "it-ids-%Y.%m.%d""#);
    let agent = run(&config, &lines(&events));
    assert!(dead_letters(agent.dir.path()).is_empty());
    let index = "it-ids-2026.11.22";
    assert_eq!(node.count_all(index), unique(&events));
    for (field, pointer, value) in [
        ("verb", "/verb", json!("create")),
        ("verb", "/verb", json!("get")),
        ("user.username", "/user/username", json!("system:apiserver")),
        (
            "objectRef.namespace",
            "/objectRef/namespace",
            json!("kube-system"),
        ),
        ("responseStatus.code", "/responseStatus/code", json!(404)),
        ("responseStatus.code", "/responseStatus/code", json!(201)),
        (
            "annotations.authorization.k8s.io/decision",
            "/annotations/authorization.k8s.io~1decision",
            json!("allow"),
        ),
    ] {
        let want = expected(&events, pointer, &value);
        assert!(want > 0, "{field} = {value} is in the data");
        assert_eq!(
            node.count_term(index, field, value.clone()),
            want,
            "{field} = {value}"
        );
    }
    let first = &events[0];
    let doc = node.ok("GET", &format!("/{index}/_doc/{}", key(first)), "");
    assert_eq!(doc["_source"]["@timestamp"], first["stageTimestamp"]);
    assert_eq!(doc["_source"]["requestURI"], first["requestURI"]);

    let again = run(&config, &lines(&events));
    assert!(dead_letters(again.dir.path()).is_empty());
    assert_eq!(node.count_all(index), unique(&events), "no duplicates");
}

/// `index = "...-%Y.%m.%d"` names the day of each event's
/// `stageTimestamp`, not of the run: events moved to the next day land in
/// the next day's index.
pub fn daily_indices_follow_the_events_stage_timestamp(product: Product) {
    let node = shared(product);
    let mut events = real_events();
    let half = events.len() / 2;
    for event in &mut events[half..] {
        let stamp = event["stageTimestamp"].as_str().unwrap().to_owned();
        event["stageTimestamp"] = json!(stamp.replace("2026-11-22T", "2026-11-23T"));
    }
    let agent = run(
        &config(node, r#"index = "it-daily-%Y.%m.%d""#),
        &lines(&events),
    );
    assert!(dead_letters(agent.dir.path()).is_empty());
    let indices = node.ok("GET", "/_cat/indices/it-daily-*?format=json", "");
    let names: BTreeSet<&str> = indices
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["index"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["it-daily-2026.11.22", "it-daily-2026.11.23"])
    );
    assert_eq!(node.count_all("it-daily-2026.11.22"), half as u64);
    assert_eq!(
        node.count_all("it-daily-2026.11.23"),
        (events.len() - half) as u64
    );
}

/// `data_stream = ...` writes into a real data stream (its template from
/// the shipped one plus `"data_stream": {}`); a replay adds nothing.
pub fn a_data_stream_takes_every_event_once(product: Product) {
    let node = shared(product);
    install_template(node, "it-stream", &["logs-auditrail.it-*"], true);
    let stream = "logs-auditrail.it-default";
    let events = real_events();
    let config = config(node, &format!("data_stream = \"{stream}\""));
    let agent = run(&config, &lines(&events));
    assert!(dead_letters(agent.dir.path()).is_empty());
    // The stream's backing indices, each saying whose it is.
    let backing = node.ok("GET", &format!("/{stream}"), "");
    let backing = backing.as_object().unwrap();
    assert_eq!(backing.len(), 1, "{backing:?}");
    for (index, info) in backing {
        assert!(index.starts_with(&format!(".ds-{stream}-")), "{index}");
        assert_eq!(info["data_stream"], stream, "{info}");
    }
    if product == Product::OpenSearch {
        // Elasticsearch's `_data_stream` API is in a module that Maven
        // Central does not publish; OpenSearch has it in the server.
        let info = node.ok("GET", &format!("/_data_stream/{stream}"), "");
        let streams = info["data_streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{info}");
        assert_eq!(streams[0]["timestamp_field"]["name"], "@timestamp");
        assert_eq!(streams[0]["template"], "it-stream");
    }
    assert_eq!(node.count_all(stream), unique(&events));
    assert_eq!(
        node.count_term(stream, "verb", "list"),
        expected(&events, "/verb", &json!("list"))
    );
    run(&config, &lines(&events));
    assert_eq!(node.count_all(stream), unique(&events), "no duplicates");
}

/// Whether any key in `value` is made of dots only, as `managedFields`'
/// `fieldsV1` has (`"."`).
fn has_dots_only_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.chars().all(|c| c == '.') || has_dots_only_key(v)),
        Value::Array(items) => items.iter().any(has_dots_only_key),
        _ => false,
    }
}

/// Without the template, OpenSearch maps real bodies dynamically and
/// refuses some, in its own words: a real `Status` answer (`status` a
/// string) after a real Namespace (`status` an object) is a type conflict,
/// and a real Deployment with `managedFields` has `"."` keys. Both go to
/// the dead-letter file with the server's reason, and are not retried.
pub fn real_mapping_errors_are_dead_lettered_with_the_servers_reason(product: Product) {
    let node = shared(product);
    let events = webhook_events();
    let find = |kind: &str, dots: bool| {
        events
            .iter()
            .find(|e| {
                e["responseObject"]["kind"] == kind
                    && has_dots_only_key(e) == dots
                    && !e["responseObject"]["status"].is_null()
            })
            .unwrap_or_else(|| panic!("a {kind} answer in the data"))
            .clone()
    };
    let namespace = find("Namespace", false);
    assert!(namespace["responseObject"]["status"].is_object());
    let status = find("Status", false);
    assert!(status["responseObject"]["status"].is_string());
    let deployment = find("Deployment", true);
    let agent = run(
        &config(node, r#"index = "it-conflict-%Y.%m.%d""#),
        &lines(&[namespace.clone(), status.clone(), deployment.clone()]),
    );
    let dead = dead_letters(agent.dir.path());
    let reason_of = |event: &Value| {
        dead.iter()
            .find(|d| d["event"]["auditID"] == event["auditID"])
            .map(|d| d["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("{} is not dead-lettered: {dead:?}", event["auditID"]))
    };
    assert_eq!(dead.len(), 2, "{dead:?}");
    // OpenSearch: `mapper_parsing_exception: object mapping for ...`;
    // Elasticsearch 8: `document_parsing_exception: [1:852] object mapping for ...`.
    let error_type = match product {
        Product::OpenSearch => "mapper_parsing_exception",
        Product::Elasticsearch => "document_parsing_exception",
    };
    let reason = reason_of(&status);
    assert!(
        reason.starts_with(&format!("status 400: {error_type}: "))
            && reason.ends_with(
                "object mapping for [responseObject.status] tried to parse field [status] \
                 as object, but found a concrete value"
            ),
        "{reason}"
    );
    // OpenSearch says `failed to parse` (its `caused_by`: `field name cannot
    // contain only the character [.]`); Elasticsearch 8 `[1:1916] failed to
    // parse: field name cannot contain only dots`.
    let reason = reason_of(&deployment);
    assert!(
        reason.starts_with(&format!("status 400: {error_type}: "))
            && reason.contains("failed to parse"),
        "{reason}"
    );
    let index = "it-conflict-*";
    assert_eq!(node.count_all(index), 1);
    assert_eq!(
        node.count_term(index, "auditID.keyword", namespace["auditID"].clone()),
        1
    );
}

/// The shipped template keeps every real body out of the mapping: all
/// of a real apiserver's events, bodies and patches included, are indexed.
pub fn the_shipped_template_takes_every_real_body(product: Product) {
    let node = shared(product);
    install_template(node, "it-bodies", &["it-bodies-*"], false);
    let events = webhook_events();
    let agent = run(
        &config(node, r#"index = "it-bodies-%Y.%m.%d""#),
        &lines(&events),
    );
    assert_eq!(dead_letters(agent.dir.path()), Vec::<Value>::new());
    assert_eq!(node.count_all("it-bodies-*"), unique(&events));
    let mapping = node.ok("GET", "/it-bodies-*/_mapping", "");
    for index in mapping.as_object().unwrap().values() {
        let properties = &index["mappings"]["properties"];
        assert_eq!(properties["responseObject"]["enabled"], false);
        assert!(properties["responseObject"].get("properties").is_none());
    }
}

/// Blocked indices (`index.blocks.write`, 403, and the flood-stage block
/// `index.blocks.read_only_allow_delete`, 429) hold the events back; once
/// the block is lifted, every event is in, none twice, none dead-lettered.
pub fn blocked_indices_hold_events_until_the_block_is_lifted(product: Product) {
    let node = shared(product);
    let events = real_events();
    for (name, block) in [
        ("write", "index.blocks.write"),
        ("flood", "index.blocks.read_only_allow_delete"),
    ] {
        let index = format!("it-block-{name}-2026.11.22");
        node.ok(
            "PUT",
            &format!("/{index}"),
            &json!({ "settings": { block: true } }).to_string(),
        );
        let mut agent = Agent::builder().stdin().start(&live_config(
            node,
            &format!("index = \"it-block-{name}-%Y.%m.%d\""),
        ));
        let mut stdin = agent.stdin.take().expect("stdin");
        stdin.write_all(lines(&events).as_bytes()).unwrap();
        wait_for_refusals(&agent, 0.0);
        assert_eq!(node.count_all(&index), 0);
        node.ok(
            "PUT",
            &format!("/{index}/_settings"),
            &json!({ block: null }).to_string(),
        );
        drop(stdin);
        assert!(agent.wait_exit().success());
        assert!(dead_letters(agent.dir.path()).is_empty());
        assert_eq!(node.count_all(&index), unique(&events), "{block}");
    }
}

/// A node with one write thread and a write queue of one rejects most of a
/// bulk spread over many shards (`es_rejected_execution_exception`, 429):
/// the rejected items are sent again until every event is in.
pub fn write_queue_rejections_are_retried_until_every_event_is_in(product: Product) {
    let node = SearchServer::start(
        product,
        &["thread_pool.write.size=1", "thread_pool.write.queue_size=1"],
    );
    node.ok(
        "PUT",
        "/_index_template/it-queue",
        r#"{"index_patterns":["it-queue-*"],"template":{"settings":{"number_of_shards":24,"number_of_replicas":0}}}"#,
    );
    let events = real_events();
    let agent = run(
        &config(
            &node,
            "index = \"it-queue-%Y.%m.%d\"\nencode_bodies = true\nbatch = { max_size = 300, throttle_enable = false }",
        ),
        &lines(&events),
    );
    assert!(dead_letters(agent.dir.path()).is_empty());
    assert_eq!(node.count_all("it-queue-2026.11.22"), unique(&events));
    let stats = node.ok("GET", "/_nodes/stats/thread_pool", "");
    let rejected: u64 = stats["nodes"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n["thread_pool"]["write"]["rejected"].as_u64().unwrap_or(0))
        .sum();
    assert!(rejected > 0, "the node rejected nothing: {stats}");
}

/// The node is killed (`kill -9`) while the agent runs and started again on
/// the same data: events sent before, during and after are all there, once.
pub fn a_node_restart_mid_run_loses_nothing(product: Product) {
    let node = SearchServer::start(product, &[]);
    let events = real_events();
    let (before, after) = events.split_at(events.len() / 2);
    let index = "it-restart-2026.11.22";
    let mut agent = Agent::builder()
        .stdin()
        .start(&live_config(&node, r#"index = "it-restart-%Y.%m.%d""#));
    let mut stdin = agent.stdin.take().expect("stdin");
    stdin.write_all(lines(before).as_bytes()).unwrap();
    assert!(
        wait_until(SETTLE, || node.count_all(index) == before.len() as u64),
        "the first half never arrived; log:\n{}",
        agent.log()
    );
    let before_kill = refusals(&agent);
    node.kill();
    stdin.write_all(lines(after).as_bytes()).unwrap();
    wait_for_refusals(&agent, before_kill);
    node.restart();
    drop(stdin);
    assert!(agent.wait_exit().success());
    assert!(dead_letters(agent.dir.path()).is_empty());
    assert_eq!(node.count_all(index), unique(&events));
}
