//! An HTTP server in the test process for the network outputs: records
//! every request (gzip bodies decoded), answers as told (200, a status with
//! an optional `Retry-After`, hang, reset the connection), and implements
//! Elasticsearch's `_bulk` closely enough to test against: per-item results,
//! `errors: true`, 409 on a duplicate `create`, dynamic-mapping type
//! conflicts as 400 `mapper_parsing_exception`, scripted 429 items (the next
//! N, or one document in N once each), answers with items missing, and 413
//! above a body size. It also answers as a proxy or a misconfigured endpoint
//! would (an HTML page, another API's JSON, a 401 with Elasticsearch's
//! `security_exception`), which a real node cannot be made to do on demand.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// How the server answers POSTs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 (or `_bulk` semantics).
    Ok,
    /// This status, with `Retry-After` if given.
    Status(u16, Option<&'static str>),
    /// Never answer.
    Hang,
    /// Close the connection without an answer.
    Reset,
    /// This status, content type and body, whatever the request.
    Respond(u16, &'static str, &'static str),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub uri: String,
    pub headers: HeaderMap,
    /// Decoded body.
    pub body: Vec<u8>,
    pub wire_len: usize,
    /// The status answered (0 for hang or reset).
    pub status: u16,
}

#[derive(Default)]
pub struct EsState {
    /// `index/_id` -> document.
    pub docs: HashMap<String, Value>,
    /// Field path -> JSON type, per index (dynamic mapping).
    mappings: HashMap<String, HashMap<String, &'static str>>,
    /// The next this many items (across requests) answer 429.
    pub reject_next_items: usize,
    /// Bodies (decoded) larger than this answer 413.
    pub max_body: Option<usize>,
    /// One document in this many answers 429 (`es_rejected_execution_exception`)
    /// the first time it is sent, and is indexed when sent again.
    pub reject_one_in: Option<usize>,
    /// Documents sent at least once.
    seen: std::collections::HashSet<String>,
    /// The next this many `_bulk` answers leave out their last item (all
    /// documents are indexed all the same).
    pub short_answers: usize,
    /// Items answered per status.
    pub item_statuses: HashMap<u16, usize>,
    next_id: u64,
}

struct Shared {
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Received>>,
    es: Mutex<EsState>,
}

/// A server on 127.0.0.1 with its own runtime.
pub struct TestServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Ok),
            requests: Mutex::new(Vec::new()),
            es: Mutex::new(EsState::default()),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(serve(listener, shared.clone()));
        Self {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn es<T>(&self, f: impl FnOnce(&mut EsState) -> T) -> T {
        f(&mut self.shared.es.lock().unwrap())
    }

    /// Every audit event received in successful (2xx) non-`_bulk` requests:
    /// items of EventLists, lines of NDJSON, elements of arrays.
    pub fn accepted_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for r in self.requests().iter().filter(|r| r.status / 100 == 2) {
            out.extend(events_in(&r.body));
        }
        out
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The events in an EventList, a JSON array or NDJSON body.
pub fn events_in(body: &[u8]) -> Vec<Value> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return match value {
            Value::Object(mut o) if o.get("kind") == Some(&json!("EventList")) => {
                match o.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                }
            }
            Value::Array(items) => items,
            other => vec![other],
        };
    }
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect()
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(shared.clone());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let app = app.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                let reset = matches!(*shared.mode.lock().unwrap(), Mode::Reset);
                async move {
                    if reset {
                        // An error from the service makes hyper drop the
                        // connection without answering.
                        return Err(std::io::Error::other("reset"));
                    }
                    let response = tower::ServiceExt::oneshot(app, req.map(Body::new)).await;
                    response.map_err(|never| match never {})
                }
            });
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let wire = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let gzipped = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let decoded = if gzipped {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&wire[..])
            .read_to_end(&mut out)
            .expect("valid gzip body");
        out
    } else {
        wire.to_vec()
    };
    let mode = shared.mode.lock().unwrap().clone();
    let mut received = Received {
        at: Instant::now(),
        uri: uri.to_string(),
        headers,
        body: decoded.clone(),
        wire_len: wire.len(),
        status: 0,
    };
    let response = match mode {
        Mode::Hang => {
            shared.requests.lock().unwrap().push(received);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK.into_response();
        }
        Mode::Reset => unreachable!("handled before routing"),
        Mode::Respond(code, content_type, body) => (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", content_type)],
            body,
        )
            .into_response(),
        Mode::Status(code, retry_after) => {
            let mut response = (
                StatusCode::from_u16(code).unwrap(),
                r#"{"error":"told to"}"#,
            )
                .into_response();
            if let Some(value) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", value.parse().unwrap());
            }
            response
        }
        Mode::Ok if uri.path().ends_with("/_bulk") => {
            bulk(&mut shared.es.lock().unwrap(), &decoded)
        }
        Mode::Ok => (StatusCode::OK, "{}").into_response(),
    };
    received.status = response.status().as_u16();
    shared.requests.lock().unwrap().push(received);
    response
}

