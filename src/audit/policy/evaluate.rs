//! First-match policy evaluation (kube-apiserver's policy checker) over a form compiled
//! once at load: stage unions are pre-computed and wildcard shapes pre-classified, so a
//! decision only compares borrowed strings and never allocates.

use super::PolicyError;
use crate::audit::types::{Level, Policy, PolicyRule, Stage, StageSet, list};

/// The authenticated user as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserAttributes<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
}

/// Request attributes fed to the policy: what kube-apiserver's authorizer attributes
/// carry. Empty strings mean "not set" (e.g. `namespace: ""` for cluster scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestAttributes<'a> {
    /// `None` when nobody authenticated: rules with `users`/`userGroups` never match.
    pub user: Option<UserAttributes<'a>>,
    pub verb: &'a str,
    pub is_resource_request: bool,
    /// URL path without query (matched by `nonResourceURLs`).
    pub path: &'a str,
    pub namespace: &'a str,
    pub api_group: &'a str,
    pub api_version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyDecision {
    /// Index of the matching rule, `None` when no rule matched (level `None`).
    pub rule: Option<usize>,
    pub level: Level,
    /// Union of the policy's and the rule's `omitStages`.
    pub omit_stages: StageSet,
    /// The rule's value if it sets one, else the policy's.
    pub omit_managed_fields: bool,
}

/// A validated policy, ready for fast evaluation.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    rules: Box<[CompiledRule]>,
    omit_stages: StageSet,
    omit_managed_fields: bool,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    level: Level,
    omit_stages: StageSet,
    omit_managed_fields: bool,
    users: Box<[Box<str>]>,
    user_groups: Box<[Box<str>]>,
    verbs: Box<[Box<str>]>,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    /// No resource or URL constraint: matches resource and non-resource requests.
    Any,
    Resource {
        namespaces: Box<[Box<str>]>,
        resources: Box<[GroupMatcher]>,
    },
    NonResource(Box<[UrlPattern]>),
}

#[derive(Debug, Clone)]
struct GroupMatcher {
    /// `None` for `group: "*"`.
    group: Option<Box<str>>,
    /// Empty: every resource and subresource of the group.
    resources: Box<[ResourcePattern]>,
    resource_names: Box<[Box<str>]>,
}

/// One `resources` entry with its wildcard shapes worked out at compile time.
#[derive(Debug, Clone)]
struct ResourcePattern {
    /// The entry as written, compared with `resource` or `resource/subresource`.
    text: Box<str>,
    is_star: bool,
    /// `S` of `*/S`.
    any_resource_with: Option<Box<str>>,
    /// `P` of `P/*` (matches `P` with or without a subresource).
    any_subresource_of: Option<Box<str>>,
}

#[derive(Debug, Clone)]
enum UrlPattern {
    Everything,
    Exact(Box<str>),
    /// A spec ending in `*`, stored with all trailing `*` removed.
    Prefix(Box<str>),
}

fn boxed(items: &Option<Vec<String>>) -> Box<[Box<str>]> {
    list(items).iter().map(|s| s.as_str().into()).collect()
}

fn stage_set(names: &Option<Vec<String>>) -> StageSet {
    list(names)
        .iter()
        .filter_map(|s| Stage::from_name(s))
        .collect()
}

fn contains(list: &[Box<str>], value: &str) -> bool {
    list.iter().any(|item| &**item == value)
}

impl CompiledPolicy {
    /// Validates and compiles. Zero rules is accepted here (everything gets `None`).
    pub fn new(policy: &Policy) -> Result<CompiledPolicy, PolicyError> {
        let errors = policy.validate();
        if !errors.is_empty() {
            return Err(PolicyError::Invalid {
                origin: "<policy>".to_owned(),
                errors,
            });
        }
        let omit_stages = stage_set(&policy.omit_stages);
        let omit_managed_fields = policy.omit_managed_fields.unwrap_or(false);
        let rules = list(&policy.rules)
            .iter()
            .map(|rule| compile_rule(rule, omit_stages, omit_managed_fields))
            .collect();
        Ok(CompiledPolicy {
            rules,
            omit_stages,
            omit_managed_fields,
        })
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Decides level, omitted stages and managed-field stripping for one request.
    pub fn evaluate(&self, attrs: &RequestAttributes<'_>) -> PolicyDecision {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.matches(attrs) {
                return PolicyDecision {
                    rule: Some(index),
                    level: rule.level,
                    omit_stages: rule.omit_stages,
                    omit_managed_fields: rule.omit_managed_fields,
                };
            }
        }
        PolicyDecision {
            rule: None,
            level: Level::None,
            omit_stages: self.omit_stages,
            omit_managed_fields: self.omit_managed_fields,
        }
    }
}

