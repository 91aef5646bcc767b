//! The router: runs the filter chain on each event whose tag matches, in
//! file order, re-enters rerouted events at the top (up to a hop limit), and
//! hands every event to every output whose pattern matches its tag. Which
//! filters and outputs a tag reaches is computed once per tag and cached.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::tag_pattern::TagPattern;
use crate::batch::OnFull;
use crate::event::{Event, EventBatch, Tag};
use crate::filter::{Filter, FilterOutput};
use crate::metrics::ComponentMetrics;

/// How often one event may be retagged before it is taken for a loop.
pub const MAX_HOPS: u8 = 8;
/// Tags remembered for decisions and for warn-once; bounded against floods of
/// distinct tags.
const MAX_CACHED_TAGS: usize = 16_384;

pub struct RoutedFilter {
    pub pattern: TagPattern,
    pub filter: Box<dyn Filter>,
    pub metrics: ComponentMetrics,
}

pub struct RoutedOutput {
    pub pattern: TagPattern,
    pub tx: mpsc::Sender<EventBatch>,
    pub on_full: OnFull,
    pub metrics: ComponentMetrics,
    pub dropped_full: Counter,
}

/// Which filters and outputs one tag reaches.
struct Decision {
    filters: Box<[bool]>,
    outputs: Box<[usize]>,
}

pub struct Router {
    filters: Vec<RoutedFilter>,
    /// Events in and out of each filter during the current batch, added to
    /// the filters' counters once per batch rather than once per event.
    filter_counts: Vec<(u64, u64)>,
    outputs: Vec<RoutedOutput>,
    decisions: HashMap<Tag, Arc<Decision>>,
    warned_unrouted: HashSet<Tag>,
    unrouted: Counter,
    rewrite_loops: Counter,
    metrics: ComponentMetrics,
}

impl Router {
    pub fn new(
        filters: Vec<RoutedFilter>,
        outputs: Vec<RoutedOutput>,
        metrics: ComponentMetrics,
    ) -> Self {
        Self {
            filter_counts: vec![(0, 0); filters.len()],
            filters,
            outputs,
            decisions: HashMap::new(),
            warned_unrouted: HashSet::new(),
            unrouted: metrics.dropped("unrouted"),
            rewrite_loops: metrics.dropped("rewrite_loop"),
            metrics,
        }
    }

    /// Routes batches until every source is gone, or until `drain` is
    /// cancelled and what was already queued has been routed.
    pub async fn run(mut self, mut input: mpsc::Receiver<EventBatch>, drain: CancellationToken) {
        let mut per_output: Vec<EventBatch> = self.outputs.iter().map(|_| Vec::new()).collect();
        let mut closing = false;
        loop {
            let batch = tokio::select! {
                biased;
                batch = input.recv() => batch,
                () = drain.cancelled(), if !closing => {
                    input.close();
                    closing = true;
                    continue;
                }
            };
            let Some(batch) = batch else { break };
            self.metrics.events_in.inc_by(batch.len() as u64);
            self.route_batch(batch, &mut per_output);
            self.count_filters();
            for (index, events) in per_output.iter_mut().enumerate() {
                if !events.is_empty() {
                    self.deliver(index, std::mem::take(events)).await;
                }
            }
        }
    }

    fn count_filters(&mut self) {
        for (filter, counts) in self.filters.iter().zip(&mut self.filter_counts) {
            let (events_in, events_out) = std::mem::take(counts);
            if events_in > 0 {
                filter.metrics.events_in.inc_by(events_in);
                filter.metrics.events_out.inc_by(events_out);
            }
        }
    }

    fn route_batch(&mut self, batch: EventBatch, per_output: &mut [EventBatch]) {
        if let Some(decision) = self.unfiltered_decision(&batch) {
            self.fan_out_batch(batch, &decision, per_output);
            return;
        }
        let mut work: VecDeque<(Event, usize, u8)> = VecDeque::new();
        let mut out = FilterOutput::default();
        for event in batch {
            work.push_back((event, 0, 0));
            while let Some((event, from, hops)) = work.pop_front() {
                self.route_event(event, from, hops, &mut work, &mut out, per_output);
            }
        }
    }

