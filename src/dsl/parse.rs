//! The expression parser (nom 8). One function per grammar production, each
//! documented by its production. Once a prefix commits (`(`, `[`, an
//! operator, a function name) the rest is parsed under `cut`, so an error
//! names what was expected right there instead of backtracking to a vaguer
//! one. Positions are byte offsets: the input is always a suffix of the
//! text being compiled.

use std::cell::Cell;

use nom::branch::alt;
use nom::bytes::complete::{take_while, take_while1};
use nom::character::complete::{char, digit1, multispace0, satisfy};
use nom::combinator::{cut, recognize};
use nom::error::context;
use nom::{IResult, Parser};
use serde_json::Value;

use super::ast::{BinaryOp, Node, Pattern, is_key_char};
use super::error::{ParseError, SyntaxError};
use super::functions::{FUNCTIONS, Function};
use super::literal::{compile_pattern, number, regex_literal, string_literal};
use crate::event::{FieldPath, PathSegment};

pub(crate) type Res<'a, T> = IResult<&'a str, T, SyntaxError<'a>>;

/// Operators one expression may hold. It bounds the tree's depth, so
/// evaluating, printing and dropping cannot overflow the stack.
pub const MAX_COMPLEXITY: u32 = 256;

/// How deep brackets, calls and `!` may nest. Parsing recurses per level,
/// so this keeps the parser itself off the end of the stack.
pub const MAX_NESTING: u32 = 32;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(MAX_COMPLEXITY) };
    static NESTING: Cell<u32> = const { Cell::new(0) };
}

fn spend(at: &str) -> Result<(), nom::Err<SyntaxError<'_>>> {
    BUDGET.with(|budget| match budget.get() {
        0 => Err(nom::Err::Failure(
            SyntaxError::new(at, format!("at most {MAX_COMPLEXITY} operators"))
                .with_help("split the work over several filters"),
        )),
        left => {
            budget.set(left - 1);
            Ok(())
        }
    })
}

/// One level of nesting, given back when dropped.
struct Nested;

impl Nested {
    fn enter(at: &str) -> Result<Self, nom::Err<SyntaxError<'_>>> {
        NESTING.with(|depth| {
            if depth.get() >= MAX_NESTING {
                return Err(nom::Err::Failure(
                    SyntaxError::new(at, format!("at most {MAX_NESTING} levels of nesting"))
                        .with_help("brackets, calls and `!` count as levels"),
                ));
            }
            depth.set(depth.get() + 1);
            Ok(Nested)
        })
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        NESTING.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

pub(crate) fn fail<T>(error: SyntaxError<'_>) -> Res<'_, T> {
    Err(nom::Err::Failure(error))
}

/// A recoverable miss with no expectation: the caller's context names it.
fn miss<T>(at: &str) -> Res<'_, T> {
    Err(nom::Err::Error(SyntaxError {
        input: at,
        expected: None,
        found: None,
        len: None,
        help: None,
    }))
}

/// Compiles a whole text as one expression.
pub(crate) fn compile_expression(text: &str) -> Result<Node, ParseError> {
    let result = expression(text, "an expression").and_then(|(rest, node)| {
        if rest.is_empty() {
            Ok(node)
        } else {
            Err(nom::Err::Failure(trailing(
                rest,
                "an operator or the end of the expression",
            )))
        }
    });
    result.map_err(|e| into_error(e, text))
}

pub(crate) fn into_error(error: nom::Err<SyntaxError<'_>>, text: &str) -> ParseError {
    match error {
        nom::Err::Error(e) | nom::Err::Failure(e) => e.into_parse_error(text),
        // Complete parsers never ask for more input.
        nom::Err::Incomplete(_) => SyntaxError::new("", "more input").into_parse_error(text),
    }
}

/// Parses one expression at the start of `input`, and the whitespace after
/// it. `what` names the expression when there is none at all.
pub(crate) fn expression<'a>(input: &'a str, what: &'static str) -> Res<'a, Node> {
    BUDGET.with(|budget| budget.set(MAX_COMPLEXITY));
    NESTING.with(|depth| depth.set(0));
    let (rest, node) = context(what, expr).parse(input)?;
    let (rest, _) = multispace0(rest)?;
    Ok((rest, node))
}

/// The error for text left after a complete expression, with a hint for
/// the usual slips (`=` for `==`, `&` for `&&`).
pub(crate) fn trailing<'a>(rest: &'a str, expected: &'static str) -> SyntaxError<'a> {
    let error = SyntaxError::new(rest, expected);
    let help = [
        ("=", "use `==` to compare"),
        ("&", "use `&&`"),
        ("|", "use `||`"),
    ]
    .into_iter()
    .find(|(slip, _)| rest.starts_with(slip));
    match help {
        Some((_, help)) => error.with_help(help),
        None => error,
    }
}

fn ws(i: &str) -> Res<'_, &str> {
    multispace0(i)
}

