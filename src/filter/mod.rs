//! Filters run in file order on events whose tag matches their `match`. Each
//! is synchronous and per event: it passes the event on, reroutes it (a new
//! tag, routed again from the top), or discards it (which settles its ack).

mod audit_policy;
mod redact;
mod remove;
mod rename;
mod rewrite_tag;
mod set;
mod split;
#[cfg(test)]
mod tests;
mod where_;

pub use audit_policy::{AuditPolicyConfig, AuditPolicySpec};
pub use redact::{RedactConfig, RedactMode, RedactSpec};
pub use remove::RemoveConfig;
pub use rename::{RenameConfig, RenameSpec};
pub use rewrite_tag::{RewriteTagConfig, RewriteTagSpec, RuleConfig};
pub use set::{OrderedPairs, SetConfig, SetSpec};
pub use split::{SplitConfig, SplitSpec};
pub use where_::{WhereConfig, WhereSpec};

use crate::config::{ComponentTable, Diagnostic, Section, SourceFile, unknown_type};
use crate::event::Event;
use crate::metrics::ComponentMetrics;
use crate::pipeline::TagPattern;

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
    Set(SetSpec),
    Rename(RenameSpec),
    Where(WhereSpec),
    RewriteTag(RewriteTagSpec),
    Split(SplitSpec),
    AuditPolicy(AuditPolicySpec),
    Redact(RedactSpec),
}

const FILTER_TYPES: &[&str] = &[
    "remove",
    "set",
    "rename",
    "where",
    "rewrite_tag",
    "split",
    "audit_policy",
    "redact",
];

impl FilterConfig {
    pub fn from_component(
        kind: &toml::Spanned<String>,
        table: ComponentTable<'_>,
        file: &SourceFile,
    ) -> Result<Self, Diagnostic> {
        let shared = ["type", "name", "match"];
        let span = table.span.clone();
        match kind.get_ref().as_str() {
            "remove" => Ok(Self::Remove(
                table.deserialize("a `remove` filter", &shared)?,
            )),
            "set" => Ok(Self::Set(
                table
                    .deserialize::<SetConfig>("a `set` filter", &shared)?
                    .validate(file)?,
            )),
            "rename" => Ok(Self::Rename(
                table
                    .deserialize::<RenameConfig>("a `rename` filter", &shared)?
                    .validate()?,
            )),
            "where" => Ok(Self::Where(
                table
                    .deserialize::<WhereConfig>("a `where` filter", &shared)?
                    .validate(file)?,
            )),
            "rewrite_tag" => Ok(Self::RewriteTag(
                table
                    .deserialize::<RewriteTagConfig>("a `rewrite_tag` filter", &shared)?
                    .validate(file, span)?,
            )),
            "split" => Ok(Self::Split(
                table
                    .deserialize::<SplitConfig>("a `split` filter", &shared)?
                    .validate()?,
            )),
            "audit_policy" => Ok(Self::AuditPolicy(
                table
                    .deserialize::<AuditPolicyConfig>("an `audit_policy` filter", &shared)?
                    .validate()?,
            )),
            "redact" => Ok(Self::Redact(
                table
                    .deserialize::<RedactConfig>("a `redact` filter", &shared)?
                    .validate(span)?,
            )),
            _ => Err(unknown_type(Section::Filter, kind, FILTER_TYPES)),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Remove(_) => "remove",
            Self::Set(_) => "set",
            Self::Rename(_) => "rename",
            Self::Where(_) => "where",
            Self::RewriteTag(_) => "rewrite_tag",
            Self::Split(_) => "split",
            Self::AuditPolicy(_) => "audit_policy",
            Self::Redact(_) => "redact",
        }
    }

    /// Tags this filter may give events it reroutes: `None` if it never
    /// retags; otherwise the tag templates (with `${...}` holes).
    pub fn produced_tags(&self) -> Option<Vec<String>> {
        match self {
            Self::RewriteTag(spec) => Some(spec.produced_tags()),
            _ => None,
        }
    }

    /// A retag loop certain at load time for a filter with this `match`
    /// (see [`RewriteTagSpec::static_loop`]); `None` for other filters.
    pub fn static_loop(&self, pattern: &TagPattern) -> Option<Diagnostic> {
        match self {
            Self::RewriteTag(spec) => spec.static_loop(pattern),
            _ => None,
        }
    }

    pub fn build(&self, metrics: ComponentMetrics) -> Box<dyn Filter> {
        match self {
            Self::Remove(c) => Box::new(c.build(metrics)),
            Self::Set(c) => Box::new(c.build(metrics)),
            Self::Rename(c) => Box::new(c.build(metrics)),
            Self::Where(c) => Box::new(c.build(metrics)),
            Self::RewriteTag(c) => Box::new(c.build(metrics)),
            Self::Split(c) => Box::new(c.build(metrics)),
            Self::AuditPolicy(c) => Box::new(c.build(metrics)),
            Self::Redact(c) => Box::new(c.build(metrics)),
        }
    }
}
