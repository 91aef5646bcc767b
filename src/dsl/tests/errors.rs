//! Every broken input here must fail at an exact byte offset and length,
//! with an exact message: the config layer turns the offset into a file
//! line and column, so an off-by-one here is a wrong caret for users.

use crate::dsl::{Expr, ParseError, Template, TemplateKind};

/// (input, offset, len, message)
const EXPRESSIONS: &[(&str, usize, usize, &str)] = &[
    ("", 0, 0, "expected an expression, found end of input"),
    ("   ", 3, 0, "expected an expression, found end of input"),
    (
        "a ??",
        4,
        0,
        "expected an expression after `??`, found end of input",
    ),
    (
        "a ?? }",
        5,
        1,
        "expected an expression after `??`, found `}`",
    ),
    (
        "a &&",
        4,
        0,
        "expected an expression after `&&`, found end of input",
    ),
    (
        "a || )",
        5,
        1,
        "expected an expression after `||`, found `)`",
    ),
    (
        "!",
        1,
        0,
        "expected an expression after `!`, found end of input",
    ),
    (
        "(",
        1,
        0,
        "expected an expression after `(`, found end of input",
    ),
    (
        "(a",
        2,
        0,
        "expected an operator or `)`, found end of input",
    ),
    ("!(a b)", 4, 1, "expected an operator or `)`, found `b`"),
    (")", 0, 1, "expected an expression, found `)`"),
    ("@", 0, 1, "expected an expression, found `@`"),
    (
        "a b",
        2,
        1,
        "expected an operator or the end of the expression, found `b`",
    ),
    (
        "a = b",
        2,
        1,
        "expected an operator or the end of the expression, found `=`",
    ),
    (
        "a & b",
        2,
        1,
        "expected an operator or the end of the expression, found `&`",
    ),
    (
        "a == b == c",
        7,
        2,
        "expected `&&` or `||` between comparisons, found `==`",
    ),
    (
        "a < b in c",
        6,
        2,
        "expected `&&` or `||` between comparisons, found `in`",
    ),
    (
        "a == ",
        5,
        0,
        "expected a value after `==`, found end of input",
    ),
    (
        "a <",
        3,
        0,
        "expected a value after `<`, found end of input",
    ),
    (
        "a in",
        4,
        0,
        "expected a value after `in`, found end of input",
    ),
    ("x in in", 5, 2, "expected a value after `in`, found `in`"),
    ("a == !b", 5, 1, "expected a value after `==`, found `!`"),
    (
        "a.",
        2,
        0,
        "expected a field name after `.`, found end of input",
    ),
    ("a..b", 2, 1, "expected a field name after `.`, found `.`"),
    (
        ".",
        1,
        0,
        "expected a field name after `.`, found end of input",
    ),
    (
        "a[",
        2,
        0,
        "expected an array index after `[`, found end of input",
    ),
    ("a[x]", 2, 1, "expected an array index after `[`, found `x`"),
    (
        "a[-1]",
        2,
        1,
        "expected an array index after `[`, found `-`",
    ),
    (
        "a[1",
        3,
        0,
        "expected `]` after the array index, found end of input",
    ),
    (
        "a[99999999999999999999999]",
        2,
        23,
        "expected an array index in range, found `99999999999999999999999`",
    ),
    ("tag.x", 3, 1, "expected an operator, found `.`"),
    ("tag_parts[0].x", 12, 1, "expected an operator, found `.`"),
    ("null[0]", 4, 1, "expected an operator, found `[`"),
    (
        r#""abc"#,
        4,
        0,
        "expected `\"` to close the string, found end of input",
    ),
    (
        "'abc",
        4,
        0,
        "expected `'` to close the string, found end of input",
    ),
    (
        r#"a == "x\qy""#,
        7,
        2,
        r#"expected an escape such as `\n`, `\"` or `\u{2f}`, found `\q`"#,
    ),
    (
        r#""\u{110000}""#,
        1,
        10,
        r"expected a Unicode escape such as `\u{2f}`, found `\u{110000}`",
    ),
    ("-", 1, 0, "expected a digit after `-`, found end of input"),
    ("a > -x", 5, 1, "expected a digit after `-`, found `x`"),
    ("1e999", 0, 5, "expected a number in range, found `1e999`"),
    (
        "$",
        1,
        0,
        "expected a capture number `0`..`9` after `$`, found end of input",
    ),
    (
        "$x",
        1,
        1,
        "expected a capture number `0`..`9` after `$`, found `x`",
    ),
    (
        "[1, 2",
        5,
        0,
        "expected an operator, `,` or `]`, found end of input",
    ),
    ("[1 2]", 3, 1, "expected an operator, `,` or `]`, found `2`"),
    (
        "[,]",
        1,
        1,
        "expected an expression or `]` after `[`, found `,`",
    ),
    (
        "[1,,]",
        3,
        1,
        "expected an expression or `]` after `,`, found `,`",
    ),
    (
        "a =~ b",
        5,
        1,
        "expected a regex such as `/^kube-/` after `=~`, found `b`",
    ),
    (
        "a !~ 3",
        5,
        1,
        "expected a regex such as `/^kube-/` after `!~`, found `3`",
    ),
    (
        "a =~ /abc",
        9,
        0,
        "expected `/` to close the regex, found end of input",
    ),
    (
        "a =~ /(/",
        5,
        3,
        "expected a valid regular expression, found unclosed group",
    ),
    (
        r#"a =~ "[""#,
        5,
        3,
        "expected a valid regular expression, found unclosed character class",
    ),
    ("/abc/", 0, 1, "expected an expression, found `/`"),
    (
        "lower(",
        6,
        0,
        "expected an argument or `)` after `(`, found end of input",
    ),
    (
        "lower(a",
        7,
        0,
        "expected an operator, `,` or `)`, found end of input",
    ),
    (
        "lower(a,",
        8,
        0,
        "expected an argument or `)` after `,`, found end of input",
    ),
    (
        "lower(a, b)",
        0,
        11,
        "expected 1 argument for `lower`, found 2 arguments",
    ),
    (
        "replace(a, /x/)",
        0,
        15,
        "expected 3 arguments for `replace`, found 2 arguments",
    ),
    (
        "strftime()",
        0,
        10,
        "expected 1 or 2 arguments for `strftime`, found 0 arguments",
    ),
    ("foo(a)", 0, 3, "expected a function name, found `foo`"),
    (
        "x == lowr(a)",
        5,
        4,
        "expected a function name, found `lowr`",
    ),
    (
        "split(a, /[/)",
        9,
        3,
        "expected a valid regular expression, found unclosed character class",
    ),
    ("lower(/x/)", 6, 1, "expected an expression, found `/`"),
    (
        r#"strftime("%Q")"#,
        0,
        14,
        "expected a valid strftime format such as `%Y-%m-%d`, found `%Q`",
    ),
];

