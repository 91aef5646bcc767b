//! The expression and template language of the config: `where` conditions,
//! `set` values, `rewrite_tag` tags and rules, output `path`/`index`
//! templates. Text is compiled once at config load ([`Expr::compile`],
//! [`Template::compile`]) into trees with pre-split field paths and compiled
//! regexes; per event only evaluation runs. The language reference is
//! `docs/dsl.md`.

mod ast;
mod diagnostic;
mod error;
mod eval;
mod functions;
mod literal;
mod parse;
mod template;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

pub use ast::{BinaryOp, Node, Pattern, REGEX_SIZE_LIMIT};
pub use error::{EvalError, ParseError};
pub use eval::{Captures, EvalContext, is_truthy};
pub use functions::{FUNCTIONS, Function, as_text};
pub use parse::{MAX_COMPLEXITY, MAX_NESTING};
pub use template::{MAX_HOLE_BYTES, PLACEHOLDER, Part, Template, TemplateKind, TimeField};

use eval::Evaluator;

/// A compiled expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    root: Node,
}

impl Expr {
    /// Compiles `text`; errors carry byte offsets into `text`.
    pub fn compile(text: &str) -> Result<Self, ParseError> {
        parse::compile_expression(text).map(|root| Self { root })
    }

    /// The tree, e.g. for load-time checks.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The value for one event. Borrowed from the expression or the record
    /// where possible; call `into_owned` to keep it.
    pub fn eval<'a>(&'a self, cx: &EvalContext<'a>) -> Result<Cow<'a, Value>, EvalError> {
        Evaluator { cx, sink: None }.eval(&self.root)
    }

    /// Whether the expression holds for one event (see [`is_truthy`]).
    pub fn is_true(&self, cx: &EvalContext<'_>) -> Result<bool, EvalError> {
        Ok(is_truthy(&*self.eval(cx)?))
    }

    /// Like [`Expr::is_true`], and fills `captures` from the last successful
    /// `=~` (left unchanged when none succeeded), for a rule's template.
    pub fn is_true_capturing(
        &self,
        cx: &EvalContext<'_>,
        captures: &mut Captures,
    ) -> Result<bool, EvalError> {
        let value = Evaluator {
            cx,
            sink: Some(captures),
        }
        .eval(&self.root)?;
        Ok(is_truthy(&value))
    }
}

impl From<Node> for Expr {
    fn from(root: Node) -> Self {
        Self { root }
    }
}

impl fmt::Display for Expr {
    /// Canonical source text; compiling it gives an equal `Expr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

impl Pattern {
    /// Compiles a regex given on its own (a rule's `pattern` key); errors
    /// span the whole text.
    pub fn compile(text: &str) -> Result<Self, ParseError> {
        Self::new(text).map_err(|e| ParseError {
            offset: 0,
            len: text.len(),
            expected: "a valid regular expression".to_owned(),
            found: literal::regex_message(&e),
            help: None,
        })
    }
}
