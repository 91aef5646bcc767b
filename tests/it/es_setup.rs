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

/// ILM and ISM, which neither real test node has (Maven Central publishes
/// neither Elasticsearch's x-pack ILM module nor OpenSearch's
/// index-management plugin): an emulated cluster in the test process that
/// answers their APIs as the servers document them, reshaping what it
/// stores as they do (nested settings with string values, ILM's added
/// `min_age` and `delete_searchable_snapshot`, ISM's `retry`, sequence
/// numbers, and its 409 on an update without them). Only what a real node
/// cannot do is emulated here.
mod emulated {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::{Map, Value, json};

    use super::{config, setup, setup_ok};
    use crate::servers::Product;

    #[derive(Default)]
    struct Stored {
        /// Path -> what was PUT there (an ISM policy with its sequence number).
        objects: HashMap<String, (Value, u64)>,
        /// Every PUT, in order.
        puts: Vec<String>,
        /// The `Authorization` header of every request.
        authorizations: Vec<String>,
        next_seq: u64,
    }

    struct Cluster {
        product: Product,
        stored: Mutex<Stored>,
    }

    /// An emulated cluster on 127.0.0.1, with its runtime.
    struct Emulated {
        url: String,
        cluster: Arc<Cluster>,
        _runtime: tokio::runtime::Runtime,
    }

    impl Emulated {
        fn start(product: Product) -> Self {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let cluster = Arc::new(Cluster {
                product,
                stored: Mutex::new(Stored::default()),
            });
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            let app = axum::Router::new()
                .fallback(answer)
                .with_state(cluster.clone());
            runtime.spawn(async move { axum::serve(listener, app).await });
            Self {
                url,
                cluster,
                _runtime: runtime,
            }
        }

        fn endpoint(&self) -> String {
            format!("\"{}\"", self.url)
        }

        fn stored(&self, path: &str) -> Value {
            let stored = self.cluster.stored.lock().unwrap();
            stored
                .objects
                .get(path)
                .map(|(v, _)| v.clone())
                .unwrap_or(Value::Null)
        }

        fn puts(&self) -> Vec<String> {
            self.cluster.stored.lock().unwrap().puts.clone()
        }

        /// The distinct `Authorization` headers received.
        fn authorizations(&self) -> HashSet<String> {
            let stored = self.cluster.stored.lock().unwrap();
            stored.authorizations.iter().cloned().collect()
        }
    }

