use std::borrow::Cow;

use serde_json::{Value, json};

use super::{eval, eval_with, record, time};
use crate::dsl::{Captures, EvalContext, EvalError, Expr, is_truthy};
use crate::event::Tag;

const EVENT: &str = r#"{"verb":"get","objectRef":{"namespace":"kube-system","resource":"pods"},
  "user":{"username":"system:serviceaccount:kube-system:coredns","groups":["system:serviceaccounts","system:authenticated"]},
  "responseStatus":{"code":200},"annotations":{"authorization.k8s.io/decision":"allow"},
  "ratio":0.5,"zero":0,"empty":"","flag":true,"nothing":null,"list":[],"obj":{}}"#;

fn ok(expr: &str) -> Value {
    eval(expr, EVENT).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn err(expr: &str) -> EvalError {
    match eval(expr, EVENT) {
        Ok(v) => panic!("{expr} gave {v} instead of an error"),
        Err(e) => e,
    }
}

#[test]
fn fields_read_from_the_record() {
    assert_eq!(ok("objectRef.namespace"), json!("kube-system"));
    assert_eq!(ok("user.groups[1]"), json!("system:authenticated"));
    assert_eq!(
        ok(r#"annotations."authorization.k8s.io/decision""#),
        json!("allow")
    );
    assert_eq!(ok("responseStatus"), json!({"code": 200}));
}

#[test]
fn missing_fields_and_bad_paths_are_null() {
    for expr in [
        "missing",
        "objectRef.name",
        "objectRef.namespace.deeper",
        "user.groups[9]",
        "verb[0]",
        "user.groups.first",
        "nothing",
    ] {
        assert_eq!(ok(expr), Value::Null, "{expr}");
    }
}

#[test]
fn coalesce_picks_the_first_non_null() {
    assert_eq!(ok(r#"missing ?? "none""#), json!("none"));
    assert_eq!(ok(r#"objectRef.namespace ?? "none""#), json!("kube-system"));
    assert_eq!(ok(r#"missing ?? nothing ?? verb ?? "x""#), json!("get"));
    // Only null falls through: false, 0 and "" are values.
    assert_eq!(ok(r#"zero ?? 1"#), json!(0));
    assert_eq!(ok(r#"empty ?? "x""#), json!(""));
    assert_eq!(ok("missing ?? nothing"), Value::Null);
}

#[test]
fn equality_never_fails_and_crosses_no_types() {
    for (expr, want) in [
        (r#"verb == "get""#, true),
        (r#"verb != "get""#, false),
        ("responseStatus.code == 200", true),
        ("responseStatus.code == 200.0", true),
        (r#"responseStatus.code == "200""#, false),
        ("missing == null", true),
        ("missing != null", false),
        ("nothing == null", true),
        ("flag == 1", false),
        ("zero == false", false),
        (
            r#"user.groups == ["system:serviceaccounts", "system:authenticated"]"#,
            true,
        ),
        ("responseStatus == responseStatus", true),
        ("list == []", true),
        ("9007199254740993 == 9007199254740992", false),
    ] {
        assert_eq!(ok(expr), json!(want), "{expr}");
    }
}

#[test]
fn ordering_numbers_and_strings_only() {
    for (expr, want) in [
        ("responseStatus.code >= 200", true),
        ("responseStatus.code < 300", true),
        ("ratio > 0.25", true),
        ("ratio <= 0", false),
        (r#"verb < "list""#, true),
        (r#""b" > "a""#, true),
        // A missing side makes every ordering false, and !(x < y) true.
        ("missing < 1", false),
        ("missing >= 1", false),
        ("1 > missing", false),
        ("!(missing < 1)", true),
    ] {
        assert_eq!(ok(expr), json!(want), "{expr}");
    }
    assert_eq!(
        err(r#"verb < 3"#),
        EvalError::Incomparable {
            op: "<",
            left: "string",
            right: "number"
        }
    );
    assert_eq!(
        err("flag > false").to_string(),
        "cannot compare a bool with a bool using `>`"
    );
    assert!(matches!(
        err("list >= list"),
        EvalError::Incomparable { .. }
    ));
}

#[test]
fn membership() {
    for (expr, want) in [
        (r#"verb in ["get", "list"]"#, true),
        (r#"verb in ["watch"]"#, false),
        ("200 in [200.0]", true),
        (r#""system:authenticated" in user.groups"#, true),
        (r#""kube" in objectRef.namespace"#, true),
        (r#""code" in responseStatus"#, true),
        (r#""x" in missing"#, false),
        ("1 in verb", false),
        ("missing in [null]", true),
    ] {
        assert_eq!(ok(expr), json!(want), "{expr}");
    }
    assert_eq!(
        err("verb in 5"),
        EvalError::OperandType {
            op: "in",
            found: "number"
        }
    );
}

#[test]
fn regex_matching() {
    for (expr, want) in [
        (r"user.username =~ /^system:serviceaccount:/", true),
        (r"verb =~ /^(create|update)$/", false),
        (r"verb !~ /^(create|update)$/", true),
        // Numbers and booleans match as their JSON text.
        (r"responseStatus.code =~ /^2\d\d$/", true),
        (r"flag =~ /^true$/", true),
        // Nothing matches a missing field.
        (r"missing =~ /.*/", false),
        (r"missing !~ /.*/", true),
    ] {
        assert_eq!(ok(expr), json!(want), "{expr}");
    }
    assert_eq!(
        err("user.groups =~ /x/").to_string(),
        "`=~` cannot take a list"
    );
}

#[test]
fn logic_uses_truthiness_and_short_circuits() {
    for (expr, want) in [
        ("flag && verb", true),
        ("zero || empty || list || obj || nothing", false),
        ("!missing", true),
        ("!!verb", true),
        // The right side is not evaluated, so its type error never happens.
        (r#"false && verb < 3"#, false),
        (r#"true || verb < 3"#, true),
    ] {
        assert_eq!(ok(expr), json!(want), "{expr}");
    }
    assert!(matches!(
        err("true && verb < 3"),
        EvalError::Incomparable { .. }
    ));
    for (value, truthy) in [
        (json!(null), false),
        (json!(false), false),
        (json!(0), false),
        (json!(0.0), false),
        (json!(""), false),
        (json!([]), false),
        (json!({}), false),
        (json!(true), true),
        (json!(-1), true),
        (json!("false"), true),
        (json!([0]), true),
        (json!({"a": null}), true),
    ] {
        assert_eq!(is_truthy(&value), truthy, "{value}");
    }
}

#[test]
fn special_names() {
    assert_eq!(ok("tag"), json!("audit.kube-system.pods"));
    assert_eq!(ok("tag_parts"), json!(["audit", "kube-system", "pods"]));
    assert_eq!(ok("tag_parts[1]"), json!("kube-system"));
    assert_eq!(ok("tag_parts[3]"), Value::Null);
    assert_eq!(ok("time"), json!("2024-03-05T06:07:08Z"));
    // A record field called `tag` is reached with a leading dot.
    assert_eq!(eval(".tag", r#"{"tag":"mine"}"#).unwrap(), json!("mine"));
}

#[test]
fn functions() {
    for (expr, want) in [
        ("upper(verb)", json!("GET")),
        (r#"lower("KuBe")"#, json!("kube")),
        ("lower(missing)", Value::Null),
        (r#"lower(missing) ?? "none""#, json!("none")),
        ("len(user.groups)", json!(2)),
        ("len(verb)", json!(3)),
        (r#"len("é")"#, json!(1)),
        ("len(responseStatus)", json!(1)),
        ("len(missing)", Value::Null),
        (r#"starts_with(user.username, "system:")"#, json!(true)),
        (r#"ends_with(user.username, ":coredns")"#, json!(true)),
        (r#"contains(verb, "e")"#, json!(true)),
        (
            r#"contains(user.groups, "system:authenticated")"#,
            json!(true),
        ),
        (r#"replace(verb, "g", "G")"#, json!("Get")),
        (
            r#"replace(user.username, /^system:serviceaccount:([^:]+):(.*)$/, "$2@$1")"#,
            json!("coredns@kube-system"),
        ),
        (
            r#"join(user.groups, ",")"#,
            json!("system:serviceaccounts,system:authenticated"),
        ),
        (r#"join([1, null, "a", true], "-")"#, json!("1--a-true")),
        (
            r#"split(user.username, ":")"#,
            json!(["system", "serviceaccount", "kube-system", "coredns"]),
        ),
        (r#"split("a, b,c", /,\s*/)"#, json!(["a", "b", "c"])),
        (r#"strftime("%Y/%m/%d %H")"#, json!("2024/03/05 06")),
        (
            r#"strftime("2024-01-02T03:04:05.5+02:00", "%d %H:%M:%S%.3f")"#,
            json!("02 01:04:05.500"),
        ),
        (r#"strftime(86400, "%F")"#, json!("1970-01-02")),
        (r#"strftime(missing, "%F")"#, Value::Null),
    ] {
        assert_eq!(
            eval(expr, EVENT).unwrap_or_else(|e| panic!("{expr}: {e}")),
            want,
            "{expr}"
        );
    }
}

#[test]
fn function_type_errors_are_data() {
    assert_eq!(
        err("lower(user.groups)").to_string(),
        "`lower` expects a string, found a list"
    );
    assert_eq!(
        err("len(flag)").to_string(),
        "`len` expects a string, list or object, found a bool"
    );
    assert_eq!(
        err(r#"join(verb, ",")"#).to_string(),
        "`join` expects a list, found a string"
    );
    assert_eq!(
        err(r#"join([[1]], ",")"#).to_string(),
        "`join` expects a string, found a list"
    );
    assert_eq!(
        err(r#"strftime(verb, "%F")"#).to_string(),
        "`\"get\"` is not an RFC 3339 time or a number of seconds"
    );
    assert_eq!(
        err(r#"strftime(missing ?? "%Q")"#).to_string(),
        "invalid time format `%Q`"
    );
    assert!(matches!(
        err(r#"strftime(1e300, "%F")"#),
        EvalError::NotATime { .. }
    ));
    // Text without fields is a valid format.
    assert_eq!(ok("strftime(verb)"), json!("get"));
}

#[test]
fn captures_come_from_the_last_successful_match() {
    let expr = Expr::compile(
        r"verb =~ /^(l)ist$/ || user.username =~ /^system:serviceaccount:([^:]+):(.+)$/",
    )
    .unwrap();
    let record = record(EVENT);
    let tag = Tag::new("audit");
    let cx = EvalContext::new(&record, &tag, time());
    let mut captures = Captures::new();
    assert!(expr.is_true_capturing(&cx, &mut captures).unwrap());
    assert_eq!(captures.get(1), Some("kube-system"));
    assert_eq!(captures.get(2), Some("coredns"));
    assert_eq!(captures.get(3), None);
    assert_eq!(
        captures.get(0),
        Some("system:serviceaccount:kube-system:coredns")
    );
    // A later failed match keeps them.
    let miss = Expr::compile(r"verb =~ /^(x)$/").unwrap();
    assert!(!miss.is_true_capturing(&cx, &mut captures).unwrap());
    assert_eq!(captures.get(1), Some("kube-system"));
    // `$N` reads the captures handed to the context.
    assert_eq!(eval_with("$2", EVENT, &captures).unwrap(), json!("coredns"));
    assert_eq!(eval_with("$7", EVENT, &captures).unwrap(), Value::Null);
}

#[test]
fn reads_borrow_instead_of_cloning() {
    let record = record(EVENT);
    let tag = Tag::new("audit");
    let cx = EvalContext::new(&record, &tag, time());
    let literal = Expr::compile(r#""constant""#).unwrap();
    assert!(matches!(literal.eval(&cx).unwrap(), Cow::Borrowed(_)));
    let boolean = Expr::compile(r#"verb == "get""#).unwrap();
    assert!(matches!(boolean.eval(&cx).unwrap(), Cow::Borrowed(_)));
    // Once the record is parsed, a field read borrows from it.
    let _ = record.fields();
    let field = Expr::compile("objectRef").unwrap();
    assert!(matches!(field.eval(&cx).unwrap(), Cow::Borrowed(_)));
}
