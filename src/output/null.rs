//! `type = "null"`: drops the events routed to it and counts them as
//! delivered (fluentd's `@type null`, Vector's `blackhole`). Operators use it
//! to discard noisy tags on purpose, so sources advance past them, and to
//! measure a source without an output's cost.

use serde::Deserialize;

use super::{OutputContext, OutputTask};

/// ```toml
/// [[output]]
/// type = "null"
/// match = "audit.noise.**"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {}

impl NullConfig {
    pub fn build(&self, mut cx: OutputContext) -> OutputTask {
        Box::pin(async move {
            let batch_sizes = cx.metrics.batch_sizes();
            while let Some(mut batch) = cx.input.recv().await {
                // Discarding is this output's delivery: settle every copy.
                for event in &mut batch {
                    event.take_ack().settle();
                }
                cx.metrics.events_out.inc_by(batch.len() as u64);
                // Discarding takes no time worth a latency sample.
                #[allow(clippy::cast_precision_loss)] // Batch sizes are far below 2^52.
                batch_sizes.observe(batch.len() as f64);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use tokio::sync::mpsc;

    use super::*;
    use crate::batch::BatchConfig;
    use crate::event::{Ack, BatchStatus, Event, Record, Tag};
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn settles_every_event_and_counts_it_as_sent() {
        let metrics = Metrics::new().component("drop");
        let (tx, rx) = mpsc::channel(2);
        let task = tokio::spawn(NullConfig {}.build(OutputContext {
            name: Arc::from("drop"),
            input: rx,
            metrics: metrics.clone(),
            data_dir: std::env::temp_dir(),
            batch: BatchConfig::default(),
        }));
        let (ack, waiter) = Ack::batch();
        let batch: Vec<Event> = (0..3)
            .map(|n| {
                let record = Record::from_json(format!(r#"{{"n":{n}}}"#).into()).unwrap();
                Event::new(Tag::new("audit"), Utc::now(), record, ack.clone())
            })
            .collect();
        ack.settle();
        tx.send(batch).await.unwrap();
        assert_eq!(waiter.wait().await, BatchStatus::Delivered);
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(metrics.events_out.get(), 3);
    }
}
