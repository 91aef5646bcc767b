//! `type = "rewrite_tag"`: gives events a new tag, after which they are
//! routed again from the first filter (fluent-bit's rewrite_tag).
//!
//! ```toml
//! [[filter]]
//! type = "rewrite_tag"
//! match = "audit"
//! tag = 'audit.${objectRef.namespace ?? "none"}'
//!
//! [[filter]]
//! type = "rewrite_tag"
//! match = "audit.webhook"
//! rules = [
//!   { key = "user.username", pattern = '^system:serviceaccount:([^:]+):', tag = 'sa.$1' },
//!   { when = 'user.username =~ /^system:node:/', tag = 'nodes' },
//!   { tag = 'users' },
//! ]
//! ```
//!
//! Rules are tried in order and the first that matches wins: `when` is an
//! expression, `key` + `pattern` a regex on one field; a rule with neither
//! always matches. Captures of its regex are `$1`..`$9` in its `tag`. An
//! event no rule matches, or whose new tag equals its old one, passes on
//! unchanged. A template that fails (a null hole) keeps the old tag; the
//! failure is counted and logged. Loops: see [`RewriteTagSpec::static_loop`];
//! at run time the router drops events retagged too often.

use serde::Deserialize;
use toml::Spanned;

use super::set::field_path;
use super::{Filter, FilterOutput};
use crate::config::{Diagnostic, SourceFile};
use crate::dsl::{
    Captures, EvalContext, EvalError, Expr, Pattern, Template, TemplateKind, as_text,
};
use crate::event::{Event, FieldPath, Record, Tag};
use crate::metrics::ComponentMetrics;
use crate::metrics::EvalErrors;
use crate::pipeline::{MAX_HOPS, TagPattern};

/// The raw `rewrite_tag` table: exactly one of `tag` and `rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteTagConfig {
    /// The new tag, a template: `'audit.${objectRef.namespace ?? "none"}'`.
    pub tag: Option<Spanned<String>>,
    /// Rules tried in order; the first that matches sets the tag.
    pub rules: Option<Vec<RuleConfig>>,
}

/// One rule of `rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// An expression; the rule matches when it holds. Its last successful
    /// `=~` gives `$1`..`$9`.
    pub when: Option<Spanned<String>>,
    /// A field path whose text `pattern` must match (with `pattern`).
    pub key: Option<Spanned<String>>,
    /// A regex for `key`'s value; its groups are `$1`..`$9`.
    pub pattern: Option<Spanned<String>>,
    /// The new tag, a template with `${...}` holes and `$1`..`$9`.
    pub tag: Spanned<String>,
}

enum Condition {
    Always,
    When(Expr),
    Key { key: FieldPath, pattern: Pattern },
}

struct Rule {
    condition: Condition,
    tag: Template,
    /// The template's text, for the routing graph.
    text: String,
}

/// A validated `rewrite_tag` filter.
pub struct RewriteTagSpec {
    rules: std::sync::Arc<[Rule]>,
}

impl std::fmt::Debug for RewriteTagSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.rules.iter().map(|r| &r.text))
            .finish()
    }
}

impl RewriteTagConfig {
    /// `span` is the filter's table, for errors about missing keys.
    pub fn validate(
        &self,
        file: &SourceFile,
        span: std::ops::Range<usize>,
    ) -> Result<RewriteTagSpec, Diagnostic> {
        let compile = |tag: &Spanned<String>| Template::from_config(file, tag, TemplateKind::Plain);
        let rules = match (&self.tag, &self.rules) {
            (Some(tag), None) => vec![Rule {
                condition: Condition::Always,
                tag: compile(tag)?,
                text: tag.get_ref().clone(),
            }],
            (None, Some(rules)) if !rules.is_empty() => rules
                .iter()
                .map(|rule| {
                    Ok(Rule {
                        condition: rule.condition(file)?,
                        tag: compile(&rule.tag)?,
                        text: rule.tag.get_ref().clone(),
                    })
                })
                .collect::<Result<_, Diagnostic>>()?,
            (Some(tag), Some(_)) => {
                return Err(Diagnostic::new("a `rewrite_tag` filter has both `tag` and `rules`")
                    .at(tag.span())
                    .with_help("use `tag` for one template, or `rules` with a catch-all `{ tag = ... }` last"));
            }
            (None, _) => {
                return Err(Diagnostic::new("a `rewrite_tag` filter needs `tag` or `rules`")
                    .at(span.start..span.start + 1)
                    .with_help("add `tag = 'audit.${objectRef.namespace ?? \"none\"}'` or a `rules` list"));
            }
        };
        Ok(RewriteTagSpec {
            rules: rules.into(),
        })
    }
}

