//! Unit tests of the DSL-based filters: each filter applied to one event,
//! plus the load-time checks.

use serde_json::{Value, json};

use super::{FilterConfig, FilterOutput};
use crate::config::{ComponentTable, Section, SourceFile};
use crate::event::test_event;
use crate::event::{Ack, Event, Tag};
use crate::metrics::Metrics;
use crate::pipeline::TagPattern;

/// Builds one filter from the keys of a `[[filter]]` table (without `match`).
fn config(toml_text: &str) -> Result<FilterConfig, String> {
    let file = SourceFile {
        name: "test.toml".into(),
        text: toml_text.into(),
    };
    let root = toml::de::DeTable::parse(&file.text).map_err(|e| e.to_string())?;
    let item = toml::Spanned::new(
        0..file.text.len(),
        toml::de::DeValue::Table(root.into_inner()),
    );
    let mut table = ComponentTable::new(Section::Filter, 1, item).map_err(|d| d.render(&file))?;
    let kind: toml::Spanned<String> = table
        .take_required("type", "test")
        .map_err(|d| d.render(&file))?;
    FilterConfig::from_component(&kind, table, &file).map_err(|d| d.render(&file))
}

fn event(tag: &str, json: &str) -> Event {
    Event {
        tag: Tag::new(tag),
        ..test_event(json)
    }
}

/// Events as (tag, record) pairs.
type Tagged = Vec<(String, Value)>;

/// Applies the filter; returns (passed, rerouted).
fn apply(config_text: &str, tag: &str, json: &str) -> (Tagged, Tagged) {
    let filter = config(config_text).unwrap_or_else(|e| panic!("{e}"));
    let mut filter = filter.build(Metrics::new().component("test"));
    let mut out = FilterOutput::default();
    filter.apply(event(tag, json), &mut out);
    let pairs = |events: Vec<Event>| {
        events
            .into_iter()
            .map(|e| (e.tag.to_string(), e.record.into_value()))
            .collect()
    };
    (pairs(out.passed), pairs(out.rerouted))
}

#[test]
fn set_evaluates_in_order_against_the_updated_record() {
    let (passed, _) = apply(
        r#"type = "set"
fields = { "ns" = 'objectRef.namespace ?? "none"', "meta.tag" = 'tag', "again" = 'upper(ns)', "bad" = 'verb < 1' }"#,
        "audit",
        r#"{"verb":"get","objectRef":{}}"#,
    );
    assert_eq!(
        passed,
        [(
            "audit".to_owned(),
            json!({"verb":"get","objectRef":{},"ns":"none","meta":{"tag":"audit"},"again":"NONE"})
        )]
    );
}

#[test]
fn rename_moves_fields_and_keeps_them_when_it_cannot() {
    let (passed, _) = apply(
        r#"type = "rename"
fields = { "user.username" = "username", "missing" = "x", "verb" = "username.deeper" }"#,
        "audit",
        r#"{"verb":"get","user":{"username":"alice"}}"#,
    );
    assert_eq!(
        passed[0].1,
        json!({"verb":"get","user":{},"username":"alice"})
    );
}

#[test]
fn where_keeps_matching_events_and_not_inverts() {
    let text = r#"{"verb":"get"}"#;
    let keep = |cfg: &str| apply(cfg, "audit", text).0.len();
    assert_eq!(keep("type = \"where\"\ncondition = 'verb == \"get\"'"), 1);
    assert_eq!(keep("type = \"where\"\ncondition = 'verb == \"list\"'"), 0);
    assert_eq!(
        keep("type = \"where\"\ncondition = 'verb == \"get\"'\nnot = true"),
        0
    );
    // A failing condition keeps the event.
    assert_eq!(keep("type = \"where\"\ncondition = 'verb < 1'"), 1);
    assert_eq!(
        keep("type = \"where\"\ncondition = 'verb < 1'\nnot = true"),
        1
    );
}

