//! `type = "remove"`: deletes fields, e.g. bodies before shipping. A record
//! none of whose fields exist keeps its original bytes.

use serde::Deserialize;

use super::{Filter, FilterOutput};
use crate::event::{Event, FieldPath};
use crate::metrics::ComponentMetrics;

/// ```toml
/// [[filter]]
/// type = "remove"
/// match = "audit.**"
/// fields = ["requestObject", "responseObject"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveConfig {
    /// Field paths to delete (`a.b`, `a."dotted.key"`, `a[0]`).
    pub fields: Vec<FieldPath>,
}

impl RemoveConfig {
    pub fn build(&self, _metrics: ComponentMetrics) -> Remove {
        Remove {
            fields: self.fields.clone(),
        }
    }
}

pub struct Remove {
    fields: Vec<FieldPath>,
}

impl Filter for Remove {
    fn apply(&mut self, mut event: Event, out: &mut FilterOutput) {
        for field in &self.fields {
            event.record.remove(field);
        }
        out.pass(event);
    }
}
