//! Reading a policy document. Every YAML call of the crate lives here, so the YAML
//! library can be swapped in one file.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::PolicyError;
use crate::audit::types::{API_VERSION_V1, API_VERSION_V1ALPHA1, API_VERSION_V1BETA1, Policy};
use crate::config::closest;

/// Policies are small; refusing big files bounds the work a malicious document can cause.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Keys of a Policy, of one of its rules and of a rule's `resources` entry.
const POLICY_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "rules",
    "omitStages",
    "omitManagedFields",
];
const RULE_KEYS: &[&str] = &[
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
];
const GROUP_RESOURCES_KEYS: &[&str] = &["group", "resources", "resourceNames"];
const OBJECT_META_KEYS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Parses a YAML or JSON policy document without validating it.
///
/// Decoding is strict, like kube-apiserver's first (strict) decode of a policy file: an
/// unknown or duplicated key is an error, with its line and column. A document whose
/// `apiVersion`/`kind` are wrong reports that first, as its keys are not a Policy's.
/// `origin` names the document in errors (a path, or e.g. `<inline>`).
pub fn load_policy(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).map_err(|source| {
            let message = source.to_string();
            let unknown = unknown_field_message(&message);
            let duplicate = message
                .strip_prefix("duplicate field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(key, _)| key.to_owned());
            if unknown.is_none() && duplicate.is_none() {
                return PolicyError::ParseJson {
                    origin: origin.to_owned(),
                    source,
                };
            }
            // serde_json counts from the start of the trimmed text.
            let prefix = &text[..text.len() - trimmed.len()];
            let line = source.line() + prefix.matches('\n').count();
            let mut column = source.column();
            if source.line() == 1 {
                let last_line = prefix.rsplit('\n').next().unwrap_or_default();
                column += last_line.chars().filter(|c| *c != '\u{feff}').count();
            }
            let (line, column) = (line as u64, column as u64);
            header_error::<serde_json::Error>(serde_json::from_str(trimmed), origin).unwrap_or_else(
                || match (unknown, duplicate) {
                    (Some((key, expected)), _) => {
                        unknown_key(origin, line, column, &key, &expected)
                    }
                    (None, key) => PolicyError::DuplicateKey {
                        origin: origin.to_owned(),
                        line,
                        column,
                        key: key.unwrap_or_default(),
                    },
                },
            )
        });
    }
    // An empty document is YAML null; treat it like `{}` so the version check reports it.
    if trimmed.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(Policy::default());
    }
    serde_saphyr::from_str(text).map_err(|source| {
        let mut inner = &source;
        while let serde_saphyr::Error::AliasError { error, .. }
        | serde_saphyr::Error::WithSnippet { error, .. } = inner
        {
            inner = error;
        }
        if let serde_saphyr::Error::SerdeUnknownField {
            field,
            expected,
            location,
        } = inner
        {
            let expected: Vec<String> = expected.iter().map(|k| (*k).to_owned()).collect();
            return header_error(serde_saphyr::from_str(text), origin).unwrap_or_else(|| {
                unknown_key(origin, location.line(), location.column(), field, &expected)
            });
        }
        if let serde_saphyr::Error::DuplicateMappingKey { key, location } = inner {
            return PolicyError::DuplicateKey {
                origin: origin.to_owned(),
                line: location.line(),
                column: location.column(),
                key: key.clone().unwrap_or_default(),
            };
        }
        PolicyError::ParseYaml {
            origin: origin.to_owned(),
            source: Box::new(source),
        }
    })
}

/// The `apiVersion` and `kind` of a document, read leniently.
#[derive(serde::Deserialize)]
struct TypeMeta {
    kind: Option<String>,
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
}

/// The type-header error of a document that failed strict decoding, if it has one.
fn header_error<E>(meta: Result<TypeMeta, E>, origin: &str) -> Option<PolicyError> {
    let meta = meta.ok()?;
    let header = Policy {
        kind: meta.kind,
        api_version: meta.api_version,
        ..Policy::default()
    };
    header.check_type_meta(origin).err()
}

