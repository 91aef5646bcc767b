use super::{record, time};
use crate::dsl::{Captures, EvalContext, EvalError, MAX_HOLE_BYTES, Part, Template, TemplateKind};
use crate::event::Tag;

const EVENT: &str = r#"{"objectRef":{"namespace":"kube-system"},"user":{"username":"system:node:a/b"},
  "code":404,"flag":false,"dots":"..","list":[1,"a"]}"#;

fn render_kind(text: &str, kind: TemplateKind, json: &str) -> Result<String, EvalError> {
    let template = Template::compile(text, kind).unwrap_or_else(|e| panic!("{text}: {e}"));
    let record = record(json);
    let tag = Tag::new("audit.web");
    let mut captures = Captures::new();
    let pattern = crate::dsl::Pattern::compile("^(\\w+)\\.(\\w+)$").unwrap();
    assert!(captures.capture(&pattern, "first.second"));
    let cx = EvalContext::new(&record, &tag, time()).with_captures(&captures);
    template.render_to_string(&cx)
}

fn render(text: &str) -> String {
    render_kind(text, TemplateKind::Plain, EVENT).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn path(text: &str) -> String {
    render_kind(text, TemplateKind::Path, EVENT).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn holes_render_values() {
    assert_eq!(
        render(r#"audit.${objectRef.namespace ?? "none"}"#),
        "audit.kube-system"
    );
    assert_eq!(
        render_kind(
            r#"audit.${objectRef.namespace ?? "none"}"#,
            TemplateKind::Plain,
            r#"{"verb":"get"}"#
        )
        .unwrap(),
        "audit.none"
    );
    assert_eq!(render("${tag}/${tag_parts[1]}"), "audit.web/web");
    assert_eq!(
        render("c=${code} f=${flag} l=${list}"),
        r#"c=404 f=false l=[1,"a"]"#
    );
    assert_eq!(render(r#"${ "a}b" }"#), "a}b");
    assert_eq!(render("plain"), "plain");
    assert_eq!(render(""), "");
}

#[test]
fn a_null_hole_is_an_error_naming_it() {
    let error = render_kind("audit.${objectRef.name}", TemplateKind::Plain, EVENT).unwrap_err();
    assert_eq!(
        error.to_string(),
        "template hole `objectRef.name` is null or missing; give a default with `??`"
    );
}

#[test]
fn captures_and_escapes() {
    assert_eq!(render("$2-$1-$0-$9"), "second-first-first.second-");
    assert_eq!(render("cost: $$5 ${$1}"), "cost: $5 first");
    // `%` is plain text outside paths.
    assert_eq!(render("100%Y"), "100%Y");
}

#[test]
fn path_templates_format_the_event_time_in_utc() {
    assert_eq!(
        path("/var/log/audit-${tag}.%Y%m%d%H.log.gz"),
        "/var/log/audit-audit.web.2024030506.log.gz"
    );
    assert_eq!(path("%M:%S %j %a %-d %%"), "07:08 065 Tue 5 %");
    assert_eq!(path("kube-audit-%Y.%m.%d"), "kube-audit-2024.03.05");
}

#[test]
fn path_holes_cannot_add_directories() {
    assert_eq!(
        path("/var/log/kube-audit-${user.username}/audit"),
        "/var/log/kube-audit-system:node:a_b/audit"
    );
    assert_eq!(path("/var/log/${dots}/x"), "/var/log/__/x");
    assert_eq!(path("/var/log/${\"a\\\\b\"}"), "/var/log/a_b");
    // Plain templates keep the text as it is.
    assert_eq!(render("${user.username}"), "system:node:a/b");
}

/// Hostile values from the file output's old sanitiser table: every one
/// stays inside a single path component.
#[test]
fn hostile_path_values_stay_in_one_component() {
    let hostile = [
        ("../../etc/passwd", "___.._etc_passwd"),
        ("/etc/shadow", "_etc_shadow"),
        ("..", "__"),
        (".", "_"),
        ("", "_"),
        ("a\u{0}b", "a_b"),
        ("a\\..\\b", "a_.._b"),
        ("line\nbreak", "line_break"),
        ("tab\tand\u{7f}del\u{85}nel", "tab_and_del_nel"),
        (".hidden", "_hidden"),
        ("...x.y", "___x.y"),
    ];
    for (value, expected) in hostile {
        let json = serde_json::json!({ "ns": value }).to_string();
        assert_eq!(
            render_kind("/base/${ns}.log", TemplateKind::Path, &json).unwrap(),
            format!("/base/{expected}.log"),
            "{value:?}"
        );
    }
    // Numbers, lists and objects are JSON text, sanitised the same way.
    let json = r#"{"o":{"a":"/x"}}"#;
    assert_eq!(
        render_kind("/b/${o}", TemplateKind::Path, json).unwrap(),
        r#"/b/{"a":"_x"}"#
    );
}

#[test]
fn hostile_tags_stay_in_one_component() {
    let template = Template::compile("/base/${tag}/${tag_parts[1]}", TemplateKind::Path).unwrap();
    let record = record("{}");
    for (tag, expected) in [("..", "/base/__/_"), ("../..", "/base/___../_")] {
        let tag = Tag::new(tag);
        let cx = EvalContext::new(&record, &tag, time());
        assert_eq!(template.render_to_string(&cx).unwrap(), expected, "{tag:?}");
    }
}

#[test]
fn long_path_values_are_cut_on_a_character_boundary() {
    let json = serde_json::json!({ "ns": "é".repeat(300) }).to_string();
    let out = render_kind("/b/${ns}", TemplateKind::Path, &json).unwrap();
    let hole = out.strip_prefix("/b/").unwrap();
    assert_eq!(hole, "é".repeat(MAX_HOLE_BYTES / 2));
    // Plain templates (tags) are not cut.
    let out = render_kind("${ns}", TemplateKind::Plain, &json).unwrap();
    assert_eq!(out.len(), 600);
}

/// Outputs must name a file or index for every event: a failing hole
/// becomes `_`, the rest still renders, and the first failure is reported.
#[test]
fn render_or_placeholder_always_renders_and_reports_the_first_failure() {
    let template = Template::compile(
        "/l/${tag_parts[5]}/${lower(list)}/${objectRef.namespace}.%Y",
        TemplateKind::Path,
    )
    .unwrap();
    let record = record(EVENT);
    let tag = Tag::new("audit.web");
    let cx = EvalContext::new(&record, &tag, time());
    let mut out = String::new();
    let error = template.render_or_placeholder(&cx, &mut out);
    assert_eq!(out, "/l/_/_/kube-system.2024");
    assert_eq!(
        error.map(|e| e.to_string()).as_deref(),
        Some("template hole `tag_parts[5]` is null or missing; give a default with `??`")
    );
    let template = Template::compile("/l/${tag}", TemplateKind::Path).unwrap();
    let mut out = String::new();
    assert!(template.render_or_placeholder(&cx, &mut out).is_none());
    assert_eq!(out, "/l/audit.web");
}

#[test]
fn static_parts_are_known_at_load_time() {
    let t = Template::compile("audit.${objectRef.namespace}", TemplateKind::Plain).unwrap();
    assert!(!t.is_static());
    assert_eq!(t.static_prefix(), "audit.");
    let t = Template::compile("audit.fixed", TemplateKind::Plain).unwrap();
    assert!(t.is_static());
    assert_eq!(t.static_prefix(), "audit.fixed");
    let t = Template::compile("$1.x", TemplateKind::Plain).unwrap();
    assert_eq!(t.static_prefix(), "");
    let t = Template::compile("a%Y", TemplateKind::Path).unwrap();
    assert!(!t.is_static() && t.uses_time());
    let t = Template::compile("a%Y", TemplateKind::Plain).unwrap();
    assert!(t.is_static() && !t.uses_time());
    let t = Template::compile("${strftime(\"%H\")}", TemplateKind::Plain).unwrap();
    assert!(t.uses_time());
}

#[test]
fn text_is_merged_and_printing_round_trips() {
    let t = Template::compile("a$$b${x}c%%", TemplateKind::Path).unwrap();
    assert_eq!(t.parts().len(), 3);
    assert!(matches!(&t.parts()[0], Part::Text(s) if s == "a$b"));
    assert_eq!(t.to_string(), "a$$b${x}c%%");
    for (text, kind) in [
        (
            r#"audit.${objectRef.namespace ?? "none"}"#,
            TemplateKind::Plain,
        ),
        ("/x/${tag}.%Y%m%d%H.%.3f%:z.gz", TemplateKind::Path),
        ("$1$2${$3}%Y", TemplateKind::Plain),
    ] {
        let t = Template::compile(text, kind).unwrap();
        assert_eq!(
            Template::compile(&t.to_string(), kind).unwrap(),
            t,
            "{text}"
        );
    }
}

#[test]
fn rendering_appends_to_the_buffer() {
    let t = Template::compile("-${tag}", TemplateKind::Plain).unwrap();
    let record = record("{}");
    let tag = Tag::new("t");
    let cx = EvalContext::new(&record, &tag, time());
    let mut out = String::from("x");
    t.render(&cx, &mut out).unwrap();
    t.render(&cx, &mut out).unwrap();
    assert_eq!(out, "x-t-t");
}
