//! The scanner must accept exactly what serde_json accepts as an object and
//! index exactly the members serde_json sees, so most tests here compare the
//! two on real events, edge cases at every block offset, and generated text.

use std::fmt;

use proptest::prelude::*;
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::*;

/// The scanner's index of `text`.
fn index(text: &str) -> Result<Option<Box<[KeyEntry]>>, JsonError> {
    index_object(text.as_bytes()).map(|scanned| {
        assert_eq!(scanned.ascii, text.is_ascii(), "{text:?}");
        scanned.index
    })
}

/// The members serde_json sees, in order, with each value's exact text.
fn serde_members(text: &str) -> Vec<(String, String)> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, &RawValue>()? {
                out.push((key, value.get().to_owned()));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de.deserialize_map(Members).expect("valid object");
    de.end().expect("nothing after the object");
    members
}

/// Asserts the scanner and serde_json agree on `text`.
fn agrees(text: &str) -> Result<(), TestCaseError> {
    let serde_ok = serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object());
    let scanned = index(text);
    prop_assert_eq!(
        scanned.is_ok(),
        serde_ok,
        "scanner {:?}, serde_json accepts: {} for {:?}",
        scanned,
        serde_ok,
        text
    );
    if let Ok(Some(index)) = scanned {
        let ours: Vec<(String, String)> = index
            .iter()
            .map(|e| (e.key(text).to_owned(), e.value(text).to_owned()))
            .collect();
        prop_assert_eq!(ours, serde_members(text), "members of {:?}", text);
    }
    Ok(())
}

fn assert_agrees(text: &str) {
    if let Err(e) = agrees(text) {
        panic!("{e}");
    }
}

#[test]
fn the_vector_search_matches_the_bytewise_one_on_every_byte() {
    for first in (0..=255u8).step_by(64) {
        let window: [u8; 64] = std::array::from_fn(|i| first.wrapping_add(i as u8));
        assert_eq!(string_specials(&window), string_specials_bytewise(&window));
    }
}

#[test]
fn real_audit_events_are_accepted_and_indexed_like_serde_json() {
    let sample = include_str!("../../tests/data/audit-sample.jsonl");
    let mut lines = 0;
    for line in sample.lines() {
        assert_agrees(line);
        assert!(index(line).unwrap().is_some(), "{line}");
        lines += 1;
    }
    assert_eq!(lines, 200);
}

