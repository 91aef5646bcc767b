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

/// What users read stands alone: README, docs, examples, bench, conf and
/// packaging (and the doc comments `--help` and the docs show) cite no
/// design notes, numbered issues or folders outside the repository.
#[test]
fn user_facing_text_cites_nothing_users_do_not_have() {
    fn walk(path: std::path::PathBuf, out: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("directory") {
                walk(entry.expect("entry").path(), out);
            }
        } else {
            out.push(path);
        }
    }
    let mut files = Vec::new();
    for top in [
        "README.md",
        "docs",
        "examples",
        "bench",
        "conf",
        "packaging",
        "benches",
    ] {
        walk(repo(top), &mut files);
    }
    // Doc comments of the config and CLI types.
    let mut sources = Vec::new();
    walk(repo("src"), &mut sources);
    let mut problems = Vec::new();
    for path in files.iter().chain(&sources) {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue; // not text
        };
        let is_source = path.extension().is_some_and(|e| e == "rs");
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if is_source && !(trimmed.starts_with("///") || trimmed.starts_with("//!")) {
                continue;
            }
            if let Some(what) = cites_outside(line) {
                problems.push(format!("{}:{}: {what}: {line}", path.display(), number + 1));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The reference in `line` a user cannot follow, if any.
fn cites_outside(line: &str) -> Option<&'static str> {
    let lower = line.to_lowercase();
    let word_at = |text: &str, at: usize, len: usize| {
        let before = text[..at].chars().next_back();
        let after = text[at + len..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    if line
        .match_indices("DESIGN")
        .any(|(at, _)| word_at(line, at, 6))
    {
        return Some("the design notes");
    }
    if lower.contains("seed scenario") {
        return Some("a seed scenario");
    }
    if line.contains("../shared")
        || line.contains("shared/bench")
        || line.contains("shared/fixtures")
    {
        return Some("a folder outside the repository");
    }
    let issue = lower.match_indices("issue ").any(|(at, word)| {
        word_at(&lower, at, 5)
            && lower[at + word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
    });
    issue.then_some("an issue number")
}

#[test]
fn cites_outside_finds_each_kind_of_reference() {
    for line in [
        "see DESIGN §2",
        "one config per DESIGN scenario",
        "# Seed scenario 5, batching",
        "`../shared/bench/gen-audit-log`",
        "input: shared/bench/http-sink",
        "the benchmark of issue 9",
        "(Issue 6)",
    ] {
        assert!(cites_outside(line).is_some(), "{line}");
    }
    for line in [
        "DESIGNER tools",
        "a known issue: the tissue 5",
        "bench/tools/gen-audit-log",
        "scenario: fluentd",
    ] {
        assert!(cites_outside(line).is_none(), "{line}");
    }
}

/// Each example's header says how to run it from a fresh clone: a
/// `cargo run --release -- run -c examples/<itself>` command (a bare
/// `auditrail` is not on a new user's PATH).
#[test]
fn every_example_header_runs_it_from_a_fresh_clone() {
    for path in files("examples", "toml") {
        let text = std::fs::read_to_string(&path).expect("example");
        let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        let name = path.file_name().expect("name").to_string_lossy();
        let command = format!("cargo run --release -- run -c examples/{name}");
        assert!(
            header.iter().any(|l| l.contains(&command)),
            "{name}: the header lacks `{command}`"
        );
        for line in &header {
            let words: Vec<&str> = line.trim_start_matches('#').split_whitespace().collect();
            assert!(
                words.first() != Some(&"auditrail"),
                "{name}: `{}` needs an installed auditrail; use `cargo run --release --`",
                line.trim()
            );
        }
    }
}
