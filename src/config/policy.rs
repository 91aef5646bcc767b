//! The `policy` key of sources and the `audit_policy` filter: the named audit Policy
//! file is read, parsed and validated at config load, so `auditrail check`, startup
//! and reload all refuse a broken policy with a diagnostic pointing at the key.

use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use super::Diagnostic;
use crate::audit::{CompiledPolicy, Policy, PolicyError};

/// Loads and compiles the policy a `policy = "..."` key names. Relative paths are
/// relative to the working directory, like every other path in the config (and like
/// kube-apiserver's `--audit-policy-file`).
pub fn load_policy_key(key: &Spanned<PathBuf>) -> Result<Arc<CompiledPolicy>, Diagnostic> {
    let path = key.get_ref();
    let shown = path.display();
    let policy = Policy::load(path).map_err(|error| policy_diagnostic(&error, key))?;
    let compiled = CompiledPolicy::new(&policy).map_err(|error| policy_diagnostic(&error, key))?;
    tracing::debug!(policy = %shown, rules = compiled.rule_count(), "Loaded an audit policy.");
    Ok(Arc::new(compiled))
}

fn policy_diagnostic(error: &PolicyError, key: &Spanned<PathBuf>) -> Diagnostic {
    // The cause chain on one line: the first line of serde-saphyr's message has
    // the line and column inside the policy file (the rest is a code snippet).
    let mut message = format!("invalid audit policy: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let text = inner.to_string();
        let first = text.lines().next().unwrap_or_default();
        message.push_str(&format!(": {}", first.trim_start_matches("error: ")));
        cause = inner.source();
    }
    let help = match error {
        PolicyError::Read { .. } | PolicyError::TooLarge { .. } => {
            "`policy` is the path of an `audit.k8s.io/v1` Policy file (YAML or JSON), relative to the working directory".to_owned()
        }
        _ => format!(
            "`auditrail policy check {}` lists every problem",
            key.get_ref().display()
        ),
    };
    Diagnostic::new(message)
        .at(key.span())
        .with_label("the policy named here")
        .with_help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Spanned<PathBuf> {
        Spanned::new(3..9, PathBuf::from(path))
    }

    #[test]
    fn invalid_policy_names_file_rule_and_field() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("p.yaml");
        std::fs::write(
            &path,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n- level: Loud\n",
        )
        .expect("write");
        let d = load_policy_key(&key(path.to_str().expect("utf-8 path"))).expect_err("invalid");
        assert!(d.message.contains("p.yaml"), "{}", d.message);
        assert!(d.message.contains("rules[1].level"), "{}", d.message);
        assert_eq!(d.span, Some(3..9));
    }

    #[test]
    fn missing_file_is_a_diagnostic_with_the_os_reason() {
        let d = load_policy_key(&key("/nonexistent/policy.yaml")).expect_err("missing");
        assert!(
            d.message
                .contains("failed to read policy file `/nonexistent/policy.yaml`"),
            "{}",
            d.message
        );
        assert!(d.message.contains("No such file"), "{}", d.message);
    }
}