    fn route_event(
        &mut self,
        mut event: Event,
        mut from: usize,
        hops: u8,
        work: &mut VecDeque<(Event, usize, u8)>,
        out: &mut FilterOutput,
        per_output: &mut [EventBatch],
    ) {
        loop {
            let decision = self.decision(&event.tag);
            let Some(index) = (from..self.filters.len()).find(|&i| decision.filters[i]) else {
                self.fan_out(event, &decision, per_output);
                return;
            };
            self.filters[index].filter.apply(event, out);
            let counts = &mut self.filter_counts[index];
            counts.0 += 1;
            counts.1 += (out.passed.len() + out.rerouted.len()) as u64;
            for rerouted in out.rerouted.drain(..).rev() {
                if hops + 1 > MAX_HOPS {
                    self.rewrite_loops.inc();
                    tracing::error!(
                        tag = %rerouted.tag,
                        hops = MAX_HOPS,
                        "Dropped an event retagged too often: the rewrite_tag filters form a loop."
                    );
                    rerouted.ack.settle();
                } else {
                    work.push_front((rerouted, 0, hops + 1));
                }
            }
            match out.passed.len() {
                0 => return,
                1 => {
                    event = out.passed.pop().expect("one event passed");
                    from = index + 1;
                }
                _ => {
                    for passed in out.passed.drain(..).rev() {
                        work.push_front((passed, index + 1, hops));
                    }
                    return;
                }
            }
        }
    }

    /// The decision for a batch whose events share one tag that no filter
    /// takes (a tail or webhook batch, usually), which can then be handed
    /// on whole instead of event by event.
    fn unfiltered_decision(&mut self, batch: &[Event]) -> Option<Arc<Decision>> {
        let tag = &batch.first()?.tag;
        if batch.iter().any(|event| event.tag != *tag) {
            return None;
        }
        let decision = self.decision(tag);
        (!decision.filters.contains(&true)).then_some(decision)
    }

    /// [`Router::fan_out`] for a whole batch of one tag: the last output
    /// takes the batch itself, the others copies.
    fn fan_out_batch(
        &mut self,
        batch: EventBatch,
        decision: &Decision,
        per_output: &mut [EventBatch],
    ) {
        let Some((&last, rest)) = decision.outputs.split_last() else {
            for event in batch {
                self.fan_out(event, decision, per_output);
            }
            return;
        };
        for &index in rest {
            per_output[index].extend(batch.iter().map(Event::fan_out));
        }
        if per_output[last].is_empty() {
            per_output[last] = batch;
        } else {
            per_output[last].extend(batch);
        }
    }

    fn fan_out(&mut self, event: Event, decision: &Decision, per_output: &mut [EventBatch]) {
        match decision.outputs.split_last() {
            None => {
                self.unrouted.inc();
                if self.warned_unrouted.len() < MAX_CACHED_TAGS
                    && self.warned_unrouted.insert(event.tag.clone())
                {
                    tracing::warn!(tag = %event.tag, "Dropped events no output matches; further ones with this tag are only counted.");
                }
                event.ack.settle();
            }
            Some((&last, rest)) => {
                for &index in rest {
                    per_output[index].push(event.fan_out());
                }
                per_output[last].push(event);
            }
        }
    }

    fn decision(&mut self, tag: &Tag) -> Arc<Decision> {
        if let Some(decision) = self.decisions.get(tag) {
            return decision.clone();
        }
        let decision = Arc::new(Decision {
            filters: self
                .filters
                .iter()
                .map(|f| f.pattern.matches(tag.as_str()))
                .collect(),
            outputs: (0..self.outputs.len())
                .filter(|&i| self.outputs[i].pattern.matches(tag.as_str()))
                .collect(),
        });
        if self.decisions.len() >= MAX_CACHED_TAGS {
            self.decisions.clear();
        }
        self.decisions.insert(tag.clone(), decision.clone());
        decision
    }

    async fn deliver(&mut self, index: usize, events: EventBatch) {
        let output = &self.outputs[index];
        let n = events.len() as u64;
        let result = match output.on_full {
            OnFull::Block => output.tx.send(events).await.map_err(|e| e.0),
            OnFull::Drop => match output.tx.try_send(events) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(events)) => {
                    // Handed over, and dropped by the output's full queue.
                    self.metrics.events_out.inc_by(n);
                    output.dropped_full.inc_by(n);
                    for event in events {
                        event.ack.settle();
                    }
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(events)) => Err(events),
            },
        };
        match result {
            Ok(()) => {
                self.metrics.events_out.inc_by(n);
                output.metrics.events_in.inc_by(n);
            }
            Err(events) => {
                // The output has stopped: these events stay unacknowledged,
                // so their sources will not advance past them.
                self.metrics.errors.inc();
                tracing::error!(output = %output.metrics.name, events = events.len(), "An output has stopped; its events stay unacknowledged.");
                for event in events {
                    event.ack.fail();
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