fn bulk(es: &mut EsState, body: &[u8]) -> Response {
    if es.max_body.is_some_and(|max| body.len() > max) {
        return (StatusCode::PAYLOAD_TOO_LARGE, "").into_response();
    }
    if !body.ends_with(b"\n") {
        return (StatusCode::BAD_REQUEST, r#"{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\n]"}}"#).into_response();
    }
    let text = String::from_utf8(body.to_vec()).expect("UTF-8 body");
    let mut lines = text.lines();
    let mut items = Vec::new();
    let mut errors = false;
    while let Some(action_line) = lines.next() {
        let action: Value = serde_json::from_str(action_line).expect("action line is JSON");
        let (op, meta) = action
            .as_object()
            .and_then(|o| o.iter().next())
            .expect("one action");
        let op = op.clone();
        let doc_line = lines.next().expect("a document after each action");
        let index = meta["_index"].as_str().expect("_index").to_owned();
        let id = match meta.get("_id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                es.next_id += 1;
                format!("auto-{}", es.next_id)
            }
        };
        let key = format!("{index}/{id}");
        let first_time = !es.seen.contains(&key);
        let reject_once =
            first_time && es.reject_one_in.is_some_and(|n| es.seen.len() % n == n - 1);
        if first_time {
            es.seen.insert(key.clone());
        }
        let (status, error) = if es.reject_next_items > 0 || reject_once {
            if !reject_once {
                es.reject_next_items -= 1;
            }
            (
                429,
                Some((
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation".to_owned(),
                )),
            )
        } else {
            match serde_json::from_str::<Value>(doc_line) {
                Err(e) => (
                    400,
                    Some(("mapper_parsing_exception", format!("failed to parse: {e}"))),
                ),
                Ok(doc) => {
                    if op == "create" && es.docs.contains_key(&key) {
                        (
                            409,
                            Some((
                                "version_conflict_engine_exception",
                                format!("[{id}]: version conflict, document already exists"),
                            )),
                        )
                    } else {
                        let mapping = es.mappings.entry(index.clone()).or_default();
                        match map_fields(mapping, "", &doc) {
                            Err(reason) => (400, Some(("mapper_parsing_exception", reason))),
                            Ok(()) => {
                                es.docs.insert(key, doc);
                                (201, None)
                            }
                        }
                    }
                }
            }
        };
        *es.item_statuses.entry(status).or_default() += 1;
        let mut result = json!({"_index": index, "_id": id, "status": status});
        if let Some((kind, reason)) = error {
            errors = true;
            result["error"] = json!({"type": kind, "reason": reason});
        } else {
            result["result"] = json!("created");
        }
        items.push(json!({ op: result }));
    }
    if es.short_answers > 0 {
        es.short_answers -= 1;
        items.pop();
    }
    axum::Json(json!({"took": 1, "errors": errors, "items": items})).into_response()
}

/// Dynamic mapping as Elasticsearch does it, enough to show type
/// conflicts: the first value seen fixes a field's type.
fn map_fields(
    mapping: &mut HashMap<String, &'static str>,
    prefix: &str,
    value: &Value,
) -> Result<(), String> {
    let kind = match value {
        Value::Null => return Ok(()),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "long",
        Value::String(_) => "text",
        Value::Array(items) => {
            for item in items {
                map_fields(mapping, prefix, item)?;
            }
            return Ok(());
        }
        Value::Object(_) => "object",
    };
    if !prefix.is_empty() {
        match mapping.get(prefix) {
            Some(existing) if *existing != kind => {
                return Err(format!(
                    "failed to parse field [{prefix}] of type [{existing}]: cannot index a value of type [{kind}]"
                ));
            }
            Some(_) => {}
            None => {
                mapping.insert(prefix.to_owned(), kind);
            }
        }
    }
    if let Value::Object(fields) = value {
        for (key, child) in fields {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            map_fields(mapping, &path, child)?;
        }
    }
    Ok(())
}