impl RuleConfig {
    fn condition(&self, file: &SourceFile) -> Result<Condition, Diagnostic> {
        match (&self.when, &self.key, &self.pattern) {
            (None, None, None) => Ok(Condition::Always),
            (Some(when), None, None) => Ok(Condition::When(Expr::from_config(file, when)?)),
            (None, Some(key), Some(pattern)) => Ok(Condition::Key {
                key: field_path(key)?,
                pattern: Pattern::from_config(file, pattern)?,
            }),
            (None, Some(only), None) | (None, None, Some(only)) => {
                Err(Diagnostic::new("a rule's `key` and `pattern` go together")
                    .at(only.span())
                    .with_help("add the other, or use `when = '...'` for an expression"))
            }
            (Some(when), _, _) => Err(Diagnostic::new(
                "a rule has either `when` or `key` + `pattern`, not both",
            )
            .at(when.span())
            .with_help("write the regex into the condition: `when = 'field =~ /re/'`")),
        }
    }
}

impl RewriteTagSpec {
    /// The tag templates this filter may produce, for the routing graph.
    pub fn produced_tags(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.text.clone()).collect()
    }

    /// A loop certain at load time: the first rule that always applies,
    /// tried on a tag `pattern` accepts, keeps producing new tags that
    /// `pattern` accepts again (`tag = 'x.${tag}'` under `match = "x.**"`).
    /// Conditional rules and field-dependent tags are left to the router's
    /// hop limit.
    pub fn static_loop(&self, pattern: &TagPattern) -> Option<Diagnostic> {
        let rule = self
            .rules
            .iter()
            .find(|r| matches!(r.condition, Condition::Always))?;
        let start = pattern
            .literal_prefixes()
            .iter()
            .flat_map(|p| [p.trim_end_matches('.').to_owned(), format!("{p}x")])
            .find(|t| pattern.matches(t))?;
        let record = Record::from_fields(serde_json::Map::new());
        let mut chain = vec![start];
        for _ in 0..=MAX_HOPS {
            let tag = Tag::new(chain.last()?);
            let cx = EvalContext::new(&record, &tag, chrono::DateTime::UNIX_EPOCH);
            let next = rule.tag.render_to_string(&cx).ok()?;
            if next == tag.as_str() || !pattern.matches(&next) {
                return None;
            }
            chain.push(next);
        }
        let shown: Vec<String> = chain.iter().take(3).map(|t| format!("`{t}`")).collect();
        Some(
            Diagnostic::new(format!(
                "`rewrite_tag` template `{}` loops: {} -> ... each new tag matches `{pattern}` again",
                rule.text,
                shown.join(" -> ")
            ))
            .with_help("narrow the filter's `match`, or make the new tag fall outside it"),
        )
    }

    pub fn build(&self, metrics: ComponentMetrics) -> RewriteTag {
        RewriteTag {
            rules: self.rules.clone(),
            captures: Captures::new(),
            buf: String::new(),
            errors: EvalErrors::new(metrics),
        }
    }
}

pub struct RewriteTag {
    rules: std::sync::Arc<[Rule]>,
    /// Reused per event, so retagging allocates only the new tag.
    captures: Captures,
    buf: String,
    errors: EvalErrors,
}

impl Filter for RewriteTag {
    fn apply(&mut self, mut event: Event, out: &mut FilterOutput) {
        self.buf.clear();
        let cx = EvalContext::new(&event.record, &event.tag, event.time);
        let result = retag(&self.rules, &cx, &mut self.captures, &mut self.buf);
        match result {
            Ok(true) if self.buf.is_empty() => {
                self.errors
                    .record(&"the new tag is empty", "kept the old tag");
                out.pass(event);
            }
            Ok(true) if self.buf != event.tag.as_str() => {
                event.tag = Tag::new(&self.buf);
                out.reroute(event);
            }
            Ok(_) => out.pass(event),
            Err(e) => {
                self.errors.record(&e, "kept the old tag");
                out.pass(event);
            }
        }
    }
}

/// Renders the first matching rule's tag into `out`; false if none matched.
fn retag(
    rules: &[Rule],
    cx: &EvalContext<'_>,
    captures: &mut Captures,
    out: &mut String,
) -> Result<bool, EvalError> {
    for rule in rules {
        captures.clear();
        let matched = match &rule.condition {
            Condition::Always => true,
            Condition::When(expr) => expr.is_true_capturing(cx, captures)?,
            Condition::Key { key, pattern } => cx
                .record
                .get(key)
                .and_then(|value| as_text(&value).map(|text| captures.capture(pattern, &text)))
                .unwrap_or(false),
        };
        if matched {
            rule.tag.render(&cx.with_captures(captures), out)?;
            return Ok(true);
        }
    }
    Ok(false)
}
