//! SIGHUP reloads while events stream: every event is delivered exactly
//! once and in order, an invalid config is reported and ignored, and a
//! burst of SIGHUPs ends with the last config in effect.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::support::wait_until;
use crate::support::{Agent, Exit, metric};

/// A config whose events say which config version handled them.
fn config(version: &str) -> String {
    format!(
        r#"
data_dir = "{{dir}}"

[api]
listen = "127.0.0.1:0"

[[source]]
name = "in"
type = "stdin"
tag = "audit"

[[filter]]
name = "stamp"
type = "set"
match = "audit"
fields = {{ config = '"{version}"' }}

[[output]]
name = "out"
type = "stdout"
match = "audit"
"#
    )
}

/// Valid TOML, but the `stdout` output has no `colour` key.
const INVALID: &str = r#"
data_dir = "{dir}"

[[source]]
name = "in"
type = "stdin"
tag = "audit"

[[output]]
name = "out"
type = "stdout"
match = "audit"
colour = true
"#;

fn reloads_done(agent: &Agent) -> usize {
    agent.log_count("Config reloaded") + agent.log_count("Rejected the new config")
}

#[test]
fn events_stream_through_five_reloads_exactly_once() {
    let total = 100_000;
    let mut agent = Agent::builder().stdin().start(&config("v0"));
    let api = agent.api();
    // Six segments; segment k+1 is released right after SIGHUP k, so events
    // are flowing through every reload. Lines are padded so a segment is far
    // more than the old pipeline takes over while it stops.
    let segment = total / 6 + 1;
    let (release, released) = std::sync::mpsc::channel::<()>();
    let mut stdin = agent.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let pad = "x".repeat(150);
        for n in 0..total {
            if n > 0 && n % segment == 0 {
                released.recv().expect("release");
            }
            writeln!(stdin, r#"{{"auditID":"{n}","verb":"list","pad":"{pad}"}}"#)
                .expect("write event");
        }
        stdin.flush().expect("flush");
        stdin
    });
    let steps: [(&str, Option<&str>); 5] = [
        ("v1", None),
        ("v2", None),
        ("bad", Some(INVALID)),
        ("v3", None),
        ("v4", None),
    ];
    for (k, (version, text)) in steps.iter().enumerate() {
        // Reload once half of segment k is out.
        let progress = k * segment + segment / 2;
        assert!(
            wait_until(Duration::from_secs(60), || agent.stdout_len() >= progress),
            "stuck at {} events; log:\n{}",
            agent.stdout_len(),
            agent.log()
        );
        match text {
            Some(text) => agent.write_config(text),
            None => agent.write_config(&config(version)),
        }
        agent.signal(libc::SIGHUP);
        release.send(()).expect("writer waits");
        assert!(
            wait_until(Duration::from_secs(60), || reloads_done(&agent) > k),
            "reload {k} ({version}) did not finish; log:\n{}",
            agent.log()
        );
    }
    let stdin = writer.join().expect("writer");
    assert!(
        wait_until(Duration::from_secs(60), || agent.stdout_len() >= total),
        "stuck at {} events",
        agent.stdout_len()
    );
    let (_, text) = crate::support::http_get(api, "/metrics");
    assert_eq!(
        metric(&text, r#"auditrail_config_reloads_total{result="success"}"#),
        4.0
    );
    assert_eq!(
        metric(&text, r#"auditrail_config_reloads_total{result="failure"}"#),
        1.0
    );
    agent.stdin = Some(stdin);
    let log = agent.log();
    let Exit { status, lines, .. } = agent.finish();
    assert!(status.success(), "{status:?}\n{log}");

    // The invalid config was reported with its diagnostic, then ignored.
    assert_eq!(log.matches("Rejected the new config").count(), 1, "{log}");
    assert!(log.contains("colour"), "{log}");
    assert!(log.contains("auditrail.toml:13"), "{log}");

    // Exactly once, in order, each handled by one config after another.
    assert_eq!(lines.len(), total);
    let mut seen = HashSet::new();
    let mut versions: Vec<String> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let event: Value = serde_json::from_str(line).expect("JSON line");
        let id = event["auditID"].as_str().expect("auditID").to_owned();
        assert_eq!(id, n.to_string(), "out of order or missing at line {n}");
        assert!(seen.insert(id), "duplicate at line {n}");
        let version = event["config"].as_str().expect("stamped").to_owned();
        if versions.last() != Some(&version) {
            versions.push(version);
        }
    }
    assert_eq!(versions, ["v0", "v1", "v2", "v3", "v4"]);
}

#[test]
fn a_burst_of_sighups_ends_with_the_last_config_in_effect() {
    let mut agent = Agent::builder().stdin().start(&config("v0"));
    agent.api();
    let mut stdin = agent.stdin.take().expect("stdin");
    writeln!(stdin, r#"{{"auditID":"before"}}"#).expect("write");
    stdin.flush().expect("flush");
    assert!(wait_until(Duration::from_secs(20), || agent.stdout_len() == 1));
    for version in ["v1", "v2", "v3"] {
        agent.write_config(&config(version));
        agent.signal(libc::SIGHUP);
    }
    // Signals that arrive during a reload are coalesced into one more
    // reload, so the last file written is the one that ends up running:
    // probe until an event comes out stamped `v3`.
    let mut probes = 0;
    let reached = wait_until(Duration::from_secs(30), || {
        probes += 1;
        writeln!(stdin, r#"{{"auditID":"probe-{probes}"}}"#).expect("write");
        stdin.flush().expect("flush");
        let want = 1 + probes;
        assert!(wait_until(Duration::from_secs(20), || agent.stdout_len() >= want));
        agent
            .last_line()
            .is_some_and(|line| line.contains(r#""config":"v3""#))
    });
    assert!(reached, "v3 never took effect; log:\n{}", agent.log());
    // "Config reloaded" is logged just after the new pipeline starts, and
    // the log is read by another thread: wait for it.
    assert!(wait_until(Duration::from_secs(10), || agent
        .log_count("Config reloaded")
        >= 1));
    let reloads = agent.log_count("Config reloaded");
    assert!(reloads <= 3, "{reloads} reloads for 3 SIGHUPs");
    writeln!(stdin, r#"{{"auditID":"after"}}"#).expect("write");
    agent.stdin = Some(stdin);
    let Exit { status, lines, .. } = agent.finish();
    assert!(status.success());
    assert_eq!(lines.len(), 2 + probes);
    let after: Value = serde_json::from_str(&lines[1 + probes]).expect("JSON");
    assert_eq!(after["auditID"], "after");
    assert_eq!(after["config"], "v3");
}
