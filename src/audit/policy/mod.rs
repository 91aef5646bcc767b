//! Audit policies: loading (YAML or JSON), validation exactly as kube-apiserver's
//! `ValidatePolicy`, and first-match evaluation over a pre-compiled form.

mod evaluate;
mod load;
mod validate;

pub use evaluate::{CompiledPolicy, PolicyDecision, RequestAttributes, UserAttributes};
pub use load::{MAX_POLICY_BYTES, load_policy};
pub use validate::{FieldError, FieldErrorType, validate_policy};

use std::path::PathBuf;

/// Everything that can go wrong between a policy file and a [`CompiledPolicy`].
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("failed to read policy file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exceeds [`MAX_POLICY_BYTES`] (a guard against YAML bombs).
    #[error("policy file `{}` is {size} bytes, more than the {limit}-byte limit", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The document is not valid YAML or does not have the Policy shape.
    #[error("failed to parse policy `{origin}` as YAML")]
    ParseYaml {
        origin: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The document starts like JSON but is not a valid JSON Policy.
    #[error("failed to parse policy `{origin}` as JSON")]
    ParseJson {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    /// A key the Policy schema does not have (kube-apiserver's strict decoding refuses
    /// it); `expected` lists the keys valid at that place.
    #[error(
        "policy `{origin}` line {line}, column {column}: unknown key `{key}` in {place}{}; expected one of {}",
        suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        expected.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
    )]
    UnknownKey {
        origin: String,
        line: u64,
        column: u64,
        key: String,
        /// `the policy`, `a rule` or `a resources entry`.
        place: &'static str,
        expected: Vec<&'static str>,
        suggestion: Option<&'static str>,
    },
    /// A key given twice in one mapping (kube-apiserver's strict decoding refuses it).
    #[error(
        "policy `{origin}` line {line}, column {column}: key `{key}` is given twice; each key may appear once"
    )]
    DuplicateKey {
        origin: String,
        line: u64,
        column: u64,
        key: String,
    },
    /// `apiVersion` is missing or not an `audit.k8s.io` version we read.
    #[error(
        "policy `{origin}` has unknown group version `{api_version}` (expected `apiVersion: audit.k8s.io/v1`)"
    )]
    UnknownGroupVersion { origin: String, api_version: String },
    /// `kind` is missing or not `Policy`.
    #[error("policy `{origin}` has kind `{kind}`, expected `Policy`")]
    WrongKind { origin: String, kind: String },
    /// Structural validation failed; every error is listed, in Kubernetes' order.
    #[error("policy `{origin}` is invalid: {}", render_errors(errors))]
    Invalid {
        origin: String,
        errors: Vec<FieldError>,
    },
    /// kube-apiserver refuses a policy file without rules.
    #[error("policy `{origin}` has no rules (kube-apiserver refuses a policy with 0 rules)")]
    NoRules { origin: String },
}

fn render_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
