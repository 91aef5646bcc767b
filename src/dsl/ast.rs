//! The compiled form of an expression: a tree whose paths are pre-split
//! [`FieldPath`]s and whose regexes are compiled, so evaluation never
//! re-parses anything. `Display` prints canonical source text that parses
//! back to the same tree.

use std::fmt;

use regex::Regex;
use serde_json::Value;

use super::functions::Function;
use crate::event::{FieldPath, PathSegment};

/// One node of an expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// `null`, `true`, `false`, a number or a string.
    Literal(Value),
    /// `[a, b, ...]`.
    List(Vec<Node>),
    /// A record field: `objectRef.namespace`, `.tag` (a field named `tag`).
    Field(FieldPath),
    /// `tag`: the event's tag as a string.
    Tag,
    /// `tag_parts`: the tag split at `.`, as a list of strings.
    TagParts,
    /// `tag_parts[N]`: one part of the tag, null past the end.
    TagPart(usize),
    /// `time`: the event time as an RFC 3339 string in UTC.
    Time,
    /// `$0`..`$9`: a capture group of the rule's last successful `=~`.
    Capture(u8),
    /// `/regex/`: only as the pattern argument of `replace` and `split`
    /// (the parser allows it nowhere else).
    Regex(Pattern),
    /// `!x`.
    Not(Box<Node>),
    /// `x =~ /re/` (or `!~` when `negated`).
    Match {
        subject: Box<Node>,
        pattern: Pattern,
        negated: bool,
    },
    /// `x op y` for every binary operator except `=~`/`!~`.
    Binary {
        op: BinaryOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// `name(args...)`; the arity was checked at compile time.
    Call { function: Function, args: Vec<Node> },
}

/// Binary operators, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `??`: the left value unless it is null, else the right.
    Coalesce,
    /// `||`.
    Or,
    /// `&&`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `in`: membership in a list, substring of a string, key of an object.
    In,
}

impl BinaryOp {
    /// The operator's source text.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Coalesce => "??",
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
        }
    }

    /// Binding strength: higher binds tighter.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            BinaryOp::Coalesce => 1,
            BinaryOp::Or => 2,
            BinaryOp::And => 3,
            _ => CMP_PRECEDENCE,
        }
    }
}

/// `!` sits between `&&` and the comparisons.
const NOT_PRECEDENCE: u8 = 4;
const CMP_PRECEDENCE: u8 = 5;
/// Literals, paths, calls, lists.
const ATOM_PRECEDENCE: u8 = 6;

/// The most a compiled regex may take, so a config cannot make the agent
/// allocate without bound.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A regex compiled once at config load. Two patterns are equal when their
/// source text is.
#[derive(Clone)]
pub struct Pattern {
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` with the size limit; the error is regex's own
    /// message (the caller positions it).
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::RegexBuilder::new(source)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()?;
        Ok(Self { regex })
    }

    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    pub fn regex(&self) -> &Regex {
        &self.regex
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/", self.as_str())
    }
}

impl Node {
    /// Calls `f` on this node and every node below it, in source order.
    pub fn visit(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match self {
            Node::List(items) | Node::Call { args: items, .. } => {
                items.iter().for_each(|item| item.visit(f));
            }
            Node::Not(inner) | Node::Match { subject: inner, .. } => inner.visit(f),
            Node::Binary { left, right, .. } => {
                left.visit(f);
                right.visit(f);
            }
            _ => {}
        }
    }

    /// Whether the value depends on the event time (`time`, `strftime`).
    pub fn uses_time(&self) -> bool {
        let mut found = false;
        self.visit(&mut |node| {
            found |= matches!(
                node,
                Node::Time
                    | Node::Call {
                        function: Function::Strftime,
                        ..
                    }
            );
        });
        found
    }

    fn precedence(&self) -> u8 {
        match self {
            Node::Binary { op, .. } => op.precedence(),
            Node::Match { .. } => CMP_PRECEDENCE,
            Node::Not(_) => NOT_PRECEDENCE,
            _ => ATOM_PRECEDENCE,
        }
    }
}

/// Words that read as something other than a field at the start of a path.
pub(crate) const RESERVED: [&str; 7] = ["true", "false", "null", "in", "tag", "tag_parts", "time"];

/// Whether `key` may be written bare as a path's first segment.
pub(crate) fn is_bare_first_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_key_char)
        && !RESERVED.contains(&key)
}

/// Whether `key` may be written bare after a `.`.
pub(crate) fn is_bare_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(is_key_char)
}

pub(crate) fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Literal(value) => write_literal(f, value),
            Node::List(items) => {
                f.write_str("[")?;
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Node::Field(path) => write_path(f, path),
            Node::Tag => f.write_str("tag"),
            Node::TagParts => f.write_str("tag_parts"),
            Node::TagPart(n) => write!(f, "tag_parts[{n}]"),
            Node::Time => f.write_str("time"),
            Node::Capture(n) => write!(f, "${n}"),
            Node::Regex(pattern) => write_regex(f, pattern.as_str()),
            Node::Not(inner) => {
                f.write_str("!")?;
                write_operand(f, inner, inner.precedence() < NOT_PRECEDENCE)
            }
            Node::Match {
                subject,
                pattern,
                negated,
            } => {
                write_operand(f, subject, subject.precedence() <= CMP_PRECEDENCE)?;
                f.write_str(if *negated { " !~ " } else { " =~ " })?;
                write_regex(f, pattern.as_str())
            }
            Node::Binary { op, left, right } => {
                let prec = op.precedence();
                // Comparisons do not chain, so neither side may be one;
                // the others are left-associative.
                let (left_parens, right_parens) = if prec == CMP_PRECEDENCE {
                    (left.precedence() <= prec, right.precedence() <= prec)
                } else {
                    (left.precedence() < prec, right.precedence() <= prec)
                };
                write_operand(f, left, left_parens)?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, right, right_parens)
            }
            Node::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                for (n, arg) in args.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, node: &Node, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({node})")
    } else {
        write!(f, "{node}")
    }
}

fn write_literal(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::String(text) => write_string(f, text),
        // Numbers, booleans and null print as JSON, which is our syntax too.
        // Lists and objects never appear as literals; print them as JSON.
        other => write!(f, "{other}"),
    }
}

/// Writes a double-quoted string literal with escapes the parser reads back.
pub(crate) fn write_string(f: &mut impl fmt::Write, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Writes `/pattern/`, escaping the delimiter; escape pairs pass through.
fn write_regex(f: &mut fmt::Formatter<'_>, source: &str) -> fmt::Result {
    f.write_str("/")?;
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                f.write_str("\\")?;
                if let Some(next) = chars.next() {
                    fmt::Write::write_char(f, next)?;
                }
            }
            '/' => f.write_str("\\/")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("/")
}

fn write_path(f: &mut fmt::Formatter<'_>, path: &FieldPath) -> fmt::Result {
    for (n, segment) in path.segments().iter().enumerate() {
        match segment {
            PathSegment::Key(key) if n == 0 && is_bare_first_key(key) => f.write_str(key)?,
            PathSegment::Key(key) if is_bare_key(key) => write!(f, ".{key}")?,
            PathSegment::Key(key) => {
                f.write_str(".")?;
                write_string(f, key)?;
            }
            PathSegment::Index(index) => write!(f, "[{index}]")?,
        }
    }
    Ok(())
}
