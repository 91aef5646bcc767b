//! The generic network-output driver: reads events from the router, encodes
//! them into request bodies as they come (a batch closes at `max_size`
//! events, `max_bytes` of body, or `max_wait` after its first event), paces
//! requests (`throttle_qps`, `throttle_burst`), keeps up to `concurrency`
//! requests in flight, and settles acks only once the remote accepted (or
//! the dead-letter file recorded) each event, in whatever order answers
//! come back.
//!
//! Failures never hold up the batches behind them beyond the request slot
//! they occupy:
//! - a whole request that failed (connection refused, 5xx, 429) is retried
//!   in its slot with backoff and jitter; the other slots go on;
//! - events an answer asks to retry (a `_bulk` item's 429) go back into the
//!   stream with their own backoff, then join the next batch, which leaves
//!   without waiting for `max_wait`;
//! - events the remote rejected for good go to the dead-letter file;
//! - a batch answered 413 is sent again in halves.
//!
//! While batches wait or are in flight, it reads ahead up to `buffer_size`
//! events; past that the router blocks (or drops, per `on_full`), so a dead
//! remote pauses the sources.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Backoff, BatchMode, BatchSettings, DeadLetter, Throttle};
use crate::event::{Event, EventBatch};
use crate::metrics::ComponentMetrics;

