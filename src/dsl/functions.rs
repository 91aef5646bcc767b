//! The built-in functions. Each is pure, takes its arguments evaluated (a
//! regex pattern argument stays compiled), and returns null when its first
//! argument is null, so `lower(objectRef.namespace) ?? "none"` works.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ast::Pattern;
use super::error::EvalError;
use super::eval::{type_name, values_equal};

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `lower(s)`.
    Lower,
    /// `upper(s)`.
    Upper,
    /// `len(x)`: characters of a string, items of a list, keys of an object.
    Len,
    /// `starts_with(s, prefix)`.
    StartsWith,
    /// `ends_with(s, suffix)`.
    EndsWith,
    /// `contains(s, part)` or `contains(list, item)`.
    Contains,
    /// `replace(s, from, to)`: `from` is a string or a `/regex/` (then `to`
    /// may use `$1`).
    Replace,
    /// `join(list, separator)`.
    Join,
    /// `split(s, separator)`: the separator is a string or a `/regex/`.
    Split,
    /// `strftime(format)` formats the event time; `strftime(t, format)`
    /// formats `t` (RFC 3339 text or seconds since the epoch), in UTC.
    Strftime,
}

/// Every function, in the order the docs list them.
pub const FUNCTIONS: [Function; 10] = [
    Function::Lower,
    Function::Upper,
    Function::Len,
    Function::StartsWith,
    Function::EndsWith,
    Function::Contains,
    Function::Replace,
    Function::Join,
    Function::Split,
    Function::Strftime,
];

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Len => "len",
            Function::StartsWith => "starts_with",
            Function::EndsWith => "ends_with",
            Function::Contains => "contains",
            Function::Replace => "replace",
            Function::Join => "join",
            Function::Split => "split",
            Function::Strftime => "strftime",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        FUNCTIONS.into_iter().find(|f| f.name() == name)
    }

    /// The smallest and largest number of arguments.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Function::Lower | Function::Upper | Function::Len => (1, 1),
            Function::Strftime => (1, 2),
            Function::StartsWith
            | Function::EndsWith
            | Function::Contains
            | Function::Join
            | Function::Split => (2, 2),
            Function::Replace => (3, 3),
        }
    }

    /// Whether argument `index` may be a `/regex/` literal.
    pub fn takes_pattern(self, index: usize) -> bool {
        matches!(self, Function::Replace | Function::Split) && index == 1
    }
}

/// An evaluated argument.
pub(crate) enum Arg<'a> {
    Value(Cow<'a, Value>),
    Pattern(&'a Pattern),
}

type Out = Result<Value, EvalError>;

static NULL: Value = Value::Null;

/// Calls `function`; the parser guaranteed the argument count.
pub(crate) fn call(function: Function, args: &[Arg<'_>], time: DateTime<Utc>) -> Out {
    let name = function.name();
    let value = |n: usize| match args.get(n) {
        Some(Arg::Value(v)) => Ok(&**v),
        Some(Arg::Pattern(_)) => Err(EvalError::ArgumentType {
            function: name,
            expected: "a value",
            found: "regex",
        }),
        None => Ok(&NULL),
    };
    // `strftime(format)` reads no first argument; everything else returns
    // null on a null first argument.
    if function == Function::Strftime && args.len() == 1 {
        return format_time(time, value(0)?, name);
    }
    let first = value(0)?;
    if first.is_null() {
        return Ok(Value::Null);
    }
    let string = |s: String| Ok(Value::String(s));
    let boolean = |b: bool| Ok(Value::Bool(b));
    match function {
        Function::Lower => string(text(name, first)?.to_lowercase()),
        Function::Upper => string(text(name, first)?.to_uppercase()),
        Function::Len => {
            let len = match first {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                other => {
                    return Err(EvalError::ArgumentType {
                        function: name,
                        expected: "a string, list or object",
                        found: type_name(other),
                    });
                }
            };
            Ok(Value::from(len))
        }
        Function::StartsWith => boolean(text(name, first)?.starts_with(&*text(name, value(1)?)?)),
        Function::EndsWith => boolean(text(name, first)?.ends_with(&*text(name, value(1)?)?)),
        Function::Contains => match first {
            Value::Array(items) => {
                let item = value(1)?;
                boolean(items.iter().any(|x| values_equal(x, item)))
            }
            _ => boolean(text(name, first)?.contains(&*text(name, value(1)?)?)),
        },
        Function::Replace => {
            let subject = text(name, first)?;
            let with = text(name, value(2)?)?;
            match args.get(1) {
                Some(Arg::Pattern(p)) => string(p.regex().replace_all(&subject, &*with).into()),
                _ => string(subject.replace(&*text(name, value(1)?)?, &with)),
            }
        }
        Function::Join => {
            let Value::Array(items) = first else {
                return Err(EvalError::ArgumentType {
                    function: name,
                    expected: "a list",
                    found: type_name(first),
                });
            };
            let separator = text(name, value(1)?)?;
            let mut out = String::new();
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(&separator);
                }
                // Null items join as empty text, like a missing field.
                if !item.is_null() {
                    out.push_str(&text(name, item)?);
                }
            }
            string(out)
        }
        Function::Split => {
            let subject = text(name, first)?;
            let parts: Vec<Value> = match args.get(1) {
                Some(Arg::Pattern(p)) => p.regex().split(&subject).map(Value::from).collect(),
                _ => subject
                    .split(&*text(name, value(1)?)?)
                    .map(Value::from)
                    .collect(),
            };
            Ok(Value::Array(parts))
        }
        Function::Strftime => {
            let time = to_time(first).ok_or_else(|| EvalError::NotATime {
                value: first.to_string(),
            })?;
            format_time(time, value(1)?, name)
        }
    }
}

