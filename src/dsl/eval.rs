//! Evaluation of a compiled expression against one event. Field reads go
//! through [`Record::get`], which borrows from a parsed record or scans the
//! original bytes for just that field; literals are borrowed from the tree,
//! so most evaluations allocate nothing beyond the values they read.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Number, Value};

use super::ast::{BinaryOp, Node, Pattern};
use super::error::EvalError;
use super::functions::{self, Arg, as_text};
use crate::event::{Record, Tag};

/// What an expression can see: one event plus the captures of the rule's
/// last successful `=~` (`$0`..`$9`).
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    pub record: &'a Record,
    pub tag: &'a Tag,
    pub time: DateTime<Utc>,
    pub captures: &'a Captures,
}

static NO_CAPTURES: Captures = Captures::new();

impl<'a> EvalContext<'a> {
    /// A context without captures.
    pub fn new(record: &'a Record, tag: &'a Tag, time: DateTime<Utc>) -> Self {
        Self {
            record,
            tag,
            time,
            captures: &NO_CAPTURES,
        }
    }

    /// The same event with captures for `$N`.
    pub fn with_captures(self, captures: &'a Captures) -> Self {
        Self { captures, ..self }
    }
}

/// Capture groups `$0`..`$9` of a regex match. Reusable: filling it again
/// keeps the strings' buffers, so a hot rule does not allocate per event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    groups: [String; 10],
    /// Bit `n` is set when group `n` participated in the match.
    present: u16,
}

impl Captures {
    pub const fn new() -> Self {
        const EMPTY: String = String::new();
        Self {
            groups: [EMPTY; 10],
            present: 0,
        }
    }

    /// Group `n` (0 is the whole match), if it matched.
    pub fn get(&self, n: usize) -> Option<&str> {
        (n < 10 && self.present & (1 << n) != 0).then(|| self.groups[n].as_str())
    }

    pub fn clear(&mut self) {
        self.present = 0;
    }

    /// Matches `haystack` and, on success, replaces the groups with this
    /// match's. On failure the previous groups are kept, so they always
    /// describe the last *successful* match.
    pub fn capture(&mut self, pattern: &Pattern, haystack: &str) -> bool {
        let Some(found) = pattern.regex().captures(haystack) else {
            return false;
        };
        self.present = 0;
        for (n, group) in found.iter().take(10).enumerate() {
            if let Some(group) = group {
                self.groups[n].clear();
                self.groups[n].push_str(group.as_str());
                self.present |= 1 << n;
            }
        }
        true
    }
}

static NULL: Value = Value::Null;
static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

fn boolean<'a>(b: bool) -> Cow<'a, Value> {
    Cow::Borrowed(if b { &TRUE } else { &FALSE })
}

/// Truthiness: null, `false`, `0`, `""`, `[]` and `{}` are false; every
/// other value is true.
pub fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// The type names used in error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// `==`: values of different types are never equal; numbers compare by
/// value (`1 == 1.0`), lists and objects element by element.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| values_equal(a, b)))
        }
        _ => a == b,
    }
}

