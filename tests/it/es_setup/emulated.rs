//! ILM and ISM, which neither real test node has (Maven Central publishes
//! neither Elasticsearch's x-pack ILM module nor OpenSearch's
//! index-management plugin): an emulated cluster in the test process that
//! answers their APIs as the servers document them, reshaping what it
//! stores as they do (nested settings with string values, ILM's added
//! `min_age` and `delete_searchable_snapshot`, ISM's `retry`, sequence
//! numbers, and its 409 on an update without them). Only what a real node
//! cannot do is emulated here.

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
        stdout
            .ends_with("live: index template auditrail-live (kube-audit-*, flattened): created\n"),
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