/// A function argument's text, or the error naming the function.
fn text<'v>(function: &'static str, value: &'v Value) -> Result<Cow<'v, str>, EvalError> {
    as_text(value).ok_or(EvalError::ArgumentType {
        function,
        expected: "a string",
        found: type_name(value),
    })
}

/// A scalar's text: strings as they are, numbers and booleans as JSON.
/// Null, lists and objects have none.
pub fn as_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

fn to_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let seconds = n.as_f64()?;
            if !seconds.is_finite() {
                return None;
            }
            let whole = seconds.floor();
            // Out-of-range seconds give None, never a wrapped time.
            let nanos = ((seconds - whole) * 1e9) as u32;
            DateTime::from_timestamp(whole as i64, nanos.min(999_999_999))
        }
        _ => None,
    }
}

fn format_time(time: DateTime<Utc>, format: &Value, name: &'static str) -> Out {
    let Value::String(format) = format else {
        return Err(EvalError::ArgumentType {
            function: name,
            expected: "a format string",
            found: type_name(format),
        });
    };
    if !is_valid_time_format(format) {
        return Err(EvalError::TimeFormat {
            format: format.clone(),
        });
    }
    let mut out = String::new();
    // A valid format can still fail for a field the value lacks (an offset
    // name); report it rather than panic as `to_string` would.
    write!(out, "{}", time.format(format)).map_err(|_| EvalError::TimeFormat {
        format: format.clone(),
    })?;
    Ok(Value::String(out))
}

/// Whether chrono accepts every field of `format`.
pub(crate) fn is_valid_time_format(format: &str) -> bool {
    chrono::format::StrftimeItems::new(format).parse().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_arity_is_sane() {
        for f in FUNCTIONS {
            assert_eq!(Function::from_name(f.name()), Some(f));
            let (min, max) = f.arity();
            assert!(min >= 1 && min <= max && max <= 3);
        }
        assert_eq!(Function::from_name("nope"), None);
    }

    #[test]
    fn times_from_text_and_numbers() {
        let t = to_time(&Value::from("2024-03-05T06:07:08.5+01:00")).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-03-05T05:07:08.500+00:00");
        let t = to_time(&Value::from(1.5)).unwrap();
        assert_eq!(t.timestamp_millis(), 1500);
        assert!(to_time(&Value::from(1e300)).is_none());
        assert!(to_time(&Value::from("yesterday")).is_none());
    }
}
