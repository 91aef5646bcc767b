//! The request path through `router()` without sockets: acknowledgement
//! modes, back-pressure, shutdown and duplicates.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::{HttpConfig, HttpState, router};
use crate::event::EventBatch;
use crate::metrics::Metrics;
use crate::source::{EventSender, SourceContext};

const BODY: &str = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"auditID":"a","stage":"ResponseComplete"},{"auditID":"b","stage":"ResponseComplete"}]}"#;

struct Harness {
    state: HttpState,
    rx: mpsc::Receiver<EventBatch>,
    tx: mpsc::Sender<EventBatch>,
    shutdown: CancellationToken,
    metrics: Metrics,
}

fn harness(settings: &str, queue: usize) -> Harness {
    let config: HttpConfig =
        toml::from_str(&format!("listen = \"127.0.0.1:0\"\n{settings}")).unwrap();
    config.validate().unwrap();
    let metrics = Metrics::new();
    let component = metrics.component("webhook");
    let (tx, rx) = mpsc::channel(queue);
    let shutdown = CancellationToken::new();
    let cx = SourceContext {
        name: Arc::from("webhook"),
        out: EventSender::new(tx.clone(), component.clone()),
        shutdown: shutdown.clone(),
        shutdown_timeout: std::time::Duration::from_secs(30),
        metrics: component,
        data_dir: PathBuf::new(),
    };
    Harness {
        state: HttpState::new(&config, &cx, None).unwrap(),
        rx,
        tx,
        shutdown,
        metrics,
    }
}

fn post(body: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/audit")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn send(
    state: &HttpState,
    request: Request<Body>,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, retry_after, body)
}

/// Settles (or fails) every ack of the next batch; returns its records.
async fn settle_next(rx: &mut mpsc::Receiver<EventBatch>, deliver: bool) -> Vec<String> {
    let batch = rx.recv().await.unwrap();
    let mut records = Vec::new();
    for event in batch {
        records.push(event.record.raw().unwrap().to_owned());
        if deliver {
            event.ack.settle();
        } else {
            event.ack.fail();
        }
    }
    records
}

#[tokio::test]
async fn answers_200_only_after_the_outputs_settle() {
    let mut h = harness("", 4);
    let request = tokio::spawn({
        let state = h.state.clone();
        async move { send(&state, post(BODY)).await }
    });
    let batch = h.rx.recv().await.unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!request.is_finished(), "answered before delivery");
    let records: Vec<_> = batch
        .iter()
        .map(|e| e.record.raw().unwrap().to_owned())
        .collect();
    assert_eq!(
        records,
        [
            r#"{"auditID":"a","stage":"ResponseComplete"}"#,
            r#"{"auditID":"b","stage":"ResponseComplete"}"#
        ]
    );
    for event in batch {
        event.ack.settle();
    }
    let (status, _, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"], 2);
}

