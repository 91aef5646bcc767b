//! The parser never panics, and printing any tree then parsing it gives
//! the same tree back.

use proptest::prelude::*;
use serde_json::{Number, Value};

use crate::dsl::{BinaryOp, Expr, FUNCTIONS, Function, Node, Pattern, Template, TemplateKind};
use crate::event::{FieldPath, PathSegment};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-zA-Z0-9_-]{0,6}",
        "[a-z0-9./: \"\\\\é-]{0,8}",
        Just("tag".to_owned()),
        Just("in".to_owned()),
    ]
}

fn path() -> impl Strategy<Value = FieldPath> {
    (
        key(),
        prop::collection::vec(
            prop_oneof![
                key().prop_map(|k| PathSegment::Key(k.into())),
                (0usize..20).prop_map(PathSegment::Index),
            ],
            0..3,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut segments = vec![PathSegment::Key(first.into())];
            segments.extend(rest);
            FieldPath::new(segments)
        })
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just("^kube-"),
        Just("a/b"),
        Just(r"\d+\.\w"),
        Just(r"^system:serviceaccount:([^:]+):(.*)$"),
        Just(r"x\\"),
        Just(""),
    ]
    .prop_map(|source| Pattern::new(source).expect("valid test regex"))
}

fn literal() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        literal().prop_map(Node::Literal),
        path().prop_map(Node::Field),
        Just(Node::Tag),
        Just(Node::TagParts),
        (0usize..5).prop_map(Node::TagPart),
        Just(Node::Time),
        (0u8..10).prop_map(Node::Capture),
    ]
}

const OPS: [BinaryOp; 10] = [
    BinaryOp::Coalesce,
    BinaryOp::Or,
    BinaryOp::And,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::In,
];

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(5, 48, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Node::List),
            inner.clone().prop_map(|n| Node::Not(Box::new(n))),
            (inner.clone(), pattern(), any::<bool>()).prop_map(|(subject, pattern, negated)| {
                Node::Match {
                    subject: Box::new(subject),
                    pattern,
                    negated,
                }
            }),
            (prop::sample::select(&OPS[..]), inner.clone(), inner.clone()).prop_map(
                |(op, left, right)| Node::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                }
            ),
            (
                prop::sample::select(&FUNCTIONS[..]),
                prop::collection::vec(inner, 3),
                pattern()
            )
                .prop_map(|(function, mut args, pattern)| call(function, &mut args, pattern)),
        ]
    })
}

/// A call with a valid argument count; a pattern where one may go.
fn call(function: Function, args: &mut Vec<Node>, pattern: Pattern) -> Node {
    let (_, max) = function.arity();
    args.truncate(max);
    if function.takes_pattern(1) {
        args[1] = Node::Regex(pattern);
    }
    // A literal time format is checked at compile time; keep it valid.
    if let (Function::Strftime, Some(last @ Node::Literal(Value::String(_)))) =
        (function, args.last_mut())
    {
        *last = Node::Literal(Value::from("%Y-%m-%d"));
    }
    Node::Call {
        function,
        args: std::mem::take(args),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics(text in "\\PC{0,64}") {
        let _ = Expr::compile(&text);
        let _ = Template::compile(&text, TemplateKind::Path);
    }

    #[test]
    fn parser_never_panics_on_near_misses(
        parts in prop::collection::vec(prop_oneof![
            Just("a"), Just(".b"), Just("[0]"), Just("\"s\""), Just("'"), Just("\\"), Just("/"),
            Just("("), Just(")"), Just("["), Just("]"), Just("${"), Just("}"), Just("$1"), Just("%Y"),
            Just("%"), Just("=="), Just("=~"), Just("!"), Just("??"), Just("&&"), Just(" in "),
            Just("lower("), Just(","), Just("-"), Just("1e5"), Just(" "), Just("é"), Just("\\u{"),
        ], 0..24)
    ) {
        let text: String = parts.concat();
        if let Err(e) = Expr::compile(&text) {
            prop_assert!(text.get(e.offset..e.offset + e.len).is_some());
        }
        if let Err(e) = Template::compile(&text, TemplateKind::Path) {
            prop_assert!(text.get(e.offset..e.offset + e.len).is_some());
        }
    }

    #[test]
    fn printing_then_parsing_gives_the_same_tree(node in tree()) {
        let text = node.to_string();
        let parsed = Expr::compile(&text);
        prop_assert!(parsed.is_ok(), "`{}` failed: {:?}", text, parsed);
        let parsed = parsed.expect("checked above");
        prop_assert_eq!(parsed.root(), &node, "via `{}`", text);
    }

    #[test]
    fn templates_round_trip(
        pieces in prop::collection::vec(prop_oneof![
            "[a-z./$%{}-]{1,5}".prop_map(Piece::Text),
            tree().prop_map(Piece::Hole),
            (0u8..10).prop_map(Piece::Capture),
        ], 0..5)
    ) {
        for kind in [TemplateKind::Plain, TemplateKind::Path] {
            let mut text = String::new();
            for piece in &pieces {
                match piece {
                    Piece::Text(t) => {
                        for c in t.chars() {
                            match c {
                                '$' => text.push_str("$$"),
                                '%' if kind == TemplateKind::Path => text.push_str("%%"),
                                c => text.push(c),
                            }
                        }
                    }
                    Piece::Hole(node) => text.push_str(&format!("${{{node}}}")),
                    Piece::Capture(n) => text.push_str(&format!("${n}")),
                }
            }
            let template = Template::compile(&text, kind);
            prop_assert!(template.is_ok(), "`{}` failed: {:?}", text, template);
            let template = template.expect("checked above");
            let again = Template::compile(&template.to_string(), kind);
            prop_assert_eq!(again.as_ref().ok(), Some(&template), "via `{}`", template);
        }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Hole(Node),
    Capture(u8),
}
