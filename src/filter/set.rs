//! `type = "set"`: adds or replaces fields with the values of expressions
//! (fluentd's record_transformer, logstash's `add_field`).
//!
//! ```toml
//! [[filter]]
//! type = "set"
//! match = "audit.**"
//! fields = { "namespace" = 'objectRef.namespace ?? "none"', "meta.shipper" = '"auditrail"' }
//! ```
//!
//! Fields are set in the order written, each expression seeing the record as
//! the previous ones left it. An expression that fails (see `docs/dsl.md`)
//! leaves its field as it was; the failure is counted and logged, and the
//! event goes on.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use toml::Spanned;

use super::{Filter, FilterOutput};
use crate::config::{Diagnostic, SourceFile};
use crate::dsl::{EvalContext, Expr};
use crate::event::{Event, FieldPath};
use crate::metrics::ComponentMetrics;
use crate::metrics::EvalErrors;

/// The raw `set` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    /// Field path → expression, e.g. `{ "a.b" = 'lower(user.username)' }`.
    /// Paths use `.`, `"quoted.keys"` and `[N]`; missing parents are
    /// created as objects. A `null` result sets the field to `null`.
    pub fields: OrderedPairs<Spanned<String>>,
}

/// A validated `set` filter: paths split, expressions compiled.
#[derive(Debug, Clone)]
pub struct SetSpec {
    fields: Vec<(FieldPath, Expr)>,
}

impl SetConfig {
    pub fn validate(&self, file: &SourceFile) -> Result<SetSpec, Diagnostic> {
        let mut fields = Vec::with_capacity(self.fields.0.len());
        for (path, expr) in &self.fields.0 {
            fields.push((field_path(path)?, Expr::from_config(file, expr)?));
        }
        Ok(SetSpec { fields })
    }
}

/// Splits a field path given as a table key or string, pointing at it on error.
pub(crate) fn field_path(text: &Spanned<String>) -> Result<FieldPath, Diagnostic> {
    FieldPath::parse(text.get_ref()).map_err(|e| {
        Diagnostic::new(format!("invalid field path `{}`", text.get_ref()))
            .at(text.span())
            .with_label(format!("{} at byte {}", e.message, e.offset))
            .with_help("paths look like `a.b`, `a.\"dotted.key\"` or `a[0]`")
    })
}

impl SetSpec {
    pub fn build(&self, metrics: ComponentMetrics) -> Set {
        Set {
            fields: self.fields.clone(),
            errors: EvalErrors::new(metrics),
        }
    }
}

pub struct Set {
    fields: Vec<(FieldPath, Expr)>,
    errors: EvalErrors,
}

impl Filter for Set {
    fn apply(&mut self, mut event: Event, out: &mut FilterOutput) {
        for (path, expr) in &self.fields {
            let cx = EvalContext::new(&event.record, &event.tag, event.time);
            // The value may borrow the record, which is about to change.
            let value = match expr.eval(&cx) {
                Ok(value) => value.into_owned(),
                Err(e) => {
                    self.errors.record(&e, "left the field unchanged");
                    continue;
                }
            };
            if !event.record.set(path, value) {
                self.errors.record(
                    &format_args!("cannot set `{path}`: a parent is not an object"),
                    "left the field unchanged",
                );
            }
        }
        out.pass(event);
    }
}

/// A TOML table read as key/value pairs in file order, keys with spans.
#[derive(Debug, Clone)]
pub struct OrderedPairs<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedPairs<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = OrderedPairs<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<Spanned<String>, V>()? {
                    pairs.push(pair);
                }
                // toml hands tables over sorted by key; the spans give back
                // the order they were written in.
                pairs.sort_by_key(|(key, _)| key.span().start);
                Ok(OrderedPairs(pairs))
            }
        }

        d.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}