    fn error(status: u16, kind: &str, reason: &str) -> Response {
        let body = json!({"error": {"root_cause": [{"type": kind, "reason": reason}],
            "type": kind, "reason": reason}, "status": status});
        (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
    }

    fn ok(body: Value) -> Response {
        axum::Json(body).into_response()
    }

    /// `{"index.a.b": 1}` as the servers give settings back:
    /// `{"index": {"a": {"b": "1"}}}`.
    fn nested_settings(settings: &Value) -> Value {
        let mut out = Map::new();
        for (name, value) in settings.as_object().into_iter().flatten() {
            let mut at = &mut out;
            let parts: Vec<&str> = name.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                at = at
                    .entry((*part).to_owned())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("an object");
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            at.insert(parts[parts.len() - 1].to_owned(), json!(text));
        }
        Value::Object(out)
    }

    async fn answer(
        State(cluster): State<Arc<Cluster>>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let path = uri.path().to_owned();
        let query = uri.query().unwrap_or("").to_owned();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let elastic = cluster.product == Product::Elasticsearch;
        let mut stored = cluster.stored.lock().unwrap();
        stored.authorizations.push(
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned(),
        );
        let existing = stored.objects.get(&path).cloned();
        let name = path.rsplit('/').next().unwrap_or("").to_owned();
        match (method.as_str(), path.as_str()) {
            ("GET", "/_nodes/_local/none") if elastic => {
                let mut response = ok(json!({"nodes": {"n1": {"version": "8.19.0",
                    "build_flavor": "default"}}}));
                response
                    .headers_mut()
                    .insert("x-elastic-product", "Elasticsearch".parse().unwrap());
                response
            }
            // A user allowed `GET /` but not node info: setup falls back.
            ("GET", "/_nodes/_local/none") => error(
                403,
                "security_exception",
                "no permissions for [cluster:monitor/nodes/info]",
            ),
            ("GET", "/") if !elastic => {
                ok(json!({"version": {"distribution": "opensearch", "number": "2.19.6"}}))
            }
            ("GET", p) if p.starts_with("/_index_template/") => match existing {
                Some((template, _)) => {
                    let mut template = template.clone();
                    let settings = nested_settings(&template["template"]["settings"]);
                    template["template"]["settings"] = settings;
                    template["composed_of"] = json!([]);
                    ok(json!({"index_templates": [{"name": name, "index_template": template}]}))
                }
                None => error(
                    404,
                    "resource_not_found_exception",
                    &format!("index template matching [{name}] not found"),
                ),
            },
            ("GET", p) if elastic && p.starts_with("/_ilm/policy/") => match existing {
                Some((policy, seq)) => {
                    let mut policy = policy["policy"].clone();
                    if policy["phases"]["hot"].is_object() {
                        policy["phases"]["hot"]["min_age"] = json!("0ms");
                    }
                    policy["phases"]["delete"]["actions"]["delete"] =
                        json!({"delete_searchable_snapshot": true});
                    ok(
                        json!({name: {"version": seq, "modified_date": "2026-11-22T00:00:00Z",
                        "policy": policy}}),
                    )
                }
                None => error(
                    404,
                    "resource_not_found_exception",
                    &format!("Lifecycle policy not found: {name}"),
                ),
            },
            ("GET", p) if !elastic && p.starts_with("/_plugins/_ism/policies/") => match existing {
                Some((policy, seq)) => {
                    let mut policy = policy["policy"].clone();
                    policy["policy_id"] = json!(name);
                    policy["schema_version"] = json!(21);
                    policy["error_notification"] = Value::Null;
                    for state in policy["states"].as_array_mut().unwrap() {
                        for action in state["actions"].as_array_mut().unwrap() {
                            action["retry"] =
                                json!({"count": 3, "backoff": "exponential", "delay": "1m"});
                        }
                    }
                    ok(json!({"_id": name, "_version": seq, "_seq_no": seq,
                            "_primary_term": 1, "policy": policy}))
                }
                None => error(404, "status_exception", "Policy not found"),
            },
            ("PUT", p)
                if p.starts_with("/_index_template/")
                    || (elastic && p.starts_with("/_ilm/policy/"))
                    || (!elastic && p.starts_with("/_plugins/_ism/policies/")) =>
            {
                if let Some((_, seq)) = existing
                    && p.starts_with("/_plugins/")
                    && query != format!("if_seq_no={seq}&if_primary_term=1")
                {
                    return error(
                        409,
                        "version_conflict_engine_exception",
                        &format!("[{name}]: version conflict, document already exists"),
                    );
                }
                stored.next_seq += 1;
                let seq = stored.next_seq;
                stored.objects.insert(path.clone(), (body, seq));
                stored.puts.push(path);
                ok(json!({"acknowledged": true}))
            }
            (method, path) => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": format!(
                    "no handler found for uri [{path}] and method [{method}]")})),
            )
                .into_response(),
        }
    }

    /// Elasticsearch with ILM: the policy is created, named in the template,
    /// left alone on a second run and updated for another retention; a
    /// single index gets no policy.
    #[test]
    fn an_ilm_policy_is_created_attached_to_the_template_and_kept() {
        let cluster = Emulated::start(Product::Elasticsearch);
        let config = config(
            "es",
            &cluster.endpoint(),
            "index = \"audit-%Y.%m.%d\"\nauth = { api_key = \"a2V5OnNlY3JldA==\" }",
        );
        let policy = "lifecycle policy auditrail-es (ILM, delete 7 days after creation)";
        let template = "index template auditrail-es (audit-*, flattened)";
        assert_eq!(
            setup_ok(&config, &["--retention-days", "7"]),
            format!(
                "es: {} is Elasticsearch 8.19.0\nes: {policy}: created\nes: {template}: created\n",
                cluster.url
            )
        );
        assert_eq!(
            cluster.stored("/_ilm/policy/auditrail-es"),
            json!({"policy": {"phases": {"delete": {"min_age": "7d", "actions": {"delete": {}}}}}})
        );
        let installed = cluster.stored("/_index_template/auditrail-es");
        assert_eq!(
            installed["template"]["settings"]["index.lifecycle.name"],
            "auditrail-es"
        );
        assert_eq!(installed["index_patterns"], json!(["audit-*"]));

        let again = setup_ok(&config, &["--retention-days", "7"]);
        assert!(again.ends_with(&format!(
            "es: {policy}: unchanged\nes: {template}: unchanged\n"
        )));
        assert_eq!(cluster.puts().len(), 2, "the second run writes nothing");
        assert_eq!(
            cluster.authorizations(),
            HashSet::from(["ApiKey a2V5OnNlY3JldA==".to_owned()]),
            "every request carries the output's credentials"
        );

        let longer = setup_ok(&config, &["--retention-days", "10"]);
        assert!(
            longer.ends_with(&format!(
                "es: lifecycle policy auditrail-es (ILM, delete 10 days after creation): updated\n\
                 es: {template}: unchanged\n"
            )),
            "{longer}"
        );
        assert_eq!(
            cluster.stored("/_ilm/policy/auditrail-es")["policy"]["phases"]["delete"]["min_age"],
            "10d"
        );

        let single = setup_ok(&config.replace("audit-%Y.%m.%d", "audit"), &[]);
        assert!(
            single.contains(
                "es: lifecycle policy auditrail-es (ILM, delete 30 days after creation): skipped: \
                 `index` names the single index `audit`"
            ),
            "{single}"
        );
        assert!(
            single.ends_with("es: index template auditrail-es (audit, flattened): updated\n"),
            "{single}"
        );
        assert!(
            cluster.stored("/_index_template/auditrail-es")["template"]["settings"]
                .get("index.lifecycle.name")
                .is_none()
        );

        let stream = config.replace("index = \"audit-%Y.%m.%d\"", "data_stream = \"logs-a-b\"");
        let out = setup_ok(&stream, &[]);
        assert!(
            out.ends_with(
                "es: lifecycle policy auditrail-es (ILM, delete 30 days after rollover): updated\n\
                 es: index template auditrail-es (logs-a-b, data stream, flattened): updated\n"
            ),
            "{out}"
        );
        let phases = &cluster.stored("/_ilm/policy/auditrail-es")["policy"]["phases"];
        assert_eq!(
            phases["hot"]["actions"]["rollover"],
            json!({"max_age": "1d", "max_primary_shard_size": "50gb"})
        );
        assert_eq!(phases["delete"]["min_age"], "30d");
        let installed = cluster.stored("/_index_template/auditrail-es");
        assert_eq!(installed["data_stream"], json!({}));
        assert_eq!(
            installed["template"]["settings"]["index.lifecycle.name"],
            "auditrail-es"
        );
        assert!(setup_ok(&stream, &[]).ends_with(": unchanged\n"));
    }

    /// OpenSearch with ISM, found through `GET /` when node info is not
    /// allowed: the policy rolls the data stream over and attaches itself
    /// through `ism_template`; an update sends the sequence number read.
    #[test]
    fn an_ism_policy_is_created_for_a_data_stream_and_updated_with_its_sequence_number() {
        let cluster = Emulated::start(Product::OpenSearch);
        let stream = "logs-auditrail.ism-default";
        let config = config(
            "os",
            &cluster.endpoint(),
            &format!(
                "data_stream = \"{stream}\"\nauth = {{ user = \"auditrail\", password = \"s3cret\" }}"
            ),
        );
        let policy = "lifecycle policy auditrail-os (ISM, delete 30 days after creation)";
        let template = format!("index template auditrail-os ({stream}, data stream, flat_object)");
        assert_eq!(
            setup_ok(&config, &[]),
            format!(
                "os: {} is OpenSearch 2.19.6\nos: {policy}: created\nos: {template}: created\n",
                cluster.url
            )
        );
        let stored = cluster.stored("/_plugins/_ism/policies/auditrail-os");
        let states = &stored["policy"]["states"];
        assert_eq!(states[0]["actions"][0]["rollover"]["min_index_age"], "1d");
        assert_eq!(
            states[0]["transitions"][0]["conditions"]["min_index_age"],
            "30d"
        );
        assert_eq!(states[1]["actions"], json!([{"delete": {}}]));
        assert_eq!(
            stored["policy"]["ism_template"],
            json!([{"index_patterns": [stream], "priority": 200}])
        );
        let installed = cluster.stored("/_index_template/auditrail-os");
        assert_eq!(installed["data_stream"], json!({}));
        assert!(
            installed["template"]["settings"]
                .get("index.lifecycle.name")
                .is_none()
        );

        let again = setup_ok(&config, &[]);
        assert!(again.ends_with(&format!(
            "os: {policy}: unchanged\nos: {template}: unchanged\n"
        )));
        assert_eq!(cluster.puts().len(), 2, "the second run writes nothing");
        // Basic auth: base64 of `auditrail:s3cret`.
        assert_eq!(
            cluster.authorizations(),
            HashSet::from(["Basic YXVkaXRyYWlsOnMzY3JldA==".to_owned()]),
            "every request carries the output's credentials"
        );

        let shorter = setup_ok(&config, &["--retention-days", "3"]);
        assert!(
            shorter.contains(
                "os: lifecycle policy auditrail-os (ISM, delete 3 days after creation): updated\n"
            ),
            "{shorter}"
        );
        assert_eq!(
            cluster.stored("/_plugins/_ism/policies/auditrail-os")["policy"]["states"][0]["transitions"]
                [0]["conditions"]["min_index_age"],
            "3d"
        );
    }

    /// Every `elasticsearch` output is set up in turn: one whose cluster is
    /// down does not stop the next (exit 1 at the end); `--output` picks one.
    #[test]
    fn each_output_is_set_up_and_a_failing_one_does_not_stop_the_next() {
        let cluster = Emulated::start(Product::Elasticsearch);
        let dead = format!("\"http://127.0.0.1:{}\"", super::closed_port());
        let two = format!(
            "{}\n[[output]]\nname = \"live\"\ntype = \"elasticsearch\"\nmatch = \"**\"\n\
             endpoints = [{}]\n",
            config("down", &dead, ""),
            cluster.endpoint()
        );
        let output = setup(&two, &[]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("error: output `down`: no endpoint answered:"),
            "{stderr}"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.ends_with(
                "live: index template auditrail-live (kube-audit-*, flattened): created\n"
            ),
            "{stdout}"
        );

        let output = setup(&two, &["--output", "live"]);
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&output.stderr), "");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.lines().all(|l| l.starts_with("live: ")), "{stdout}");
        assert!(stdout.ends_with(": unchanged\n"), "{stdout}");
    }

    /// A server that answers node info with an error and `GET /` too:
    /// exit 1 with both answers.
    #[test]
    fn a_server_that_cannot_be_identified_fails_with_both_answers() {
        let cluster = Emulated::start(Product::OpenSearch);
        let config = config("os", &format!("\"{}/prefix\"", cluster.url), "");
        let output = setup(&config, &[]);
        assert_eq!(output.status.code(), Some(1));
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(
            error.starts_with(&format!(
                "error: output `os`: {}/prefix: cannot tell which server this is: \
                 GET /_nodes/_local/none answered HTTP 400 Bad Request: no handler found for \
                 uri [/prefix/_nodes/_local/none] and method [GET], GET / answered \
                 HTTP 400 Bad Request: no handler found for uri [/prefix] and method [GET]",
                cluster.url
            )),
            "{error}"
        );
    }
}