#[tokio::test]
async fn failed_delivery_is_503_and_is_not_taken_for_a_duplicate() {
    let mut h = harness("dedupe_window = { max_age = \"1m\" }", 4);
    let state = h.state.clone();
    let first = tokio::spawn(async move { send(&state, post(BODY)).await });
    settle_next(&mut h.rx, false).await;
    let (status, retry_after, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"], "not_delivered");

    // The resend of a failed batch passes in full...
    let state = h.state.clone();
    let second = tokio::spawn(async move { send(&state, post(BODY)).await });
    assert_eq!(settle_next(&mut h.rx, true).await.len(), 2);
    assert_eq!(second.await.unwrap().0, StatusCode::OK);

    // ...and once delivered, a resend is dropped as duplicates.
    let (status, _, body) = send(&h.state, post(BODY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["events"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    assert!(h.rx.try_recv().is_err(), "duplicates were not sent on");
    let text = h.metrics.render();
    assert!(
        text.contains(
            r#"auditrail_events_dropped_total{component="webhook",reason="duplicate"} 2"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_full_pipeline_is_429_with_retry_after() {
    let h = harness("queue_timeout = \"20ms\"\nretry_after = \"2.5s\"", 1);
    h.tx.send(Vec::new()).await.unwrap(); // the router is not keeping up
    let (status, retry_after, body) = send(&h.state, post(BODY)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after.as_deref(), Some("3"));
    assert_eq!(body["error"], "busy");
    let text = h.metrics.render();
    assert!(
        text.contains(r#"auditrail_http_responses_total{component="webhook",code="429"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn too_many_requests_at_once_are_429() {
    let mut h = harness("max_concurrent_requests = 1", 4);
    let state = h.state.clone();
    let held = tokio::spawn(async move { send(&state, post(BODY)).await });
    let batch = h.rx.recv().await.unwrap(); // the first request waits for delivery
    let (status, retry_after, _) = send(&h.state, post(BODY)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    for event in batch {
        event.ack.settle();
    }
    assert_eq!(held.await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn slow_delivery_is_503_after_ack_timeout() {
    let mut h = harness("ack_timeout = \"20ms\"", 4);
    let state = h.state.clone();
    let request = tokio::spawn(async move { send(&state, post(BODY)).await });
    let held = h.rx.recv().await.unwrap();
    let (status, _, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"], "not_delivered");
    drop(held);
}

#[tokio::test]
async fn accepted_mode_answers_once_queued() {
    let mut h = harness("ack = \"accepted\"", 4);
    let (status, _, body) = send(&h.state, post(BODY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"], 2);
    let batch = h.rx.recv().await.unwrap();
    assert!(batch.iter().all(|e| !e.ack.is_tracked()));
}

#[tokio::test]
async fn shutting_down_is_503_and_unhealthy() {
    let h = harness("", 4);
    let health = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(send(&h.state, health).await.0, StatusCode::OK);
    h.shutdown.cancel();
    let (status, retry_after, body) = send(&h.state, post(BODY)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some());
    assert_eq!(body["error"], "shutting_down");
    let health = Request::get("/healthz").body(Body::empty()).unwrap();
    assert_eq!(
        send(&h.state, health).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn tags_can_come_from_the_request_path() {
    let mut h = harness(
        "path = \"/audit\"\ntag = \"audit.${path}\"\nack = \"accepted\"",
        4,
    );
    let request = Request::post("/audit/prod/eu-1")
        .body(Body::from(BODY))
        .unwrap();
    assert_eq!(send(&h.state, request).await.0, StatusCode::OK);
    let batch = h.rx.recv().await.unwrap();
    assert!(batch.iter().all(|e| e.tag.as_str() == "audit.prod.eu-1"));
}

#[test]
fn open_listeners_need_protection_or_an_opt_in() {
    let parse = |text: &str| toml::from_str::<HttpConfig>(text).unwrap().validate();
    assert!(parse("listen = \"0.0.0.0:8888\"").is_err());
    assert!(parse("listen = \"[::]:8888\"").is_err());
    assert!(parse("listen = \"0.0.0.0:8888\"\ninsecure = true").is_ok());
    assert!(parse("listen = \"0.0.0.0:8888\"\nauth = { bearer_tokens_file = \"t\" }").is_ok());
    assert!(parse("listen = \"0.0.0.0:8888\"\ntls = { cert = \"c\", key = \"k\" }").is_err());
    assert!(
        parse("listen = \"0.0.0.0:8888\"\ntls = { cert = \"c\", key = \"k\", client_ca = \"a\" }")
            .is_ok()
    );
    assert!(
        parse("listen = \"0.0.0.0:8888\"\ntls = { cert = \"c\", key = \"k\" }\ninsecure = true")
            .is_ok()
    );
    assert!(parse("listen = \"127.0.0.1:8888\"").is_ok());
    assert!(parse("listen = \"[::1]:8888\"").is_ok());
    assert!(parse("listen = \"127.0.0.1:8888\"\ntag = \"a.${nope}\"").is_err());
}
