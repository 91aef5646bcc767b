//! One request, start to finish: path and method, shutdown, auth, body
//! limits, decoding, duplicates, queueing and, with `ack = "delivered"`,
//! waiting until every output has the events before answering 200.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::auth::BearerTokens;
use super::body::{self, Format};
use super::dedupe::{self, Dedupe, Key};
use super::{AckMode, HttpConfig, IngestError, Settings};
use crate::event::{Ack, BatchStatus, Event};
use crate::metrics::ComponentMetrics;
use crate::source::{Decoded, EventSender, SourceContext};

/// Bodies larger than this are decoded on a blocking thread, so one big
/// batch does not stall the connections sharing its worker.
const INLINE_DECODE_LIMIT: usize = 256 << 10;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<Settings>,
    out: EventSender,
    tokens: Option<BearerTokens>,
    dedupe: Option<Mutex<Dedupe>>,
    shutdown: CancellationToken,
    requests: Arc<Semaphore>,
    metrics: ComponentMetrics,
    duplicates: Counter,
}

impl HttpState {
    pub(super) fn new(
        config: &HttpConfig,
        cx: &SourceContext,
        tokens: Option<BearerTokens>,
    ) -> Result<Self, super::tag::TemplateError> {
        Ok(Self {
            inner: Arc::new(Inner {
                settings: Settings::from_config(config)?,
                out: cx.out.clone(),
                tokens,
                dedupe: config.dedupe_window.as_ref().map(|d| {
                    Mutex::new(Dedupe::new(
                        d.max_age.0,
                        d.max_entries,
                        d.max_bytes.as_usize(),
                    ))
                }),
                shutdown: cx.shutdown.clone(),
                requests: Arc::new(Semaphore::new(config.max_concurrent_requests)),
                duplicates: cx.metrics.dropped("duplicate"),
                metrics: cx.metrics.clone(),
            }),
        })
    }
}

/// The source's routes: `/healthz` (no auth) and events at `path`.
pub fn router(state: HttpState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .fallback(receive)
        .with_state(state)
}

async fn healthz(State(state): State<HttpState>) -> Response {
    if state.inner.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        (StatusCode::OK, "ok\n").into_response()
    }
}

async fn receive(State(state): State<HttpState>, request: Request) -> Response {
    let response = match state.inner.receive(request).await {
        Ok(accepted) => (StatusCode::OK, Json(accepted)).into_response(),
        Err(error) => {
            // Client mistakes are counted, not logged: see `error.rs`.
            if error.status().is_client_error() {
                state.inner.metrics.errors.inc();
            }
            error.into_response()
        }
    };
    state
        .inner
        .metrics
        .http_response(response.status().as_u16())
        .inc();
    response
}

/// The 200 reply.
#[derive(Debug, serde::Serialize)]
struct Accepted {
    events: usize,
    duplicates: usize,
}

impl Inner {
    fn retry_after(&self) -> u64 {
        self.settings.retry_after_secs
    }

