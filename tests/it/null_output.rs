//! `type = "null"`: events routed to it are acknowledged, so a tail source's
//! saved position reaches the end of the file, and they are counted as sent.

use std::time::Duration;

use crate::support::wait_until;
use crate::support::{Agent, metric};

const CONFIG: &str = r#"
data_dir = "{dir}/data"

[api]
listen = "127.0.0.1:0"

[[source]]
name = "logs"
type = "tail"
paths = ["{dir}/*.log"]
tag = "audit"
refresh_interval = "100ms"
position_flush_interval = "50ms"

[[output]]
name = "drop"
type = "null"
match = "audit"
"#;

fn saved_offset(agent: &Agent) -> u64 {
    let path = agent.dir.path().join("data/tail/logs.positions.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    value["files"][0]["offset"].as_u64().unwrap_or(0)
}

#[test]
fn null_output_acknowledges_and_counts_what_it_drops() {
    let agent = Agent::builder().stdin().start(CONFIG);
    let events = 5_000;
    let text: String = (0..events)
        .map(|n| format!("{{\"auditID\":\"{n}\",\"verb\":\"get\"}}\n"))
        .collect();
    std::fs::write(agent.dir.path().join("audit.log"), &text).expect("write log");

    let size = text.len() as u64;
    assert!(
        wait_until(Duration::from_secs(30), || saved_offset(&agent) == size),
        "position stuck at {} of {size}; log:\n{}",
        saved_offset(&agent),
        agent.log()
    );
    let (_, metrics) = agent.get("/metrics");
    let series = |name: &str| metric(&metrics, &format!(r#"{name}{{component="drop"}}"#));
    assert_eq!(series("auditrail_events_in_total"), f64::from(events));
    assert_eq!(series("auditrail_events_out_total"), f64::from(events));

    let exit = agent.stop().assert_success();
    assert!(exit.lines.is_empty(), "a null output prints nothing");
}
