//! Index names from a small template: strftime specifiers (`%Y.%m.%d`) of the
//! event time in UTC, and `${field.path}` or `${tag}` parts. Kept narrow on
//! purpose: the config DSL's templates can replace it behind the same
//! `parse`/`render` pair.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use serde_json::Value;

use crate::event::{Event, FieldPath};

/// A parsed index-name template.
#[derive(Debug, Clone)]
pub struct IndexTemplate {
    parts: Vec<Part>,
    /// With no field parts and no sub-second specifiers, names change at
    /// most once a second: remember the last one.
    cacheable: bool,
    cache: Option<(i64, String)>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Time(Vec<Item<'static>>),
    Field(FieldPath),
    Tag,
}

impl IndexTemplate {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("${") {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("`${{` without a closing `}}` in index `{text}`"))?;
                let name = after[..end].trim();
                parts.push(if name == "tag" {
                    Part::Tag
                } else {
                    Part::Field(
                        FieldPath::parse(name).map_err(|e| {
                            format!("invalid field `{name}` in index `{text}`: {e:?}")
                        })?,
                    )
                });
                rest = &after[end + 1..];
            } else {
                let end = rest.find("${").unwrap_or(rest.len());
                let chunk = &rest[..end];
                if chunk.contains('%') {
                    let items = StrftimeItems::new(chunk)
                        .parse_to_owned()
                        .map_err(|_| format!("invalid strftime specifier in index `{text}`"))?;
                    parts.push(Part::Time(items));
                } else {
                    parts.push(Part::Text(chunk.to_owned()));
                }
                rest = &rest[end..];
            }
        }
        let sub_second = ["%f", "%.", "%3f", "%6f", "%9f", "%s"]
            .iter()
            .any(|s| text.contains(s));
        let cacheable = !sub_second
            && parts
                .iter()
                .all(|p| matches!(p, Part::Text(_) | Part::Time(_)));
        Ok(Self {
            parts,
            cacheable,
            cache: None,
        })
    }

    /// The index name for `event`: lowercase, with characters Elasticsearch
    /// forbids in index names replaced by `_`.
    pub fn render(&mut self, event: &Event) -> &str {
        let second = event.time.timestamp();
        if self.cacheable && self.cache.as_ref().is_some_and(|(s, _)| *s == second) {
            return self.cache.as_ref().map_or("", |(_, name)| name.as_str());
        }
        let mut name = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => name.push_str(text),
                Part::Time(items) => {
                    let _ = write!(name, "{}", event.time.format_with_items(items.iter()));
                }
                Part::Tag => name.push_str(event.tag.as_str()),
                Part::Field(path) => match event.record.get(path).as_deref() {
                    Some(Value::String(s)) if !s.is_empty() => name.push_str(s),
                    Some(Value::Number(n)) => name.push_str(&n.to_string()),
                    Some(Value::Bool(b)) => name.push_str(if *b { "true" } else { "false" }),
                    _ => name.push_str("none"),
                },
            }
        }
        let name = sanitize(&name);
        &self.cache.insert((second, name)).1
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ack, Record, Tag};
    use chrono::{DateTime, Utc};

    fn event(raw: &str, time: &str) -> Event {
        Event::new(
            Tag::new("audit.Prod"),
            DateTime::parse_from_rfc3339(time)
                .unwrap()
                .with_timezone(&Utc),
            Record::from_json(raw.into()).unwrap(),
            Ack::none(),
        )
    }

    #[test]
    fn dates_come_from_the_event_time_in_utc() {
        let mut t = IndexTemplate::parse("kube-audit-%Y.%m.%d").unwrap();
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
        let mut t = IndexTemplate::parse("audit-${objectRef.namespace}-${tag}-%Y").unwrap();
        let e = event(
            r#"{"objectRef":{"namespace":"Kube System"}}"#,
            "2026-01-02T03:04:05Z",
        );
        assert_eq!(t.render(&e), "audit-kube_system-audit.prod-2026");
        let none = event("{}", "2026-01-02T03:04:05Z");
        assert_eq!(t.render(&none), "audit-none-audit.prod-2026");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(IndexTemplate::parse("a-${oops").is_err());
        assert!(IndexTemplate::parse("a-%Q").is_err());
    }
}
