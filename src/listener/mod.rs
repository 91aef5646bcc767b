//! The bounded accept loop every HTTP listener of the agent serves with (the
//! webhook source, the `[api]` endpoint): at most `max_connections` at once,
//! one task per connection, a TLS handshake bounded by `handshake_timeout`
//! inside that task (a slow handshake never stalls other accepts), HTTP/1.1
//! with a header read timeout, or HTTP/2 when TLS negotiates it, closed when
//! idle as long. On shutdown it stops accepting, lets in-flight requests
//! finish and closes idle keep-alive connections.

mod activity;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use prometheus_client::metrics::counter::Counter;

use self::activity::Activity;

/// How often an HTTP/2 connection is checked for idleness.
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// How long a connection asked to close may take before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed for a request's headers, and for a connection to stay
    /// idle between requests.
    pub header_read_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_connections: usize,
    /// Streams one HTTP/2 connection may have open at once.
    pub max_concurrent_streams: u32,
}

/// How a listener serves its connections.
#[derive(Debug, Clone)]
pub struct Options {
    pub limits: Limits,
    /// Serve HTTPS (HTTP/2 when the client offers it) instead of HTTP/1.1.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Counts failed TLS handshakes.
    pub errors: Counter,
}

/// Serves `app` on `listener` until `shutdown` is cancelled and every
/// connection has finished its in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    options: Options,
    shutdown: CancellationToken,
) {
    let options = Arc::new(options);
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(options.limits.max_connections));
    loop {
        // Waiting for a slot before accepting leaves further clients in the
        // kernel's backlog instead of holding memory for each.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "Failed to accept a connection.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(
            stream,
            options.clone(),
            app.clone(),
            shutdown.clone(),
            slot,
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

async fn connection(
    stream: TcpStream,
    options: Arc<Options>,
    app: axum::Router,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let limits = &options.limits;
    let Some(tls) = &options.tls else {
        let service = TowerToHyperService::new(app);
        let conn = http1_builder(limits).serve_connection(TokioIo::new(stream), service);
        drive(conn, &shutdown, None).await;
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
    let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                // No or bad client certificate, plain HTTP on the TLS port...
                options.errors.inc();
                tracing::debug!(error = %e, "TLS handshake failed.");
                return;
            }
            Err(_) => {
                options.errors.inc();
                tracing::debug!("TLS handshake timed out.");
                return;
            }
        },
        () = shutdown.cancelled() => return,
    };
    let is_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    if is_h2 {
        // A connection with no request in progress for `header_read_timeout`
        // is closed, as an idle HTTP/1.1 one is; pings find dead peers.
        let activity = Activity::new(std::time::Instant::now());
        let tracked = activity.clone();
        let service = TowerToHyperService::new(tower::ServiceExt::<
            hyper::Request<hyper::body::Incoming>,
        >::map_future(app, move |fut| {
            let busy = tracked.start();
            async move {
                let response = fut.await;
                drop(busy);
                response
            }
        }));
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(limits.header_read_timeout)
            .keep_alive_timeout(limits.header_read_timeout);
        let conn = builder.serve_connection(io, service);
        drive(
            conn,
            &shutdown,
            Some((activity, limits.header_read_timeout)),
        )
        .await;
    } else {
        let service = TowerToHyperService::new(app);
        drive(
            http1_builder(limits).serve_connection(io, service),
            &shutdown,
            None,
        )
        .await;
    }
}

fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    // The header timer also runs while a keep-alive connection is idle, so
    // it bounds both a slow client's headers and an idle connection's life.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
}

/// Runs a connection; on shutdown, or once it has been idle for the given
/// time, asks it to finish the request in flight and close.
async fn drive<C>(conn: C, shutdown: &CancellationToken, idle: Option<(Activity, Duration)>)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    tokio::pin!(conn);
    let idle_closed = async {
        let Some((activity, limit)) = idle else {
            return std::future::pending().await;
        };
        let mut ticks = tokio::time::interval(IDLE_CHECK.min(limit));
        loop {
            ticks.tick().await;
            if activity
                .idle_for(std::time::Instant::now())
                .is_some_and(|idle| idle >= limit)
            {
                return;
            }
        }
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        () = idle_closed => {
            tracing::debug!("Closing an HTTP/2 connection that stayed idle.");
            conn.as_mut().graceful_shutdown();
            // A peer that ignores GOAWAY is dropped after a grace period.
            match tokio::time::timeout(CLOSE_GRACE, conn).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        // Resets, timeouts and garbage are the client's business.
        tracing::debug!(error = %e, "HTTP connection ended with an error.");
    }
}
