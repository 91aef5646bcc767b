//! Errors are data. A [`ParseError`] carries the exact byte span in the text
//! it was given plus what was expected and found, so the config layer can
//! point at a file line and column; an [`EvalError`] is a value a filter
//! counts and logs, never a panic.

use std::borrow::Cow;

use nom::error::{ContextError, ErrorKind};

/// Why an expression or template could not be compiled.
///
/// `offset` and `len` are byte positions in the text passed to
/// [`Expr::compile`](super::Expr::compile) or
/// [`Template::compile`](super::Template::compile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct ParseError {
    /// Byte offset of the offending text.
    pub offset: usize,
    /// Byte length of the offending text (0 at the end of the input).
    pub len: usize,
    /// What the parser wanted there, e.g. ``an expression after `??` ``.
    pub expected: String,
    /// What it saw, e.g. `` `}` `` or `end of input`.
    pub found: String,
    /// An optional hint, e.g. ``did you mean `lower`?``.
    pub help: Option<String>,
}

/// Why evaluating an expression or rendering a template failed for one event.
///
/// Every variant is a property of the event's data meeting the expression;
/// a filter counts these and logs one rate-limited line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Ordering two values that have no order: `"a" < 1`, `[1] > 0`.
    #[error("cannot compare a {left} with a {right} using `{op}`")]
    Incomparable {
        op: &'static str,
        left: &'static str,
        right: &'static str,
    },
    /// An operator applied to a value of the wrong type: `[1] =~ /x/`,
    /// `"a" in 5`.
    #[error("`{op}` cannot take a {found}")]
    OperandType {
        op: &'static str,
        found: &'static str,
    },
    /// A function argument of the wrong type: `lower([1])`.
    #[error("`{function}` expects {expected}, found a {found}")]
    ArgumentType {
        function: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    /// A time format computed at run time that chrono rejects.
    #[error("invalid time format `{format}`")]
    TimeFormat { format: String },
    /// A value given to `strftime` that is not a time.
    #[error("`{value}` is not an RFC 3339 time or a number of seconds")]
    NotATime { value: String },
    /// A template hole that evaluated to null (a missing field).
    #[error("template hole `{hole}` is null or missing; give a default with `??`")]
    NullInTemplate { hole: String },
}

/// The error type threaded through the nom parsers.
///
/// It keeps the innermost `context` (the most specific expectation) and the
/// furthest position, and may carry an explicit `found`/`len` when the
/// failure is semantic (an unknown function) rather than lexical.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError<'a> {
    /// The remaining input where the error was detected.
    pub(crate) input: &'a str,
    pub(crate) expected: Option<Cow<'static, str>>,
    pub(crate) found: Option<String>,
    pub(crate) len: Option<usize>,
    pub(crate) help: Option<String>,
}

impl<'a> SyntaxError<'a> {
    pub(crate) fn new(input: &'a str, expected: impl Into<Cow<'static, str>>) -> Self {
        Self {
            input,
            expected: Some(expected.into()),
            found: None,
            len: None,
            help: None,
        }
    }

    pub(crate) fn with_found(mut self, found: String, len: usize) -> Self {
        self.found = Some(found);
        self.len = Some(len);
        self
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Converts to the public error; `text` is the whole text the input is a
    /// suffix of.
    pub(crate) fn into_parse_error(self, text: &str) -> ParseError {
        let offset = text.len().saturating_sub(self.input.len());
        let (found, len) = match (self.found, self.len) {
            (Some(found), Some(len)) => (found, len),
            _ => describe_found(text, offset),
        };
        ParseError {
            offset,
            len,
            expected: self
                .expected
                .map_or_else(|| "an expression".to_owned(), Cow::into_owned),
            found,
            help: self.help,
        }
    }
}

impl<'a> nom::error::ParseError<&'a str> for SyntaxError<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        Self {
            input,
            expected: None,
            found: None,
            len: None,
            help: None,
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }

    /// Between two failed alternatives keep the one that got further, and
    /// at the same place the one that knows what it expected.
    fn or(self, other: Self) -> Self {
        match self.input.len().cmp(&other.input.len()) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal if other.expected.is_none() => self,
            std::cmp::Ordering::Equal => other,
        }
    }
}

impl<'a> ContextError<&'a str> for SyntaxError<'a> {
    /// The innermost context wins: it is the most specific expectation.
    fn add_context(_input: &'a str, ctx: &'static str, mut other: Self) -> Self {
        if other.expected.is_none() {
            other.expected = Some(Cow::Borrowed(ctx));
        }
        other
    }
}

/// Describes the token at `offset` for a `found …` message, with its length.
pub(crate) fn describe_found(text: &str, offset: usize) -> (String, usize) {
    let rest = text.get(offset..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of input".to_owned(), 0);
    };
    let len = token_len(rest, first);
    let token = &rest[..len];
    // Keep messages readable when the token is a long string literal.
    let shown: String = if token.chars().count() > 32 {
        let mut short: String = token.chars().take(29).collect();
        short.push_str("...");
        short
    } else {
        token.to_owned()
    };
    (format!("`{shown}`"), len)
}

fn token_len(rest: &str, first: char) -> usize {
    const PAIRS: [&str; 10] = ["==", "!=", "<=", ">=", "=~", "!~", "&&", "||", "??", "${"];
    if first.is_alphanumeric() || first == '_' {
        return rest
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .map_or(rest.len(), |(n, _)| n);
    }
    if first == '"' || first == '\'' {
        let mut escaped = false;
        for (n, c) in rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == first => return n + 1,
                _ => {}
            }
        }
        return rest.len();
    }
    if PAIRS.iter().any(|pair| rest.starts_with(pair)) {
        return 2;
    }
    first.len_utf8()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_tokens_and_the_end() {
        assert_eq!(describe_found("a ?? }", 5), ("`}`".to_owned(), 1));
        assert_eq!(describe_found("a ??", 4), ("end of input".to_owned(), 0));
        assert_eq!(
            describe_found("x foo-bar.y", 2),
            ("`foo-bar`".to_owned(), 7)
        );
        assert_eq!(
            describe_found(r#"x "a\"b" y"#, 2),
            (r#"`"a\"b"`"#.to_owned(), 6)
        );
        assert_eq!(describe_found("x ==", 2), ("`==`".to_owned(), 2));
        assert_eq!(describe_found("é", 0), ("`é`".to_owned(), 2));
        // An offset past the end or inside a character is not a panic.
        assert_eq!(describe_found("é", 1).1, 0);
    }
}
