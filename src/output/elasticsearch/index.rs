//! Index names: the `index` key is a DSL path template (strftime fields of
//! the event time in UTC, `${...}` holes with the whole expression
//! language), rendered per event, then made a valid index name by
//! Elasticsearch's own rules: lowercase, and `\ / * ? " < > | , #` `:` and
//! spaces replaced by `_`.

use crate::dsl::{EvalContext, Part, Template};
use crate::event::Event;
use crate::metrics::EvalErrors;

/// Characters Elasticsearch forbids in index names (plus `:`, reserved for
/// cross-cluster search, and space).
const FORBIDDEN: [char; 12] = ['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];

/// Renders one index name per event, remembering the last one.
#[derive(Debug, Clone)]
pub struct IndexName {
    template: Template,
    /// With only text and whole-second (or coarser) time fields, the name
    /// can change at most once a second: a batch mostly reuses the last one.
    by_second: bool,
    /// The event second the name was rendered for, when `by_second`.
    rendered_for: Option<i64>,
    name: String,
    errors: EvalErrors,
}

impl IndexName {
    /// `errors` counts and logs holes that fail (they render as `_`).
    pub(crate) fn new(template: Template, errors: EvalErrors) -> Self {
        let by_second = template.parts().iter().all(|part| match part {
            Part::Text(_) => true,
            Part::Time(field) => !is_sub_second(field.spec()),
            Part::Hole(_) | Part::Capture(_) => false,
        });
        Self {
            template,
            by_second,
            rendered_for: None,
            name: String::new(),
            errors,
        }
    }

    /// The index name for `event`.
    pub fn render(&mut self, event: &Event) -> &str {
        let second = event.time.timestamp();
        if self.by_second && self.rendered_for == Some(second) {
            return &self.name;
        }
        self.name.clear();
        let cx = EvalContext::new(&event.record, &event.tag, event.time);
        if let Some(error) = self.template.render_or_placeholder(&cx, &mut self.name) {
            self.errors.record(&error, "used `_` for the failing hole");
        }
        apply_index_rules(&mut self.name);
        self.rendered_for = self.by_second.then_some(second);
        &self.name
    }
}

/// Sub-second fields (`%f`, `%.3f`, `%3f`) change within a second.
fn is_sub_second(spec: &str) -> bool {
    spec.ends_with('f')
}

/// Lowercases `name` and replaces forbidden characters with `_`, in place
/// when nothing needs to change (the common case).
pub(super) fn apply_index_rules(name: &mut String) {
    let needs_change = |c: char| c.is_uppercase() || FORBIDDEN.contains(&c);
    if !name.contains(needs_change) {
        return;
    }
    let cleaned: String = name
        .chars()
        .flat_map(|c| {
            let c = if FORBIDDEN.contains(&c) { '_' } else { c };
            c.to_lowercase()
        })
        .collect();
    *name = cleaned;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::TemplateKind;
    use crate::event::Tag;
    use crate::event::test_event;
    use crate::metrics::Metrics;
    use chrono::{DateTime, Utc};

    fn index(text: &str) -> IndexName {
        let template = Template::compile(text, TemplateKind::Path).unwrap();
        IndexName::new(template, EvalErrors::new(Metrics::new().component("es")))
    }

    fn event(raw: &str, time: &str) -> Event {
        Event {
            tag: Tag::new("audit.Prod"),
            time: DateTime::parse_from_rfc3339(time)
                .unwrap()
                .with_timezone(&Utc),
            ..test_event(raw)
        }
    }

    #[test]
    fn dates_come_from_the_event_time_in_utc() {
        let mut t = index("kube-audit-%Y.%m.%d");
        // 23:59:59.999999 at +00:00 and a minute later at +02:00 (still the
        // 22nd in UTC) both land in the UTC day.
        let late = event("{}", "2026-11-22T23:59:59.999999Z");
        assert_eq!(t.render(&late), "kube-audit-2026.11.22");
        let next = event("{}", "2026-11-23T00:00:00.000001Z");
        assert_eq!(t.render(&next), "kube-audit-2026.11.23");
        let offset = event("{}", "2026-11-23T01:30:00+02:00");
        assert_eq!(t.render(&offset), "kube-audit-2026.11.22");
    }

    #[test]
    fn fields_and_tag_are_lowercased_and_sanitised() {
        let mut t = index(r#"audit-${objectRef.namespace ?? "none"}-${tag}-%Y"#);
        let e = event(
            r#"{"objectRef":{"namespace":"Kube System"}}"#,
            "2026-01-02T03:04:05Z",
        );
        assert_eq!(t.render(&e), "audit-kube_system-audit.prod-2026");
        let none = event("{}", "2026-01-02T03:04:05Z");
        assert_eq!(t.render(&none), "audit-none-audit.prod-2026");
        // Without a default, a missing field is `_` and an error is counted.
        let metrics = Metrics::new().component("es");
        let template = Template::compile("audit-${objectRef.namespace}", TemplateKind::Path);
        let mut t = IndexName::new(template.unwrap(), EvalErrors::new(metrics.clone()));
        assert_eq!(t.render(&none), "audit-_");
        assert_eq!(metrics.errors.get(), 1);
        // Holes cannot add path structure, text keeps the index rules.
        let e = event(r#"{"u":"a/b:C"}"#, "2026-01-02T03:04:05Z");
        assert_eq!(index("X*Y-${u}").render(&e), "x_y-a_b_c");
    }

    #[test]
    fn the_full_expression_language_is_available() {
        let mut t = index(r#"audit-${lower(user.username) ?? "anonymous"}-%Y.%m"#);
        let e = event(r#"{"user":{"username":"Alice"}}"#, "2026-01-02T03:04:05Z");
        assert_eq!(t.render(&e), "audit-alice-2026.01");
    }

    #[test]
    fn names_are_reused_within_a_second_only_without_holes() {
        let t = index("kube-audit-%Y.%m.%d");
        assert!(t.by_second);
        assert!(!index("a-${tag}").by_second);
        assert!(!index("a-%.3f").by_second);
        assert!(index("a-%s").by_second);
    }
}
