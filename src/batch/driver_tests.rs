//! Driver behaviour with a scripted output and a paused clock: batch sizes
//! and waits, throttling, backoff timing, partial retries, dead letters,
//! splitting on 413, read-ahead limits and acks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::batch::*;
use crate::event::test_event;
use crate::event::{Ack, AckWaiter, BatchStatus, Event, EventBatch};
use crate::metrics::Metrics;

/// What the fake output answers to one request.
enum Step {
    Answer(Result<Delivery, OutputError>),
    /// This answer after this long.
    Later(Duration, Result<Delivery, OutputError>),
    Hang,
}

/// When each request was sent, and the events in it.
type Sends = Vec<(Instant, Vec<String>)>;

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Sends>>);

impl Log {
    fn sends(&self) -> Vec<(Instant, Vec<String>)> {
        self.0.lock().unwrap().clone()
    }
    fn sizes(&self) -> Vec<usize> {
        self.sends().iter().map(|(_, ids)| ids.len()).collect()
    }
}

struct Scripted {
    steps: VecDeque<Step>,
    log: Log,
}

impl Output for Scripted {
    fn encode(&mut self, event: &Event, body: &mut Vec<u8>) {
        body.extend_from_slice(event.record.raw().unwrap_or_default().as_bytes());
        body.push(b'\n');
    }

    fn send(
        &mut self,
        body: bytes::Bytes,
        count: usize,
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + 'static {
        let ids: Vec<String> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(ids.len(), count);
        self.log.0.lock().unwrap().push((Instant::now(), ids));
        let step = self
            .steps
            .pop_front()
            .unwrap_or(Step::Answer(Ok(Delivery::All)));
        async move {
            match step {
                Step::Answer(answer) => answer,
                Step::Later(wait, answer) => {
                    tokio::time::sleep(wait).await;
                    answer
                }
                Step::Hang => std::future::pending().await,
            }
        }
    }
}

fn events(range: std::ops::Range<usize>, ack: &Ack) -> EventBatch {
    range
        .map(|i| Event {
            ack: ack.clone(),
            ..test_event(&id(i))
        })
        .collect()
}

fn id(i: usize) -> String {
    format!(r#"{{"n":{i}}}"#)
}

struct Harness {
    tx: mpsc::Sender<EventBatch>,
    log: Log,
    metrics: Metrics,
    task: tokio::task::JoinHandle<Scripted>,
    dir: tempfile::TempDir,
}

fn start(settings: BatchSettings, steps: Vec<Step>, channel: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let metrics = Metrics::new();
    let (tx, rx) = mpsc::channel(channel);
    let output = Scripted {
        steps: steps.into(),
        log: log.clone(),
    };
    let retry = RetrySettings {
        initial_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(60),
    };
    let driver = Driver::new(
        output,
        settings,
        retry,
        DeadLetter::new(dir.path().join("dead.ndjson"), "test"),
        metrics.component("test"),
    )
    .with_backoff(
        Backoff::new(retry.initial_backoff, retry.max_backoff).with_jitter(Jitter::from_seed(7)),
    );
    let task = tokio::spawn(driver.run(rx));
    Harness {
        tx,
        log,
        metrics,
        task,
        dir,
    }
}

fn settings(max_size: usize) -> BatchSettings {
    BatchSettings {
        max_size,
        throttle: None,
        ..WEBHOOK_DEFAULTS
    }
}

fn retry_err() -> Step {
    Step::Answer(Err(OutputError::Retry {
        reason: "HTTP 503".into(),
        retry_after: None,
    }))
}

async fn finish(h: Harness, waiter: AckWaiter) -> (Log, Metrics, tempfile::TempDir) {
    drop(h.tx);
    h.task.await.unwrap();
    assert_eq!(waiter.wait().await, BatchStatus::Delivered);
    (h.log, h.metrics, h.dir)
}

#[tokio::test(start_paused = true)]
async fn full_batches_go_at_once_and_a_partial_one_after_max_wait() {
    let h = start(settings(400), vec![], 8);
    let start = Instant::now();
    let (ack, waiter) = Ack::batch();
    for chunk in 0..4 {
        h.tx.send(events(chunk * 250..(chunk + 1) * 250, &ack))
            .await
            .unwrap();
    }
    ack.settle();
    while h.log.sizes().len() < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sends = h.log.sends();
    assert_eq!(h.log.sizes(), vec![400, 400, 200]);
    assert_eq!(sends[0].0, start);
    assert_eq!(sends[1].0, start);
    // The last 200 waited for more until max_wait (30s) ran out.
    assert_eq!(sends[2].0 - start, Duration::from_secs(30));
    let (_, metrics, _) = finish(h, waiter).await;
    assert!(
        metrics
            .render()
            .contains(r#"auditrail_events_out_total{component="test"} 1000"#)
    );
}

#[tokio::test(start_paused = true)]
async fn a_closing_input_sends_the_partial_batch_without_waiting() {
    let h = start(settings(400), vec![], 8);
    let start = Instant::now();
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..5, &ack)).await.unwrap();
    ack.settle();
    let (log, _, _) = finish(h, waiter).await;
    assert_eq!(log.sizes(), vec![5]);
    assert_eq!(log.sends()[0].0, start);
}

