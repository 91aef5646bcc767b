//! Routing of whole batches: one tag and no filter go on as they are; mixed
//! tags and filtered tags still go event by event, in order, with acks kept.

use tokio::sync::mpsc;

use super::*;
use crate::config::Config;
use crate::event::test_event;
use crate::event::{Ack, AckWaiter, BatchStatus, FieldPath};
use crate::metrics::Metrics;

/// A router with the `[[filter]]` tables in `filters` (for tag `audit`)
/// and one output per pattern, with each output's receiving end.
fn router(filters: &str, patterns: &[&str]) -> (Router, Vec<mpsc::Receiver<EventBatch>>) {
    let text = format!(
        "[[source]]\ntype = \"stdin\"\ntag = \"audit\"\n{filters}\n\
         [[output]]\ntype = \"null\"\nmatch = \"**\"\n"
    );
    let config = Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let metrics = Metrics::new();
    let filters = config
        .filters
        .iter()
        .map(|spec| RoutedFilter {
            pattern: spec.pattern.clone(),
            filter: spec.config.build(metrics.component(&spec.name)),
            metrics: metrics.component(&spec.name),
        })
        .collect();
    let mut receivers = Vec::new();
    let outputs = patterns
        .iter()
        .map(|pattern| {
            let (tx, rx) = mpsc::channel(4);
            receivers.push(rx);
            let component = metrics.component(pattern);
            RoutedOutput {
                pattern: TagPattern::parse(pattern).unwrap(),
                tx,
                on_full: OnFull::Block,
                dropped_full: component.dropped("buffer_full"),
                metrics: component,
            }
        })
        .collect();
    (
        Router::new(filters, outputs, metrics.component("router")),
        receivers,
    )
}

/// Events numbered from 0 with the given tags, sharing one batch ack.
fn batch(tags: &[&str]) -> (EventBatch, AckWaiter) {
    let (ack, waiter) = Ack::batch();
    let events = tags
        .iter()
        .enumerate()
        .map(|(n, tag)| Event {
            tag: Tag::new(tag),
            ack: ack.clone(),
            ..test_event(&format!(r#"{{"n":{n},"verb":"get"}}"#))
        })
        .collect();
    ack.settle();
    (events, waiter)
}

/// Routes one batch; returns what each output got, as event numbers.
async fn route(
    router: Router,
    outputs: &mut [mpsc::Receiver<EventBatch>],
    batch: EventBatch,
) -> Vec<Vec<u64>> {
    let (tx, rx) = mpsc::channel(1);
    tx.send(batch).await.unwrap();
    drop(tx);
    router.run(rx, CancellationToken::new()).await;
    outputs
        .iter_mut()
        .map(|rx| {
            let mut numbers = Vec::new();
            while let Ok(events) = rx.try_recv() {
                for event in events {
                    let n = event.record.get(&FieldPath::parse("n").unwrap()).unwrap();
                    numbers.push(n.as_u64().unwrap());
                    event.ack.settle();
                }
            }
            numbers
        })
        .collect()
}

#[tokio::test]
async fn a_batch_of_one_unfiltered_tag_reaches_every_matching_output_whole() {
    let (router, mut outputs) = router("", &["audit", "other", "**"]);
    let (events, waiter) = batch(&["audit"; 3]);
    let got = route(router, &mut outputs, events).await;
    assert_eq!(got, [vec![0, 1, 2], vec![], vec![0, 1, 2]]);
    assert_eq!(waiter.wait().await, BatchStatus::Delivered);
}

#[tokio::test]
async fn mixed_tags_are_routed_event_by_event_in_order() {
    let (router, mut outputs) = router("", &["a", "{a,b}"]);
    let (events, waiter) = batch(&["a", "b", "c", "a"]);
    let got = route(router, &mut outputs, events).await;
    assert_eq!(got, [vec![0, 3], vec![0, 1, 3]]);
    // The unrouted event `c` was settled when dropped.
    assert_eq!(waiter.wait().await, BatchStatus::Delivered);
}

#[tokio::test]
async fn a_filtered_tag_still_goes_through_its_filters() {
    let (router, mut outputs) = router(
        "[[filter]]\ntype = \"where\"\nmatch = \"audit\"\ncondition = 'n != 1'",
        &["audit"],
    );
    let (events, waiter) = batch(&["audit"; 3]);
    let got = route(router, &mut outputs, events).await;
    assert_eq!(got, [vec![0, 2]]);
    assert_eq!(waiter.wait().await, BatchStatus::Delivered);
}