/// (template, kind, offset, len, message)
const TEMPLATES: &[(&str, TemplateKind, usize, usize, &str)] = &[
    (
        "audit.${objectRef.namespace ?? }",
        TemplateKind::Plain,
        31,
        1,
        "expected an expression after `??`, found `}`",
    ),
    (
        "a${",
        TemplateKind::Plain,
        3,
        0,
        "expected an expression after `${`, found end of input",
    ),
    (
        "a${}",
        TemplateKind::Plain,
        3,
        1,
        "expected an expression after `${`, found `}`",
    ),
    (
        "a${b",
        TemplateKind::Plain,
        4,
        0,
        "expected an operator or `}`, found end of input",
    ),
    (
        "${a b}",
        TemplateKind::Plain,
        4,
        1,
        "expected an operator or `}`, found `b`",
    ),
    (
        "é${a.}",
        TemplateKind::Plain,
        6,
        1,
        "expected a field name after `.`, found `}`",
    ),
    (
        "a$x",
        TemplateKind::Plain,
        2,
        1,
        "expected `{`, `$` or a digit after `$`, found `x`",
    ),
    (
        "a$",
        TemplateKind::Plain,
        2,
        0,
        "expected `{`, `$` or a digit after `$`, found end of input",
    ),
    (
        "/var/log/%Q.gz",
        TemplateKind::Path,
        9,
        2,
        "expected a strftime field such as `%Y` or `%d`, found `%Q`",
    ),
    (
        "/var/log/x%",
        TemplateKind::Path,
        10,
        1,
        "expected a strftime field such as `%Y` or `%d`, found `%`",
    ),
];

fn check(input: &str, got: Result<(), ParseError>, offset: usize, len: usize, message: &str) {
    let error = match got {
        Ok(()) => panic!("`{input}` should not compile"),
        Err(error) => error,
    };
    assert_eq!(
        (error.offset, error.len, error.to_string().as_str()),
        (offset, len, message),
        "input `{input}`"
    );
    // The span is a valid slice of the input, so a renderer can show it.
    assert!(input.get(error.offset..error.offset + error.len).is_some());
}

#[test]
fn broken_expressions_report_offset_and_expectation() {
    assert!(EXPRESSIONS.len() >= 30);
    for &(input, offset, len, message) in EXPRESSIONS {
        check(input, Expr::compile(input).map(drop), offset, len, message);
    }
}

#[test]
fn broken_templates_report_offset_and_expectation() {
    for &(input, kind, offset, len, message) in TEMPLATES {
        check(
            input,
            Template::compile(input, kind).map(drop),
            offset,
            len,
            message,
        );
    }
}

#[test]
fn common_slips_come_with_help() {
    let help = |text: &str| Expr::compile(text).err().and_then(|e| e.help);
    assert_eq!(help("a = b").as_deref(), Some("use `==` to compare"));
    assert_eq!(help("a | b").as_deref(), Some("use `||`"));
    assert_eq!(help("lowr(a)").as_deref(), Some("did you mean `lower`?"));
    assert_eq!(
        help("tag.x").as_deref(),
        Some("`tag` has no fields; write `.tag` for a record field named `tag`")
    );
    assert!(help("zzz(a)").is_some_and(|h| h.contains("lower, upper, len")));
    assert!(help("a == b == c").is_some_and(|h| h.contains("parentheses")));
}

#[test]
fn nesting_and_size_are_bounded() {
    let deep = "(".repeat(100);
    let error = Expr::compile(&deep).unwrap_err();
    assert_eq!(error.offset, 32);
    assert_eq!(
        error.to_string(),
        "expected at most 32 levels of nesting, found `(`"
    );
    let nested = format!("{}a{}", "(".repeat(32), ")".repeat(32));
    assert!(Expr::compile(&nested).is_ok());
    let chain = vec!["a"; 258].join(" || ");
    let error = Expr::compile(&chain).unwrap_err();
    assert_eq!(
        error.to_string(),
        "expected at most 256 operators, found `||`"
    );
    assert_eq!(error.offset, 256 * 5 + 2);
}

#[test]
fn a_standalone_pattern_reports_regex_errors() {
    let error = crate::dsl::Pattern::compile("^(a").unwrap_err();
    assert_eq!((error.offset, error.len), (0, 3));
    assert_eq!(
        error.to_string(),
        "expected a valid regular expression, found unclosed group"
    );
    let huge = crate::dsl::Pattern::compile("\\w{1000}\\w{1000}").unwrap_err();
    assert!(huge.found.contains("limit"), "{}", huge.found);
}
