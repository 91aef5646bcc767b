//! The config DSL: expressions, templates (plain and path) and stand-alone
//! regex patterns are compiled; what compiles is evaluated against a real
//! audit event. Display is documented as canonical source, so the printed
//! form must compile back to the same expression, and a template printed and
//! compiled again must render the same text.
//!
//! The first byte picks what the rest is compiled as.

#![no_main]

use auditrail::dsl::{Captures, EvalContext, Expr, Pattern, Template, TemplateKind};
use auditrail::event::{Record, Tag};
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

/// A webhook batch of one real `RequestResponse` event (user, objectRef,
/// request and response objects, annotations).
const SAMPLE: &str =
    include_str!("../../tests/data/fixtures/webhook/built-openshift-clo-v1-blocking-single.json");

fn sample() -> (Record, Tag, DateTime<Utc>) {
    let list: serde_json::Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
    let event = serde_json::to_vec(&list["items"][0]).expect("one event");
    let record = Record::from_json_line(Bytes::from(event)).expect("the sample event parses");
    let tag = Tag::new("audit.openshift-marketplace.get");
    let time = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    (record, tag, time)
}

thread_local! {
    /// Records are not `Sync`; libFuzzer runs the target on one thread.
    static EVENT: (Record, Tag, DateTime<Utc>) = sample();
}

fn expression(text: &str) {
    let Ok(expr) = Expr::compile(text) else {
        return;
    };
    let printed = expr.to_string();
    let again = Expr::compile(&printed)
        .unwrap_or_else(|e| panic!("the printed form {printed:?} of {text:?} fails: {e}"));
    assert_eq!(
        again, expr,
        "{text:?} printed as {printed:?} compiles to another tree"
    );

    EVENT.with(|(record, tag, time)| {
        let cx = EvalContext::new(record, tag, *time);
        let _ = expr.eval(&cx);
        let mut captures = Captures::new();
        if let Ok(true) = expr.is_true_capturing(&cx, &mut captures) {
            // What a `rewrite_tag` rule does next: a template reading `$N`.
            let template = Template::compile("x.$0.$1.$9", TemplateKind::Plain).unwrap();
            let _ = template.render_to_string(&cx.with_captures(&captures));
        }
    });
}

fn template(text: &str, kind: TemplateKind) {
    let Ok(template) = Template::compile(text, kind) else {
        return;
    };
    let printed = template.to_string();
    let again = Template::compile(&printed, kind)
        .unwrap_or_else(|e| panic!("the printed form {printed:?} of {text:?} fails: {e}"));
    assert_eq!(
        again.to_string(),
        printed,
        "printing {text:?} is not stable"
    );

    EVENT.with(|(record, tag, time)| {
        let cx = EvalContext::new(record, tag, *time);
        let first = template.render_to_string(&cx);
        let second = again.render_to_string(&cx);
        assert_eq!(
            first.as_ref().ok(),
            second.as_ref().ok(),
            "{text:?} and its printed form {printed:?} render differently"
        );
        let mut out = String::new();
        let _ = template.render_or_placeholder(&cx, &mut out);
        if kind == TemplateKind::Path {
            let _ = template.static_prefix();
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 4 {
        0 => expression(text),
        1 => template(text, TemplateKind::Plain),
        2 => template(text, TemplateKind::Path),
        _ => {
            let _ = Pattern::compile(text);
        }
    }
});