#[tokio::test(start_paused = true)]
async fn throttle_lets_a_burst_through_then_paces_at_qps() {
    let h = start(
        BatchSettings {
            max_size: 1,
            throttle: Some((10.0, 15)),
            ..WEBHOOK_DEFAULTS
        },
        vec![],
        64,
    );
    let start = Instant::now();
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..35, &ack)).await.unwrap();
    ack.settle();
    let (log, _, _) = finish(h, waiter).await;
    let times: Vec<Duration> = log.sends().iter().map(|(t, _)| *t - start).collect();
    assert_eq!(times.len(), 35);
    assert!(times[..15].iter().all(|t| t.is_zero()), "{times:?}");
    // 20 more at 10 per second: the last leaves 2 s after the burst.
    let last = times[34];
    assert!(
        last >= Duration::from_millis(1990) && last <= Duration::from_millis(2010),
        "{last:?}"
    );
    // Over any window after the burst, no more than qps batches per second.
    for pair in times[15..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(99), "{gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn failed_batches_are_retried_with_growing_jittered_waits() {
    let h = start(settings(10), vec![retry_err(), retry_err(), retry_err()], 8);
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..3, &ack)).await.unwrap();
    ack.settle();
    let (log, metrics, _) = finish(h, waiter).await;
    let sends = log.sends();
    assert_eq!(sends.len(), 4);
    assert!(sends.iter().all(|(_, ids)| ids.len() == 3));
    for (n, base) in [10.0, 15.0, 22.5].into_iter().enumerate() {
        let gap = (sends[n + 1].0 - sends[n].0).as_secs_f64();
        assert!(gap >= base && gap <= base * 1.2, "wait {n}: {gap}");
    }
    let text = metrics.render();
    assert!(
        text.contains(r#"auditrail_output_retried_events_total{component="test"} 9"#),
        "{text}"
    );
    assert!(
        text.contains(r#"auditrail_output_requests_total{component="test"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"auditrail_errors_total{component="test"} 3"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_server_is_honoured() {
    let step = Step::Answer(Err(OutputError::Retry {
        reason: "HTTP 429".into(),
        retry_after: Some(Duration::from_secs(42)),
    }));
    let h = start(settings(10), vec![step], 8);
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..1, &ack)).await.unwrap();
    ack.settle();
    let (log, _, _) = finish(h, waiter).await;
    let sends = log.sends();
    assert_eq!(sends[1].0 - sends[0].0, Duration::from_secs(42));
}