/// `expr := or ( "??" or )*`
fn expr(i: &str) -> Res<'_, Node> {
    chain(i, BinaryOp::Coalesce, or_expr)
}

/// `or := and ( "||" and )*`
fn or_expr(i: &str) -> Res<'_, Node> {
    chain(i, BinaryOp::Or, and_expr)
}

/// `and := not ( "&&" not )*`
fn and_expr(i: &str) -> Res<'_, Node> {
    chain(i, BinaryOp::And, not_expr)
}

/// A left-associative chain of one operator.
fn chain<'a>(i: &'a str, op: BinaryOp, next: fn(&'a str) -> Res<'a, Node>) -> Res<'a, Node> {
    let (mut i, mut left) = next(i)?;
    loop {
        let (after, _) = ws(i)?;
        let Some(rest) = after.strip_prefix(op.symbol()) else {
            return Ok((i, left));
        };
        spend(after)?;
        let (rest, right) = cut(context(after_operator(op), next)).parse(rest)?;
        left = Node::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        };
        i = rest;
    }
}

fn after_operator(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Coalesce => "an expression after `??`",
        BinaryOp::Or => "an expression after `||`",
        BinaryOp::And => "an expression after `&&`",
        BinaryOp::Eq => "a value after `==`",
        BinaryOp::Ne => "a value after `!=`",
        BinaryOp::Lt => "a value after `<`",
        BinaryOp::Le => "a value after `<=`",
        BinaryOp::Gt => "a value after `>`",
        BinaryOp::Ge => "a value after `>=`",
        BinaryOp::In => "a value after `in`",
    }
}

/// `not := "!" not | cmp`
fn not_expr(i: &str) -> Res<'_, Node> {
    let (i, _) = ws(i)?;
    match i.strip_prefix('!') {
        Some(rest) => {
            spend(i)?;
            let _nested = Nested::enter(i)?;
            let (rest, inner) = cut(context("an expression after `!`", not_expr)).parse(rest)?;
            Ok((rest, Node::Not(Box::new(inner))))
        }
        None => cmp(i),
    }
}

enum CmpOp {
    Binary(BinaryOp),
    Match { negated: bool },
}

fn cmp_operator(i: &str) -> Option<(&str, CmpOp)> {
    const OPS: [(&str, CmpOp); 8] = [
        ("==", CmpOp::Binary(BinaryOp::Eq)),
        ("!=", CmpOp::Binary(BinaryOp::Ne)),
        ("<=", CmpOp::Binary(BinaryOp::Le)),
        (">=", CmpOp::Binary(BinaryOp::Ge)),
        ("=~", CmpOp::Match { negated: false }),
        ("!~", CmpOp::Match { negated: true }),
        ("<", CmpOp::Binary(BinaryOp::Lt)),
        (">", CmpOp::Binary(BinaryOp::Gt)),
    ];
    for (symbol, op) in OPS {
        if let Some(rest) = i.strip_prefix(symbol) {
            return Some((rest, op));
        }
    }
    // `in` is a word: `index` is a field, not `in dex`.
    let rest = i.strip_prefix("in")?;
    (!rest.starts_with(is_key_char)).then_some((rest, CmpOp::Binary(BinaryOp::In)))
}

