//! Every component type's counters add up, once events stop flowing:
//! a source's `in` is what it sent on plus what it dropped; a filter's `in`
//! is its `out` plus its drops (`split` makes more); the router's `in`, with
//! what filters added or dropped, is its `out` plus its own drops; an
//! output's `in` is its `out` plus its drops. The output histograms are
//! recorded for every output that wrote.

use std::io::Write;
use std::time::Duration;

use crate::http_source::{event, event_list, post, raw_request};
use crate::support::{Agent, metric};
use crate::support::{listening_addr, wait_until};
use crate::test_server::TestServer;

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  verbs: ["watch"]
- level: Metadata
"#;

const CONFIG: &str = r#"
data_dir = "{dir}/state"

[api]
listen = "127.0.0.1:0"

[[source]]
name = "in"
type = "stdin"
tag = "audit"

[[source]]
name = "gateway"
type = "tail"
paths = ["{dir}/gateway.log"]
format = "access_json"
policy = "{dir}/policy.yaml"
tag = "gw"

[[source]]
name = "webhook"
type = "http"
listen = "127.0.0.1:0"
tag = "hook"

[[filter]]
name = "route"
type = "rewrite_tag"
match = "audit"
rules = [
  { when = 'kind == "EventList"', tag = "batch" },
  { when = 'verb == "delete"', tag = "parked" },
  { when = 'verb == "watch"', tag = "noise" },
]

[[filter]]
name = "no-gets"
type = "where"
match = "audit"
condition = 'verb != "get"'

[[filter]]
name = "stamp"
type = "set"
match = "audit"
fields = { "cluster" = '"a"' }

[[filter]]
name = "strip"
type = "remove"
match = "audit"
fields = ["requestObject"]

[[filter]]
name = "move"
type = "rename"
match = "audit"
fields = { "userAgent" = "agent" }

[[filter]]
name = "secrets"
type = "redact"
match = "audit"
paths = ["user.extra"]

[[filter]]
name = "explode"
type = "split"
match = "batch"
field = "items"

[[filter]]
name = "hook-policy"
type = "audit_policy"
match = "hook"
policy = "{dir}/policy.yaml"

[[output]]
name = "out"
type = "stdout"
match = "audit"

[[output]]
name = "files"
type = "file"
match = "gw"
path = "{dir}/out/gw.log"

[[output]]
name = "sink"
type = "null"
match = "noise"

[[output]]
name = "forward"
type = "http"
match = "batch"
url = "HTTP_URL"
batch = { max_wait = "100ms" }

[[output]]
name = "es"
type = "elasticsearch"
match = "hook"
endpoints = ["ES_URL"]
"#;

/// The webhook's address, from its `listening on ADDR` log line.
fn wait_for_listener(agent: &Agent) -> std::net::SocketAddr {
    let mut found = None;
    let seen = wait_until(Duration::from_secs(20), || {
        let log = agent.log();
        found = listening_addr(log.lines().filter(|l| !l.contains("api listening")));
        found.is_some()
    });
    assert!(seen, "the webhook did not listen:\n{}", agent.log());
    found.expect("found")
}

fn stdin_event(n: usize, verb: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"s{n}","stage":"ResponseComplete","verb":"{verb}","userAgent":"kubectl","user":{{"username":"alice"}},"requestObject":{{"kind":"Pod"}},"stageTimestamp":"2026-11-22T10:00:00Z"}}"#
    )
}

fn access_record(n: usize, watch: bool) -> String {
    let query = if watch { "?watch=true" } else { "" };
    format!(
        r#"{{"id":"g{n}","time":"2026-11-22T10:00:00Z","method":"GET","uri":"/api/v1/namespaces/default/pods{query}","user":{{"username":"bob"}},"status":200,"completed":"2026-11-22T10:00:01Z"}}"#
    )
}

struct Scrape(String);

