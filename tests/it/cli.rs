//! The `auditrail` command: run as a pipe filter, check, config default,
//! version, exit codes, and shutdown by signal without losing read events.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{auditrail, data, repo, wait_until};

fn run_pipe(config: &str, input: &[u8]) -> (std::process::ExitStatus, Vec<u8>) {
    let mut child = auditrail()
        .args(["run", "-c"])
        .arg(repo(config))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    (output.status, output.stdout)
}

#[test]
fn stdin_to_stdout_is_byte_for_byte() {
    let input = std::fs::read(data("fixtures/events/audit2rbac-demo-v1.jsonl")).unwrap();
    let (status, stdout) = run_pipe("examples/stdin-to-stdout.toml", &input);
    assert!(status.success());
    assert_eq!(stdout, input);
}

#[test]
fn a_filter_that_changes_nothing_keeps_the_bytes() {
    let input = std::fs::read(data("fixtures/events/openshift-clo-logsamples-v1.jsonl")).unwrap();
    let (status, stdout) = run_pipe("examples/stdin-remove-bodies.toml", &input);
    assert!(status.success());
    let original: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let written: Vec<&[u8]> = stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(original.len(), written.len());
    for (before, after) in original.iter().zip(&written) {
        let has_body = before
            .windows(14)
            .any(|w| w == b"\"requestObject" || w == b"\"responseObjec");
        if has_body {
            let value: serde_json::Value = serde_json::from_slice(after).unwrap();
            assert!(value.get("requestObject").is_none() && value.get("responseObject").is_none());
        } else {
            assert_eq!(before, after, "an event without bodies must pass unchanged");
        }
    }
}

#[test]
fn bad_lines_are_skipped_and_the_rest_delivered() {
    let input = b"{\"a\":1}\nnot json\n\xff\xfe\n[1,2]\n\n{\"b\":2}\n{\"c\":3}";
    let (status, stdout) = run_pipe("examples/stdin-to-stdout.toml", input);
    assert!(status.success());
    assert_eq!(stdout, b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
}

#[test]
fn check_prints_the_routing_graph_for_every_example() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let output = auditrail()
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("sources:") && stdout.contains("outputs:"),
            "{stdout}"
        );
        assert!(!stdout.contains("nothing reaches this output"), "{stdout}");
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn config_default_prints_a_config_that_checks() {
    let output = auditrail().args(["config", "default"]).output().unwrap();
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, &output.stdout).unwrap();
    let check = auditrail()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn version_help_and_usage_errors_have_the_documented_exit_codes() {
    let version = auditrail().arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("auditrail "));
    assert!(auditrail().arg("--help").output().unwrap().status.success());
    assert_eq!(
        auditrail()
            .arg("frobnicate")
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let missing = auditrail()
        .args(["check", "-c", "/nonexistent/auditrail.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/auditrail.toml"));
}

#[test]
fn sigterm_during_a_stream_loses_no_event_that_was_read() {
    let mut child = auditrail()
        .args(["run", "-c"])
        .arg(repo("examples/stdin-to-stdout.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    // Keep stdin open (a live stream) and write a known number of events.
    let sent = 20_000;
    for n in 0..sent {
        writeln!(stdin, r#"{{"auditID":"{n}","stage":"ResponseComplete"}}"#).unwrap();
    }
    stdin.flush().unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // The events were handed to the pipe; give the agent time to read them,
    // then ask it to stop while stdin is still open.
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(format!("/proc/{pid}/fdinfo/0"))
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("pos:")).map(str::to_owned))
            .is_some()
    }));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().unwrap();
    drop(stdin);
    let lines = reader.join().unwrap();
    assert!(status.success(), "{status:?}");
    // Nothing that was read is lost, nothing is duplicated, order is kept.
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(
            line,
            &format!(r#"{{"auditID":"{n}","stage":"ResponseComplete"}}"#)
        );
    }
    assert_eq!(
        lines.len(),
        sent,
        "all events written before SIGTERM were read and delivered"
    );
}

/// `auditrail check ... | head -1` must not panic: a reader that went away
/// is not an error (as in ripgrep), so the command exits 0 and stays quiet.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let mut child = auditrail()
        .args(["check", "-c"])
        .arg(repo("conf/auditrail.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A component that cannot start is reported as a diagnostic at its table
/// (exit 1), never after a "stopped cleanly" line.
#[test]
fn a_start_failure_points_at_the_component() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auditrail.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nname = \"webhook\"\ntype = \"http\"\nlisten = \"{addr}\"\n\n[[output]]\ntype = \"null\"\nmatch = \"**\"\n"
        ),
    )
    .unwrap();
    let output = auditrail()
        .args(["run", "-c"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: `webhook` failed to start: failed to listen on `{addr}`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--> {}:3:8", config.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("stopped cleanly"), "{stderr}");
}

/// An agent whose only output cannot deliver (nothing listens at its URL).
const UNDELIVERABLE: &str = r#"
data_dir = "{dir}"
shutdown_timeout = "SHUTDOWN"

[[source]]
type = "stdin"
tag = "audit"

[[output]]
name = "hook"
type = "http"
match = "**"
url = "http://127.0.0.1:1/audit"
batch = { mode = "blocking" }
"#;

/// Starts the undeliverable agent and feeds it 20 events, which the
/// output takes and keeps retrying.
fn stuck_agent(shutdown_timeout: &str) -> crate::support::Agent {
    let config = UNDELIVERABLE.replace("SHUTDOWN", shutdown_timeout);
    let mut agent = crate::support::Agent::builder().stdin().start(&config);
    let mut stdin = agent.stdin.take().unwrap();
    for n in 0..20 {
        writeln!(
            stdin,
            r#"{{"kind":"Event","auditID":"e{n}","stage":"ResponseComplete"}}"#
        )
        .unwrap();
    }
    stdin.flush().unwrap();
    agent.stdin = Some(stdin);
    assert!(
        wait_until(Duration::from_secs(60), || agent
            .log()
            .contains("will be retried")),
        "{}",
        agent.log()
    );
    agent
}

/// A second SIGTERM during the drain exits at once (status 1), saying how
/// many events each output had not delivered.
#[test]
fn a_second_sigterm_exits_at_once_and_reports_what_is_undelivered() {
    let mut agent = stuck_agent("5m");
    agent.signal(libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(20), || agent
        .log()
        .contains("Send SIGTERM or SIGINT again to exit at once.")));
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("Received SIGTERM again: exiting now. Events not yet delivered: hook: 20."),
        "{log}"
    );
    assert!(!log.contains("stopped cleanly"), "{log}");
}

/// When `shutdown_timeout` passes, the agent says what it could not deliver.
#[test]
fn the_shutdown_timeout_reports_what_is_undelivered() {
    let mut agent = stuck_agent("1s");
    agent.signal(libc::SIGINT);
    let status = agent.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    assert!(log.contains("for at most 1s (`shutdown_timeout`)"), "{log}");
    assert!(log.contains("Events not yet delivered: hook: 20."), "{log}");
    assert!(
        log.contains("outputs did not finish flushing within the shutdown timeout of 1s"),
        "{log}"
    );
}