/// `cmp := value ( ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in") value
///               | ("=~" | "!~") regex )?`
fn cmp(i: &str) -> Res<'_, Node> {
    let (i, left) = value(i)?;
    let (after, _) = ws(i)?;
    let Some((rest, op)) = cmp_operator(after) else {
        return Ok((i, left));
    };
    spend(after)?;
    let (rest, node) = match op {
        CmpOp::Binary(op) => {
            let (rest, right) = cut(context(after_operator(op), value)).parse(rest)?;
            let node = Node::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
            (rest, node)
        }
        CmpOp::Match { negated } => {
            let (rest, pattern) = match_pattern(rest, negated)?;
            let node = Node::Match {
                subject: Box::new(left),
                pattern,
                negated,
            };
            (rest, node)
        }
    };
    let (after, _) = ws(rest)?;
    if cmp_operator(after).is_some() {
        return fail(
            SyntaxError::new(after, "`&&` or `||` between comparisons")
                .with_help("comparisons do not chain; add parentheses"),
        );
    }
    Ok((rest, node))
}

/// The right side of `=~`: a `/regex/`, or a string compiled as one.
fn match_pattern(i: &str, negated: bool) -> Res<'_, Pattern> {
    let (i, _) = ws(i)?;
    if i.starts_with('/') {
        return regex_literal(i);
    }
    if i.starts_with(['"', '\'']) {
        let (rest, source) = string_literal(i)?;
        let pattern = compile_pattern(i, i.len() - rest.len(), &source)?;
        return Ok((rest, pattern));
    }
    let op = if negated { "!~" } else { "=~" };
    fail(
        SyntaxError::new(i, format!("a regex such as `/^kube-/` after `{op}`"))
            .with_help("the pattern must be written in the expression so it is compiled once"),
    )
}

/// `value := literal | path | call | capture | "(" expr ")" | list`
fn value(i: &str) -> Res<'_, Node> {
    let (i, _) = ws(i)?;
    alt((
        paren,
        list,
        string_node,
        number,
        capture,
        word,
        dotted_path,
        misplaced_regex,
    ))
    .parse(i)
}

/// `"(" expr ")"`
fn paren(i: &str) -> Res<'_, Node> {
    let (rest, _) = char('(').parse(i)?;
    let _nested = Nested::enter(i)?;
    let (rest, node) = cut(context("an expression after `(`", expr)).parse(rest)?;
    let (rest, _) = ws(rest)?;
    match rest.strip_prefix(')') {
        Some(rest) => Ok((rest, node)),
        None => fail(trailing(rest, "an operator or `)`")),
    }
}

/// `list := "[" ( expr ( "," expr )* ","? )? "]"`
fn list(i: &str) -> Res<'_, Node> {
    let (rest, _) = char('[').parse(i)?;
    let _nested = Nested::enter(i)?;
    let (rest, items) = comma_separated(
        rest,
        ']',
        [
            "an expression or `]` after `[`",
            "an expression or `]` after `,`",
        ],
        |i, what| cut(context(what, expr)).parse(i),
    )?;
    Ok((rest, Node::List(items)))
}

/// Items up to `close`, for lists and argument lists. There may be none
/// (`[]`, `f()`) and a trailing comma. `what` names the first item and the
/// ones after a comma, for errors.
fn comma_separated<'a>(
    i: &'a str,
    close: char,
    what: [&'static str; 2],
    mut item: impl FnMut(&'a str, &'static str) -> Res<'a, Node>,
) -> Res<'a, Vec<Node>> {
    let mut items = Vec::new();
    let mut i = i;
    let mut expected = what[0];
    loop {
        let (after, _) = ws(i)?;
        if let Some(rest) = after.strip_prefix(close) {
            return Ok((rest, items));
        }
        let (rest, node) = item(after, expected)?;
        items.push(node);
        expected = what[1];
        let (after, _) = ws(rest)?;
        if let Some(rest) = after.strip_prefix(close) {
            return Ok((rest, items));
        }
        let Some(rest) = after.strip_prefix(',') else {
            let expected = if close == ']' {
                "an operator, `,` or `]`"
            } else {
                "an operator, `,` or `)`"
            };
            return fail(trailing(after, expected));
        };
        i = rest;
    }
}

