//! Templates: text with `${expr}` holes and `$0`..`$9` captures, plus, in
//! path templates, strftime fields (`%Y%m%d%H`) of the event time in UTC.
//! `$$` and (in paths) `%%` write a literal `$` or `%`. Rendering appends to
//! the caller's buffer, so a hot path reuses one `String`.

use std::fmt::{self, Write as _};

use chrono::format::{Item, StrftimeItems};
use chrono::{Datelike, Timelike};
use serde_json::Value;

use super::ast::Node;
use super::error::{EvalError, ParseError, SyntaxError};
use super::eval::{EvalContext, Evaluator};
use super::parse::{expression, into_error, trailing};

/// Where a template is used, which decides what `%` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// Tags and field values: `%` is literal text.
    Plain,
    /// File paths and index names: `%Y` etc. are fields of the event time,
    /// and a hole's text stays inside one path component: separators,
    /// control characters and leading dots become `_`, empty becomes `_`,
    /// and it is cut at [`MAX_HOLE_BYTES`].
    Path,
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    kind: TemplateKind,
    parts: Vec<Part>,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Literal text.
    Text(String),
    /// `${expr}`.
    Hole(Node),
    /// `$0`..`$9`.
    Capture(u8),
    /// A strftime field such as `%Y` (path templates only).
    Time(TimeField),
}

/// A strftime field, with fast paths for the common numeric ones.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeField {
    /// The source text, e.g. `%Y` or `%.3f`.
    spec: String,
    format: TimeFormat,
}

#[derive(Debug, Clone, PartialEq)]
enum TimeFormat {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// Anything else chrono knows, parsed once.
    Other(Vec<Item<'static>>),
}

impl TimeField {
    /// Parses one field such as `%Y` or `%-d`; `None` if chrono rejects it.
    fn new(spec: &str) -> Option<Self> {
        let format = match spec {
            "%Y" => TimeFormat::Year,
            "%m" => TimeFormat::Month,
            "%d" => TimeFormat::Day,
            "%H" => TimeFormat::Hour,
            "%M" => TimeFormat::Minute,
            "%S" => TimeFormat::Second,
            _ => TimeFormat::Other(StrftimeItems::new(spec).parse_to_owned().ok()?),
        };
        Some(Self {
            spec: spec.to_owned(),
            format,
        })
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }
}

impl Template {
    /// Compiles a template; errors carry byte offsets into `text`.
    pub fn compile(text: &str, kind: TemplateKind) -> Result<Self, ParseError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let after = &rest[c.len_utf8()..];
            match c {
                '$' if after.starts_with('{') => {
                    let (next, node) = hole(&after[1..]).map_err(|e| into_error(e, text))?;
                    push_dynamic(&mut parts, &mut literal, Part::Hole(node));
                    rest = next;
                }
                '$' if after.starts_with('$') => {
                    literal.push('$');
                    rest = &after[1..];
                }
                '$' => match after.chars().next().and_then(|d| d.to_digit(10)) {
                    Some(d) => {
                        // The digit is ASCII; `d` < 10.
                        push_dynamic(&mut parts, &mut literal, Part::Capture(d as u8));
                        rest = &after[1..];
                    }
                    None => {
                        let error = SyntaxError::new(after, "`{`, `$` or a digit after `$`")
                            .with_help("write `$$` for a literal `$`");
                        return Err(error.into_parse_error(text));
                    }
                },
                '%' if kind == TemplateKind::Path && after.starts_with('%') => {
                    literal.push('%');
                    rest = &after[1..];
                }
                '%' if kind == TemplateKind::Path => {
                    let len = 1 + spec_len(after);
                    let spec = &rest[..len];
                    let Some(field) = TimeField::new(spec) else {
                        let error = SyntaxError::new(rest, "a strftime field such as `%Y` or `%d`")
                            .with_found(format!("`{spec}`"), len)
                            .with_help("write `%%` for a literal `%`");
                        return Err(error.into_parse_error(text));
                    };
                    push_dynamic(&mut parts, &mut literal, Part::Time(field));
                    rest = &rest[len..];
                }
                c => {
                    literal.push(c);
                    rest = after;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { kind, parts })
    }

