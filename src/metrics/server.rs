//! `[api]`: the operations endpoint. `/metrics` in the Prometheus text
//! format, `/healthz` (the runtime answers: liveness) and `/readyz` (every
//! source and output of the current pipeline started, and no reload or
//! shutdown under way: readiness). It outlives pipelines across reloads, so
//! scrapes never see a closed port while the address is unchanged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// The content type of the OpenMetrics text prometheus-client writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where the agent is in its life, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Reloading = 2,
    Stopping = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Ready,
            2 => Self::Reloading,
            3 => Self::Stopping,
            _ => Self::Starting,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Reloading => "reloading",
            Self::Stopping => "stopping",
        }
    }
}

/// The agent's phase, shared between the run loop and the endpoint.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }

    pub fn get(&self) -> Phase {
        Phase::from_u8(self.0.load(Ordering::Acquire))
    }
}

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub metrics: Metrics,
    pub readiness: Readiness,
}

/// The endpoint's routes; tests can drive it without a socket.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    // Answering at all shows the runtime is scheduling tasks.
    "ok\n"
}

async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let phase = state.readiness.get();
    let status = if phase == Phase::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", phase.as_str()))
}

/// A bound endpoint serving in the background until `stop` is called.
#[derive(Debug)]
pub struct ApiServer {
    pub address: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Binds `address`; separate from serving so a reload can find out that a
/// new address is taken before it stops the running pipeline.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

impl ApiServer {
    /// Serves the endpoint on `listener` and logs the bound address
    /// (`api listening on ADDR`, which tests binding port 0 read).
    pub fn serve(
        listener: TcpListener,
        state: ApiState,
        limits: crate::listener::Limits,
    ) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let options = crate::listener::Options {
            limits,
            tls: None,
            // Plain HTTP: no handshake to fail.
            errors: prometheus_client::metrics::counter::Counter::default(),
        };
        let task = tokio::spawn(crate::listener::serve(
            listener,
            router(state),
            options,
            shutdown.clone(),
        ));
        tracing::info!("api listening on {address}");
        Ok(Self {
            address,
            shutdown,
            task,
        })
    }

    /// Stops accepting and waits (briefly) for requests in flight.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let mut task = self.task;
        // A scraper holding a keep-alive connection must not delay shutdown
        // or keep an old address served after a reload.
        if tokio::time::timeout(std::time::Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get_text(app: Router, uri: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn readyz_follows_the_phase_and_healthz_is_always_ok() {
        let state = ApiState {
            metrics: Metrics::new(),
            readiness: Readiness::default(),
        };
        let app = router(state.clone());
        assert_eq!(
            get_text(app.clone(), "/readyz").await,
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n".into())
        );
        state.readiness.set(Phase::Ready);
        assert_eq!(
            get_text(app.clone(), "/readyz").await,
            (StatusCode::OK, "ready\n".into())
        );
        state.readiness.set(Phase::Reloading);
        assert_eq!(
            get_text(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            get_text(app, "/healthz").await,
            (StatusCode::OK, "ok\n".into())
        );
    }

    #[tokio::test]
    async fn metrics_are_served_in_the_text_format() {
        let metrics = Metrics::new();
        let output = metrics.component("es");
        output.events_out.inc_by(7);
        output.batch_sizes().observe(7.0);
        output.latency().observe(0.02);
        metrics.reload("failure");
        let app = router(ApiState {
            metrics,
            readiness: Readiness::default(),
        });
        let (status, text) = get_text(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        for expected in [
            r#"auditrail_events_out_total{component="es"} 7"#,
            r#"auditrail_output_batch_size_events_count{component="es"} 1"#,
            r#"auditrail_output_latency_seconds_sum{component="es"} 0.02"#,
            r#"auditrail_config_reloads_total{result="failure"} 1"#,
            &format!(
                r#"auditrail_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
            "# EOF",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }

    #[tokio::test]
    async fn buffer_fill_is_sampled_from_the_queue_and_forgotten_when_it_closes() {
        let metrics = Metrics::new();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        metrics.watch_buffer("file", &tx);
        tx.send(Vec::new()).await.expect("send");
        tx.send(Vec::new()).await.expect("send");
        let text = metrics.render();
        assert!(
            text.contains(r#"auditrail_output_buffer_batches{component="file"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"auditrail_output_buffer_capacity_batches{component="file"} 8"#),
            "{text}"
        );
        drop(tx);
        drop(rx);
        let text = metrics.render();
        assert!(!text.contains(r#"component="file""#), "{text}");
    }
}
