//! The running `elasticsearch` output: encodes `_bulk` bodies for the
//! driver and sends them, several at once, to the cluster's endpoints in
//! turn, then reads each answer item by item ([`super::retry`]).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use tokio::time::Instant;

use super::bulk::BulkEncoder;
use super::retry;
use crate::batch::{Delivery, Output, OutputError};
use crate::event::Event;
use crate::output::net::auth::{Auth, with_auth};
use crate::output::net::client::{Compression, gzip};
use crate::output::net::response::{describe_status, retry_after, transport_error};

/// The cluster's endpoints, used in turn; a failing one sits out a cool-down.
#[derive(Debug)]
pub(super) struct Endpoints {
    pub(super) bulk_urls: Vec<reqwest::Url>,
    pub(super) down_until: Vec<Option<Instant>>,
    pub(super) next: usize,
    pub(super) cooldown: std::time::Duration,
}

impl Endpoints {
    pub(super) fn new(bulk_urls: Vec<reqwest::Url>, cooldown: std::time::Duration) -> Self {
        Self {
            down_until: vec![None; bulk_urls.len()],
            bulk_urls,
            next: 0,
            cooldown,
        }
    }

    /// The next healthy endpoint, or when all are cooling down, the one
    /// that recovers first.
    fn pick(&mut self) -> usize {
        let now = Instant::now();
        let n = self.bulk_urls.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.down_until[i].is_none_or(|t| t <= now) {
                self.next = i + 1;
                return i;
            }
        }
        (0..n).min_by_key(|&i| self.down_until[i]).unwrap_or(0)
    }

    fn failed(&mut self, i: usize) {
        self.down_until[i] = Some(Instant::now() + self.cooldown);
    }

    fn succeeded(&mut self, i: usize) {
        self.down_until[i] = None;
    }
}

/// What every request in flight shares.
pub(super) struct Requests {
    pub(super) client: reqwest::Client,
    pub(super) endpoints: Mutex<Endpoints>,
    pub(super) auth: Auth,
    pub(super) compress: Compression,
    pub(super) level: u32,
    /// Whether a 409 means "already indexed" (`create`).
    pub(super) create: bool,
    pub(super) duplicates: Counter,
}

/// The running `elasticsearch` output.
pub struct ElasticsearchOutput {
    pub(super) encoder: BulkEncoder,
    pub(super) requests: Arc<Requests>,
}

impl Output for ElasticsearchOutput {
    fn encode(&mut self, event: &Event, body: &mut Vec<u8>) {
        self.encoder.encode_one(event, body);
    }

    fn send(
        &mut self,
        body: Bytes,
        count: usize,
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + 'static {
        let requests = self.requests.clone();
        async move { requests.bulk(body, count).await }
    }
}

impl Requests {
    fn endpoint(&self) -> (usize, reqwest::Url) {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        let i = endpoints.pick();
        (i, endpoints.bulk_urls[i].clone())
    }

    fn mark(&self, endpoint: usize, healthy: bool) {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if healthy {
            endpoints.succeeded(endpoint);
        } else {
            endpoints.failed(endpoint);
        }
    }

    /// One `_bulk` request of `sent` documents.
    async fn bulk(&self, body: Bytes, sent: usize) -> Result<Delivery, OutputError> {
        let gzipped = self.compress == Compression::Gzip;
        let body = if gzipped {
            Bytes::from(gzip(body, self.level).await?)
        } else {
            body
        };
        let (endpoint, url) = self.endpoint();
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        if gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = match with_auth(request, &self.auth).send().await {
            Ok(response) => response,
            Err(e) => {
                self.mark(endpoint, false);
                return Err(transport_error(&e));
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let answer = match response.bytes().await {
            Ok(answer) => answer,
            Err(e) => {
                self.mark(endpoint, false);
                return Err(transport_error(&e));
            }
        };
        if status.is_success() {
            self.mark(endpoint, true);
            let outcome = retry::read_bulk_response(&answer, sent, self.create)?;
            self.duplicates.inc_by(outcome.duplicates);
            return Ok(outcome.delivery);
        }
        let reason = describe_status(status, &answer);
        match status.as_u16() {
            413 => Err(OutputError::TooLarge),
            // Wrong or rotating credentials: retried (a credential file is
            // read again on reload), never dead-lettered.
            401 | 403 => Err(OutputError::Retry {
                reason: format!("{reason} (check the output's `auth`)"),
                retry_after: retry_after(&headers),
            }),
            // Timeouts and overload pass: retry rather than dead-letter.
            408 | 429 => Err(OutputError::Retry {
                reason,
                retry_after: retry_after(&headers),
            }),
            500..=599 => {
                self.mark(endpoint, false);
                Err(OutputError::Retry {
                    reason,
                    retry_after: retry_after(&headers),
                })
            }
            _ => Err(OutputError::Rejected { reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Endpoints {
        Endpoints::new(
            (0..n)
                .map(|i| {
                    reqwest::Url::parse(&format!("http://127.0.0.1:{}/_bulk", 9200 + i)).unwrap()
                })
                .collect(),
            std::time::Duration::from_secs(30),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn endpoints_rotate_and_skip_failed_ones_for_the_cooldown() {
        let mut e = endpoints(3);
        assert_eq!([e.pick(), e.pick(), e.pick(), e.pick()], [0, 1, 2, 0]);
        e.failed(1);
        assert_eq!([e.pick(), e.pick(), e.pick()], [2, 0, 2]);
        tokio::time::advance(std::time::Duration::from_secs(31)).await;
        assert_eq!([e.pick(), e.pick()], [0, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn when_all_endpoints_failed_the_first_to_recover_is_tried() {
        let mut e = endpoints(2);
        e.failed(1);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        e.failed(0);
        assert_eq!(e.pick(), 1);
    }
}
