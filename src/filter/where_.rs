//! `type = "where"`: keeps only the events for which a condition holds
//! (`not = true` keeps the others). Dropped events are settled: dropping on
//! purpose counts as delivered; they are counted as
//! `auditrail_events_dropped_total{reason="filtered"}` under the filter.
//!
//! ```toml
//! [[filter]]
//! type = "where"
//! match = "audit.**"
//! condition = 'verb in ["get", "list", "watch"] && responseStatus.code < 400'
//! not = true          # drop successful reads
//! ```
//!
//! Truthiness and missing fields follow `docs/dsl.md`. A condition that
//! fails to evaluate keeps the event (an audit record is never lost to a
//! broken expression); the failure is counted and logged.

use serde::Deserialize;
use toml::Spanned;

use super::{Filter, FilterOutput};
use crate::config::{Diagnostic, SourceFile};
use crate::dsl::{EvalContext, Expr};
use crate::event::Event;
use crate::metrics::ComponentMetrics;
use crate::metrics::EvalErrors;
use prometheus_client::metrics::counter::Counter;

/// The raw `where` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhereConfig {
    /// The expression an event must satisfy to be kept.
    pub condition: Spanned<String>,
    /// Keep the events for which the condition does *not* hold. Default
    /// `false`.
    #[serde(default)]
    pub not: bool,
}

/// A validated `where` filter.
#[derive(Debug, Clone)]
pub struct WhereSpec {
    condition: Expr,
    not: bool,
}

impl WhereConfig {
    pub fn validate(&self, file: &SourceFile) -> Result<WhereSpec, Diagnostic> {
        Ok(WhereSpec {
            condition: Expr::from_config(file, &self.condition)?,
            not: self.not,
        })
    }
}

impl WhereSpec {
    pub fn build(&self, metrics: ComponentMetrics) -> Where {
        Where {
            condition: self.condition.clone(),
            not: self.not,
            filtered: metrics.dropped("filtered"),
            errors: EvalErrors::new(metrics),
        }
    }
}

pub struct Where {
    condition: Expr,
    not: bool,
    filtered: Counter,
    errors: EvalErrors,
}

impl Filter for Where {
    fn apply(&mut self, event: Event, out: &mut FilterOutput) {
        let cx = EvalContext::new(&event.record, &event.tag, event.time);
        let keep = match self.condition.is_true(&cx) {
            Ok(holds) => holds != self.not,
            Err(e) => {
                self.errors.record(&e, "kept the event");
                true
            }
        };
        if keep {
            out.pass(event);
        } else {
            self.filtered.inc();
            out.discard(event);
        }
    }
}
