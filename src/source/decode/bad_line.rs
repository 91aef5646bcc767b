//! Bad input never stops a source: each bad line is counted, and the first of
//! each kind per file is logged with its offset (never its content, which may
//! hold secrets).

use std::collections::HashSet;

use prometheus_client::metrics::counter::Counter;

/// Why a line was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BadLineKind {
    NotUtf8,
    NotJson,
    TooLong,
    Rejected,
}

impl BadLineKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BadLineKind::NotUtf8 => "not_utf8",
            BadLineKind::NotJson => "not_json",
            BadLineKind::TooLong => "too_long",
            BadLineKind::Rejected => "rejected",
        }
    }
}

/// A skipped line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub kind: BadLineKind,
    /// What was wrong, without the line's content.
    pub reason: String,
}

impl BadLine {
    pub fn new(kind: BadLineKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }
}

/// Counts bad lines and logs the first of each kind per input.
pub struct BadLineLog {
    counter: Counter,
    logged: HashSet<(String, BadLineKind)>,
}

impl BadLineLog {
    pub fn new(counter: Counter) -> Self {
        Self {
            counter,
            logged: HashSet::new(),
        }
    }

    pub fn record(&mut self, input: &str, offset: u64, bad: &BadLine) {
        self.counter.inc();
        if self.logged.insert((input.to_owned(), bad.kind.clone())) {
            tracing::warn!(
                input,
                offset,
                kind = bad.kind.as_str(),
                reason = %bad.reason,
                "Skipped a bad line; further ones of this kind in this input are only counted."
            );
        }
    }

    /// Forgets an input (e.g. a file that was rotated away).
    pub fn forget(&mut self, input: &str) {
        self.logged.retain(|(name, _)| name != input);
    }
}
