//! The generic network-output driver: reads events from the router, groups
//! them into batches (`max_size`, `max_wait`), paces batches (`throttle_qps`,
//! `throttle_burst`), sends them through an [`Output`], retries what failed
//! with backoff and jitter, dead-letters what the remote rejected for good,
//! and settles acks only once the remote accepted (or the dead-letter file
//! recorded) each event. While a batch is in flight or waiting, it keeps
//! reading ahead up to `buffer_size` events; past that the router blocks (or
//! drops, per `on_full`), so a dead remote pauses the sources.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Backoff, BatchMode, BatchSettings, DeadLetter, Throttle};
use crate::event::{Event, EventBatch};
use crate::metrics::ComponentMetrics;

/// A destination the driver sends batches to. Implementations only encode
/// and classify the response; they never touch acks.
pub trait Output: Send + 'static {
    /// Sends `batch` once. The events are read before the first `.await`
    /// (encode the request up front), so the future borrows only `self`.
    fn send<'a>(
        &'a mut self,
        batch: &[Event],
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + use<'a, Self>;
}

/// What became of a batch the remote answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Every event was accepted.
    All,
    /// Some events failed: `retry` (indices into the batch) may succeed
    /// later; `rejected` never will (with the reason). The rest succeeded.
    Partial {
        retry: Vec<usize>,
        rejected: Vec<(usize, String)>,
    },
}

/// Why a whole batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// A failure that may pass: connection refused or reset, timeout, 429,
    /// 5xx. `retry_after` is the server's `Retry-After`, if it sent one.
    #[error("{reason}")]
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The remote refused the batch for good (a 4xx other than 429): it goes
    /// to the dead-letter file.
    #[error("{reason}")]
    Rejected { reason: String },
    /// The remote answered 413: the batch is sent again in halves.
    #[error("the request was too large for the remote (HTTP 413)")]
    TooLarge,
}

/// Retry timing of a network output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySettings {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Runs one network output.
pub struct Driver<O: Output> {
    output: O,
    settings: BatchSettings,
    throttle: Option<Throttle>,
    backoff: Backoff,
    dead_letter: DeadLetter,
    metrics: ComponentMetrics,
    rejected: Counter,
    retried: Counter,
    requests: Counter,
}

impl<O: Output> Driver<O> {
    pub fn new(
        output: O,
        settings: BatchSettings,
        retry: RetrySettings,
        dead_letter: DeadLetter,
        metrics: ComponentMetrics,
    ) -> Self {
        let registry = metrics.metrics().clone();
        Self {
            output,
            throttle: settings
                .throttle
                .map(|(qps, burst)| Throttle::new(qps, burst)),
            settings,
            backoff: Backoff::new(retry.initial_backoff, retry.max_backoff),
            dead_letter,
            rejected: metrics.dropped("rejected"),
            retried: registry.component_counter(
                "output_retried_events",
                "Events a network output sent again after a failure",
                &metrics.name,
            ),
            requests: registry.component_counter(
                "output_requests",
                "Requests (batches) a network output sent, retries included",
                &metrics.name,
            ),
            metrics,
        }
    }

    /// Replaces the jitter source (tests).
    #[cfg(test)]
    pub(crate) fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Delivers until the input closes and everything read is settled. At
    /// shutdown the pipeline bounds how long this may take; events still
    /// held then are dropped unsettled, so their sources do not advance.
    pub async fn run(mut self, rx: mpsc::Receiver<EventBatch>) -> O {
        let mut input = Input {
            rx,
            queue: VecDeque::new(),
            open: true,
            cap: self.settings.buffer_size,
        };
        loop {
            if input.queue.is_empty() && !input.recv_one().await {
                break;
            }
            if self.settings.mode == BatchMode::Batch {
                let deadline = Instant::now() + self.settings.max_wait;
                input.fill(self.settings.max_size, deadline).await;
            }
            let take = self.settings.max_size.min(input.queue.len());
            let batch: Vec<Event> = input.queue.drain(..take).collect();
            if let Some(throttle) = &mut self.throttle {
                input.while_buffering(throttle.acquire()).await;
            }
            self.deliver(batch, &mut input).await;
        }
        self.output
    }