impl Scrape {
    fn get(&self, family: &str, component: &str) -> f64 {
        metric(
            &self.0,
            &format!(r#"auditrail_{family}{{component="{component}"}}"#),
        )
    }

    fn dropped(&self, component: &str) -> f64 {
        self.0
            .lines()
            .filter(|line| {
                line.starts_with("auditrail_events_dropped_total{")
                    && line.contains(&format!(r#"component="{component}""#))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn events(&self, component: &str) -> (f64, f64, f64) {
        (
            self.get("events_in_total", component),
            self.get("events_out_total", component),
            self.dropped(component),
        )
    }
}

#[test]
fn counters_add_up_for_every_component_type() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), POLICY).unwrap();
    let server = TestServer::start();
    let config = CONFIG
        .replace("HTTP_URL", &server.url("/audit"))
        .replace("ES_URL", &server.url(""));
    let mut agent = Agent::builder().stdin().dir(dir).start(&config);
    let dir = agent.dir.path().to_owned();

    // stdin: 6 list (kept), 6 get (filtered), 3 delete (parked: unrouted),
    // 3 watch (to the null output), one EventList of 4 items (split into 4,
    // to the http output).
    let mut input = String::new();
    for n in 0..18 {
        let verb = match n % 6 {
            0 | 3 => "get",
            4 => "watch",
            5 => "delete",
            _ => "list",
        };
        input.push_str(&stdin_event(n, verb));
        input.push('\n');
    }
    let items: Vec<String> = (0..4).map(|n| event(&format!("b{n}"))).collect();
    input.push_str(&event_list(&items));
    let mut stdin = agent.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    agent.stdin = Some(stdin);

    // tail: 6 requests, 2 of them watches (level None).
    let records: String = (0..6)
        .map(|n| access_record(n, n % 3 == 0) + "\n")
        .collect();
    std::fs::write(dir.join("gateway.log"), records).unwrap();

    // webhook: 5 events, all kept by the policy, to the elasticsearch output.
    let hook = wait_for_listener(&agent);
    let items: Vec<String> = (0..5).map(|n| event(&format!("h{n}"))).collect();
    let body = event_list(&items);
    let response = raw_request(hook, &post("/", "application/json", body.as_bytes())).unwrap();
    assert_eq!(response.status, 200);

    let mut scrape = Scrape(String::new());
    let settled = wait_until(Duration::from_secs(30), || {
        scrape = Scrape(agent.get("/metrics").1);
        scrape.get("events_out_total", "out") == 6.0
            && scrape.get("events_out_total", "files") == 4.0
            && scrape.get("events_out_total", "sink") == 3.0
            && scrape.get("events_out_total", "forward") == 4.0
            && scrape.get("events_out_total", "es") == 5.0
    });
    assert!(settled, "{}", scrape.0);
    let s = &scrape;

    // Sources: in = sent on + dropped at the source.
    assert_eq!(s.events("in"), (19.0, 0.0, 0.0));
    assert_eq!(
        s.events("gateway"),
        (6.0, 0.0, 2.0),
        "2 watches at level None"
    );
    assert_eq!(s.events("webhook"), (5.0, 0.0, 0.0));
    let sent_on: f64 = ["in", "gateway", "webhook"]
        .iter()
        .map(|c| s.events(c).0 - s.events(c).2)
        .sum();

    // Filters: in = out + dropped, except split, which makes more.
    let filters = [
        "route",
        "no-gets",
        "stamp",
        "strip",
        "move",
        "secrets",
        "explode",
        "hook-policy",
    ];
    let mut added = 0.0;
    for filter in filters {
        let (events_in, events_out, dropped) = s.events(filter);
        assert!(events_in > 0.0, "{filter} saw no events:\n{}", s.0);
        if filter == "explode" {
            assert_eq!((events_in, events_out, dropped), (1.0, 4.0, 0.0));
        } else {
            assert_eq!(events_in, events_out + dropped, "{filter}:\n{}", s.0);
        }
        added += events_out - events_in;
    }
    assert_eq!(s.events("no-gets").2, 6.0, "the gets");

    // Router: what came in, changed by the filters, went out or was dropped.
    let (router_in, router_out, router_dropped) = s.events("router");
    assert_eq!(router_in, sent_on);
    assert_eq!(router_dropped, 3.0, "the parked deletes");
    assert_eq!(router_in + added - router_dropped, router_out);

    // Outputs: in = out + dropped, and the router's out is their in.
    let mut outputs_in = 0.0;
    for output in ["out", "files", "sink", "forward", "es"] {
        let (events_in, events_out, dropped) = s.events(output);
        assert_eq!(events_in, events_out + dropped, "{output}");
        outputs_in += events_in;
        assert!(
            s.get("output_batch_size_events_count", output) > 0.0,
            "{output} recorded no batch size:\n{}",
            s.0
        );
    }
    assert_eq!(router_out, outputs_in);
    for output in ["out", "files", "forward", "es"] {
        assert!(
            s.get("output_latency_seconds_count", output) > 0.0,
            "{output} recorded no latency:\n{}",
            s.0
        );
    }
}
