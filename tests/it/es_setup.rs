//! `auditrail elasticsearch setup` against the real OpenSearch 2.19 and
//! Elasticsearch 8.19 nodes (`tests/servers/`): it finds the flavor and
//! version, installs the template that suits it (`flat_object` or
//! `flattened`), says so once and "unchanged" after, and real events
//! indexed under that template answer term queries on the fields users
//! search. Neither node has a lifecycle plugin (Maven Central publishes
//! neither Elasticsearch's x-pack ILM module nor OpenSearch's
//! index-management plugin), so the policy step is skipped with the
//! server's own "no handler" answer. Errors: nothing listening, a template
//! the server refuses, bad config and output names.

use std::collections::HashSet;
use std::process::Output;

use serde_json::{Value, json};

use crate::search_scenarios::{key, run, webhook_events};
use crate::servers::{Product, SearchServer, shared};
use crate::support::{auditrail, data};

/// One `#[test]` per product for each scenario.
macro_rules! on_both_nodes {
    ($($name:ident),* $(,)?) => {
        mod opensearch_node {
            $( #[test] fn $name() { super::$name(crate::servers::Product::OpenSearch); } )*
        }
        mod elasticsearch_node {
            $( #[test] fn $name() { super::$name(crate::servers::Product::Elasticsearch); } )*
        }
    };
}

on_both_nodes!(
    setup_installs_the_template_once_and_real_events_answer_term_queries,
    a_data_stream_gets_a_data_stream_template,
    every_event_in_the_test_data_indexes_with_no_rejection,
    a_changed_template_is_updated,
    a_template_the_server_refuses_fails_with_its_reason,
);

/// An agent config with the `elasticsearch` output `name` on `endpoints`
/// (quoted URLs).
fn config(name: &str, endpoints: &str, extra: &str) -> String {
    crate::elasticsearch::config(endpoints, extra)
        .replace("name = \"es\"", &format!("name = \"{name}\""))
}

fn endpoint(node: &SearchServer) -> String {
    format!("\"{}\"", node.url())
}

/// `auditrail elasticsearch setup -c <config> ARGS...`, the config written
/// to a temp dir.
fn setup(config: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auditrail.toml");
    std::fs::write(
        &path,
        config.replace("{dir}", &dir.path().display().to_string()),
    )
    .expect("write config");
    auditrail()
        .args(["elasticsearch", "setup", "-c"])
        .arg(&path)
        .args(args)
        .output()
        .expect("run auditrail")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs setup and expects exit 0; its stdout.
fn setup_ok(config: &str, args: &[&str]) -> String {
    let output = setup(config, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{}stderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// What the node is, as setup reports it.
fn server_line(node: &SearchServer) -> String {
    match node.product {
        Product::OpenSearch => "OpenSearch 2.19.6".into(),
        Product::Elasticsearch => "Elasticsearch 8.19.0".into(),
    }
}

/// The policy line on these nodes, which have no lifecycle plugin.
fn skipped_policy_line(node: &SearchServer, output: &str) -> String {
    let policy = format!("auditrail-{output}");
    match node.product {
        Product::OpenSearch => format!(
            "{output}: lifecycle policy {policy} (ISM, delete 30 days after creation): skipped: \
             this cluster has no ISM (the opensearch-index-management plugin): \
             GET /_plugins/_ism/policies/{policy} answered HTTP 400 Bad Request: \
             no handler found for uri [/_plugins/_ism/policies/{policy}] and method [GET]"
        ),
        Product::Elasticsearch => format!(
            "{output}: lifecycle policy {policy} (ILM, delete 30 days after creation): skipped: \
             this cluster has no ILM (index lifecycle management, part of Elasticsearch's \
             default distribution): GET /_ilm/policy/{policy} answered HTTP 400 Bad Request: \
             no handler found for uri [/_ilm/policy/{policy}] and method [GET]"
        ),
    }
}

fn flat_type(product: Product) -> &'static str {
    match product {
        Product::OpenSearch => "flat_object",
        Product::Elasticsearch => "flattened",
    }
}

/// The template `name` as the node gives it back.
fn installed_template(node: &SearchServer, name: &str) -> Value {
    let answer = node.ok("GET", &format!("/_index_template/{name}"), "");
    answer["index_templates"][0]["index_template"].clone()
}

/// The real webhook events (bodies, patches, several source IPs), once
/// each by `<auditID>-<stage>`.
fn unique_events() -> Vec<Value> {
    let mut seen = HashSet::new();
    webhook_events()
        .into_iter()
        .filter(|event| seen.insert(key(event)))
        .collect()
}

/// Setup on a real node, with a dead endpoint first (skipped for the next):
/// the template suited to the node, then "unchanged"; then the agent ships
/// real events with no rejection, and the fields users search answer term
/// queries with the number of events that hold each value.
pub fn setup_installs_the_template_once_and_real_events_answer_term_queries(product: Product) {
    let node = shared(product);
    let dead = format!("\"http://127.0.0.1:{}\"", closed_port());
    let setup_config = config(
        "setup-main",
        &format!("{dead}, {}", endpoint(node)),
        r#"index = "it-setup-%Y.%m.%d""#,
    );
    let first = setup_ok(&setup_config, &[]);
    let template_line = format!(
        "setup-main: index template auditrail-setup-main (it-setup-*, {})",
        flat_type(product)
    );
    assert_eq!(
        first,
        format!(
            "setup-main: {} is {}\n{}\n{template_line}: created\n",
            node.url(),
            server_line(node),
            skipped_policy_line(node, "setup-main"),
        )
    );
    let template = installed_template(node, "auditrail-setup-main");
    assert_eq!(template["index_patterns"], json!(["it-setup-*"]));
    let properties = &template["template"]["mappings"]["properties"];
    assert_eq!(properties["annotations"]["type"], flat_type(product));
    assert_eq!(
        properties["user"]["properties"]["extra"]["type"],
        flat_type(product)
    );
    assert!(template["template"]["settings"]["index"]["lifecycle"].is_null());

    let second = setup_ok(&setup_config, &[]);
    assert_eq!(second, first.replace(": created\n", ": unchanged\n"));

    let events = unique_events();
    let agent = run(
        &config(
            "setup-main",
            &endpoint(node),
            r#"index = "it-setup-%Y.%m.%d""#,
        ),
        &events.iter().map(|e| format!("{e}\n")).collect::<String>(),
    );
    assert_eq!(
        std::fs::read_to_string(agent.dir.path().join("dead-letter/setup-main.ndjson"))
            .unwrap_or_default(),
        "",
        "no event is rejected"
    );
    let index = "it-setup-*";
    assert_eq!(node.count_all(index), events.len() as u64);
    let mapping = node.ok("GET", "/it-setup-*/_mapping", "");
    for index in mapping.as_object().expect("indices").values() {
        let properties = &index["mappings"]["properties"];
        assert_eq!(properties["annotations"]["type"], flat_type(product));
        assert_eq!(properties["sourceIPs"]["type"], "ip");
    }
    let holding = |pointer: &str, value: &Value| {
        events
            .iter()
            .filter(|e| match e.pointer(pointer) {
                Some(Value::Array(items)) => items.contains(value),
                Some(found) => found == value,
                None => false,
            })
            .count() as u64
    };
    for (field, pointer, value) in [
        ("verb", "/verb", json!("create")),
        ("verb", "/verb", json!("patch")),
        ("user.username", "/user/username", json!("kubernetes-admin")),
        (
            "objectRef.namespace",
            "/objectRef/namespace",
            json!("kube-system"),
        ),
        ("responseStatus.code", "/responseStatus/code", json!(404)),
        ("responseStatus.code", "/responseStatus/code", json!(200)),
        (
            "annotations.authorization.k8s.io/decision",
            "/annotations/authorization.k8s.io~1decision",
            json!("allow"),
        ),
        ("sourceIPs", "/sourceIPs", json!("127.0.0.1")),
        ("sourceIPs", "/sourceIPs", json!("203.0.113.7")),
    ] {
        let want = holding(pointer, &value);
        assert!(want > 0, "{field} = {value} is in the data");
        assert_eq!(
            node.count_term(index, field, value.clone()),
            want,
            "{field} = {value}"
        );
    }
    // `ip`, not `keyword`: a network matches its addresses.
    assert_eq!(
        node.count_term(index, "sourceIPs", "127.0.0.0/8"),
        holding("/sourceIPs", &json!("127.0.0.1"))
    );
}

/// Every audit event in `tests/data`: the real kube-apiserver captures
/// (audit logs and webhook posts of both runs) and the real events of other
/// projects (audit2rbac's `v1beta1`, Falco's, OpenShift's, the Kubernetes
/// docs' `v1alpha1` EventList), bodies included.
fn every_test_event() -> Vec<Value> {
    let mut events = Vec::new();
    let mut lines_of = |path: &str| {
        let text = std::fs::read_to_string(data(path)).expect("test data");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            events.push(serde_json::from_str::<Value>(line).expect("an event"));
        }
    };
    for path in [
        "audit-sample.jsonl",
        "netout/real-apiserver-audit-300.log",
        "fixtures/real-apiserver/run1-batch/audit/audit.log",
        "fixtures/real-apiserver/run2-blocking/audit/audit.log",
        "fixtures/events/audit2rbac-demo-full-v1beta1.jsonl",
        "fixtures/events/audit2rbac-demo-v1.jsonl",
        "fixtures/events/falco-k8s-audit-trace-files.jsonl",
        "fixtures/events/openshift-clo-apiaudit-in-v1.jsonl",
        "fixtures/events/openshift-clo-logsamples-v1.jsonl",
    ] {
        lines_of(path);
    }
    let mut items_of = |list: &Value| {
        events.extend(
            list["items"]
                .as_array()
                .expect("an EventList")
                .iter()
                .cloned(),
        );
    };
    for path in [
        "webhook/built-audit2rbac-v1beta1-batch400.json",
        "webhook/built-openshift-clo-v1-batch100.json",
        "webhook/built-openshift-clo-v1-blocking-single.json",
        "webhook/k8s-website-docs-eventlist-v1alpha1.json",
    ] {
        let text = std::fs::read_to_string(data(path)).expect("test data");
        items_of(&serde_json::from_str(&text).expect("an EventList"));
    }
    for path in [
        "real-apiserver/run1-batch/webhook-posts.jsonl",
        "real-apiserver/run2-blocking/webhook-posts.jsonl",
    ] {
        let text = std::fs::read_to_string(data(path)).expect("test data");
        for post in text.lines() {
            let post: Value = serde_json::from_str(post).expect("a post");
            items_of(
                &serde_json::from_str(post["body"].as_str().expect("a body"))
                    .expect("an EventList"),
            );
        }
    }
    events
}

/// Under the template setup installs, every event of the test data is
/// indexed: none rejected, each once (copies of one event in several
/// captures answer 409 and count as delivered).
pub fn every_event_in_the_test_data_indexes_with_no_rejection(product: Product) {
    let node = shared(product);
    let config = config("setup-every", &endpoint(node), r#"index = "it-every-%Y""#);
    assert!(setup_ok(&config, &[]).ends_with(": created\n"));
    let events = every_test_event();
    let unique: HashSet<String> = events.iter().map(key).collect();
    assert!(
        events.len() > 4000 && unique.len() > 2400,
        "{} events",
        events.len()
    );
    let agent = run(
        &config,
        &events.iter().map(|e| format!("{e}\n")).collect::<String>(),
    );
    assert_eq!(
        std::fs::read_to_string(agent.dir.path().join("dead-letter/setup-every.ndjson"))
            .unwrap_or_default(),
        "",
        "no event is rejected"
    );
    assert_eq!(node.count_all("it-every-*"), unique.len() as u64);
}

/// `data_stream = ...`: the template is a data stream's (`data_stream: {}`,
/// the stream's own name as its pattern), and the agent's events land in
/// a data stream that setup's template made.
pub fn a_data_stream_gets_a_data_stream_template(product: Product) {
    let node = shared(product);
    let stream = "logs-auditrail.setup-default";
    let config = config(
        "setup-stream",
        &endpoint(node),
        &format!("data_stream = \"{stream}\""),
    );
    let out = setup_ok(&config, &[]);
    assert!(
        out.ends_with(&format!(
            "setup-stream: index template auditrail-setup-stream ({stream}, data stream, {}): created\n",
            flat_type(product)
        )),
        "{out}"
    );
    let template = installed_template(node, "auditrail-setup-stream");
    assert_eq!(template["index_patterns"], json!([stream]));
    assert!(template["data_stream"].is_object(), "{template}");
    assert!(setup_ok(&config, &[]).ends_with(": unchanged\n"));

    let events = unique_events();
    let agent = run(
        &config,
        &events.iter().map(|e| format!("{e}\n")).collect::<String>(),
    );
    assert!(
        !agent
            .dir
            .path()
            .join("dead-letter/setup-stream.ndjson")
            .exists(),
        "no event is rejected"
    );
    let backing = node.ok("GET", &format!("/{stream}"), "");
    let backing = backing.as_object().expect("backing indices");
    assert_eq!(backing.len(), 1, "{backing:?}");
    for (index, info) in backing {
        assert!(index.starts_with(&format!(".ds-{stream}-")), "{index}");
        assert_eq!(
            info["mappings"]["properties"]["annotations"]["type"],
            flat_type(product)
        );
    }
    assert_eq!(node.count_all(stream), events.len() as u64);
}

/// A template changed by hand (another priority, a mapping type lost) is
/// put back, and reported as updated.
pub fn a_changed_template_is_updated(product: Product) {
    let node = shared(product);
    let config = config(
        "setup-drift",
        &endpoint(node),
        r#"index = "it-drift-%Y.%m.%d""#,
    );
    assert!(setup_ok(&config, &[]).ends_with(": created\n"));
    let mut changed = installed_template(node, "auditrail-setup-drift");
    changed["priority"] = json!(150);
    changed["template"]["mappings"]["properties"]["verb"] = json!({"type": "text"});
    node.ok(
        "PUT",
        "/_index_template/auditrail-setup-drift",
        &changed.to_string(),
    );
    let out = setup_ok(&config, &[]);
    assert!(out.ends_with(": updated\n"), "{out}");
    let template = installed_template(node, "auditrail-setup-drift");
    assert_eq!(template["priority"], 200);
    assert_eq!(
        template["template"]["mappings"]["properties"]["verb"]["type"],
        "keyword"
    );
    assert!(setup_ok(&config, &[]).ends_with(": unchanged\n"));
}

/// A template the server refuses (its patterns overlap another template of
/// the same priority): exit 1, the server's status and reason, and the
/// refused template is not there.
pub fn a_template_the_server_refuses_fails_with_its_reason(product: Product) {
    let node = shared(product);
    node.ok(
        "PUT",
        "/_index_template/it-refused-by-hand",
        r#"{"index_patterns":["it-refused-*"],"priority":200}"#,
    );
    let output = setup(
        &config(
            "setup-refused",
            &endpoint(node),
            r#"index = "it-refused-%Y.%m.%d""#,
        ),
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let error = stderr(&output);
    assert!(
        error.starts_with(&format!(
            "error: output `setup-refused`: index template auditrail-setup-refused \
             (it-refused-*, {}): PUT {}/_index_template/auditrail-setup-refused answered \
             HTTP 400 Bad Request: illegal_argument_exception: index template \
             [auditrail-setup-refused] has index patterns [it-refused-*] matching patterns \
             from existing templates [it-refused-by-hand]",
            flat_type(product),
            node.url()
        )),
        "{error}"
    );
    // What was done before the failure is reported.
    assert!(
        stdout(&output).contains(&server_line(node)),
        "{}",
        stdout(&output)
    );
    let (status, _) = node.request("GET", "/_index_template/auditrail-setup-refused", None);
    assert_eq!(status, 404);
}

/// A port where nothing listens (bound, then closed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Nothing listens: exit 1, the connection error of each endpoint.
#[test]
fn setup_with_nothing_listening_fails_with_the_connection_error() {
    let port = closed_port();
    let output = setup(
        &config("nobody", &format!("\"http://127.0.0.1:{port}\""), ""),
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let error = stderr(&output);
    assert!(
        error.starts_with(&format!(
            "error: output `nobody`: no endpoint answered: http://127.0.0.1:{port}: \
             GET /_nodes/_local/none: could not connect:"
        )),
        "{error}"
    );
    assert!(error.contains("Connection refused"), "{error}");
}

/// Config mistakes exit 2 before anything is contacted: the loader's own
/// diagnostics, no `elasticsearch` output, an unknown `--output`, an
/// `index` that starts with a field (no pattern covers it alone).
#[test]
fn setup_rejects_bad_configs_and_output_names_with_exit_code_2() {
    let port = closed_port();
    let endpoints = format!("\"http://127.0.0.1:{port}\"");
    let output = setup(&config("es", &endpoints, "concurrency = 0"), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`concurrency` goes from 1 to 64"),
        "{}",
        stderr(&output)
    );

    let output = setup(&config("es", &endpoints, ""), &["--output", "other"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).ends_with("has no `elasticsearch` output named `other`\n"),
        "{}",
        stderr(&output)
    );

    let no_es = "data_dir = \"{dir}\"\n[[source]]\ntype = \"stdin\"\ntag = \"a\"\n\
                 [[output]]\nname = \"out\"\ntype = \"stdout\"\nmatch = \"**\"\n";
    let output = setup(no_es, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).ends_with("has no `elasticsearch` output\n"),
        "{}",
        stderr(&output)
    );

    let output = setup(&config("es", &endpoints, r#"index = "%Y-audit""#), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with(
            "error: output `es`: `index = \"%Y-audit\"` starts with a field, so no index \
             pattern covers its indices alone"
        ),
        "{}",
        stderr(&output)
    );

    let output = setup(&config("es", &endpoints, ""), &["--retention-days", "0"]);
    assert_eq!(output.status.code(), Some(2));
}

mod emulated; // ILM and ISM on an emulated cluster: neither real test node has them
