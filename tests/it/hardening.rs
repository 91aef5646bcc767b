//! Hostile event content: values that become tags, file names and memory
//! are bounded and made safe, and no event is lost to them.

use std::io::Write;
use std::time::Duration;

use crate::live::{LiveAgent, metric};
use crate::support::wait_until;

const RETAG: &str = r#"
data_dir = "{dir}"

[api]
listen = "127.0.0.1:0"

[[source]]
type = "stdin"
tag = "audit"

[[filter]]
type = "rewrite_tag"
match = "audit"
tag = 'audit.${objectRef.namespace ?? "none"}'

[[output]]
name = "out"
type = "stdout"
match = "audit.**"
"#;

fn event_in(namespace: &str) -> String {
    let value = serde_json::json!({
        "kind": "Event",
        "auditID": "x",
        "stage": "ResponseComplete",
        "objectRef": {"namespace": namespace},
    });
    format!("{value}\n")
}

/// A newline in a value that becomes a tag neither loses the event (the
/// tag still matches `audit.**`) nor forges a line in the agent's log; a
/// huge value makes a bounded tag.
#[test]
fn control_characters_and_huge_values_in_tags_are_made_safe() {
    let mut agent = LiveAgent::start(RETAG, &[]);
    let forged = "ns\n2026-01-01T00:00:00Z ERROR forged line";
    let mut stdin = agent.stdin.take().unwrap();
    stdin.write_all(event_in(forged).as_bytes()).unwrap();
    stdin
        .write_all(event_in(&"n".repeat(1 << 20)).as_bytes())
        .unwrap();
    stdin.flush().unwrap();
    agent.stdin = Some(stdin);
    assert!(wait_until(Duration::from_secs(20), || agent.stdout_len() == 2));
    let (_, text) = agent.get("/metrics");
    assert_eq!(
        metric(
            &text,
            r#"auditrail_events_dropped_total{component="router",reason="unrouted"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(&text, r#"auditrail_events_out_total{component="out"}"#),
        2.0
    );
    let (status, _) = agent.finish();
    assert!(status.success());
}