    async fn receive(&self, request: Request) -> Result<Accepted, IngestError> {
        let (parts, body) = request.into_parts();
        let below = below(&self.settings.path, parts.uri.path()).ok_or(IngestError::NotFound)?;
        if parts.method != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        if self.shutdown.is_cancelled() {
            return Err(IngestError::ShuttingDown {
                retry_after: self.retry_after(),
            });
        }
        if let Some(tokens) = &self.tokens
            && !tokens.check(&parts.headers)
        {
            return Err(IngestError::Unauthorized);
        }
        let format = body::format_of(&parts.headers)?;
        let gzip = body::is_gzip(&parts.headers)?;
        let _permit = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| IngestError::Busy {
                retry_after: self.retry_after(),
            })?;
        let limit = self.settings.max_body_size;
        let bytes = body::read(body, &parts.headers, limit, self.settings.request_timeout).await?;
        let decoded = self.decode(bytes, gzip, format).await?;
        let tag = self.settings.tag.render(below, &parts.headers);
        self.deliver(tag, decoded).await
    }

    async fn decode(
        &self,
        bytes: Bytes,
        gzip: bool,
        format: Format,
    ) -> Result<Vec<Decoded>, IngestError> {
        let inline = !gzip && bytes.len() <= INLINE_DECODE_LIMIT;
        let settings = self.settings.clone();
        let work = move || {
            let bytes = if gzip {
                body::gunzip(&bytes, settings.max_body_size)?
            } else {
                bytes
            };
            body::decode(&bytes, format, settings.time.as_ref(), Utc::now())
        };
        if inline {
            return work();
        }
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or(Err(IngestError::Internal))
    }

    /// Queues the events and, per `ack`, waits until they are delivered.
    async fn deliver(
        &self,
        tag: crate::event::Tag,
        decoded: Vec<Decoded>,
    ) -> Result<Accepted, IngestError> {
        let retry_after = self.retry_after();
        let (decoded, keys, duplicates) = self.drop_duplicates(decoded);
        let events_count = decoded.len();
        if decoded.is_empty() {
            return Ok(Accepted {
                events: 0,
                duplicates,
            });
        }
        if self.shutdown.is_cancelled() {
            return Err(IngestError::ShuttingDown { retry_after });
        }
        let (ack, waiter) = match self.settings.ack {
            AckMode::Delivered => {
                let (ack, waiter) = Ack::batch();
                (ack, Some(waiter))
            }
            AckMode::Accepted => (Ack::none(), None),
        };
        let batch: Vec<Event> = decoded
            .into_iter()
            .map(|d| Event::new(tag.clone(), d.time, d.record, ack.clone()))
            .collect();
        ack.settle();
        // A send that times out drops the batch unsent (mpsc sends are
        // cancel-safe); its acks then fail, which nobody waits for.
        match tokio::time::timeout(self.settings.queue_timeout, self.out.send(batch)).await {
            Err(_) => return Err(IngestError::Busy { retry_after }),
            Ok(Err(_closed)) => return Err(IngestError::ShuttingDown { retry_after }),
            Ok(Ok(())) => {}
        }
        if let Some(waiter) = waiter {
            match tokio::time::timeout(self.settings.ack_timeout, waiter.wait()).await {
                Ok(BatchStatus::Delivered) => {}
                Ok(BatchStatus::Failed) | Err(_) => {
                    return Err(IngestError::NotDelivered { retry_after });
                }
            }
        }
        self.remember(keys);
        Ok(Accepted {
            events: events_count,
            duplicates,
        })
    }

    /// Removes events delivered before (and repeats within this request),
    /// returning the kept events and their keys.
    fn drop_duplicates(&self, decoded: Vec<Decoded>) -> (Vec<Decoded>, Vec<Key>, usize) {
        let Some(dedupe) = &self.dedupe else {
            return (decoded, Vec::new(), 0);
        };
        let now = Instant::now();
        let mut seen_here = std::collections::HashSet::new();
        let mut kept = Vec::with_capacity(decoded.len());
        let mut keys = Vec::with_capacity(decoded.len());
        let mut duplicates = 0;
        let mut dedupe = dedupe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for d in decoded {
            match dedupe::key_of(&d.record) {
                Some(key) if dedupe.contains(&key, now) || seen_here.contains(&key) => {
                    duplicates += 1;
                }
                Some(key) => {
                    seen_here.insert(key.clone());
                    keys.push(key);
                    kept.push(d);
                }
                None => kept.push(d),
            }
        }
        drop(dedupe);
        self.duplicates.inc_by(duplicates as u64);
        (kept, keys, duplicates)
    }

    fn remember(&self, keys: Vec<Key>) {
        if let Some(dedupe) = &self.dedupe
            && !keys.is_empty()
        {
            dedupe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remember(keys, Instant::now());
        }
    }
}

/// The request path below the source's `path` (`prefix` has no trailing
/// slash), or `None` when the request is outside it.
fn below<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?;
    if !rest.is_empty() && !rest.starts_with('/') && !prefix.is_empty() {
        return None; // `/auditx` is not below `/audit`
    }
    Some(rest.trim_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::below;

    #[test]
    fn paths_below_the_prefix() {
        assert_eq!(below("", "/"), Some(""));
        assert_eq!(below("", "/a/b/"), Some("a/b"));
        assert_eq!(below("/audit", "/audit"), Some(""));
        assert_eq!(below("/audit", "/audit/prod"), Some("prod"));
        assert_eq!(below("/audit", "/auditx"), None);
        assert_eq!(below("/audit", "/other"), None);
    }
}
