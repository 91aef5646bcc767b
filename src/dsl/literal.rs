//! The lexical literals of the language: strings, numbers and regexes.
//! Each returns the decoded value and fails with an exact position (the
//! offending escape, the unclosed end, the whole bad literal).

use nom::Parser;
use nom::character::complete::{char, digit1, one_of};
use nom::combinator::{opt, recognize};
use serde_json::{Number, Value};

use super::ast::{Node, Pattern};
use super::error::SyntaxError;
use super::parse::{Res, fail};

/// `string := '"' char* '"' | "'" char* "'"` with `\n \r \t \0 \\ \" \' \/
/// \$ \u{HEX}` escapes.
pub(crate) fn string_literal(i: &str) -> Res<'_, String> {
    let (body, quote) = one_of("\"'").parse(i)?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((n, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((&body[n + 1..], out)),
            '\\' => {
                let escape = &body[n..];
                let decoded = match chars.next().map(|(_, e)| e) {
                    Some('n') => Some('\n'),
                    Some('r') => Some('\r'),
                    Some('t') => Some('\t'),
                    Some('0') => Some('\0'),
                    Some(e @ ('\\' | '"' | '\'' | '/' | '$')) => Some(e),
                    Some('u') => {
                        let (code, used) = unicode_escape(&escape[2..]);
                        if code.is_none() {
                            return fail(
                                SyntaxError::new(escape, "a Unicode escape such as `\\u{2f}`")
                                    .with_found(format!("`{}`", &escape[..2 + used]), 2 + used),
                            );
                        }
                        for _ in 0..used {
                            chars.next();
                        }
                        code
                    }
                    _ => None,
                };
                match decoded {
                    Some(c) => out.push(c),
                    None => {
                        let len = escape.chars().take(2).map(char::len_utf8).sum();
                        let (found, _) = super::error::describe_found(escape, 0);
                        let found = if len > 1 {
                            format!("`{}`", &escape[..len])
                        } else {
                            found
                        };
                        return fail(
                            SyntaxError::new(
                                escape,
                                "an escape such as `\\n`, `\\\"` or `\\u{2f}`",
                            )
                            .with_found(found, len),
                        );
                    }
                }
            }
            c => out.push(c),
        }
    }
    let closing = if quote == '"' { "`\"`" } else { "`'`" };
    fail(SyntaxError::new(
        &body[body.len()..],
        format!("{closing} to close the string"),
    ))
}

/// Decodes `{HEX}` after `\u`; returns the char and how many chars it used.
fn unicode_escape(text: &str) -> (Option<char>, usize) {
    let Some(body) = text.strip_prefix('{') else {
        return (None, 0);
    };
    let Some(end) = body.find('}').filter(|&end| end <= 8) else {
        return (None, 0);
    };
    let hex = &body[..end];
    let code = (1..=6)
        .contains(&hex.len())
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
        .and_then(char::from_u32);
    (code, end + 2)
}

/// `number := "-"? digits ( "." digits )? ( ("e" | "E") ("+" | "-")? digits )?`
pub(crate) fn number(i: &str) -> Res<'_, Node> {
    let (_, first) = one_of("-0123456789").parse(i)?;
    if first == '-' && !i[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return fail(SyntaxError::new(&i[1..], "a digit after `-`"));
    }
    let (rest, text) = recognize((
        opt(char('-')),
        digit1,
        opt((char('.'), digit1)),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(i)?;
    // std's float parsing is exact, so printed numbers read back equal.
    let number = if text.contains(['.', 'e', 'E']) {
        text.parse().ok().and_then(Number::from_f64)
    } else if let Ok(n) = text.parse::<i64>() {
        Some(Number::from(n))
    } else if let Ok(n) = text.parse::<u64>() {
        Some(Number::from(n))
    } else {
        text.parse().ok().and_then(Number::from_f64)
    };
    match number {
        Some(n) => Ok((rest, Node::Literal(Value::Number(n)))),
        None => fail(
            SyntaxError::new(i, "a number in range").with_found(format!("`{text}`"), text.len()),
        ),
    }
}

/// `regex := "/" ( "\/" | char )* "/"`, compiled once, here.
pub(crate) fn regex_literal(i: &str) -> Res<'_, Pattern> {
    let (body, _) = char('/').parse(i)?;
    let mut source = String::new();
    let mut chars = body.char_indices();
    while let Some((n, c)) = chars.next() {
        match c {
            '/' => {
                let rest = &body[n + 1..];
                let pattern = compile_pattern(i, i.len() - rest.len(), &source)?;
                return Ok((rest, pattern));
            }
            '\\' => match chars.next() {
                Some((_, '/')) => source.push('/'),
                Some((_, e)) => {
                    source.push('\\');
                    source.push(e);
                }
                None => source.push('\\'),
            },
            c => source.push(c),
        }
    }
    fail(SyntaxError::new(
        &body[body.len()..],
        "`/` to close the regex",
    ))
}

/// Compiles a pattern whose literal starts at `at` and is `len` bytes long.
pub(crate) fn compile_pattern<'a>(
    at: &'a str,
    len: usize,
    source: &str,
) -> Result<Pattern, nom::Err<SyntaxError<'a>>> {
    Pattern::new(source).map_err(|e| {
        nom::Err::Failure(
            SyntaxError::new(at, "a valid regular expression").with_found(regex_message(&e), len),
        )
    })
}

/// The last line of regex's message, which says what is wrong.
pub(crate) fn regex_message(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => {
            format!("a regex larger than the {limit}-byte limit")
        }
        other => {
            let text = other.to_string();
            let last = text.lines().last().unwrap_or_default();
            last.strip_prefix("error: ").unwrap_or(last).to_owned()
        }
    }
}
