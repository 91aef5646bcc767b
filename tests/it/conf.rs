//! What the packages install validates: every config in `conf/` and
//! `examples/` passes `auditrail check`, and every sample policy in
//! `conf/policies/` loads and validates as kube-apiserver would load it.

use auditrail::audit::Policy;

use crate::support::{auditrail, data, repo};

fn files(dir: &str, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo(dir))
        .expect("directory exists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_and_example_config_checks() {
    let configs: Vec<_> = files("conf", "toml")
        .into_iter()
        .chain(files("examples", "toml"))
        .collect();
    assert!(configs.iter().any(|p| p.ends_with("conf/auditrail.toml")));
    for path in configs {
        let output = auditrail()
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .expect("run auditrail check");
        assert!(
            output.status.success(),
            "{} does not check:\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_default_service_config_listens_on_loopback_and_keeps_state_in_var_lib() {
    let text = std::fs::read_to_string(repo("conf/auditrail.toml")).expect("conf");
    let config: toml::Table = toml::from_str(&text).expect("TOML");
    assert_eq!(config["data_dir"].as_str(), Some("/var/lib/auditrail"));
    assert_eq!(config["api"]["listen"].as_str(), Some("127.0.0.1:24231"));
    let outputs = config["output"].as_array().expect("outputs");
    for output in outputs {
        let path = output["path"].as_str().expect("file output path");
        // The unit's LogsDirectory= is the only log directory it may write.
        assert!(path.starts_with("/var/log/auditrail/"), "{path}");
    }
}

#[test]
fn sample_policies_load_validate_and_match_their_fixtures() {
    let policies = files("conf/policies", "yaml");
    assert!(policies.len() >= 2, "{policies:?}");
    for path in policies {
        let policy =
            Policy::load(&path).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        assert!(
            policy.rules.as_ref().is_some_and(|rules| !rules.is_empty()),
            "{}",
            path.display()
        );
        let name = path.file_name().expect("file name").to_string_lossy();
        let fixture = data(&format!("fixtures/policies/{name}"));
        assert_eq!(
            std::fs::read(&path).expect("policy"),
            std::fs::read(&fixture).expect("fixture"),
            "{name} must stay a verbatim copy (see conf/policies/PROVENANCE.md)"
        );
    }
}