#[tokio::test(start_paused = true)]
async fn partial_failures_resend_only_the_failed_events_and_dead_letter_rejected_ones() {
    let partial = Step::Answer(Ok(Delivery::Partial {
        retry: vec![1, 3],
        rejected: vec![(4, "status 400: mapper_parsing_exception".into())],
    }));
    let h = start(settings(10), vec![partial], 8);
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..6, &ack)).await.unwrap();
    ack.settle();
    let (log, metrics, dir) = finish(h, waiter).await;
    let sends = log.sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1].1, vec![id(1), id(3)]);
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"]["n"], 4);
    assert_eq!(lines[0]["reason"], "status 400: mapper_parsing_exception");
    let text = metrics.render();
    assert!(
        text.contains(r#"auditrail_events_out_total{component="test"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"auditrail_events_dropped_total{component="test",reason="rejected"} 1"#),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_batch_is_dead_lettered_and_settled() {
    let step = Step::Answer(Err(OutputError::Rejected {
        reason: "HTTP 400 Bad Request".into(),
    }));
    let h = start(settings(10), vec![step], 8);
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..3, &ack)).await.unwrap();
    ack.settle();
    let (log, _, dir) = finish(h, waiter).await;
    assert_eq!(log.sizes(), vec![3]);
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 3);
    assert!(dead.lines().all(|l| l.contains("HTTP 400 Bad Request")));
}