    pub fn kind(&self) -> TemplateKind {
        self.kind
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the template renders the same text for every event.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The text every rendering starts with (all of it when static).
    pub fn static_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(text)) => text,
            _ => "",
        }
    }

    /// Whether any part reads the event time (a path then depends on it).
    pub fn uses_time(&self) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Time(_) => true,
            Part::Hole(node) => node.uses_time(),
            _ => false,
        })
    }

    /// Appends the rendering for one event to `out`. On error `out` may hold
    /// a partial rendering; callers reuse buffers and clear them anyway.
    pub fn render(&self, cx: &EvalContext<'_>, out: &mut String) -> Result<(), EvalError> {
        self.render_with(cx, out, |error, _| Err(error))
    }

    /// Renders for an output, which must name a file or an index for every
    /// event: a hole that is null or fails to evaluate writes
    /// [`PLACEHOLDER`] and rendering goes on, so `out` always holds a whole
    /// rendering. Returns the first failure, for the caller to count.
    pub fn render_or_placeholder(
        &self,
        cx: &EvalContext<'_>,
        out: &mut String,
    ) -> Option<EvalError> {
        let mut first = None;
        let rendered = self.render_with(cx, out, |error, out| {
            out.push_str(PLACEHOLDER);
            first.get_or_insert(error);
            Ok(())
        });
        // The callback never fails, so neither does rendering.
        debug_assert!(rendered.is_ok());
        first
    }

    /// Renders every part; `on_error` decides what a failing hole does
    /// (evaluation writes nothing before it fails, so `out` is clean).
    fn render_with(
        &self,
        cx: &EvalContext<'_>,
        out: &mut String,
        mut on_error: impl FnMut(EvalError, &mut String) -> Result<(), EvalError>,
    ) -> Result<(), EvalError> {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Capture(n) => {
                    // A capture that did not participate renders as nothing,
                    // as in every regex replacement syntax.
                    if let Some(text) = cx.captures.get(usize::from(*n)) {
                        self.push_value_text(out, text);
                    }
                }
                Part::Hole(node) => {
                    if let Err(error) = self.render_hole(node, cx, out) {
                        on_error(error, out)?;
                    }
                }
                Part::Time(field) => render_time(field, cx, out),
            }
        }
        Ok(())
    }

    /// Renders into a new string (convenience for tests and cold paths).
    pub fn render_to_string(&self, cx: &EvalContext<'_>) -> Result<String, EvalError> {
        let mut out = String::new();
        self.render(cx, &mut out)?;
        Ok(out)
    }

    fn render_hole(
        &self,
        node: &Node,
        cx: &EvalContext<'_>,
        out: &mut String,
    ) -> Result<(), EvalError> {
        // The tag is the commonest hole; write it without building a value.
        if let Node::Tag = node {
            self.push_value_text(out, cx.tag.as_str());
            return Ok(());
        }
        let value = Evaluator { cx, sink: None }.eval(node)?;
        match &*value {
            Value::String(text) => self.push_value_text(out, text),
            Value::Null => {
                return Err(EvalError::NullInTemplate {
                    hole: node.to_string(),
                });
            }
            // Numbers and booleans as JSON text; lists and objects as
            // compact JSON.
            other => {
                let start = out.len();
                // Writing to a String cannot fail.
                let _ = write!(out, "{other}");
                if self.kind == TemplateKind::Path {
                    sanitize_from(out, start);
                }
            }
        }
        Ok(())
    }

    fn push_value_text(&self, out: &mut String, text: &str) {
        let start = out.len();
        out.push_str(text);
        if self.kind == TemplateKind::Path {
            sanitize_from(out, start);
        }
    }
}

/// `${` was consumed: parse the expression and its closing `}`.
fn hole(i: &str) -> Result<(&str, Node), nom::Err<SyntaxError<'_>>> {
    let (rest, node) = expression(i, "an expression after `${`")?;
    match rest.strip_prefix('}') {
        Some(rest) => Ok((rest, node)),
        None => Err(nom::Err::Failure(trailing(rest, "an operator or `}`"))),
    }
}