#[test]
fn edge_cases_agree_with_serde_json_at_every_block_offset() {
    let cases = [
        r#""a\"b""#,
        r#""a\\""#,
        r#""a\\\"b""#,
        r#""\\\\\\\\""#,
        r#""\u00e9\ud83d\ude00""#,
        r#""\ud83d""#,
        r#""\ude00""#,
        r#""\ud83dx""#,
        r#""\ud83d\u0041""#,
        r#""\x""#,
        r#""\u12g4""#,
        "\"tab\there\"",
        "\"nul\u{0}\"",
        r#""{[:,]}""#,
        "-0.5e-7",
        "1e400",
        "-1e400",
        "1e-400",
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "truex",
        "tru",
        "nul",
        "null1",
        "falsey",
        r#"[1,2,]"#,
        r#"[,1]"#,
        r#"{"a":1,}"#,
        r#"{"a"}"#,
        r#"{"a" "b"}"#,
        r#"{1:2}"#,
        r#"[1 2]"#,
        "[\n1 ,\t2\r]",
        r#"{"k\u0065y":{"x":[]}}"#,
        "é",
        r#""é""#,
        "\\",
        r#"\"x""#,
        "\u{c}",
    ];
    for case in cases {
        for pad in 0..140 {
            let spaced = format!(r#"{{"p":"{}","v":{case}}}"#, "x".repeat(pad));
            assert_agrees(&spaced);
            let spaced = format!(r#"{{"{}":0 , "v" : {case} }}"#, "y".repeat(pad));
            assert_agrees(&spaced);
        }
    }
}

#[test]
fn documents_that_are_not_one_object_are_refused() {
    for text in [
        "",
        " ",
        "[]",
        "1",
        r#""s""#,
        "{",
        "}",
        "{}}",
        "{} {}",
        r#"{"a":1}x"#,
        "{]",
    ] {
        assert_agrees(text);
        assert!(index(text).is_err(), "{text:?}");
    }
    assert_eq!(index(" {} \n").unwrap().unwrap().len(), 0);
}

#[test]
fn nesting_is_limited_where_serde_json_limits_it() {
    for depth in [126, 127, 128, 200] {
        let text = format!(
            r#"{{"a":{}1{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        );
        assert_agrees(&text);
    }
    let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    assert_agrees(&nested(127));
    assert!(index(&nested(127)).is_ok());
    let err = index(&nested(128));
    assert_eq!(
        err.unwrap_err().to_string(),
        "nested too deeply at column 636"
    );
}

#[test]
fn errors_say_what_was_expected_and_where() {
    let cases = [
        (r#"{"a" 1}"#, "expected `:` at column 6"),
        (r#"{"a":1 "b":2}"#, "expected `,` or `}` at column 8"),
        (r#"{"a":[1 2]}"#, "expected `,` or `]` at column 9"),
        (r#"{"a":tru}"#, "expected a value at column 6"),
        (
            r#"{"a":12x}"#,
            "invalid character after a value at column 8",
        ),
        (
            "{\"a\":\"x\ny\"}",
            "control character in string at column 8",
        ),
        (r#"{"a":"\q"}"#, "invalid escape at column 7"),
        (
            r#"{"a":"\ud800"}"#,
            "lone leading surrogate in \\u escape at column 7",
        ),
        (r#"{"a":"x"#, "unterminated string at column 8"),
        (r#"{"a":1"#, "unexpected end of input at column 7"),
        (r#"{"a":1e999}"#, "number out of range at column 6"),
        (r#"{"a":1} 2"#, "trailing characters at column 9"),
        ("[1]", "expected a JSON object at column 1"),
        ("", "expected a JSON object at column 1"),
        (r#"{1:1}"#, "expected a string key at column 2"),
    ];
    for (text, message) in cases {
        assert_eq!(index(text).unwrap_err().to_string(), message, "{text}");
    }
}

#[test]
fn keys_with_escapes_leave_the_line_unindexed() {
    assert_eq!(index(r#"{"k\u0065y":1}"#).unwrap(), None);
    let index = index(r#"{"a":1,"a":[2]}"#).unwrap().unwrap();
    assert_eq!(index.len(), 2, "duplicates are kept; readers take the last");
}

/// Text made of the pieces JSON's edge cases are made of.
fn json_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just(":"),
        Just(","),
        Just("\""),
        Just("\\"),
        Just("\\\""),
        Just("\\\\"),
        Just("\\u"),
        Just("d83d"),
        Just("\\ude00"),
        Just("00e9"),
        Just(" "),
        Just("\t"),
        Just("\n"),
        Just("\u{1}"),
        Just("0"),
        Just("12"),
        Just("-"),
        Just("."),
        Just("e"),
        Just("+"),
        Just("true"),
        Just("false"),
        Just("null"),
        Just("a"),
        Just("é"),
        Just(r#""key":"#),
        Just(r#""v""#),
        Just("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| format!("{{{}", p.concat()))
}

/// A valid object to mutate.
fn valid_object() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,80}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    (
        prop::collection::btree_map("\\PC{0,12}", value, 0..8),
        any::<bool>(),
    )
        .prop_map(|(members, pretty)| {
            let object = Value::Object(members.into_iter().collect());
            if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                object.to_string()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn generated_text_agrees_with_serde_json(text in json_like()) {
        agrees(&text)?;
    }

    #[test]
    fn valid_objects_and_their_mutations_agree_with_serde_json(
        text in valid_object(),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![Just(b'"'), Just(b'\\'), Just(b','), Just(b'}'), Just(b'1'), Just(b'\n'), Just(0x01)],
        cut in any::<bool>(),
    ) {
        agrees(&text)?;
        let mut bytes = text.into_bytes();
        let i = at.index(bytes.len());
        if cut {
            bytes.remove(i);
        } else {
            bytes.insert(i, byte);
        }
        if let Ok(mutated) = String::from_utf8(bytes) {
            agrees(&mutated)?;
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = index(&text);
    }
}
