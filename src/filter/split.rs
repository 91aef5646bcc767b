//! `type = "split"`: one event per element of an array field, e.g. the
//! `items` of a webhook `EventList` (logstash's `split`).
//!
//! ```toml
//! [[filter]]
//! type = "split"
//! match = "audit.webhook"
//! field = "items"
//! ```
//!
//! Each object element becomes a new event with the parent's tag and time;
//! the parent's acknowledgement is shared by the children, so the source's
//! batch is safe only when every child is. An event without the field
//! passes unchanged; an empty array drops it (settled). Elements that are
//! not objects, and a field that is not an array, are counted as errors
//! (the non-objects are skipped; a non-array event passes unchanged).

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::eval_errors::EvalErrors;
use super::set::field_path;
use super::{Filter, FilterOutput};
use crate::config::Diagnostic;
use crate::event::{Event, FieldPath, Record};
use crate::metrics::ComponentMetrics;

/// The raw `split` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Path of the array to split, e.g. `"items"`.
    pub field: Spanned<String>,
}

/// A validated `split` filter.
#[derive(Debug, Clone)]
pub struct SplitSpec {
    field: FieldPath,
}

impl SplitConfig {
    pub fn validate(&self) -> Result<SplitSpec, Diagnostic> {
        Ok(SplitSpec {
            field: field_path(&self.field)?,
        })
    }
}

impl SplitSpec {
    pub fn build(&self, metrics: ComponentMetrics) -> Split {
        Split {
            field: self.field.clone(),
            errors: EvalErrors::new(metrics),
        }
    }
}

pub struct Split {
    field: FieldPath,
    errors: EvalErrors,
}

impl Filter for Split {
    fn apply(&mut self, event: Event, out: &mut FilterOutput) {
        let items = match event.record.get(&self.field) {
            None => return out.pass(event),
            Some(value) => match value.into_owned() {
                Value::Array(items) => items,
                other => {
                    let kind = if other.is_object() {
                        "an object"
                    } else {
                        "a scalar"
                    };
                    self.errors.record(
                        &format_args!("`{}` is {kind}, not an array", self.field),
                        "passed the event unchanged",
                    );
                    return out.pass(event);
                }
            },
        };
        let mut skipped = 0usize;
        for item in items {
            match item {
                Value::Object(fields) => out.pass(Event::new(
                    event.tag.clone(),
                    event.time,
                    Record::from_fields(fields),
                    event.ack.clone(),
                )),
                _ => skipped += 1,
            }
        }
        if skipped > 0 {
            self.errors.record(
                &format_args!("{skipped} items of `{}` are not objects", self.field),
                "skipped them",
            );
        }
        // The children hold clones of the ack; the parent's copy is done.
        out.discard(event);
    }
}
