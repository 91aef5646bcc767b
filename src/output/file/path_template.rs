//! The file output's `path` template: literal text, `${...}` holes
//! (`tag`, `tag_parts[N]`, a field path, `a ?? b ?? "default"`) and strftime
//! fields (`%Y%m%d%H`) of the event time in UTC. Hole values are sanitised
//! so that no event can steer a path out of the output's base directory.
//!
//! A small stand-in for the expression DSL's `Template`: the interface
//! (`compile`, `render`, `static_prefix`, `is_static`) is what the output uses.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use serde_json::Value;

use crate::event::{Event, FieldPath};

/// Longest value one hole may contribute, in bytes (a path component may
/// not exceed 255 bytes on common file systems).
const MAX_HOLE_BYTES: usize = 128;

/// A compiled `path` template.
#[derive(Debug, Clone)]
pub(crate) struct PathTemplate {
    parts: Vec<Part>,
    static_prefix: String,
    /// Seconds in the finest strftime field, when there is one.
    slice_seconds: Option<i64>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Time(Vec<Item<'static>>),
    /// `a ?? b ?? "c"`: the first operand that is present and not null.
    Hole(Vec<Operand>),
}

#[derive(Debug, Clone)]
enum Operand {
    Tag,
    TagPart(usize),
    Field(FieldPath),
    Literal(String),
}

/// A template error: byte offset in the template text and what was expected.
pub(crate) type CompileError = (usize, String);

impl PathTemplate {
    /// Parses a template; errors carry the byte offset of the problem.
    pub(crate) fn compile(text: &str) -> Result<Self, CompileError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut static_prefix = None;
        let mut slice_seconds: Option<i64> = None;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if text[i..].starts_with("$${") {
                literal.push_str("${");
                i += 3;
            } else if text[i..].starts_with("${") {
                flush_literal(&mut literal, &mut parts, i, &mut slice_seconds)?;
                static_prefix.get_or_insert_with(|| prefix_of(&parts));
                let (operands, end) = parse_hole(text, i + 2)?;
                parts.push(Part::Hole(operands));
                i = end;
            } else {
                let c = text[i..].chars().next().expect("i is on a char boundary");
                if c == '\0' {
                    return Err((i, "a path cannot contain a NUL byte".into()));
                }
                literal.push(c);
                i += c.len_utf8();
            }
        }
        flush_literal(&mut literal, &mut parts, text.len(), &mut slice_seconds)?;
        if parts.is_empty() {
            return Err((0, "expected a path".into()));
        }
        let static_prefix = static_prefix.unwrap_or_else(|| prefix_of(&parts));
        Ok(Self {
            parts,
            static_prefix,
            slice_seconds,
        })
    }

    /// The literal text before the first hole or time field.
    pub(crate) fn static_prefix(&self) -> &str {
        &self.static_prefix
    }

    /// Whether every event renders the same path.
    pub(crate) fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Length of the time slice in seconds when the template has strftime
    /// fields (the finest one decides; coarser than a day counts as a day).
    pub(crate) fn slice_seconds(&self) -> Option<i64> {
        self.slice_seconds
    }

    /// Appends the path for `event` to `out`. Hole values are sanitised: `/`,
    /// `\`, NUL and control characters and leading dots become `_`, an empty
    /// value becomes `_`, and values are cut at 128 bytes.
    pub(crate) fn render(&self, event: &Event, out: &mut String) {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Time(items) => {
                    // Writing into a String cannot fail.
                    let _ = write!(out, "{}", event.time.format_with_items(items.iter()));
                }
                Part::Hole(operands) => {
                    let value = operands.iter().find_map(|op| evaluate(op, event));
                    push_sanitized(out, value.as_deref().unwrap_or(""));
                }
            }
        }
    }
}

/// Whether a rendered path stays inside `base_dir` (ending in `/`, or
/// empty for the working directory): no `.`/`..` or NUL in the rest, no
/// component over 255 bytes, 4096 bytes at most in all.
pub(crate) fn stays_within(base_dir: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(base_dir) else {
        return false;
    };
    if path.len() > 4096 || rest.is_empty() || rest.starts_with('/') || rest.contains('\0') {
        return false;
    }
    rest.split('/')
        .all(|part| part != "." && part != ".." && part.len() <= 255)
}

fn prefix_of(parts: &[Part]) -> String {
    match parts.first() {
        Some(Part::Text(text)) => text.clone(),
        _ => String::new(),
    }
}

