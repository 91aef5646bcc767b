//! `type = "rename"`: moves fields (logstash's `mutate { rename }`).
//!
//! ```toml
//! [[filter]]
//! type = "rename"
//! match = "audit.**"
//! fields = { "user.username" = "username", "objectRef.namespace" = "namespace" }
//! ```
//!
//! Renames run in the order written. A missing source field is skipped (and
//! a record none of whose fields exist keeps its original bytes). If the
//! destination cannot be created (a parent is not an object) the field stays
//! where it was and the failure is counted.

use serde::Deserialize;
use toml::Spanned;

use super::set::{OrderedPairs, field_path};
use super::{Filter, FilterOutput};
use crate::config::Diagnostic;
use crate::event::{Event, FieldPath};
use crate::metrics::ComponentMetrics;
use crate::metrics::EvalErrors;

/// The raw `rename` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// Source path → destination path, e.g. `{ "a.b" = "c" }`.
    pub fields: OrderedPairs<Spanned<String>>,
}

/// A validated `rename` filter.
#[derive(Debug, Clone)]
pub struct RenameSpec {
    fields: Vec<(FieldPath, FieldPath)>,
}

impl RenameConfig {
    pub fn validate(&self) -> Result<RenameSpec, Diagnostic> {
        let mut fields = Vec::with_capacity(self.fields.0.len());
        for (from, to) in &self.fields.0 {
            fields.push((field_path(from)?, field_path(to)?));
        }
        Ok(RenameSpec { fields })
    }
}

impl RenameSpec {
    pub fn build(&self, metrics: ComponentMetrics) -> Rename {
        Rename {
            fields: self.fields.clone(),
            errors: EvalErrors::new(metrics),
        }
    }
}

pub struct Rename {
    fields: Vec<(FieldPath, FieldPath)>,
    errors: EvalErrors,
}

impl Filter for Rename {
    fn apply(&mut self, mut event: Event, out: &mut FilterOutput) {
        for (from, to) in &self.fields {
            let Some(value) = event.record.remove(from) else {
                continue;
            };
            // `set` consumes the value even when it fails; keep a copy to
            // put back rather than lose the field.
            if !event.record.set(to, value.clone()) {
                event.record.set(from, value);
                self.errors.record(
                    &format_args!("cannot move `{from}` to `{to}`: a parent is not an object"),
                    "left the field where it was",
                );
            }
        }
        out.pass(event);
    }
}
