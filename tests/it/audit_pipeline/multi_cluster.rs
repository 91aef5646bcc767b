//! DESIGN scenario 8 from `examples/multi-cluster.toml`: three tailed clusters, each
//! with its own format, policy and tag, into one file per cluster and day. The live
//! tail path must give exactly the Events the offline `auditrail audit` gives.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Agent, auditrail, read_lines, repo, wait_until};

/// Every line of the output files of one tag (one file per day), sorted.
fn lines_of(dir: &std::path::Path, tag: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{tag}.")) {
            lines.extend(read_lines(&entry.path()));
        }
    }
    lines.sort();
    lines
}

fn offline(policy: &str, format: &str, input: &str) -> Vec<String> {
    let out = auditrail()
        .current_dir(repo(""))
        .args(["audit", "--policy", policy, "--format", format, input])
        .output()
        .expect("run auditrail audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The record without an `id` gets a fresh auditID on each run: compare without it.
fn without_minted_ids(lines: &[String]) -> Vec<Value> {
    let mut values: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    for value in &mut values {
        if !value["auditID"]
            .as_str()
            .unwrap_or("")
            .starts_with("0b7c6f1e-")
        {
            value["auditID"] = Value::from("<minted>");
        }
    }
    values.sort_by_key(ToString::to_string);
    values
}

#[test]
fn multi_cluster_example_audits_each_cluster_with_its_own_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (cluster, file, input) in [
        ("prod", "audit.log", "examples/data/legacy-audit.log"),
        (
            "staging",
            "access.log",
            "examples/data/access-records.jsonl",
        ),
        ("dev", "audit.log", "examples/data/audit-events.jsonl"),
    ] {
        let target = dir.path().join("clusters").join(cluster);
        std::fs::create_dir_all(&target).expect("mkdir");
        std::fs::copy(repo(input), target.join(file)).expect("copy input");
    }
    let config = std::fs::read_to_string(repo("examples/multi-cluster.toml"))
        .expect("example")
        .replace(
            "examples/data/legacy-audit.log",
            "{dir}/clusters/prod/audit.log",
        )
        .replace(
            "examples/data/access-records.jsonl",
            "{dir}/clusters/staging/access.log",
        )
        .replace(
            "examples/data/audit-events.jsonl",
            "{dir}/clusters/dev/audit.log",
        )
        .replace("out/multi-cluster/data", "{dir}/data")
        .replace("out/multi-cluster", "{dir}/out")
        // Follow the files as a service does; the test stops the agent.
        .replace("stop_at_eof = true\n", "")
        // The unanswered legacy request is emitted after join_timeout of quiet.
        .replace("join_timeout = \"10s\"", "join_timeout = \"1s\"");
    let prod_expected = offline(
        "conf/policies/gce-configure-helper-master-audit-policy.yaml",
        "legacy",
        "examples/data/legacy-audit.log",
    );
    let staging_expected = offline(
        "conf/policies/k8s-website-example-audit-policy.yaml",
        "access_json",
        "examples/data/access-records.jsonl",
    );
    // The dev events are admin reads, Metadata under the GCE policy as they
    // already are: the filter passes them byte for byte.
    let mut dev_expected = read_lines(&repo("examples/data/audit-events.jsonl"));
    dev_expected.sort();
    assert!(!prod_expected.is_empty() && !staging_expected.is_empty());
    let agent = Agent::start_in(dir, &config);
    let out = agent.path("out");
    let complete = wait_until(Duration::from_secs(20), || {
        lines_of(&out, "audit.prod").len() == prod_expected.len()
            && lines_of(&out, "audit.staging").len() == staging_expected.len()
            && lines_of(&out, "audit.dev").len() == dev_expected.len()
    });
    // Read before stopping: the agent's directory goes with it.
    let (prod, staging, dev) = (
        lines_of(&out, "audit.prod"),
        lines_of(&out, "audit.staging"),
        lines_of(&out, "audit.dev"),
    );
    let status = agent.stop();
    assert!(status.success());
    assert!(complete, "outputs never reached the expected counts");
    assert_eq!(prod, prod_expected);
    assert_eq!(
        without_minted_ids(&staging),
        without_minted_ids(&staging_expected)
    );
    assert_eq!(dev, dev_expected);
}
