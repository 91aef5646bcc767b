//! Hostile event content: values that become tags, file names and memory
//! are bounded and made safe, and no event is lost to them.

use std::io::Write;
use std::time::Duration;

use crate::support::wait_until;
use crate::support::{Agent, metric};

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
    let mut agent = Agent::builder().stdin().start(RETAG);
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
    let status = agent.finish().status;
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
    let mut agent = Agent::builder().stdin().start(config);
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
    let status = agent.finish().status;
    assert!(status.success());
}

/// An `auditID` of 1 MiB is never remembered by the dedupe window (its
/// memory stays bounded), so a resend of it is delivered again rather than
/// taken for a duplicate; an ordinary one is.
#[test]
fn the_dedupe_window_does_not_remember_huge_audit_ids() {
    use crate::http_source::{Output, config, event_list, post, raw_request, start};
    let dir = tempfile::tempdir().unwrap();
    let output = Output::default();
    let (agent, addr) = start(
        dir,
        &config(r#"dedupe_window = { max_age = "10m" }"#),
        &output,
    );
    let huge = format!(
        r#"{{"kind":"Event","auditID":"{}","stage":"ResponseComplete"}}"#,
        "x".repeat(1 << 20)
    );
    let small = r#"{"kind":"Event","auditID":"a1","stage":"ResponseComplete"}"#;
    let body = event_list(&[huge.as_str(), small]);
    for _ in 0..2 {
        let sent = raw_request(addr, &post("/", "application/json", body.as_bytes()));
        assert_eq!(sent.unwrap().status, 200);
    }
    assert!(output.wait_for(3, Duration::from_secs(30)));
    agent.stop().assert_success();
    let lines = output.lines();
    assert_eq!(lines.len(), 3, "the huge event twice, the small one once");
    assert_eq!(lines.iter().filter(|l| l.len() > 1 << 20).count(), 2);
}

/// A symlink planted where the position file's temporary file used to be
/// written is neither followed nor truncated.
#[test]
fn the_position_file_is_not_written_through_a_planted_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/tail");
    std::fs::create_dir_all(&state).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, state.join("apiserver.positions.json.tmp")).unwrap();
    std::fs::write(dir.path().join("audit.log"), event_in("default")).unwrap();
    let config = r#"
data_dir = "{dir}/state"

[[source]]
name = "apiserver"
type = "tail"
paths = ["{dir}/audit.log"]
stop_at_eof = true

[[output]]
type = "null"
match = "**"
"#;
    let mut agent = Agent::builder().stdin().dir(dir).start(config);
    drop(agent.stdin.take());
    assert!(agent.wait_exit().success(), "{}", agent.log());
    let dir = agent.dir.path();
    assert_eq!(
        std::fs::read_to_string(dir.join("victim")).unwrap(),
        "precious\n"
    );
    let positions = dir.join("state/tail/apiserver.positions.json");
    assert!(std::fs::symlink_metadata(&positions).unwrap().is_file());
    assert!(
        std::fs::read_to_string(positions)
            .unwrap()
            .contains("audit.log")
    );
}