/// Turns collected literal text into a `Text` or, if it holds strftime
/// fields, a `Time` part. `end` is the offset just after the text.
fn flush_literal(
    literal: &mut String,
    parts: &mut Vec<Part>,
    end: usize,
    slice: &mut Option<i64>,
) -> Result<(), CompileError> {
    if literal.is_empty() {
        return Ok(());
    }
    let mut text = std::mem::take(literal);
    let mut start = end.saturating_sub(text.len());
    let Some(first_field) = text.find('%') else {
        parts.push(Part::Text(text));
        return Ok(());
    };
    // Plain text before the first field stays text (the static prefix).
    if first_field > 0 {
        let rest = text.split_off(first_field);
        parts.push(Part::Text(text));
        text = rest;
        start += first_field;
    }
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        // Skip chrono's padding modifiers and `.`/digits of `%.3f`.
        let mut spec = None;
        for (_, next) in chars.by_ref() {
            if matches!(next, '-' | '_' | '0' | '.' | '#' | ':' | '1'..='9') {
                continue;
            }
            spec = Some(next);
            break;
        }
        let Some(spec) = spec else {
            return Err((start + at, "expected a strftime field after `%`".into()));
        };
        if let Some(seconds) = spec_seconds(spec) {
            *slice = Some(slice.map_or(seconds, |s| s.min(seconds)));
        }
    }
    let items = StrftimeItems::new(&text)
        .parse_to_owned()
        .map_err(|e| (start, format!("invalid strftime format: {e}")))?;
    if items.iter().any(|item| matches!(item, Item::Error)) {
        return Err((start, "invalid strftime format".into()));
    }
    parts.push(Part::Time(items));
    Ok(())
}

/// How long the value of one strftime field stays the same, roughly:
/// the time slice it makes. `None` for `%%` and time-zone fields.
fn spec_seconds(spec: char) -> Option<i64> {
    const DAY: i64 = 86_400;
    Some(match spec {
        'S' | 's' | 'T' | 'X' | 'r' | 'c' | '+' | 'f' => 1,
        'M' | 'R' => 60,
        'H' | 'I' | 'k' | 'l' | 'p' | 'P' => 3_600,
        // Weeks, months and years close a day after their last event.
        'd' | 'e' | 'j' | 'a' | 'A' | 'u' | 'w' | 'D' | 'F' | 'x' | 'U' | 'W' | 'V' | 'G' | 'g'
        | 'm' | 'b' | 'B' | 'h' | 'Y' | 'y' | 'C' => DAY,
        _ => return None,
    })
}

/// Parses the inside of `${ ... }` from `start` (just after `${`); returns
/// the operands and the offset after the closing `}`.
fn parse_hole(text: &str, start: usize) -> Result<(Vec<Operand>, usize), CompileError> {
    let mut operands = Vec::new();
    let mut i = skip_spaces(text, start);
    loop {
        let (operand, end) = parse_operand(text, i)?;
        let is_literal = matches!(operand, Operand::Literal(_));
        operands.push(operand);
        i = skip_spaces(text, end);
        if text[i..].starts_with('}') {
            return Ok((operands, i + 1));
        }
        if is_literal {
            return Err((i, "expected `}` after the default value".into()));
        }
        if !text[i..].starts_with("??") {
            return Err((i, "expected `??` or `}`".into()));
        }
        i = skip_spaces(text, i + 2);
    }
}

fn skip_spaces(text: &str, mut i: usize) -> usize {
    while text[i..].starts_with([' ', '\t']) {
        i += 1;
    }
    i
}

fn parse_operand(text: &str, start: usize) -> Result<(Operand, usize), CompileError> {
    let rest = &text[start..];
    if let Some(quote) = rest.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        let mut value = String::new();
        let mut chars = rest.char_indices().skip(1);
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                c if c == quote => return Ok((Operand::Literal(value), start + at + 1)),
                c => value.push(c),
            }
        }
        return Err((start, format!("expected a closing `{quote}`")));
    }
    // A field path runs until a space, `?` or `}` outside quotes.
    let mut end = start;
    let mut quoted = false;
    for (at, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' | '?' | '}' if !quoted => break,
            _ => {}
        }
        end = start + at + c.len_utf8();
    }
    let path_text = &text[start..end];
    if path_text.is_empty() {
        return Err((
            start,
            "expected a field path, `tag` or `tag_parts[N]`".into(),
        ));
    }
    if path_text == "tag" {
        return Ok((Operand::Tag, end));
    }
    if let Some(index) = path_text
        .strip_prefix("tag_parts[")
        .and_then(|r| r.strip_suffix(']'))
    {
        let index = index
            .parse()
            .map_err(|_| (start + 10, "expected an index in `tag_parts[N]`".to_owned()))?;
        return Ok((Operand::TagPart(index), end));
    }
    let path = FieldPath::parse(path_text).map_err(|e| (start + e.offset, e.message.to_owned()))?;
    Ok((Operand::Field(path), end))
}

fn evaluate<'e>(operand: &'e Operand, event: &'e Event) -> Option<std::borrow::Cow<'e, str>> {
    use std::borrow::Cow;
    match operand {
        Operand::Tag => Some(Cow::Borrowed(event.tag.as_str())),
        Operand::TagPart(n) => event.tag.parts().nth(*n).map(Cow::Borrowed),
        Operand::Literal(text) => Some(Cow::Borrowed(text)),
        Operand::Field(path) => match event.record.get(path)?.into_owned() {
            Value::Null => None,
            Value::String(s) => Some(Cow::Owned(s)),
            other => Some(Cow::Owned(other.to_string())),
        },
    }
}