#[tokio::test(start_paused = true)]
async fn too_large_batches_are_split_in_halves_down_to_one_event() {
    let too_large = || Step::Answer(Err(OutputError::TooLarge));
    // 4 -> 2 + 2; the first half is still too large -> 1 + 1; the first
    // single event is too large on its own and is dead-lettered.
    let steps = vec![too_large(), too_large(), too_large()];
    let h = start(settings(10), steps, 8);
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..4, &ack)).await.unwrap();
    ack.settle();
    let (log, _, dir) = finish(h, waiter).await;
    assert_eq!(log.sizes(), vec![4, 2, 1, 1, 2]);
    let sends = log.sends();
    assert_eq!(sends[3].1, vec![id(1)]);
    assert_eq!(sends[4].1, vec![id(2), id(3)]);
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 1);
    assert!(dead.contains(r#""event":{"n":0}"#), "{dead}");
}

#[tokio::test(start_paused = true)]
async fn reads_ahead_only_up_to_buffer_size_while_a_batch_is_in_flight() {
    let h = start(
        BatchSettings {
            buffer_size: 25,
            max_size: 10,
            throttle: None,
            ..WEBHOOK_DEFAULTS
        },
        vec![Step::Hang],
        1,
    );
    let (ack, _waiter) = Ack::batch();
    let mut accepted = 0;
    for chunk in 0..10 {
        if h.tx
            .try_send(events(chunk * 10..(chunk + 1) * 10, &ack))
            .is_ok()
        {
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 10 in flight + 30 read ahead (the read stops at >= 25) + 1 queued.
    assert_eq!(accepted, 5);
    assert_eq!(h.log.sizes(), vec![10]);
    h.task.abort();
}

#[tokio::test(start_paused = true)]
async fn blocking_mode_sends_each_group_at_once_without_read_ahead() {
    let blocking = BatchConfig {
        mode: Some(BatchMode::Blocking),
        ..BatchConfig::default()
    }
    .resolve(&WEBHOOK_DEFAULTS)
    .unwrap();
    let h = start(blocking, vec![], 8);
    let start = Instant::now();
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..3, &ack)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.tx.send(events(3..5, &ack)).await.unwrap();
    ack.settle();
    let (log, _, _) = finish(h, waiter).await;
    assert_eq!(log.sizes(), vec![3, 2]);
    let sends = log.sends();
    assert_eq!(sends[0].0, start);
    assert_eq!(sends[1].0 - start, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn events_still_failing_when_the_driver_is_stopped_stay_unacknowledged() {
    let steps = (0..100).map(|_| retry_err()).collect();
    let h = start(settings(10), steps, 8);
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..3, &ack)).await.unwrap();
    ack.settle();
    drop(h.tx);
    tokio::time::sleep(Duration::from_secs(120)).await;
    h.task.abort();
    assert_eq!(waiter.wait().await, BatchStatus::Failed);
    assert!(h.log.sizes().len() > 2);
}

#[tokio::test(start_paused = true)]
async fn up_to_concurrency_requests_are_in_flight_at_once() {
    let steps = (0..10).map(|_| Step::Hang).collect();
    let h = start(
        BatchSettings {
            concurrency: 3,
            ..settings(10)
        },
        steps,
        8,
    );
    let (ack, _waiter) = Ack::batch();
    h.tx.send(events(0..50, &ack)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.log.sizes(), vec![10, 10, 10]);
    h.task.abort();
}

#[tokio::test(start_paused = true)]
async fn answers_in_any_order_settle_each_batch_when_its_events_are_delivered() {
    // The first request is answered after 5 s, the second at once.
    let steps = vec![
        Step::Later(Duration::from_secs(5), Ok(Delivery::All)),
        Step::Answer(Ok(Delivery::All)),
    ];
    let h = start(
        BatchSettings {
            concurrency: 2,
            ..settings(2)
        },
        steps,
        8,
    );
    let (first, mut first_waiter) = Ack::batch();
    let (second, mut second_waiter) = Ack::batch();
    h.tx.send(events(0..2, &first)).await.unwrap();
    h.tx.send(events(2..4, &second)).await.unwrap();
    first.settle();
    second.settle();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.log.sizes(), vec![2, 2]);
    assert_eq!(second_waiter.try_status(), Some(BatchStatus::Delivered));
    assert_eq!(
        first_waiter.try_status(),
        None,
        "not acknowledged before its answer"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(first_waiter.try_status(), Some(BatchStatus::Delivered));
    drop(h.tx);
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retried_items_wait_on_their_own_while_later_batches_go() {
    let partial = Step::Answer(Ok(Delivery::Partial {
        retry: vec![0],
        rejected: vec![],
    }));
    let h = start(settings(2), vec![partial], 8);
    let start = Instant::now();
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..6, &ack)).await.unwrap();
    ack.settle();
    let (log, _, _) = finish(h, waiter).await;
    let sends = log.sends();
    // The batches behind the partial failure leave at once, one request at
    // a time (concurrency 1); the retried item follows after its backoff.
    assert_eq!(log.sizes(), vec![2, 2, 2, 1]);
    assert!(sends[..3].iter().all(|(at, _)| *at == start));
    assert_eq!(sends[3].1, vec![id(0)]);
    let wait = (sends[3].0 - start).as_secs_f64();
    assert!((10.0..=12.0).contains(&wait), "{wait}");
}

#[tokio::test(start_paused = true)]
async fn max_bytes_closes_a_batch_before_the_event_that_would_overflow_it() {
    let h = start(
        BatchSettings {
            // `{"n":0}\n` is 8 bytes: two fit in 20, three do not.
            max_bytes: Some(20),
            ..settings(100)
        },
        vec![],
        8,
    );
    let (ack, waiter) = Ack::batch();
    h.tx.send(events(0..5, &ack)).await.unwrap();
    // An event larger than max_bytes goes alone.
    let big = format!(r#"{{"n":"{}"}}"#, "x".repeat(40));
    h.tx.send(vec![Event {
        ack: ack.clone(),
        ..test_event(&big)
    }])
    .await
    .unwrap();
    h.tx.send(events(5..6, &ack)).await.unwrap();
    ack.settle();
    let (log, _, _) = finish(h, waiter).await;
    assert_eq!(log.sizes(), vec![2, 2, 1, 1, 1]);
    assert_eq!(log.sends()[2].1, vec![id(4)]);
    assert_eq!(log.sends()[4].1, vec![id(5)]);
}
