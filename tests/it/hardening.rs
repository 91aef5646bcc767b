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

/// Events for more distinct files than `max_files` go to the overflow file,
/// counted; none is lost.
#[test]
fn distinct_files_are_capped_with_an_overflow_file() {
    let config = r#"
data_dir = "{dir}"

[api]
listen = "127.0.0.1:0"

[[source]]
type = "stdin"
tag = "audit"

[[output]]
name = "files"
type = "file"
match = "**"
path = '{dir}/out/${objectRef.namespace}.log'
max_files = 3
"#;
    let mut agent = LiveAgent::start(config, &[]);
    let dir = agent.dir.path().to_owned();
    let mut stdin = agent.stdin.take().unwrap();
    for n in 0..10 {
        for _ in 0..5 {
            stdin
                .write_all(event_in(&format!("ns{n}")).as_bytes())
                .unwrap();
        }
    }
    stdin.flush().unwrap();
    agent.stdin = Some(stdin);
    let out = r#"auditrail_events_out_total{component="files"}"#;
    assert!(wait_until(Duration::from_secs(20), || metric(
        &agent.get("/metrics").1,
        out
    ) == 50.0));
    let (_, text) = agent.get("/metrics");
    assert_eq!(
        metric(
            &text,
            r#"auditrail_file_overflow_events_total{component="files"}"#
        ),
        35.0
    );
    assert!(agent.log().contains("go to its overflow file"));
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ns0.log", "ns1.log", "ns2.log", "overflow.log"]);
    let overflow = std::fs::read_to_string(dir.join("out/overflow.log")).unwrap();
    assert_eq!(overflow.lines().count(), 35);
    let (status, _) = agent.finish();
    assert!(status.success());
}
