//! The fluentd and logstash seed scenarios, run from `examples/` with their
//! sample input through the real binary, plus DSL errors as users see them.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::support::{auditrail, repo};

/// Runs `auditrail run -c <example>` with `<input>` on stdin; returns the
/// records it printed.
fn run_example(config: &str, input: &str) -> Vec<Value> {
    let stdin = std::fs::File::open(repo(input)).expect("example input exists");
    let output = auditrail()
        .args(["run", "-c"])
        .arg(repo(config))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run auditrail");
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect()
}

fn input_events(input: &str) -> Vec<Value> {
    std::fs::read_to_string(repo(input))
        .expect("example input exists")
        .lines()
        .map(|line| serde_json::from_str(line).expect("input is JSON lines"))
        .collect()
}

fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// Every event is retagged `audit.<namespace>`, `audit.none` without one,
/// and none is lost.
#[test]
fn fluentd_example_tags_events_by_namespace() {
    let input = input_events("examples/data/fluentd-audit.jsonl");
    let output = run_example(
        "examples/fluentd-namespace-tags.toml",
        "examples/data/fluentd-audit.jsonl",
    );
    assert_eq!(output.len(), input.len());
    let mut per_tag: BTreeMap<String, usize> = BTreeMap::new();
    for event in &output {
        let namespace = text(event, "/objectRef/namespace").unwrap_or("none");
        let tag = text(event, "/routed_tag").expect("routed_tag was set");
        assert_eq!(tag, format!("audit.{namespace}"));
        *per_tag.entry(tag.to_owned()).or_default() += 1;
    }
    assert_eq!(per_tag.get("audit.none"), Some(&4));
    assert_eq!(per_tag.get("audit.kube-system"), Some(&4));
    // Same events, same order: only the tag field was added.
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| text(e, "/auditID").unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(ids(&output), ids(&input));
}

/// Each `EventList` is split into its items, and each item is routed on
/// `user.username`.
#[test]
fn logstash_example_splits_event_lists_and_routes_by_user() {
    let lists = input_events("examples/data/webhook-eventlists.jsonl");
    let items: Vec<&Value> = lists
        .iter()
        .flat_map(|list| list["items"].as_array().expect("items").iter())
        .collect();
    let output = run_example(
        "examples/logstash-webhook-users.toml",
        "examples/data/webhook-eventlists.jsonl",
    );
    assert_eq!(output.len(), items.len());
    for event in &output {
        let username = text(event, "/user/username").expect("items have a user");
        let tag = text(event, "/routed_tag").expect("routed_tag was set");
        let want = if let Some(sa) = username.strip_prefix("system:serviceaccount:") {
            let (namespace, name) = sa.split_once(':').expect("namespace:name");
            format!("user.sa.{namespace}.{name}")
        } else if username.starts_with("system:node:") {
            "user.nodes".to_owned()
        } else {
            format!("user.{username}")
        };
        assert_eq!(tag, want);
        assert_eq!(event.get("kind").and_then(Value::as_str), Some("Event"));
    }
}

/// A DSL mistake in a filter is a config error at the exact line and
/// column, saying what was expected and what was found.
#[test]
fn dsl_errors_point_at_file_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("auditrail.toml");
    std::fs::write(
        &config,
        r#"[[source]]
type = "stdin"
tag = "audit"

[[filter]]
type = "rewrite_tag"
match = "audit"
tag = 'audit.${objectRef.namespace ?? }'

[[output]]
type = "stdout"
match = "audit.**"
"#,
    )
    .expect("write config");
    let output = Command::new(super::support::BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("run auditrail check");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: expected an expression after `??`"),
        "{stderr}"
    );
    assert!(stderr.contains("auditrail.toml:8:39"), "{stderr}");
    assert!(stderr.contains("^ found `}`"), "{stderr}");
}