fn compare_numbers(x: &Number, y: &Number) -> Option<Ordering> {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(x), int(y)) {
        // Exact for integers beyond f64's 53 bits.
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

/// Walks the tree for one event. `sink` receives the captures of the last
/// successful `=~`, when the caller wants them.
pub(crate) struct Evaluator<'c, 'a> {
    pub(crate) cx: &'c EvalContext<'a>,
    pub(crate) sink: Option<&'c mut Captures>,
}

type Out<'a> = Result<Cow<'a, Value>, EvalError>;

impl<'a> Evaluator<'_, 'a> {
    pub(crate) fn eval(&mut self, node: &'a Node) -> Out<'a> {
        let cx = self.cx;
        match node {
            Node::Literal(value) => Ok(Cow::Borrowed(value)),
            Node::List(items) => items
                .iter()
                .map(|item| self.eval(item).map(Cow::into_owned))
                .collect::<Result<Vec<_>, _>>()
                .map(|items| Cow::Owned(Value::Array(items))),
            Node::Field(path) => Ok(cx.record.get(path).unwrap_or(Cow::Borrowed(&NULL))),
            Node::Tag => Ok(Cow::Owned(Value::from(cx.tag.as_str()))),
            Node::TagParts => Ok(Cow::Owned(Value::Array(
                cx.tag.parts().map(Value::from).collect(),
            ))),
            Node::TagPart(n) => Ok(cx
                .tag
                .parts()
                .nth(*n)
                .map_or(Cow::Borrowed(&NULL), |part| Cow::Owned(Value::from(part)))),
            Node::Time => Ok(Cow::Owned(Value::String(
                cx.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ))),
            Node::Capture(n) => Ok(cx
                .captures
                .get(usize::from(*n))
                .map_or(Cow::Borrowed(&NULL), |text| Cow::Owned(Value::from(text)))),
            // Only reachable through a hand-built tree: the parser allows a
            // regex only as a function's pattern argument.
            Node::Regex(pattern) => Ok(Cow::Owned(Value::from(pattern.as_str()))),
            Node::Not(inner) => Ok(boolean(!is_truthy(&*self.eval(inner)?))),
            Node::Match {
                subject,
                pattern,
                negated,
            } => {
                let subject = self.eval(subject)?;
                let matched = self.is_match(&subject, pattern)?;
                Ok(boolean(matched != *negated))
            }
            Node::Binary { op, left, right } => self.binary(*op, left, right),
            Node::Call { function, args } => {
                let mut evaluated = Vec::with_capacity(args.len());
                for arg in args {
                    evaluated.push(match arg {
                        Node::Regex(pattern) => Arg::Pattern(pattern),
                        other => Arg::Value(self.eval(other)?),
                    });
                }
                functions::call(*function, &evaluated, cx.time).map(Cow::Owned)
            }
        }
    }

    fn binary(&mut self, op: BinaryOp, left: &'a Node, right: &'a Node) -> Out<'a> {
        let left_value = self.eval(left)?;
        match op {
            BinaryOp::Coalesce if left_value.is_null() => self.eval(right),
            BinaryOp::Coalesce => Ok(left_value),
            BinaryOp::Or if is_truthy(&left_value) => Ok(boolean(true)),
            BinaryOp::And if !is_truthy(&left_value) => Ok(boolean(false)),
            BinaryOp::Or | BinaryOp::And => Ok(boolean(is_truthy(&*self.eval(right)?))),
            BinaryOp::In => self.contains(&left_value, right).map(boolean),
            BinaryOp::Eq => Ok(boolean(values_equal(&left_value, &*self.eval(right)?))),
            BinaryOp::Ne => Ok(boolean(!values_equal(&left_value, &*self.eval(right)?))),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let right_value = self.eval(right)?;
                let ordering = order(op, &left_value, &right_value)?;
                Ok(boolean(ordering.is_some_and(|o| match op {
                    BinaryOp::Lt => o.is_lt(),
                    BinaryOp::Le => o.is_le(),
                    BinaryOp::Gt => o.is_gt(),
                    _ => o.is_ge(),
                })))
            }
        }
    }

    /// `needle in haystack`. A literal list on the right is walked in place
    /// rather than built, so `verb in ["get", "list"]` allocates nothing.
    fn contains(&mut self, needle: &Value, haystack: &'a Node) -> Result<bool, EvalError> {
        if let Node::List(items) = haystack {
            for item in items {
                if values_equal(needle, &*self.eval(item)?) {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        match (&*self.eval(haystack)?, needle) {
            (Value::Array(items), _) => Ok(items.iter().any(|x| values_equal(needle, x))),
            (Value::String(text), Value::String(part)) => Ok(text.contains(part.as_str())),
            (Value::Object(map), Value::String(key)) => Ok(map.contains_key(key.as_str())),
            // Nothing is in a missing field; a non-string is in no string.
            (Value::Null | Value::String(_) | Value::Object(_), _) => Ok(false),
            (other, _) => Err(EvalError::OperandType {
                op: "in",
                found: type_name(other),
            }),
        }
    }

    fn is_match(&mut self, subject: &Value, pattern: &Pattern) -> Result<bool, EvalError> {
        if subject.is_null() {
            return Ok(false);
        }
        let text = as_text(subject).ok_or(EvalError::OperandType {
            op: "=~",
            found: type_name(subject),
        })?;
        Ok(match self.sink.as_deref_mut() {
            Some(sink) => sink.capture(pattern, &text),
            None => pattern.regex().is_match(&text),
        })
    }
}

/// The order of two values for `<`-style operators: numbers by value,
/// strings by bytes. `None` (so false) when either is null; an error for
/// any other pairing.
fn order(op: BinaryOp, left: &Value, right: &Value) -> Result<Option<Ordering>, EvalError> {
    match (left, right) {
        (Value::Null, _) | (_, Value::Null) => Ok(None),
        (Value::Number(a), Value::Number(b)) => Ok(compare_numbers(a, b)),
        (Value::String(a), Value::String(b)) => Ok(Some(a.cmp(b))),
        _ => Err(EvalError::Incomparable {
            op: op.symbol(),
            left: type_name(left),
            right: type_name(right),
        }),
    }
}