fn string_node(i: &str) -> Res<'_, Node> {
    let (rest, text) = string_literal(i)?;
    Ok((rest, Node::Literal(Value::String(text))))
}

/// `capture := "$" digit`
fn capture(i: &str) -> Res<'_, Node> {
    let (rest, _) = char('$').parse(i)?;
    match rest.chars().next().and_then(|c| c.to_digit(10)) {
        // The digit is ASCII, one byte.
        Some(d) => Ok((&rest[1..], Node::Capture(d as u8))),
        None => fail(SyntaxError::new(
            rest,
            "a capture number `0`..`9` after `$`",
        )),
    }
}

/// A `/regex/` where a value is expected: a clear error, not a vague one.
fn misplaced_regex(i: &str) -> Res<'_, Node> {
    let (_, _) = char('/').parse(i)?;
    fail(
        SyntaxError::new(i, "an expression").with_help(
            "a /regex/ goes after `=~` or `!~`, or as the pattern of `replace` or `split`",
        ),
    )
}

fn identifier(i: &str) -> Res<'_, &str> {
    recognize((
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(is_key_char),
    ))
    .parse(i)
}

/// A word: a literal keyword, a special name, a call, or a field path.
/// `path := ident ( "." key | "[" int "]" )*`
fn word(i: &str) -> Res<'_, Node> {
    let (rest, name) = identifier(i)?;
    if rest.starts_with('(') {
        return call(i, name, rest);
    }
    let special = match name {
        "true" => Node::Literal(Value::Bool(true)),
        "false" => Node::Literal(Value::Bool(false)),
        "null" => Node::Literal(Value::Null),
        "tag" => Node::Tag,
        "time" => Node::Time,
        "tag_parts" if rest.starts_with('[') => {
            let (rest, index) = index(rest)?;
            return no_fields(rest, name, Node::TagPart(index));
        }
        "tag_parts" => Node::TagParts,
        // `in` is an operator; the caller's context names what was wanted.
        "in" => return miss(i),
        _ => {
            let mut segments = vec![PathSegment::Key(name.into())];
            let (rest, ()) = segments_after(rest, &mut segments)?;
            return Ok((rest, Node::Field(FieldPath::new(segments))));
        }
    };
    no_fields(rest, name, special)
}

/// Literals and special names have no fields: `tag.x` is an error that
/// says how to read a record field named `tag`.
fn no_fields<'a>(rest: &'a str, name: &str, node: Node) -> Res<'a, Node> {
    if rest.starts_with(['.', '[']) {
        return fail(SyntaxError::new(rest, "an operator").with_help(format!(
            "`{name}` has no fields; write `.{name}` for a record field named `{name}`"
        )));
    }
    Ok((rest, node))
}

/// `"." key ( "." key | "[" int "]" )*`: a field path that may start with
/// any key, e.g. `.tag` or `."kubernetes.io/name"`.
fn dotted_path(i: &str) -> Res<'_, Node> {
    let (_, _) = char('.').parse(i)?;
    let mut segments = Vec::new();
    let (rest, ()) = segments_after(i, &mut segments)?;
    Ok((rest, Node::Field(FieldPath::new(segments))))
}

/// `( "." key | "[" int "]" )*` where `key := [A-Za-z0-9_-]+ | string`.
fn segments_after<'a>(mut i: &'a str, segments: &mut Vec<PathSegment>) -> Res<'a, ()> {
    loop {
        if let Some(after) = i.strip_prefix('.') {
            let (rest, key) = if after.starts_with(['"', '\'']) {
                string_literal(after)?
            } else {
                match take_while1::<_, _, SyntaxError<'_>>(is_key_char).parse(after) {
                    Ok((rest, key)) => (rest, key.to_owned()),
                    Err(_) => return fail(SyntaxError::new(after, "a field name after `.`")),
                }
            };
            segments.push(PathSegment::Key(key.into()));
            i = rest;
        } else if i.starts_with('[') {
            let (rest, n) = index(i)?;
            segments.push(PathSegment::Index(n));
            i = rest;
        } else {
            return Ok((i, ()));
        }
    }
}

