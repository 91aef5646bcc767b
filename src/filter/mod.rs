//! Filters run in file order on events whose tag matches their `match`. Each
//! is synchronous and per event: it passes the event on, reroutes it (a new
//! tag, routed again from the top), or discards it (which settles its ack).

mod remove;

pub use remove::RemoveConfig;

use crate::config::{ComponentTable, Diagnostic, Section, SourceFile, unknown_type};
use crate::event::Event;
use crate::metrics::ComponentMetrics;

/// A running filter.
pub trait Filter: Send {
    fn apply(&mut self, event: Event, out: &mut FilterOutput);
}

/// Where a filter's results go.
#[derive(Default)]
pub struct FilterOutput {
    pub(crate) passed: Vec<Event>,
    pub(crate) rerouted: Vec<Event>,
}

impl FilterOutput {
    /// On to the next filter.
    pub fn pass(&mut self, event: Event) {
        self.passed.push(event);
    }

    /// Back to the first filter with a new tag.
    pub fn reroute(&mut self, event: Event) {
        self.rerouted.push(event);
    }

    /// Dropped on purpose: the event's ack is settled (the caller counts it).
    pub fn discard(&mut self, event: Event) {
        event.ack.settle();
    }
}

/// A filter's typed config, one variant per `type`.
#[derive(Debug)]
pub enum FilterConfig {
    Remove(RemoveConfig),
}

const FILTER_TYPES: &[&str] = &["remove"];

impl FilterConfig {
    pub fn from_component(
        kind: &toml::Spanned<String>,
        table: ComponentTable<'_>,
        _file: &SourceFile,
    ) -> Result<Self, Diagnostic> {
        let shared = ["type", "name", "match"];
        match kind.get_ref().as_str() {
            "remove" => Ok(Self::Remove(
                table.deserialize("a `remove` filter", &shared)?,
            )),
            _ => Err(unknown_type(Section::Filter, kind, FILTER_TYPES)),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Remove(_) => "remove",
        }
    }

    /// Tags this filter may give events it reroutes: `None` if it never
    /// retags; otherwise the tag templates (with `${...}` holes).
    pub fn produced_tags(&self) -> Option<Vec<String>> {
        match self {
            Self::Remove(_) => None,
        }
    }

    pub fn build(&self, metrics: ComponentMetrics) -> Box<dyn Filter> {
        match self {
            Self::Remove(c) => Box::new(c.build(metrics)),
        }
    }
}