fn compile_rule(rule: &PolicyRule, policy_stages: StageSet, policy_omit_mf: bool) -> CompiledRule {
    let namespaces = boxed(&rule.namespaces);
    let resources: Box<[GroupMatcher]> = list(&rule.resources)
        .iter()
        .map(|gr| GroupMatcher {
            group: match gr.group.as_deref().unwrap_or("") {
                "*" => None,
                g => Some(g.into()),
            },
            resources: list(&gr.resources)
                .iter()
                .map(|r| compile_resource(r))
                .collect(),
            resource_names: boxed(&gr.resource_names),
        })
        .collect();
    let urls = list(&rule.non_resource_urls);
    // Same precedence as the checker: a namespace/resource constraint makes it a
    // resource rule even if URLs are also present (validation forbids that mix).
    let target = if !namespaces.is_empty() || !resources.is_empty() {
        Target::Resource {
            namespaces,
            resources,
        }
    } else if !urls.is_empty() {
        Target::NonResource(urls.iter().map(|u| compile_url(u)).collect())
    } else {
        Target::Any
    };
    CompiledRule {
        // Validation guarantees a known level; `None` is the safe reading otherwise.
        level: Level::from_name(rule.level.as_deref().unwrap_or("")).unwrap_or(Level::None),
        omit_stages: policy_stages.union(stage_set(&rule.omit_stages)),
        omit_managed_fields: rule.omit_managed_fields.unwrap_or(policy_omit_mf),
        users: boxed(&rule.users),
        user_groups: boxed(&rule.user_groups),
        verbs: boxed(&rule.verbs),
        target,
    }
}

fn compile_resource(text: &str) -> ResourcePattern {
    ResourcePattern {
        text: text.into(),
        is_star: text == "*",
        any_resource_with: text.strip_prefix("*/").map(Into::into),
        any_subresource_of: text.strip_suffix("/*").map(Into::into),
    }
}

fn compile_url(spec: &str) -> UrlPattern {
    if spec == "*" {
        UrlPattern::Everything
    } else if spec.ends_with('*') {
        UrlPattern::Prefix(spec.trim_end_matches('*').into())
    } else {
        UrlPattern::Exact(spec.into())
    }
}

impl CompiledRule {
    fn matches(&self, attrs: &RequestAttributes<'_>) -> bool {
        if !self.users.is_empty() {
            match attrs.user {
                Some(user) if contains(&self.users, user.name) => {}
                _ => return false,
            }
        }
        if !self.user_groups.is_empty() {
            match attrs.user {
                Some(user) if user.groups.iter().any(|g| contains(&self.user_groups, g)) => {}
                _ => return false,
            }
        }
        if !self.verbs.is_empty() && !contains(&self.verbs, attrs.verb) {
            return false;
        }
        match &self.target {
            Target::Any => true,
            Target::Resource {
                namespaces,
                resources,
            } => matches_resource(namespaces, resources, attrs),
            Target::NonResource(urls) => {
                !attrs.is_resource_request && urls.iter().any(|u| u.matches(attrs.path))
            }
        }
    }
}

fn matches_resource(
    namespaces: &[Box<str>],
    resources: &[GroupMatcher],
    attrs: &RequestAttributes<'_>,
) -> bool {
    if !attrs.is_resource_request {
        return false;
    }
    if !namespaces.is_empty() && !contains(namespaces, attrs.namespace) {
        return false;
    }
    if resources.is_empty() {
        return true;
    }
    resources.iter().any(|gr| gr.matches(attrs))
}