/// Appends a hole's value so that it stays inside one path component.
fn push_sanitized(out: &mut String, value: &str) {
    let start = out.len();
    let mut leading = true;
    for c in value.chars() {
        if out.len() - start + c.len_utf8() > MAX_HOLE_BYTES {
            break;
        }
        let unsafe_char = matches!(c, '/' | '\\' | '\0') || c.is_control();
        if unsafe_char || (leading && c == '.') {
            out.push('_');
        } else {
            out.push(c);
        }
        leading &= c == '.';
    }
    if out.len() == start {
        out.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ack, Record, Tag};
    use chrono::{TimeZone, Utc};

    fn event(tag: &str, json: &str) -> Event {
        Event::new(
            Tag::new(tag),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 5, 9).unwrap(),
            Record::from_json(json.to_owned().into()).unwrap(),
            Ack::none(),
        )
    }

    fn render(template: &str, e: &Event) -> String {
        let t = PathTemplate::compile(template).unwrap();
        let mut out = String::new();
        t.render(e, &mut out);
        out
    }

    #[test]
    fn renders_tag_parts_fields_defaults_and_time() {
        let e = event(
            "audit.kube-system",
            r#"{"objectRef":{"namespace":"ns1"},"n":7}"#,
        );
        assert_eq!(
            render("/var/log/a-${tag}.%Y%m%d%H.log.gz", &e),
            "/var/log/a-audit.kube-system.2026112210.log.gz"
        );
        assert_eq!(render("/l/${tag_parts[1]}/x", &e), "/l/kube-system/x");
        assert_eq!(
            render("/l/${ objectRef.namespace ?? \"none\" }", &e),
            "/l/ns1"
        );
        assert_eq!(render("/l/${objectRef.name ?? n ?? 'none'}", &e), "/l/7");
        assert_eq!(render("/l/${missing ?? \"no}ne\"}", &e), "/l/no}ne");
        assert_eq!(render("/l/${tag_parts[5]}", &e), "/l/_");
        assert_eq!(render("/l/$${tag}%%-%M%S", &e), "/l/${tag}%-0509");
    }

    #[test]
    fn hostile_values_stay_in_one_component() {
        let hostile = [
            ("../../etc/passwd", "___.._etc_passwd"),
            ("/etc/shadow", "_etc_shadow"),
            ("..", "__"),
            (".", "_"),
            ("", "_"),
            ("a\u{0}b", "a_b"),
            ("a\\..\\b", "a_.._b"),
            ("line\nbreak", "line_break"),
            (".hidden", "_hidden"),
        ];
        for (value, expected) in hostile {
            let json = serde_json::json!({ "ns": value }).to_string();
            let e = event("t", &json);
            assert_eq!(
                render("/base/${ns}.log", &e),
                format!("/base/{expected}.log"),
                "{value:?}"
            );
        }
        let e = event("..", "{}");
        assert_eq!(render("/base/${tag}", &e), "/base/__");
        let e = event("../..", "{}");
        assert_eq!(render("/base/${tag_parts[1]}", &e), "/base/_");
        let long = "é".repeat(300);
        let e = event("t", &serde_json::json!({ "ns": long }).to_string());
        let out = render("/b/${ns}", &e);
        assert!(out.len() <= 3 + MAX_HOLE_BYTES, "{}", out.len());
    }

    #[test]
    fn rendered_paths_must_stay_in_the_base_dir() {
        assert!(stays_within("/var/log/", "/var/log/a/b.gz"));
        assert!(stays_within("", "a/b.gz"));
        for bad in [
            "/var/lo",
            "/var/log/",
            "/var/log//x",
            "/var/log/../x",
            "/var/log/a/./b",
            "/etc/x",
        ] {
            assert!(!stays_within("/var/log/", bad), "{bad}");
        }
        assert!(!stays_within(
            "/var/log/",
            &format!("/var/log/{}", "x".repeat(256))
        ));
        assert!(!stays_within("", "/abs"));
    }

    #[test]
    fn static_prefix_and_slices() {
        let t = PathTemplate::compile("/var/log/audit-${tag}.%Y%m%d%H.gz").unwrap();
        assert_eq!(t.static_prefix(), "/var/log/audit-");
        assert_eq!(t.slice_seconds(), Some(3600));
        assert!(!t.is_static());
        let t = PathTemplate::compile("/var/log/%Y/%m/%d/audit.log").unwrap();
        assert_eq!(t.static_prefix(), "/var/log/");
        assert_eq!(t.slice_seconds(), Some(86_400));
        let t = PathTemplate::compile("/var/log/audit.log").unwrap();
        assert!(t.is_static());
        assert_eq!(t.static_prefix(), "/var/log/audit.log");
        assert_eq!(t.slice_seconds(), None);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let cases = [
            ("/a/${tag", 8),
            ("/a/${}", 5),
            ("/a/${x ?? }", 10),
            ("/a/${x ?? \"y\" ?? z}", 14),
            ("/a/${x..y}", 7),
            ("/a/${x ?? \"open}", 10),
            ("/a/%", 3),
            ("/a/${tag_parts[x]}", 15),
            ("", 0),
        ];
        for (text, offset) in cases {
            let err = PathTemplate::compile(text).unwrap_err();
            assert_eq!(err.0, offset, "{text}: {}", err.1);
        }
    }
}
