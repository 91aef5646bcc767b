use serde_json::{Value, json};

use crate::dsl::{BinaryOp, Expr, Function, Node};
use crate::event::FieldPath;

fn parse(text: &str) -> Node {
    match Expr::compile(text) {
        Ok(expr) => expr.root().clone(),
        Err(e) => panic!("`{text}` failed at {}: {e}", e.offset),
    }
}

fn field(path: &str) -> Node {
    Node::Field(FieldPath::parse(path).expect("a valid path"))
}

fn lit(value: Value) -> Node {
    Node::Literal(value)
}

fn bin(op: BinaryOp, left: Node, right: Node) -> Node {
    Node::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

/// Canonical form after one round trip.
fn canonical(text: &str) -> String {
    parse(text).to_string()
}

#[test]
fn literals() {
    assert_eq!(parse("null"), lit(Value::Null));
    assert_eq!(parse("true"), lit(json!(true)));
    assert_eq!(parse(" false "), lit(json!(false)));
    assert_eq!(parse("42"), lit(json!(42)));
    assert_eq!(parse("-7"), lit(json!(-7)));
    assert_eq!(parse("1.5e3"), lit(json!(1500.0)));
    assert_eq!(parse("0.25"), lit(json!(0.25)));
    assert_eq!(parse(r#""a\"b\n""#), lit(json!("a\"b\n")));
    assert_eq!(parse(r"'it\'s'"), lit(json!("it's")));
    assert_eq!(parse(r#""\u{1F600}\t\$\/""#), lit(json!("😀\t$/")));
    assert_eq!(parse(r#""""#), lit(json!("")));
}

#[test]
fn paths() {
    assert_eq!(parse("objectRef.namespace"), field("objectRef.namespace"));
    assert_eq!(parse("user.groups[0]"), field("user.groups[0]"));
    assert_eq!(
        parse(r#"annotations."authorization.k8s.io/decision""#),
        field(r#"annotations."authorization.k8s.io/decision""#)
    );
    assert_eq!(parse("items[ 2 ].x-y_z"), field("items[2].x-y_z"));
    assert_eq!(parse("a.0"), field("a.0"));
    // A leading `.` reaches fields whose names are special words.
    assert_eq!(parse(".tag"), field("tag"));
    assert_eq!(parse(r#"."weird key".in"#), field(r#""weird key".in"#));
    // `index` is a field, not `in dex`.
    assert_eq!(parse("index"), field("index"));
}

#[test]
fn special_names() {
    assert_eq!(parse("tag"), Node::Tag);
    assert_eq!(parse("time"), Node::Time);
    assert_eq!(parse("tag_parts"), Node::TagParts);
    assert_eq!(parse("tag_parts[1]"), Node::TagPart(1));
    assert_eq!(parse("$1"), Node::Capture(1));
    assert_eq!(parse("$0"), Node::Capture(0));
}

#[test]
fn lists() {
    assert_eq!(parse("[]"), Node::List(vec![]));
    assert_eq!(
        parse(r#"["get", 1, [null]]"#),
        Node::List(vec![
            lit(json!("get")),
            lit(json!(1)),
            Node::List(vec![lit(Value::Null)])
        ])
    );
    assert_eq!(parse("[1, 2,]"), parse("[1,2]"));
}

#[test]
fn comparisons() {
    for (text, op) in [
        ("a == 1", BinaryOp::Eq),
        ("a != 1", BinaryOp::Ne),
        ("a < 1", BinaryOp::Lt),
        ("a <= 1", BinaryOp::Le),
        ("a > 1", BinaryOp::Gt),
        ("a >= 1", BinaryOp::Ge),
        ("a in 1", BinaryOp::In),
    ] {
        assert_eq!(parse(text), bin(op, field("a"), lit(json!(1))), "{text}");
    }
    assert_eq!(parse("a==1"), parse("a == 1"));
}

#[test]
fn matches() {
    let Node::Match {
        subject,
        pattern,
        negated,
    } = parse(r"user.username =~ /^system:serviceaccount:([^:]+)\/x/")
    else {
        panic!("not a match");
    };
    assert_eq!(*subject, field("user.username"));
    assert_eq!(pattern.as_str(), "^system:serviceaccount:([^:]+)/x");
    assert!(!negated);
    // A string pattern is compiled the same way; `!~` negates.
    let Node::Match {
        pattern, negated, ..
    } = parse(r#"verb !~ "^(get|list)$""#)
    else {
        panic!("not a match");
    };
    assert_eq!(pattern.as_str(), "^(get|list)$");
    assert!(negated);
}

#[test]
fn precedence_and_associativity() {
    // `??` is loosest, then `||`, `&&`, `!`, comparisons.
    assert_eq!(
        parse("a ?? b || c && !d == e"),
        bin(
            BinaryOp::Coalesce,
            field("a"),
            bin(
                BinaryOp::Or,
                field("b"),
                bin(
                    BinaryOp::And,
                    field("c"),
                    Node::Not(Box::new(bin(BinaryOp::Eq, field("d"), field("e"))))
                )
            )
        )
    );
    assert_eq!(
        parse("a || b || c"),
        bin(
            BinaryOp::Or,
            bin(BinaryOp::Or, field("a"), field("b")),
            field("c")
        )
    );
    assert_eq!(
        parse("a || (b || c)"),
        bin(
            BinaryOp::Or,
            field("a"),
            bin(BinaryOp::Or, field("b"), field("c"))
        )
    );
    assert_eq!(parse("((a))"), field("a"));
    assert_eq!(
        parse("!!a"),
        Node::Not(Box::new(Node::Not(Box::new(field("a")))))
    );
}

#[test]
fn calls() {
    assert_eq!(
        parse("lower(objectRef.namespace)"),
        Node::Call {
            function: Function::Lower,
            args: vec![field("objectRef.namespace")]
        }
    );
    let Node::Call { function, args } = parse(r#"replace(a, /x(\d)/, "$1")"#) else {
        panic!("not a call");
    };
    assert_eq!(function, Function::Replace);
    assert!(matches!(&args[1], Node::Regex(p) if p.as_str() == r"x(\d)"));
    assert_eq!(parse("strftime(\"%Y\")"), parse("strftime( \"%Y\" , )"));
    assert!(Expr::compile("split(a, /,\\s*/)").is_ok());
    assert!(Expr::compile("join(split(a, \",\"), \"-\")").is_ok());
}

#[test]
fn whitespace_is_free_between_tokens() {
    assert_eq!(parse("\n\ta\t==\r\n1  "), parse("a == 1"));
    assert_eq!(parse(" [ 1 , 2 ] "), parse("[1,2]"));
}

#[test]
fn printing_is_canonical() {
    assert_eq!(canonical("a==1&&b"), "a == 1 && b");
    assert_eq!(canonical("(a || b) && c"), "(a || b) && c");
    assert_eq!(canonical("!(a && b)"), "!(a && b)");
    assert_eq!(canonical("!a == b"), "!a == b");
    assert_eq!(canonical("(!a) == b"), "(!a) == b");
    assert_eq!(canonical("a ?? (b ?? c)"), "a ?? (b ?? c)");
    assert_eq!(canonical("'x'"), r#""x""#);
    assert_eq!(canonical(r#"a =~ "a/b""#), r"a =~ /a\/b/");
    assert_eq!(canonical(".tag.in"), ".tag.in");
    assert_eq!(canonical(r#"a."b.c"[0]"#), r#"a."b.c"[0]"#);
    assert_eq!(canonical("[1,2.5,-3]"), "[1, 2.5, -3]");
    assert_eq!(canonical("(a == b) == c"), "(a == b) == c");
    assert_eq!(canonical("(a =~ /x/) == true"), "(a =~ /x/) == true");
    assert_eq!(canonical("\"tab\\tnul\\0\""), "\"tab\\tnul\\u{0}\"");
}

#[test]
fn printed_text_parses_back_to_the_same_tree() {
    for text in [
        r#"audit.x ?? "none""#,
        r#"objectRef.namespace in ["kube-system", "default"] && !(verb == "get")"#,
        r#"lower(user.username) =~ /^system:(node|serviceaccount):/ || $1 != null"#,
        r#"tag_parts[2] ?? tag_parts ?? time ?? strftime(time, "%Y") ?? .time"#,
        r#"len(user.groups) >= 2 && contains(user.groups, "system:masters")"#,
    ] {
        let tree = parse(text);
        assert_eq!(parse(&tree.to_string()), tree, "{text}");
    }
}