/// `unknown field `x`, expected one of `a`, `b`` (serde's wording) → the key and the list.
fn unknown_field_message(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected ")
        .map(|(_, list)| {
            list.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some((key.to_owned(), expected))
}

fn unknown_key(
    origin: &str,
    line: u64,
    column: u64,
    key: &str,
    serde_expected: &[String],
) -> PolicyError {
    let has = |name: &str| serde_expected.iter().any(|k| k == name);
    let (place, expected) = if has("level") {
        ("a rule", RULE_KEYS)
    } else if has("resourceNames") {
        ("a resources entry", GROUP_RESOURCES_KEYS)
    } else if has("generateName") {
        ("the policy's metadata", OBJECT_META_KEYS)
    } else {
        ("the policy", POLICY_KEYS)
    };
    PolicyError::UnknownKey {
        origin: origin.to_owned(),
        line,
        column,
        key: key.to_owned(),
        place,
        expected: expected.to_vec(),
        suggestion: closest(key, expected.iter().copied()),
    }
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

    fn unknown_key_message(text: &str) -> String {
        let err = Policy::from_yaml_str(text, "p.yaml").expect_err("refused");
        assert!(matches!(err, PolicyError::UnknownKey { .. }), "{err}");
        err.to_string()
    }

    /// `user:` for `users:` used to load as a rule without a user condition.
    #[test]
    fn unknown_rule_key_names_line_column_and_the_likely_key() {
        let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  user: [\"alice\"]\n- level: Metadata\n";
        assert_eq!(
            unknown_key_message(text),
            "policy `p.yaml` line 5, column 3: unknown key `user` in a rule (did you mean `users`?); \
             expected one of `level`, `users`, `userGroups`, `verbs`, `resources`, `namespaces`, \
             `nonResourceURLs`, `omitStages`, `omitManagedFields`"
        );
    }

    #[test]
    fn unknown_keys_of_the_policy_and_of_resources_entries() {
        let top = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStage: [RequestReceived]\nrules:\n- level: None\n";
        let message = unknown_key_message(top);
        assert!(
            message.starts_with(
                "policy `p.yaml` line 3, column 1: unknown key `omitStage` in the policy (did you mean `omitStages`?)"
            ),
            "{message}"
        );
        // A mis-indented `verbs:` that lands inside a resources entry.
        let nested = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources:\n  - group: \"\"\n    resources: [pods]\n    verbs: [get]\n";
        assert_eq!(
            unknown_key_message(nested),
            "policy `p.yaml` line 8, column 5: unknown key `verbs` in a resources entry; \
             expected one of `group`, `resources`, `resourceNames`"
        );
    }

    #[test]
    fn metadata_takes_object_meta_keys_only() {
        let ok = "apiVersion: audit.k8s.io/v1\nkind: Policy\nmetadata:\n  name: p\n  labels: {a: b}\nrules:\n- level: None\n";
        assert!(Policy::from_yaml_str(ok, "p.yaml").is_ok());
        let typo = "apiVersion: audit.k8s.io/v1\nkind: Policy\nmetadata:\n  nmae: p\nrules:\n- level: None\n";
        let message = unknown_key_message(typo);
        assert!(
            message.starts_with(
                "policy `p.yaml` line 4, column 3: unknown key `nmae` in the policy's metadata (did you mean `name`?)"
            ),
            "{message}"
        );
    }

    #[test]
    fn json_unknown_keys_have_line_and_column_too() {
        let text = "\n{\"apiVersion\":\"audit.k8s.io/v1\",\"kind\":\"Policy\",\n\"rules\":[{\"level\":\"None\",\"userGroup\":[\"x\"]}]}";
        let message = unknown_key_message(text);
        // serde_json points at the closing quote of the key.
        assert!(
            message.starts_with(
                "policy `p.yaml` line 3, column 36: unknown key `userGroup` in a rule (did you mean `userGroups`?)"
            ),
            "{message}"
        );
        // Columns count the blanks before the document too.
        let one_line = "  {\"apiVersion\":\"audit.k8s.io/v1\",\"kind\":\"Policy\",\"rulez\":[]}";
        let message = unknown_key_message(one_line);
        assert!(
            message.starts_with("policy `p.yaml` line 1, column 57: unknown key `rulez` in the policy (did you mean `rules`?)"),
            "{message}"
        );
    }

    #[test]
    fn a_wrong_header_is_reported_before_unknown_keys() {
        let text = "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: b\n";
        let err = Policy::from_yaml_str(text, "p.yaml").expect_err("refused");
        assert!(
            matches!(err, PolicyError::UnknownGroupVersion { .. }),
            "{err}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  users: [a]\n  users: [b]\n";
        let err = Policy::from_yaml_str(text, "p.yaml").expect_err("refused");
        assert_eq!(
            err.to_string(),
            "policy `p.yaml` line 6, column 3: key `users` is given twice; each key may appear once"
        );
        let json = r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"None","users":[],"users":[]}]}"#;
        let err = Policy::from_yaml_str(json, "p.json").expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("policy `p.json` line 1, column 91: key `users` is given twice"),
            "{err}"
        );
    }

    #[test]
    fn invalid_policy_names_rule_and_field() {
        let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n- level: Metadata\n- level: Metadata\n  nonResourceURLs: [\"healthz\"]\n";
        let err = Policy::from_yaml_str(text, "p.yaml").expect_err("fails");
        let msg = err.to_string();
        assert!(msg.contains("rules[2].nonResourceURLs[0]"), "{msg}");
    }
}