fn push_dynamic(parts: &mut Vec<Part>, literal: &mut String, part: Part) {
    if !literal.is_empty() {
        parts.push(Part::Text(std::mem::take(literal)));
    }
    parts.push(part);
}

/// Length of a strftime spec after `%`: flags, width, `.`/`:`, one letter.
fn spec_len(after: &str) -> usize {
    let modifiers = after
        .find(|c: char| !(c.is_ascii_digit() || "-_0#:.".contains(c)))
        .unwrap_or(after.len());
    match after[modifiers..].chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '+' => modifiers + 1,
        _ => modifiers,
    }
}

/// Longest text one hole may add to a path, in bytes: a path component
/// may not exceed 255 bytes on common file systems, and the template's own
/// text shares the component.
pub const MAX_HOLE_BYTES: usize = 128;

/// What [`Template::render_or_placeholder`] writes for a hole that fails,
/// and what an empty hole becomes in a path.
pub const PLACEHOLDER: &str = "_";

/// Keeps a hole's text (from `start` on) inside one path component, so no
/// event can steer a path elsewhere: `/`, `\`, NUL and other control
/// characters become `_`, as do leading dots (no `.`, `..` or hidden
/// files); an empty value becomes `_`; the text is cut at
/// [`MAX_HOLE_BYTES`] on a character boundary.
fn sanitize_from(out: &mut String, start: usize) {
    let added = &out[start..];
    let is_unsafe = |c: char| matches!(c, '/' | '\\') || c.is_control();
    // Most values (namespaces, user names) need nothing: check before copying.
    if !added.is_empty()
        && added.len() <= MAX_HOLE_BYTES
        && !added.starts_with('.')
        && !added.contains(is_unsafe)
    {
        return;
    }
    let mut cleaned = String::with_capacity(added.len().min(MAX_HOLE_BYTES));
    let mut leading = true;
    for c in added.chars() {
        leading &= c == '.';
        let c = if leading || is_unsafe(c) { '_' } else { c };
        if cleaned.len() + c.len_utf8() > MAX_HOLE_BYTES {
            break;
        }
        cleaned.push(c);
    }
    if cleaned.is_empty() {
        cleaned.push_str(PLACEHOLDER);
    }
    out.truncate(start);
    out.push_str(&cleaned);
}

fn render_time(field: &TimeField, cx: &EvalContext<'_>, out: &mut String) {
    let t = cx.time;
    match &field.format {
        TimeFormat::Year => {
            let year = t.year();
            if (0..10_000).contains(&year) {
                push_digits(out, year as u32, 4);
            } else {
                let _ = write!(out, "{year}");
            }
        }
        TimeFormat::Month => push_digits(out, t.month(), 2),
        TimeFormat::Day => push_digits(out, t.day(), 2),
        TimeFormat::Hour => push_digits(out, t.hour(), 2),
        TimeFormat::Minute => push_digits(out, t.minute(), 2),
        TimeFormat::Second => push_digits(out, t.second(), 2),
        TimeFormat::Other(items) => {
            // Only items chrono parsed are here, and a UTC time has every
            // field they can ask for, so this does not fail.
            let _ = write!(out, "{}", t.format_with_items(items.iter()));
        }
    }
}

/// Zero-padded decimal, without going through `fmt`.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u32.pow(place)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

impl fmt::Display for Template {
    /// Canonical source: holes as `${expr}`, `$` and (in paths) `%` doubled
    /// in text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => {
                    for c in text.chars() {
                        match c {
                            '$' => f.write_str("$$")?,
                            '%' if self.kind == TemplateKind::Path => f.write_str("%%")?,
                            c => f.write_char(c)?,
                        }
                    }
                }
                Part::Hole(node) => write!(f, "${{{node}}}")?,
                Part::Capture(n) => write!(f, "${n}")?,
                Part::Time(field) => f.write_str(&field.spec)?,
            }
        }
        Ok(())
    }
}