/// `"[" int "]"`
fn index(i: &str) -> Res<'_, usize> {
    let (rest, _) = char('[').parse(i)?;
    let (rest, _) = ws(rest)?;
    let Ok((after, digits)) = digit1::<_, SyntaxError<'_>>(rest) else {
        return fail(SyntaxError::new(rest, "an array index after `[`"));
    };
    let Ok(n) = digits.parse() else {
        return fail(
            SyntaxError::new(rest, "an array index in range")
                .with_found(format!("`{digits}`"), digits.len()),
        );
    };
    let (after, _) = ws(after)?;
    match after.strip_prefix(']') {
        Some(rest) => Ok((rest, n)),
        None => fail(SyntaxError::new(after, "`]` after the array index")),
    }
}

/// `call := ident "(" ( arg ( "," arg )* ","? )? ")"`; a pattern argument
/// of `replace` and `split` may be a `/regex/`.
fn call<'a>(start: &'a str, name: &str, rest: &'a str) -> Res<'a, Node> {
    let Some(function) = Function::from_name(name) else {
        return fail(unknown_function(start, name));
    };
    let _nested = Nested::enter(start)?;
    let mut position = 0;
    let (rest, args) = comma_separated(
        &rest[1..],
        ')',
        [
            "an argument or `)` after `(`",
            "an argument or `)` after `,`",
        ],
        |i, what| {
            let takes_pattern = function.takes_pattern(position);
            position += 1;
            if takes_pattern && i.starts_with('/') {
                let (rest, pattern) = regex_literal(i)?;
                return Ok((rest, Node::Regex(pattern)));
            }
            cut(context(what, expr)).parse(i)
        },
    )?;
    let call_len = start.len() - rest.len();
    let (min, max) = function.arity();
    if !(min..=max).contains(&args.len()) {
        let wanted = match (min, max) {
            (1, 1) => "1 argument".to_owned(),
            (min, max) if min == max => format!("{min} arguments"),
            (min, max) => format!("{min} or {max} arguments"),
        };
        let found = match args.len() {
            1 => "1 argument".to_owned(),
            n => format!("{n} arguments"),
        };
        return fail(
            SyntaxError::new(start, format!("{wanted} for `{name}`")).with_found(found, call_len),
        );
    }
    check_time_format(start, call_len, function, &args)?;
    Ok((rest, Node::Call { function, args }))
}

fn unknown_function<'a>(start: &'a str, name: &str) -> SyntaxError<'a> {
    let closest = FUNCTIONS
        .iter()
        .map(|f| (strsim::levenshtein(name, f.name()), f.name()))
        .min()
        .filter(|(distance, _)| *distance <= 2);
    let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name()).collect();
    let help = match closest {
        Some((_, close)) => format!("did you mean `{close}`?"),
        None => format!("the functions are {}", names.join(", ")),
    };
    SyntaxError::new(start, "a function name")
        .with_found(format!("`{name}`"), name.len())
        .with_help(help)
}

/// A literal `strftime` format is checked now rather than at every event.
fn check_time_format<'a>(
    start: &'a str,
    call_len: usize,
    function: Function,
    args: &[Node],
) -> Result<(), nom::Err<SyntaxError<'a>>> {
    if function != Function::Strftime {
        return Ok(());
    }
    if let Some(Node::Literal(Value::String(format))) = args.last()
        && !super::functions::is_valid_time_format(format)
    {
        return Err(nom::Err::Failure(
            SyntaxError::new(start, "a valid strftime format such as `%Y-%m-%d`")
                .with_found(format!("`{format}`"), call_len),
        ));
    }
    Ok(())
}