    /// Sends one batch until every event is accepted or dead-lettered.
    async fn deliver(&mut self, batch: Vec<Event>, input: &mut Input) {
        // Halves of a batch the remote found too large wait here.
        let mut work = vec![batch];
        while let Some(mut events) = work.pop() {
            loop {
                self.requests.inc();
                let result = input.while_buffering(self.output.send(&events)).await;
                let retry_after = match result {
                    Ok(Delivery::All) => {
                        self.backoff.reset();
                        self.settle(events);
                        break;
                    }
                    Ok(Delivery::Partial { retry, rejected }) => {
                        events = self.settle_partial(events, &retry, rejected);
                        if events.is_empty() {
                            self.backoff.reset();
                            break;
                        }
                        self.metrics.errors.inc();
                        None
                    }
                    Err(OutputError::Retry {
                        reason,
                        retry_after,
                    }) => {
                        self.metrics.errors.inc();
                        tracing::warn!(
                            output = %self.metrics.name,
                            events = events.len(),
                            attempt = self.backoff.attempts() + 1,
                            error = %reason,
                            "Sending a batch failed; it will be retried."
                        );
                        retry_after
                    }
                    Err(OutputError::Rejected { reason }) => {
                        self.metrics.errors.inc();
                        let reasons: Vec<(usize, String)> =
                            (0..events.len()).map(|i| (i, reason.clone())).collect();
                        self.settle_partial(events, &[], reasons);
                        break;
                    }
                    Err(OutputError::TooLarge) => {
                        if events.len() == 1 {
                            let reason = OutputError::TooLarge.to_string();
                            self.settle_partial(events, &[], vec![(0, reason)]);
                        } else {
                            let second = events.split_off(events.len() / 2);
                            tracing::info!(
                                output = %self.metrics.name,
                                events = events.len() + second.len(),
                                "The remote found a batch too large; sending it in halves."
                            );
                            work.push(second);
                            work.push(events);
                        }
                        break;
                    }
                };
                self.retried.inc_by(events.len() as u64);
                let wait = self.backoff.next_wait(retry_after);
                input.while_buffering(tokio::time::sleep(wait)).await;
            }
        }
    }

    fn settle(&self, events: Vec<Event>) {
        self.metrics.events_out.inc_by(events.len() as u64);
        for event in events {
            event.ack.settle();
        }
    }

    /// Settles the delivered events, dead-letters the rejected ones and
    /// returns those to retry.
    fn settle_partial(
        &mut self,
        events: Vec<Event>,
        retry: &[usize],
        rejected: Vec<(usize, String)>,
    ) -> Vec<Event> {
        #[derive(Clone, Copy, PartialEq)]
        enum Fate {
            Delivered,
            Retry,
            Rejected(usize),
        }
        let mut fates = vec![Fate::Delivered; events.len()];
        for &i in retry {
            if let Some(fate) = fates.get_mut(i) {
                *fate = Fate::Retry;
            }
        }
        for (n, (i, _)) in rejected.iter().enumerate() {
            if let Some(fate) = fates.get_mut(*i) {
                *fate = Fate::Rejected(n);
            }
        }
        let dead: Vec<(&Event, &str)> = events
            .iter()
            .zip(&fates)
            .filter_map(|(event, fate)| match fate {
                Fate::Rejected(n) => Some((event, rejected[*n].1.as_str())),
                _ => None,
            })
            .collect();
        let dead_count = dead.len() as u64;
        let recorded = match self.dead_letter.write(&dead) {
            Ok(()) => {
                if dead_count > 0 {
                    tracing::warn!(
                        output = %self.metrics.name,
                        events = dead_count,
                        path = %self.dead_letter.path().display(),
                        reason = %dead.first().map_or("", |d| d.1),
                        "The remote rejected events; they were written to the dead-letter file."
                    );
                    self.rejected.inc_by(dead_count);
                }
                true
            }
            Err(e) => {
                self.metrics.errors.inc();
                tracing::error!(
                    output = %self.metrics.name,
                    events = dead_count,
                    error = %crate::error_chain(&e),
                    "Rejected events could not be dead-lettered; they stay unacknowledged."
                );
                false
            }
        };
        drop(dead);
        let mut again = Vec::new();
        let mut delivered = 0u64;
        for (event, fate) in events.into_iter().zip(fates) {
            match fate {
                Fate::Delivered => {
                    delivered += 1;
                    event.ack.settle();
                }
                Fate::Retry => again.push(event),
                Fate::Rejected(_) if recorded => event.ack.settle(),
                Fate::Rejected(_) => event.ack.fail(),
            }
        }
        self.metrics.events_out.inc_by(delivered);
        again
    }
}

/// The router's channel plus the events read ahead of the current batch.
struct Input {
    rx: mpsc::Receiver<EventBatch>,
    queue: VecDeque<Event>,
    open: bool,
    /// Read ahead only while fewer than this many events wait.
    cap: usize,
}

impl Input {
    /// Waits for at least one event; false once the input is closed and
    /// nothing is left.
    async fn recv_one(&mut self) -> bool {
        while self.queue.is_empty() && self.open {
            match self.rx.recv().await {
                Some(batch) => self.queue.extend(batch),
                None => self.open = false,
            }
        }
        !self.queue.is_empty()
    }

    /// Reads until `size` events wait, the input closes, or `deadline`.
    async fn fill(&mut self, size: usize, deadline: Instant) {
        while self.queue.len() < size && self.open {
            tokio::select! {
                biased;
                batch = self.rx.recv() => match batch {
                    Some(batch) => self.queue.extend(batch),
                    None => self.open = false,
                },
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Runs `work` while reading ahead up to the buffer size.
    async fn while_buffering<F: Future>(&mut self, work: F) -> F::Output {
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                batch = self.rx.recv(), if self.open && self.queue.len() < self.cap => match batch {
                    Some(batch) => self.queue.extend(batch),
                    None => self.open = false,
                },
            }
        }
    }
}
