//! Crash safety of legacy request/response joins on a tail source: a request
//! waiting for its response keeps its position unsaved, so kill -9 loses nothing.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Agent, wait_until};

const WAIT: Duration = Duration::from_secs(30);
/// Long enough that no request is emitted unanswered during the test.
const JOIN_TIMEOUT: &str = "1h";

fn config(root: &Path) -> String {
    let root = root.display();
    format!(
        r#"data_dir = "{root}/data"

[[source]]
name = "legacy"
type = "tail"
paths = ["{root}/audit.log"]
tag = "audit"
format = "legacy"
policy = "{root}/policy.yaml"
join_timeout = "{JOIN_TIMEOUT}"
poll_interval = "100ms"
position_flush_interval = "100ms"

[[output]]
name = "out"
type = "stdout"
match = "**"
"#
    )
}

/// A policy recording every request at `Metadata`.
fn write_policy(root: &Path) {
    fs::write(
        root.join("policy.yaml"),
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .expect("policy");
}

/// Starts the agent on the config already in `dir`.
fn start(dir: tempfile::TempDir) -> Agent {
    let config = dir.path().join("auditrail.toml");
    Agent::builder().dir(dir).config_file(&config)
}

fn request(id: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    format!(
        "{now} AUDIT: id=\"{id}\" ip=\"10.0.0.1\" method=\"GET\" user=\"alice\" groups=\"<none>\" as=\"<self>\" asgroups=\"<lookup>\" namespace=\"default\" uri=\"/api/v1/namespaces/default/pods\"\n"
    )
}

fn response(id: &str) -> String {
    let now = chrono::Utc::now().to_rfc3339();
    format!("{now} AUDIT: id=\"{id}\" response=\"200\"\n")
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log")
        .write_all(text.as_bytes())
        .expect("append");
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The ids whose `ResponseComplete` event carries the response line's status.
fn answered(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["stage"] == "ResponseComplete" && e["responseStatus"]["code"] == 200)
        .filter_map(|e| e["auditID"].as_str().map(str::to_owned))
        .collect()
}

/// The saved offset of the tailed file, if positions were saved.
fn saved_offset(dir: &Path) -> Option<u64> {
    let text = fs::read_to_string(dir.join("data/tail/legacy.positions.json")).ok()?;
    let value: Value = serde_json::from_str(&text).ok()?;
    value["files"].as_array()?.first()?["offset"].as_u64()
}

/// Requests read before a kill -9, whose responses are written only after it,
/// come out joined with those responses after the restart: their lines'
/// position was not saved while they waited.
#[test]
fn legacy_requests_waiting_for_responses_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root: PathBuf = dir.path().to_owned();
    let log = root.join("audit.log");
    write_policy(&root);
    fs::write(root.join("auditrail.toml"), config(&root)).expect("config");
    fs::write(&log, "").expect("log");
    let agent = start(dir);

    // A complete pair: once delivered, its position is saved.
    append(&log, &(request("m1") + &response("m1")));
    let end = file_len(&log);
    assert!(
        wait_until(WAIT, || answered(&agent.output().lines())
            .contains(&"m1".to_owned())
            && saved_offset(&root) == Some(end)),
        "the first pair was not delivered and saved; position {:?}",
        saved_offset(&root)
    );

    // Requests without responses yet, then a complete pair read after them.
    let requests_start = file_len(&log);
    let ids = ["r1", "r2", "r3"];
    let requests: String = ids.iter().map(|id| request(id)).collect();
    append(&log, &(requests + &request("m2") + &response("m2")));
    assert!(
        wait_until(WAIT, || answered(&agent.output().lines())
            .contains(&"m2".to_owned())),
        "the pair after the requests was not delivered: the requests were not read"
    );
    // Had the requests' batch settled, the position would pass them within
    // `position_flush_interval`; give it ample time to (wrongly) do so.
    let moved = wait_until(Duration::from_secs(2), || {
        saved_offset(&root).is_some_and(|offset| offset > requests_start)
    });
    assert!(
        !moved,
        "the position was saved past requests still waiting for their responses: {:?} > {requests_start}",
        saved_offset(&root)
    );
    let dir = agent.kill().dir;

    let responses: String = ids.iter().map(|id| response(id)).collect();
    append(&log, &responses);
    let agent = start(dir);
    let all_answered = || {
        let seen = answered(&agent.output().lines());
        ids.iter().all(|id| seen.contains(&(*id).to_owned()))
    };
    assert!(
        wait_until(WAIT, all_answered),
        "requests lost across kill -9; answered after the restart: {:?}",
        answered(&agent.output().lines())
    );
    let exit = agent.stop().assert_success();
    let events: Vec<Value> = exit
        .lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    for id in ids {
        assert!(
            events.iter().any(|e| e["auditID"] == id
                && e["stage"] == "ResponseComplete"
                && e["annotations"]["auditrail.io/legacy-join"].is_null()),
            "`{id}` was not joined with its response"
        );
    }
}

/// Legacy lines join in file order even though the file is read in 1 MiB
/// ranges, with lines straddling them: every response finds its request,
/// however far apart they are, and none is flushed as unanswered early.
#[test]
fn legacy_joins_across_read_ranges_keep_file_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root: PathBuf = dir.path().to_owned();
    let log = root.join("audit.log");
    write_policy(&root);
    let config = config(&root).replace(
        "join_timeout",
        "stop_at_eof = true\nmax_unacked = \"64MiB\"\njoin_timeout",
    );
    fs::write(root.join("auditrail.toml"), config).expect("config");
    // Each response follows its request 300 requests later.
    const PAIRS: usize = 12_000;
    const LAG: usize = 300;
    let id = |n: usize| format!("req-{n}");
    let mut text = String::new();
    let mut responded = Vec::new();
    for n in 0..PAIRS + LAG {
        if n < PAIRS {
            text.push_str(&request(&id(n)));
        }
        if n >= LAG {
            text.push_str(&response(&id(n - LAG)));
            responded.push(id(n - LAG));
        }
    }
    assert!(text.len() > 3 << 20, "spans several ranges");
    fs::write(&log, &text).expect("log");
    let exit = start(dir).wait().assert_success();
    assert_eq!(
        answered(&exit.lines),
        responded,
        "joined in the order of the responses"
    );
}
