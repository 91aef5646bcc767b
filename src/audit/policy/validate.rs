//! Structural policy validation, mirroring kube-apiserver's `ValidatePolicy`: errors are
//! accumulated in its order and rendered like Kubernetes field errors.

use std::fmt;

use crate::audit::types::{GroupResources, Level, Policy, PolicyRule, Stage, list};

/// The kind of a field error, printed as Kubernetes prints `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    Required,
    NotSupported,
    Invalid,
}

impl FieldErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::NotSupported => "Unsupported value",
            Self::Invalid => "Invalid value",
        }
    }
}

/// One validation error: a field path such as `rules[2].nonResourceURLs[0]`, the error
/// type, the offending value (as JSON, empty for Required) and a detail text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub kind: FieldErrorType,
    pub value: String,
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FieldErrorType::Required => write!(f, "{}: {}", self.field, self.kind.as_str()),
            _ => write!(
                f,
                "{}: {}: {}: {}",
                self.field,
                self.kind.as_str(),
                self.value,
                self.detail
            ),
        }
    }
}

const VALID_STAGES: &str = "RequestReceived,ResponseStarted,ResponseComplete,Panic";

/// Validates a policy; an empty result means valid. Zero rules is valid here (the file
/// loader refuses it separately, as kube-apiserver does).
pub fn validate_policy(policy: &Policy) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_omit_stages(list(&policy.omit_stages), "omitStages", &mut errors);
    for (i, rule) in list(&policy.rules).iter().enumerate() {
        validate_rule(rule, &format!("rules[{i}]"), &mut errors);
    }
    errors
}

impl Policy {
    /// See [`validate_policy`].
    pub fn validate(&self) -> Vec<FieldError> {
        validate_policy(self)
    }
}

fn validate_rule(rule: &PolicyRule, path: &str, errors: &mut Vec<FieldError>) {
    let level_path = format!("{path}.level");
    match rule.level.as_deref().unwrap_or("") {
        "" => errors.push(FieldError {
            field: level_path,
            kind: FieldErrorType::Required,
            value: String::new(),
            detail: String::new(),
        }),
        level if Level::from_name(level).is_none() => errors.push(FieldError {
            field: level_path,
            kind: FieldErrorType::NotSupported,
            value: quote(level),
            detail: r#"supported values: "None", "Metadata", "Request", "RequestResponse""#
                .to_owned(),
        }),
        _ => {}
    }
    let urls = list(&rule.non_resource_urls);
    for (j, url) in urls.iter().enumerate() {
        if url == "*" {
            continue;
        }
        if !url.starts_with('/') {
            errors.push(invalid(
                format!("{path}.nonResourceURLs[{j}]"),
                quote(url),
                "non-resource URL rules must begin with a '/' character",
            ));
        }
        // `*` anywhere but last; `url[..len-1]` on bytes is fine because `*` is ASCII.
        if !url.is_empty() && url.as_bytes()[..url.len() - 1].contains(&b'*') {
            errors.push(invalid(
                format!("{path}.nonResourceURLs[{j}]"),
                quote(url),
                "non-resource URL wildcards '*' must be the final character of the rule",
            ));
        }
    }
    for gr in list(&rule.resources) {
        validate_group_resources(gr, path, errors);
    }
    validate_omit_stages(
        list(&rule.omit_stages),
        &format!("{path}.omitStages"),
        errors,
    );
    if !urls.is_empty() && (!list(&rule.resources).is_empty() || !list(&rule.namespaces).is_empty())
    {
        errors.push(invalid(
            format!("{path}.nonResourceURLs"),
            format!("{urls:?}"),
            "rules cannot apply to both regular resources and non-resource URLs",
        ));
    }
}

fn validate_group_resources(gr: &GroupResources, path: &str, errors: &mut Vec<FieldError>) {
    let group = gr.group.as_deref().unwrap_or("");
    // `*` means every group since Kubernetes 1.36; before, it failed the DNS check.
    if !group.is_empty() && group != "*" && !is_dns1123_subdomain(group) {
        errors.push(invalid(
            format!("{path}.resources.group"),
            quote(group),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ));
    }
    if !list(&gr.resource_names).is_empty() && list(&gr.resources).is_empty() {
        errors.push(invalid(
            format!("{path}.resources.resourceNames"),
            format!("{:?}", list(&gr.resource_names)),
            "using resourceNames requires at least one resource",
        ));
    }
}

fn validate_omit_stages(stages: &[String], path: &str, errors: &mut Vec<FieldError>) {
    for (j, stage) in stages.iter().enumerate() {
        if Stage::from_name(stage).is_none() {
            errors.push(invalid(
                format!("{path}[{j}]"),
                quote(stage),
                &format!("allowed stages are {VALID_STAGES}"),
            ));
        }
    }
}

fn invalid(field: String, value: String, detail: &str) -> FieldError {
    FieldError {
        field,
        kind: FieldErrorType::Invalid,
        value,
        detail: detail.to_owned(),
    }
}

fn quote(value: &str) -> String {
    format!("{value:?}")
}

/// `IsDNS1123Subdomain`: at most 253 bytes of dot-separated labels, each of lower-case
/// alphanumerics and `-`, starting and ending alphanumeric (labels are not length-checked).
fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253
        && value.split('.').all(|label| {
            let bytes = label.as_bytes();
            let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomain_rules() {
        assert!(is_dns1123_subdomain("rbac.authorization.k8s.io"));
        assert!(is_dns1123_subdomain("a"));
        assert!(!is_dns1123_subdomain("rbac.authorization.k8s.io/v1"));
        assert!(!is_dns1123_subdomain("Apps"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_subdomain(&"a".repeat(70)));
    }

    #[test]
    fn both_url_errors_fire_for_one_entry() {
        let rule = PolicyRule {
            level: Some("None".into()),
            non_resource_urls: Some(vec!["*/x".into()]),
            ..PolicyRule::default()
        };
        let policy = Policy {
            rules: Some(vec![rule]),
            ..Policy::default()
        };
        let errors = policy.validate();
        assert_eq!(errors.len(), 2);
        assert!(
            errors
                .iter()
                .all(|e| e.field == "rules[0].nonResourceURLs[0]")
        );
    }
}