/// A destination the driver sends batches to. Implementations encode
/// events and classify answers; they never touch acks.
pub trait Output: Send + 'static {
    /// Appends one event to a request body; `body` is empty before a
    /// batch's first event.
    fn encode(&mut self, event: &Event, body: &mut Vec<u8>);

    /// Completes a body after its last event (closing brackets).
    fn finish(&mut self, body: &mut Vec<u8>) {
        let _ = body;
    }

    /// Sends a finished body holding `count` events, once. The future owns
    /// what it needs, so several requests can be in flight.
    fn send(
        &mut self,
        body: Bytes,
        count: usize,
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + 'static;
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
    /// 5xx, an answer that cannot be read. `retry_after` is the server's
    /// `Retry-After`, if it sent one.
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

/// Closed (encoded) batches kept waiting for a free request slot: one is
/// enough for the next free slot, since encoding takes milliseconds while a
/// request takes far longer; more would only hold bodies in memory.
const READY_AHEAD: usize = 1;

/// One event waiting to be sent, with the number of times an answer asked
/// to send it again.
type Held = (Event, u32);

/// A closed batch: its events and finished body (kept for whole retries).
struct Batch {
    events: Vec<Event>,
    tries: Vec<u32>,
    body: Bytes,
    /// Failed attempts of this whole request.
    attempts: u32,
}

/// The batch being filled.
struct Open {
    events: Vec<Event>,
    tries: Vec<u32>,
    body: Vec<u8>,
    /// When its first event arrived: `max_wait` counts from here.
    since: Instant,
    /// It holds events sent before: they waited their backoff already, so
    /// the batch leaves without waiting for `max_wait`.
    retried: bool,
}

/// Events an answer asked to retry, due again at `due`.
struct Waiting {
    due: Instant,
    events: Vec<Held>,
}

/// A request slot's news.
enum Slot {
    /// A request's answer, and how long the round trip took.
    Answered(Batch, Result<Delivery, OutputError>, Duration),
    /// A failed request's backoff ran out: send it again.
    Rested(Batch),
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
    latency: Histogram,
    batch_sizes: Histogram,
    failures: FailureLog,
    /// Size of the last body, to allocate the next one at once.
    size_hint: usize,
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
            failures: FailureLog::default(),
            size_hint: 0,
            latency: metrics.latency(),
            batch_sizes: metrics.batch_sizes(),
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
    /// held then (in flight included) are dropped unsettled, so their
    /// sources do not advance.
    pub async fn run(mut self, mut rx: mpsc::Receiver<EventBatch>) -> O {
        let mut state = State {
            fresh: VecDeque::new(),
            open: None,
            ready: VecDeque::new(),
            waiting: Vec::new(),
            slots: JoinSet::new(),
            input_open: true,
        };
        let concurrency = self.settings.concurrency.max(1);
        loop {
            let now = Instant::now();
            state.wake_retries(now);
            self.fill(&mut state, now);
            // Dispatch ready batches into free slots, as the throttle allows.
            let mut throttled_until = None;
            while state.slots.len() < concurrency && !state.ready.is_empty() {
                if let Some(throttle) = &mut self.throttle {
                    let delay = throttle.delay();
                    if !delay.is_zero() {
                        throttled_until = Some(now + delay);
                        break;
                    }
                    throttle.take();
                }
                let batch = state.ready.pop_front().expect("not empty");
                self.dispatch(&mut state.slots, batch);
            }
            if !state.fresh.is_empty()
                && state.ready.len() < READY_AHEAD
                && throttled_until.is_none()
            {
                // Slots took batches: encode the next ones.
                continue;
            }
            if !state.input_open && state.is_idle() {
                break;
            }
            let held = state.held();
            let can_read = state.input_open
                && match self.settings.mode {
                    BatchMode::Batch => held < self.settings.buffer_size,
                    // No read-ahead: the next group once this one is done.
                    BatchMode::Blocking => held == 0 && state.slots.is_empty(),
                };
            let wake = [
                state
                    .open
                    .as_ref()
                    .map(|open| open.since + self.settings.max_wait),
                state.waiting.iter().map(|w| w.due).min(),
                throttled_until,
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                biased;
                Some(done) = state.slots.join_next(), if !state.slots.is_empty() => match done {
                    Ok(Slot::Answered(batch, result, took)) => {
                        self.latency.observe(took.as_secs_f64());
                        self.answered(&mut state, batch, result);
                    }
                    Ok(Slot::Rested(batch)) => self.dispatch(&mut state.slots, batch),
                    Err(e) => {
                        // A request task panicked: its events are lost to
                        // this run and stay unacknowledged.
                        self.metrics.errors.inc();
                        tracing::error!(output = %self.metrics.name, error = %e, "A request task failed; its events stay unacknowledged.");
                    }
                },
                batch = rx.recv(), if can_read => match batch {
                    Some(batch) => state.fresh.extend(batch.into_iter().map(|e| (e, 0))),
                    None => state.input_open = false,
                },
                () = sleep_until(wake) => {}
            }
        }
        self.output
    }

    /// Encodes waiting events into the open batch, closing it into `ready`
    /// when it is full, its `max_wait` ran out, or nothing more can come.
    /// Only [`READY_AHEAD`] closed batches are kept encoded: the rest of the
    /// events wait as they are, so a backlog is not held twice in memory.
    fn fill(&mut self, state: &mut State, now: Instant) {
        let max_bytes = self.settings.max_bytes.unwrap_or(usize::MAX);
        while state.ready.len() < READY_AHEAD {
            let Some((event, tries)) = state.fresh.pop_front() else {
                break;
            };
            let capacity = self.size_hint + self.size_hint / 8;
            let open = state.open.get_or_insert_with(|| Open {
                events: Vec::new(),
                tries: Vec::new(),
                body: Vec::with_capacity(capacity),
                since: now,
                retried: false,
            });
            let before = open.body.len();
            self.output.encode(&event, &mut open.body);
            if open.body.len() > max_bytes && !open.events.is_empty() {
                // Over the byte limit: close without this event, which
                // starts the next batch.
                open.body.truncate(before);
                let full = state.open.take().expect("open");
                state.ready.push_back(self.close(full));
                state.fresh.push_front((event, tries));
                continue;
            }
            open.events.push(event);
            open.tries.push(tries);
            open.retried |= tries > 0;
            if open.events.len() >= self.settings.max_size || open.body.len() >= max_bytes {
                let full = state.open.take().expect("open");
                state.ready.push_back(self.close(full));
            }
        }
        let due = state.open.as_ref().is_some_and(|open| {
            self.settings.mode == BatchMode::Blocking
                || open.retried
                || open.since + self.settings.max_wait <= now
                || !state.input_open
        });
        if due {
            let open = state.open.take().expect("open");
            state.ready.push_back(self.close(open));
        }
    }

    fn close(&mut self, mut open: Open) -> Batch {
        self.output.finish(&mut open.body);
        self.size_hint = open.body.len();
        Batch {
            events: open.events,
            tries: open.tries,
            body: Bytes::from(open.body),
            attempts: 0,
        }
    }

    /// Re-encodes `events` into batches (the halves of a batch too large).
    fn rebatch(&mut self, events: Vec<Event>, tries: Vec<u32>) -> Batch {
        let mut body = Vec::new();
        for event in &events {
            self.output.encode(event, &mut body);
        }
        self.close(Open {
            events,
            tries,
            body,
            since: Instant::now(),
            retried: false,
        })
    }

    fn dispatch(&mut self, slots: &mut JoinSet<Slot>, batch: Batch) {
        self.requests.inc();
        #[allow(clippy::cast_precision_loss)] // Batch sizes are far below 2^52.
        self.batch_sizes.observe(batch.events.len() as f64);
        let request = self.output.send(batch.body.clone(), batch.events.len());
        slots.spawn(async move {
            let started = Instant::now();
            let result = request.await;
            Slot::Answered(batch, result, started.elapsed())
        });
    }

    fn answered(
        &mut self,
        state: &mut State,
        mut batch: Batch,
        result: Result<Delivery, OutputError>,
    ) {
        match result {
            Ok(Delivery::All) => {
                self.failures.recovered(&self.metrics.name);
                self.settle(batch.events);
            }
            Ok(Delivery::Partial { retry, rejected }) => {
                self.failures.recovered(&self.metrics.name);
                let again = self.settle_partial(batch.events, batch.tries, &retry, rejected);
                if !again.is_empty() {
                    self.metrics.errors.inc();
                    self.retried.inc_by(again.len() as u64);
                    let tries = again.iter().map(|(_, t)| *t).max().unwrap_or(1);
                    let wait = self.backoff.nth_wait(tries.saturating_sub(1), None);
                    tracing::debug!(
                        output = %self.metrics.name,
                        events = again.len(),
                        wait = ?wait,
                        "The remote asked to retry some events; they go back into the stream."
                    );
                    state.waiting.push(Waiting {
                        due: Instant::now() + wait,
                        events: again,
                    });
                }
            }
            Err(OutputError::Retry {
                reason,
                retry_after,
            }) => {
                self.metrics.errors.inc();
                self.retried.inc_by(batch.events.len() as u64);
                let wait = self.backoff.nth_wait(batch.attempts, retry_after);
                batch.attempts += 1;
                self.failures.failed(
                    &self.metrics.name,
                    &reason,
                    batch.events.len(),
                    batch.attempts,
                    wait,
                );
                state.slots.spawn(async move {
                    tokio::time::sleep(wait).await;
                    Slot::Rested(batch)
                });
            }
            Err(OutputError::Rejected { reason }) => {
                self.metrics.errors.inc();
                let reasons: Vec<(usize, String)> = (0..batch.events.len())
                    .map(|i| (i, reason.clone()))
                    .collect();
                self.settle_partial(batch.events, batch.tries, &[], reasons);
            }
            Err(OutputError::TooLarge) => {
                if batch.events.len() == 1 {
                    let reason = OutputError::TooLarge.to_string();
                    self.settle_partial(batch.events, batch.tries, &[], vec![(0, reason)]);
                } else {
                    let mut first = batch.events;
                    let second = first.split_off(first.len() / 2);
                    let mut first_tries = batch.tries;
                    let second_tries = first_tries.split_off(first.len());
                    tracing::info!(
                        output = %self.metrics.name,
                        events = first.len() + second.len(),
                        "The remote found a batch too large; sending it in halves."
                    );
                    let second = self.rebatch(second, second_tries);
                    let first = self.rebatch(first, first_tries);
                    state.ready.push_front(second);
                    state.ready.push_front(first);
                }
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
    /// returns those to retry, each with one more try counted.
    fn settle_partial(
        &mut self,
        events: Vec<Event>,
        tries: Vec<u32>,
        retry: &[usize],
        rejected: Vec<(usize, String)>,
    ) -> Vec<Held> {
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
        for ((event, fate), tries) in events.into_iter().zip(fates).zip(tries) {
            match fate {
                Fate::Delivered => {
                    delivered += 1;
                    event.ack.settle();
                }
                Fate::Retry => again.push((event, tries + 1)),
                Fate::Rejected(_) if recorded => event.ack.settle(),
                Fate::Rejected(_) => event.ack.fail(),
            }
        }
        self.metrics.events_out.inc_by(delivered);
        again
    }
}

/// Everything a running driver holds.
struct State {
    /// Events read (or due for a retry), not yet encoded.
    fresh: VecDeque<Held>,
    open: Option<Open>,
    /// Closed batches waiting for a slot (or the throttle).
    ready: VecDeque<Batch>,
    waiting: Vec<Waiting>,
    /// Requests in flight and failed requests resting before a retry.
    slots: JoinSet<Slot>,
    input_open: bool,
}

impl State {
    /// Retries whose wait ran out go first into the next batch.
    fn wake_retries(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].due <= now {
                let woken = self.waiting.swap_remove(i);
                for held in woken.events.into_iter().rev() {
                    self.fresh.push_front(held);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Events held outside the request slots.
    fn held(&self) -> usize {
        self.fresh.len()
            + self.open.as_ref().map_or(0, |o| o.events.len())
            + self.ready.iter().map(|b| b.events.len()).sum::<usize>()
            + self.waiting.iter().map(|w| w.events.len()).sum::<usize>()
    }

    fn is_idle(&self) -> bool {
        self.slots.is_empty()
            && self.fresh.is_empty()
            && self.open.is_none()
            && self.ready.is_empty()
            && self.waiting.is_empty()
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Failed requests are logged once per reason: a failing remote with
/// several requests in flight (or retrying for hours) gives one warning,
/// repeated at most every [`FailureLog::REPEAT`] with the count since, and
/// one line when delivery resumes.
#[derive(Default)]
struct FailureLog {
    last: Option<(String, Instant)>,
    since_logged: u64,
}

impl FailureLog {
    const REPEAT: Duration = Duration::from_secs(60);

    fn failed(&mut self, output: &str, reason: &str, events: usize, attempt: u32, wait: Duration) {
        let now = Instant::now();
        let quiet = self
            .last
            .as_ref()
            .is_some_and(|(last, at)| last == reason && now.duration_since(*at) < Self::REPEAT);
        if quiet {
            self.since_logged += 1;
            return;
        }
        tracing::warn!(
            output,
            events,
            attempt,
            retry_in = ?wait,
            similar_failures_since_last_report = self.since_logged,
            error = %reason,
            "Sending a batch failed; it will be retried."
        );
        self.last = Some((reason.to_owned(), now));
        self.since_logged = 0;
    }

    fn recovered(&mut self, output: &str) {
        if self.last.take().is_some() {
            tracing::info!(output, "The remote accepts requests again.");
            self.since_logged = 0;
        }
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
