//! `type = "redact"`: masks secret values in audit events before they leave the
//! agent — a safety net for policies that log Secrets or TokenReviews at `Request`
//! level or above.
//!
//! ## What it does
//! Applies the built-in rules (see `bodies.rs`: Secret `data`/`stringData` and the
//! last-applied annotation in every body shape, TokenReview and TokenRequest tokens)
//! to `requestObject` and `responseObject`, then masks each of the listed `paths`.
//! A masked value becomes the `marker` (default `"<redacted>"`) or, with
//! `mode = "hmac"`, `hmac-sha256:<32 hex digits>` keyed by `key_file`, so equal
//! values can be matched across events. Values never vanish silently: keys stay.
//!
//! ```toml
//! [[filter]]
//! type = "redact"
//! match = "audit.**"
//! paths = ["requestObject.spec.password"]
//! # mode = "hmac"
//! # key_file = "/etc/auditrail/redact.key"
//! ```
//!
//! ## Guarantees
//! An event with nothing to mask keeps its original bytes; bodies are parsed only
//! when `objectRef` or the body's `kind` says they may hold secrets. Masked values
//! are never logged.

mod bodies;
mod mask;

use std::borrow::Cow;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use self::bodies::{Implied, kind_may_hold_secrets, redact_body};
use self::mask::{DEFAULT_MARKER, Mask};
use super::{Filter, FilterOutput};
use crate::config::Diagnostic;
use crate::event::{Event, FieldPath, PathSegment, Record};
use crate::metrics::ComponentMetrics;

/// How masked values are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactMode {
    /// The `marker` text.
    #[default]
    Marker,
    /// A keyed hash (HMAC-SHA256, first 128 bits in hex) under `key_file`.
    Hmac,
}

/// The raw `redact` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// `marker` (default) or `hmac`.
    #[serde(default)]
    pub mode: RedactMode,
    /// The replacement text in `marker` mode. Default `"<redacted>"`.
    pub marker: Option<Spanned<String>>,
    /// `hmac` mode: file holding the hash key (its bytes, without a trailing
    /// newline). Read once at config load; keep it 0600.
    pub key_file: Option<Spanned<PathBuf>>,
    /// More fields to mask in every event (`a.b`, `a."dotted.key"`, `a[0]`), on
    /// top of the built-in rules. A missing field is left alone.
    #[serde(default)]
    pub paths: Vec<FieldPath>,
}

/// A validated `redact` filter.
#[derive(Debug, Clone)]
pub struct RedactSpec {
    mask: Mask,
    paths: Vec<FieldPath>,
}

impl RedactConfig {
    pub fn validate(&self, table_span: std::ops::Range<usize>) -> Result<RedactSpec, Diagnostic> {
        let mask = match (self.mode, &self.marker, &self.key_file) {
            (RedactMode::Marker, marker, None) => Mask::Marker(
                marker
                    .as_ref()
                    .map_or_else(|| DEFAULT_MARKER.to_owned(), |m| m.get_ref().clone()),
            ),
            (RedactMode::Marker, _, Some(key_file)) => {
                return Err(
                    Diagnostic::new("`key_file` only applies to `mode = \"hmac\"`")
                        .at(key_file.span())
                        .with_help("add `mode = \"hmac\"`, or remove `key_file`"),
                );
            }
            (RedactMode::Hmac, Some(marker), _) => {
                return Err(
                    Diagnostic::new("`marker` does not apply to `mode = \"hmac\"`")
                        .at(marker.span())
                        .with_help(
                            "hashed values are written as `hmac-sha256:<hex>`; remove `marker`",
                        ),
                );
            }
            (RedactMode::Hmac, None, None) => {
                let start = table_span.start;
                return Err(Diagnostic::new("`mode = \"hmac\"` needs a `key_file`")
                    .at(start..start + 1)
                    .with_help("add `key_file = \"/etc/auditrail/redact.key\"` (a file of random bytes, mode 0600)"));
            }
            (RedactMode::Hmac, None, Some(key_file)) => Mask::Hmac(read_key(key_file)?),
        };
        Ok(RedactSpec {
            mask,
            paths: self.paths.clone(),
        })
    }
}

fn read_key(key_file: &Spanned<PathBuf>) -> Result<Box<[u8]>, Diagnostic> {
    let path = key_file.get_ref();
    let mut key = std::fs::read(path).map_err(|e| {
        Diagnostic::new(format!(
            "failed to read the redaction key file `{}`: {e}",
            path.display()
        ))
        .at(key_file.span())
    })?;
    while key.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        key.pop();
    }
    if key.is_empty() {
        return Err(Diagnostic::new(format!(
            "the redaction key file `{}` is empty",
            path.display()
        ))
        .at(key_file.span())
        .with_help("write a random key into it, e.g. `head -c 32 /dev/urandom | base64 > FILE`"));
    }
    Ok(key.into_boxed_slice())
}

impl RedactSpec {
    pub fn build(&self, _metrics: ComponentMetrics) -> Redact {
        Redact {
            mask: self.mask.clone(),
            paths: self.paths.clone(),
            keys: Keys::new(),
        }
    }
}

struct Keys {
    object_ref: FieldPath,
    bodies: [(FieldPath, FieldPath); 2],
}

fn path(keys: &[&str]) -> FieldPath {
    FieldPath::new(keys.iter().map(|k| PathSegment::Key((*k).into())).collect())
}

impl Keys {
    fn new() -> Self {
        Self {
            object_ref: path(&["objectRef"]),
            bodies: [
                (path(&["requestObject"]), path(&["requestObject", "kind"])),
                (path(&["responseObject"]), path(&["responseObject", "kind"])),
            ],
        }
    }
}

pub struct Redact {
    mask: Mask,
    paths: Vec<FieldPath>,
    keys: Keys,
}

impl Filter for Redact {
    fn apply(&mut self, mut event: Event, out: &mut FilterOutput) {
        self.redact(&mut event.record);
        out.pass(event);
    }
}

impl Redact {
    fn redact(&self, record: &mut Record) {
        let implied = record
            .get(&self.keys.object_ref)
            .and_then(|o| Implied::from_object_ref(&o));
        for (body_path, kind_path) in &self.keys.bodies {
            let worth_a_look = implied.is_some()
                || record
                    .get(kind_path)
                    .is_some_and(|k| k.as_str().is_some_and(kind_may_hold_secrets));
            if !worth_a_look {
                continue;
            }
            let Some(body) = record.get(body_path).map(Cow::into_owned) else {
                continue;
            };
            let mut body = body;
            if redact_body(&mut body, implied, &self.mask) {
                record.set(body_path, body);
            }
        }
        for path in &self.paths {
            if let Some(value) = record.get(path).map(Cow::into_owned) {
                let mut value: Value = value;
                if self.mask.apply(&mut value) {
                    record.set(path, value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
