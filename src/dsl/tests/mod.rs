//! Tests of the DSL, one module per concern.

use bytestring::ByteString;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::{Captures, EvalContext, EvalError, Expr};
use crate::event::{Record, Tag};

/// Error messages and offsets for broken expressions and templates.
mod errors;
/// Evaluation semantics: missing fields, type mismatches, functions.
mod eval;
/// One group per grammar production.
mod parse;
/// Property tests: no panics, print then parse is the identity.
mod props;
/// Templates: holes, captures, time fields, sanitising.
mod template;

pub(super) fn record(json: &str) -> Record {
    Record::from_json(ByteString::from(json.to_owned())).expect("test records are JSON objects")
}

pub(super) fn time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 6, 7, 8)
        .single()
        .expect("a valid time")
}

/// Evaluates `expr` against `json` with tag `audit.kube-system.pods`.
pub(super) fn eval_with(expr: &str, json: &str, captures: &Captures) -> Result<Value, EvalError> {
    let expr = Expr::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let record = record(json);
    let tag = Tag::new("audit.kube-system.pods");
    let cx = EvalContext::new(&record, &tag, time()).with_captures(captures);
    expr.eval(&cx).map(|v| v.into_owned())
}

pub(super) fn eval(expr: &str, json: &str) -> Result<Value, EvalError> {
    eval_with(expr, json, &Captures::new())
}