impl GroupMatcher {
    fn matches(&self, attrs: &RequestAttributes<'_>) -> bool {
        if let Some(group) = &self.group
            && **group != *attrs.api_group
        {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        if !self.resource_names.is_empty() && !contains(&self.resource_names, attrs.name) {
            return false;
        }
        self.resources
            .iter()
            .any(|r| r.matches(attrs.resource, attrs.subresource))
    }
}

impl ResourcePattern {
    fn matches(&self, resource: &str, subresource: &str) -> bool {
        if self.is_star || self.equals_combined(resource, subresource) {
            return true;
        }
        if !subresource.is_empty()
            && let Some(sub) = &self.any_resource_with
            && **sub == *subresource
        {
            return true;
        }
        matches!(&self.any_subresource_of, Some(res) if **res == *resource)
    }

    /// `text == resource` or `text == resource + "/" + subresource`, without building
    /// the combined string.
    fn equals_combined(&self, resource: &str, subresource: &str) -> bool {
        let text = &*self.text;
        if subresource.is_empty() {
            return text == resource;
        }
        text.len() == resource.len() + 1 + subresource.len()
            && text.starts_with(resource)
            && text.as_bytes()[resource.len()] == b'/'
            && text.ends_with(subresource)
    }
}

impl UrlPattern {
    fn matches(&self, path: &str) -> bool {
        match self {
            UrlPattern::Everything => true,
            UrlPattern::Exact(spec) => **spec == *path,
            // The checker also accepts an exact match of the full spec, which a prefix
            // match of its `*`-stripped form always covers.
            UrlPattern::Prefix(prefix) => path.starts_with(&**prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::types::GroupResources;

    fn policy(rules: Vec<PolicyRule>) -> CompiledPolicy {
        CompiledPolicy::new(&Policy {
            rules: Some(rules),
            ..Policy::default()
        })
        .expect("valid")
    }

    fn resource_rule(resources: &[&str]) -> PolicyRule {
        PolicyRule {
            level: Some("Metadata".into()),
            resources: Some(vec![GroupResources {
                group: Some(String::new()),
                resources: Some(resources.iter().map(|s| (*s).to_owned()).collect()),
                resource_names: None,
            }]),
            ..PolicyRule::default()
        }
    }

    fn pods(sub: &'static str) -> RequestAttributes<'static> {
        RequestAttributes {
            verb: "get",
            is_resource_request: true,
            namespace: "default",
            api_version: "v1",
            resource: "pods",
            subresource: sub,
            name: "p",
            ..RequestAttributes::default()
        }
    }

    #[test]
    fn resource_wildcards() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "log", true),
            ("pods", "", true),
            ("pods", "log", false),
            ("pods/log", "log", true),
            ("pods/log", "", false),
            ("*/log", "log", true),
            ("*/log", "", false),
            ("pods/*", "", true),
            ("pods/*", "exec", true),
            ("*/*", "exec", false),
            ("Pods", "", false),
        ];
        for (pattern, sub, expected) in cases {
            let p = policy(vec![resource_rule(&[pattern])]);
            let got = p.evaluate(&pods(sub)).level == Level::Metadata;
            assert_eq!(got, *expected, "{pattern} vs pods/{sub}");
        }
    }

    #[test]
    fn url_prefixes() {
        let rule = PolicyRule {
            level: Some("Request".into()),
            non_resource_urls: Some(vec!["/healthz*".into(), "/api/*".into()]),
            ..PolicyRule::default()
        };
        let p = policy(vec![rule]);
        for (path, expected) in [
            ("/healthz", true),
            ("/healthzzz", true),
            ("/healthz/etcd", true),
            ("/api", false),
            ("/api/v1", true),
        ] {
            let attrs = RequestAttributes {
                verb: "get",
                path,
                ..RequestAttributes::default()
            };
            assert_eq!(p.evaluate(&attrs).rule.is_some(), expected, "{path}");
        }
    }

    #[test]
    fn no_match_uses_policy_defaults() {
        let p = CompiledPolicy::new(&Policy {
            rules: Some(vec![]),
            omit_stages: Some(vec!["Panic".into()]),
            omit_managed_fields: Some(true),
            ..Policy::default()
        })
        .expect("valid");
        let d = p.evaluate(&pods(""));
        assert_eq!(d.level, Level::None);
        assert!(d.omit_stages.contains(Stage::Panic));
        assert!(d.omit_managed_fields);
    }
}
