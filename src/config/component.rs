//! One `[[source]]`, `[[filter]]` or `[[output]]` table on its way to a typed
//! config: the keys every component shares (`type`, `name`, `match`) are taken
//! out first, then the rest is deserialized into the type's own struct, whose
//! `deny_unknown_fields` points at the misspelt key itself.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostic::{Diagnostic, closest};

/// Which list a component belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Source,
    Filter,
    Output,
}

impl Section {
    pub fn key(self) -> &'static str {
        match self {
            Section::Source => "source",
            Section::Filter => "filter",
            Section::Output => "output",
        }
    }
}

/// A component's table with its shared keys still inside.
pub struct ComponentTable<'i> {
    pub section: Section,
    /// Position among the components of this section, from 1.
    pub position: usize,
    /// Span of the whole table, for errors about missing keys.
    pub span: Range<usize>,
    table: DeTable<'i>,
}

impl<'i> ComponentTable<'i> {
    pub fn new(
        section: Section,
        position: usize,
        value: Spanned<DeValue<'i>>,
    ) -> Result<Self, Diagnostic> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(table) => Ok(Self {
                section,
                position,
                span,
                table,
            }),
            other => Err(Diagnostic::new(format!(
                "expected a table for `[[{}]]`, found {}",
                section.key(),
                other.type_str()
            ))
            .at(span)),
        }
    }

    /// Removes `key` and deserializes it.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        key: &str,
    ) -> Result<Option<Spanned<T>>, Diagnostic> {
        let Some((_, value)) = self.table.remove_entry(key) else {
            return Ok(None);
        };
        let span = value.span();
        let what = format!("`{key}`");
        let parsed = T::deserialize(ValueDeserializer::from(value))
            .map_err(|e| from_toml_error(&e, &what, &[]))?;
        Ok(Some(Spanned::new(span, parsed)))
    }

    /// Removes a key that must be present.
    pub fn take_required<T: DeserializeOwned>(
        &mut self,
        key: &str,
        what: &str,
    ) -> Result<Spanned<T>, Diagnostic> {
        self.take(key)?.ok_or_else(|| {
            Diagnostic::new(format!("missing key `{key}` in {what}"))
                .at(self.span.start..self.span.start + 1)
                .with_help(format!("add `{key} = ...` to this table"))
        })
    }

    /// Deserializes the remaining keys into the component type's struct.
    /// `what` names the component in messages (e.g. "a `tail` source").
    pub fn deserialize<T: DeserializeOwned>(
        self,
        what: &str,
        shared_keys: &[&str],
    ) -> Result<T, Diagnostic> {
        // Tables inside the component (`tls = { ... }`), to report an error
        // within one against that table's own keys.
        let nested: Vec<(String, Range<usize>)> = self
            .table
            .iter()
            .filter(|(_, value)| matches!(value.get_ref(), DeValue::Table(_)))
            .map(|(key, value)| (key.get_ref().to_string(), value.span()))
            .collect();
        let value = Spanned::new(self.span, DeValue::Table(self.table));
        T::deserialize(ValueDeserializer::from(value)).map_err(|e| {
            let inner = e.span().and_then(|span| {
                nested
                    .iter()
                    .find(|(_, table)| table.start < span.start && span.end <= table.end)
            });
            match inner {
                Some((key, _)) => from_toml_error(&e, &format!("`{key}` of {what}"), &[]),
                None => from_toml_error(&e, what, shared_keys),
            }
        })
    }
}

/// Turns a serde/toml error into a diagnostic, adding a `did you mean`
/// for unknown keys.
pub fn from_toml_error(error: &toml::de::Error, what: &str, shared_keys: &[&str]) -> Diagnostic {
    let message = error.message().trim();
    let mut diagnostic = if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default();
        let allowed: Vec<&str> = rest
            .split_once("expected ")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let mut all: Vec<&str> = allowed.iter().chain(shared_keys).copied().collect();
        all.sort_unstable();
        all.dedup();
        let d = Diagnostic::new(format!("unknown key `{key}` in {what}"))
            .with_label(format!("not a key of {what}"));
        match closest(key, all.iter().copied()) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None if all.is_empty() => d.with_help(format!("{what} takes no further keys")),
            None => d.with_help(format!("valid keys: {}", quote_list(&all))),
        }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or_default();
        Diagnostic::new(format!("missing key `{key}` in {what}"))
            .with_help(format!("add `{key} = ...` to this table"))
    } else {
        Diagnostic::new(format!("invalid value in {what}: {message}"))
    };
    if let Some(span) = error.span() {
        diagnostic = diagnostic.at(span);
    }
    diagnostic
}

pub fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error for an unknown `type = "..."`.
pub fn unknown_type(section: Section, found: &Spanned<String>, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::new(format!(
        "unknown {} type `{}`",
        section.key(),
        found.get_ref()
    ))
    .at(found.span())
    .with_label(format!("expected one of {}", quote_list(known)));
    match closest(found.get_ref(), known.iter().copied()) {
        Some(best) => d.with_help(format!("did you mean `{best}`?")),
        None => d,
    }
}