#[test]
fn split_makes_one_event_per_object_item() {
    let (passed, rerouted) = apply(
        "type = \"split\"\nfield = \"items\"",
        "audit.webhook",
        r#"{"kind":"EventList","items":[{"a":1},{"a":2},3]}"#,
    );
    assert!(rerouted.is_empty());
    assert_eq!(
        passed,
        [
            ("audit.webhook".to_owned(), json!({"a":1})),
            ("audit.webhook".to_owned(), json!({"a":2}))
        ]
    );
    let (passed, _) = apply("type = \"split\"\nfield = \"items\"", "t", r#"{"x":1}"#);
    assert_eq!(passed, [("t".to_owned(), json!({"x":1}))]);
    let (passed, _) = apply(
        "type = \"split\"\nfield = \"items\"",
        "t",
        r#"{"items":[]}"#,
    );
    assert!(passed.is_empty());
}

#[tokio::test]
async fn split_children_share_the_parents_acknowledgement() {
    let filter = config("type = \"split\"\nfield = \"items\"").expect("valid");
    let mut filter = filter.build(Metrics::new().component("test"));
    let (ack, waiter) = Ack::batch();
    let mut out = FilterOutput::default();
    let parent = Event {
        ack,
        ..test_event(r#"{"items":[{"a":1},{"a":2}]}"#)
    };
    filter.apply(parent, &mut out);
    let mut children = std::mem::take(&mut out.passed);
    assert_eq!(children.len(), 2);
    children.pop().expect("two children").ack.settle();
    children.pop().expect("one child").ack.settle();
    assert_eq!(waiter.wait().await, crate::event::BatchStatus::Delivered);
}

#[test]
fn rewrite_tag_template_reroutes_only_on_change() {
    let cfg = "type = \"rewrite_tag\"\ntag = 'audit.${objectRef.namespace ?? \"none\"}'";
    let (passed, rerouted) = apply(cfg, "audit", r#"{"objectRef":{"namespace":"kube-system"}}"#);
    assert!(passed.is_empty());
    assert_eq!(rerouted[0].0, "audit.kube-system");
    let (passed, rerouted) = apply(cfg, "audit.none", r#"{}"#);
    assert!(rerouted.is_empty());
    assert_eq!(passed[0].0, "audit.none");
    // A null hole keeps the old tag.
    let (passed, _) = apply("type = \"rewrite_tag\"\ntag = 'a.${x}'", "audit", "{}");
    assert_eq!(passed[0].0, "audit");
}

#[test]
fn rewrite_tag_rules_first_match_wins_with_captures() {
    let cfg = r#"type = "rewrite_tag"
rules = [
  { key = "user.username", pattern = '^system:serviceaccount:([^:]+):(.+)$', tag = 'sa.$1.$2' },
  { when = 'verb =~ /^(watch|list)$/', tag = 'reads.$1.${tag}' },
  { tag = 'other' },
]"#;
    let retag = |json: &str| apply(cfg, "audit", json).1[0].0.clone();
    assert_eq!(
        retag(r#"{"verb":"list","user":{"username":"system:serviceaccount:ns:app"}}"#),
        "sa.ns.app"
    );
    assert_eq!(
        retag(r#"{"verb":"watch","user":{"username":"bob"}}"#),
        "reads.watch.audit"
    );
    assert_eq!(retag(r#"{"verb":"get"}"#), "other");
}

#[test]
fn config_errors_name_the_problem() {
    let err = |text: &str| config(text).expect_err("should fail");
    assert!(err("type = \"rewrite_tag\"").contains("needs `tag` or `rules`"));
    assert!(err("type = \"rewrite_tag\"\ntag = 'a'\nrules = [{ tag = 'b' }]").contains("both"));
    assert!(
        err("type = \"rewrite_tag\"\nrules = [{ key = 'a', tag = 'b' }]").contains("go together")
    );
    assert!(
        err("type = \"rewrite_tag\"\nrules = [{ key = 'a', pattern = '(', tag = 'b' }]")
            .contains("expected a valid regular expression")
    );
    assert!(err("type = \"where\"\ncondition = 'a =='").contains("test.toml:2:18"));
    assert!(err("type = \"set\"\nfields = { \"a..b\" = '1' }").contains("invalid field path"));
    assert!(err("type = \"split\"\nfields = \"items\"").contains("did you mean `field`?"));
}

#[test]
fn static_loops_are_found_at_load_time() {
    let looping = |cfg: &str, pattern: &str| {
        config(cfg)
            .expect("valid")
            .static_loop(&TagPattern::parse(pattern).expect("valid pattern"))
            .map(|d| d.message)
    };
    let message = looping("type = \"rewrite_tag\"\ntag = 'x.${tag}'", "x.**").expect("a loop");
    assert!(message.contains("`x` -> `x.x` -> `x.x.x`"), "{message}");
    // Converges: the second pass renders the same tag.
    assert_eq!(
        looping("type = \"rewrite_tag\"\ntag = 'audit.fixed'", "audit.**"),
        None
    );
    assert_eq!(
        looping(
            "type = \"rewrite_tag\"\ntag = 'audit.${objectRef.namespace ?? \"none\"}'",
            "audit.**"
        ),
        None
    );
    // The new tag leaves the pattern.
    assert_eq!(
        looping("type = \"rewrite_tag\"\ntag = 'y.${tag}'", "x.**"),
        None
    );
    // Conditional rules are left to the router.
    assert_eq!(
        looping(
            "type = \"rewrite_tag\"\nrules = [{ when = 'a', tag = 'x.${tag}' }]",
            "x.**"
        ),
        None
    );
    assert_eq!(
        looping("type = \"where\"\ncondition = 'true'", "x.**"),
        None
    );
}
