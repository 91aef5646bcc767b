//! Reading a policy document. Every YAML call of the crate lives here, so the YAML
//! library can be swapped in one file.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::PolicyError;
use crate::audit::types::{API_VERSION_V1, API_VERSION_V1ALPHA1, API_VERSION_V1BETA1, Policy};

/// Policies are small; refusing big files bounds the work a malicious document can cause.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Parses a YAML or JSON policy document without validating it.
///
/// Unknown keys are ignored, as kube-apiserver's lenient fallback decode does; `origin`
/// names the document in errors (a path, or e.g. `<inline>`).
pub fn load_policy(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).map_err(|source| PolicyError::ParseJson {
            origin: origin.to_owned(),
            source,
        });
    }
    // An empty document is YAML null; treat it like `{}` so the version check reports it.
    if trimmed.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(Policy::default());
    }
    serde_saphyr::from_str(text).map_err(|source| PolicyError::ParseYaml {
        origin: origin.to_owned(),
        source: Box::new(source),
    })
}

impl Policy {
    /// Reads, parses and validates a policy file the way `--audit-policy-file` is loaded.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let read_err = |source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        if size > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: path.to_owned(),
                size,
                limit: MAX_POLICY_BYTES,
            });
        }
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        Policy::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses (YAML or JSON), checks the type header, validates, and requires a rule.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let policy = load_policy(text, origin)?;
        policy.check_type_meta(origin)?;
        let errors = policy.validate();
        if !errors.is_empty() {
            return Err(PolicyError::Invalid {
                origin: origin.to_owned(),
                errors,
            });
        }
        if policy.rules.as_ref().is_none_or(Vec::is_empty) {
            return Err(PolicyError::NoRules {
                origin: origin.to_owned(),
            });
        }
        Ok(policy)
    }

    /// Requires `apiVersion: audit.k8s.io/v1` (v1beta1/v1alpha1 are read as v1, since
    /// their Policy shape is the same) and `kind: Policy`.
    pub fn check_type_meta(&self, origin: &str) -> Result<(), PolicyError> {
        let version = self.api_version.as_deref().unwrap_or("");
        if ![API_VERSION_V1, API_VERSION_V1BETA1, API_VERSION_V1ALPHA1].contains(&version) {
            return Err(PolicyError::UnknownGroupVersion {
                origin: origin.to_owned(),
                api_version: version.to_owned(),
            });
        }
        let kind = self.kind.as_deref().unwrap_or("");
        if kind != "Policy" {
            return Err(PolicyError::WrongKind {
                origin: origin.to_owned(),
                kind: kind.to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_yaml_lists_are_empty_not_errors() {
        let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages:\nrules:\n- level: Metadata\n  namespaces:\n";
        let policy = Policy::from_yaml_str(text, "<test>").expect("loads");
        let rules = policy.rules.expect("rules");
        assert_eq!(rules[0].namespaces, None);
        assert_eq!(policy.omit_stages, None);
    }

    #[test]
    fn json_policy_loads() {
        let text = r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"None"}]}"#;
        assert!(Policy::from_yaml_str(text, "<test>").is_ok());
    }

    #[test]
    fn missing_header_is_unknown_group_version() {
        let err = Policy::from_yaml_str("rules:\n- level: None\n", "p.yaml").expect_err("fails");
        assert!(
            matches!(err, PolicyError::UnknownGroupVersion { .. }),
            "{err}"
        );
        let err = Policy::from_yaml_str("", "p.yaml").expect_err("fails");
        assert!(
            matches!(err, PolicyError::UnknownGroupVersion { .. }),
            "{err}"
        );
    }

    #[test]
    fn zero_rules_is_refused() {
        let err = Policy::from_yaml_str(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
            "p",
        )
        .expect_err("fails");
        assert!(matches!(err, PolicyError::NoRules { .. }), "{err}");
    }

    #[test]
    fn invalid_policy_names_rule_and_field() {
        let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n- level: Metadata\n- level: Metadata\n  nonResourceURLs: [\"healthz\"]\n";
        let err = Policy::from_yaml_str(text, "p.yaml").expect_err("fails");
        let msg = err.to_string();
        assert!(msg.contains("rules[2].nonResourceURLs[0]"), "{msg}");
    }
}
