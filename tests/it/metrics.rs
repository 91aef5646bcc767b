//! `[api]`: `/metrics` scraped while events flow adds up (in = out +
//! dropped, by reason) against what the test sent; `/healthz`, `/readyz`.

use std::io::Write;
use std::time::Duration;

use crate::support::wait_until;
use crate::support::{Agent, Exit, metric};

const CONFIG: &str = r#"
data_dir = "{dir}"

[api]
listen = "127.0.0.1:0"

[[source]]
name = "in"
type = "stdin"
tag = "audit"

[[filter]]
name = "no-reads"
type = "where"
match = "audit"
condition = 'verb != "get"'

[[filter]]
name = "park-deletes"
type = "rewrite_tag"
match = "audit"
rules = [{ when = 'verb == "delete"', tag = "parked" }]

[[output]]
name = "out"
type = "stdout"
match = "audit"
"#;

/// Every fourth event is a `get` (dropped by `where`), every fourth a
/// `delete` (retagged to a tag no output takes: unrouted), the rest `list`.
fn event(n: usize) -> String {
    let verb = match n % 4 {
        2 => "get",
        3 => "delete",
        _ => "list",
    };
    format!(r#"{{"auditID":"{n}","verb":"{verb}"}}"#)
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    read: f64,
    taken: f64,
    written: f64,
    filtered: f64,
    unrouted: f64,
}

fn counts(text: &str) -> Counts {
    Counts {
        read: metric(text, r#"auditrail_events_in_total{component="in"}"#),
        taken: metric(text, r#"auditrail_events_in_total{component="out"}"#),
        written: metric(text, r#"auditrail_events_out_total{component="out"}"#),
        filtered: metric(
            text,
            r#"auditrail_events_dropped_total{component="no-reads",reason="filtered"}"#,
        ),
        unrouted: metric(
            text,
            r#"auditrail_events_dropped_total{component="router",reason="unrouted"}"#,
        ),
    }
}

fn expected(sent: usize) -> Counts {
    let quarter = |r: usize| (0..sent).filter(|n| n % 4 == r).count() as f64;
    let delivered = quarter(0) + quarter(1);
    Counts {
        read: sent as f64,
        taken: delivered,
        written: delivered,
        filtered: quarter(2),
        unrouted: quarter(3),
    }
}

/// Scrapes until the counters reach `want`, checking on every scrape that
/// nothing was counted twice (out + dropped never exceeds in) and that no
/// counter goes backwards.
fn scrape_until(agent: &Agent, want: Counts, last: &mut Counts) -> usize {
    let mut scrapes = 0;
    let reached = wait_until(Duration::from_secs(60), || {
        let (status, text) = agent.get("/metrics");
        assert_eq!(status, 200);
        let now = counts(&text);
        scrapes += 1;
        assert!(
            now.written + now.filtered + now.unrouted <= now.read,
            "more events left than came in: {now:?}"
        );
        for (before, after) in [
            (last.read, now.read),
            (last.written, now.written),
            (last.filtered, now.filtered),
            (last.unrouted, now.unrouted),
        ] {
            assert!(
                after >= before,
                "a counter went backwards: {last:?} -> {now:?}"
            );
        }
        *last = now;
        now == want
    });
    assert!(
        reached,
        "counters stuck at {last:?}, want {want:?}; log:\n{}",
        agent.log()
    );
    scrapes
}

#[test]
fn counters_add_up_while_events_flow() {
    let mut agent = Agent::builder().stdin().start(CONFIG);
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_owned()));
    assert!(wait_until(Duration::from_secs(20), || agent
        .get("/readyz")
        .0
        == 200));

    let first = 20_000;
    let mut stdin = agent.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for n in 0..first {
            writeln!(stdin, "{}", event(n)).expect("write event");
        }
        stdin.flush().expect("flush");
        stdin
    });
    let mut last = Counts::default();
    let scrapes = scrape_until(&agent, expected(first), &mut last);
    assert!(scrapes >= 1);
    let mut stdin = writer.join().expect("writer");

    let (_, text) = agent.get("/metrics");
    assert!(
        text.contains(r#"auditrail_output_buffer_capacity_batches{component="out"} "#),
        "{text}"
    );
    assert!(text.contains("auditrail_build_info{version="), "{text}");

    // More events on the same stream: the counters keep adding up.
    let total = first + 1_001;
    for n in first..total {
        writeln!(stdin, "{}", event(n)).expect("write event");
    }
    stdin.flush().expect("flush");
    scrape_until(&agent, expected(total), &mut last);

    agent.stdin = Some(stdin);
    let Exit { status, lines, .. } = agent.finish();
    assert!(status.success(), "{status:?}");
    assert_eq!(lines.len() as f64, expected(total).written);
    assert!(lines.iter().all(|line| line.contains(r#""verb":"list""#)));
}

/// After a reload `/readyz` is ready again, the reload is counted, and
/// `/healthz` answers throughout.
#[test]
fn readyz_is_ready_again_after_a_reload_and_the_reload_is_counted() {
    let agent = Agent::builder().stdin().start(CONFIG);
    assert!(wait_until(Duration::from_secs(20), || agent.get("/readyz")
        == (200, "ready\n".to_owned())));
    agent.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(20), || agent
        .log()
        .contains("Config reloaded")));
    assert_eq!(agent.get("/readyz"), (200, "ready\n".to_owned()));
    let (_, text) = agent.get("/metrics");
    assert_eq!(
        metric(&text, r#"auditrail_config_reloads_total{result="success"}"#),
        1.0
    );
    assert_eq!(agent.get("/healthz").0, 200);
}

/// A tail glob that matches nothing is warned about with the glob and shown
/// in `auditrail_tail_globs_unmatched` until a file appears; the tail
/// counters go on across a reload instead of starting again from 0.
#[test]
fn unmatched_globs_are_reported_and_tail_counters_survive_a_reload() {
    let config = r#"
data_dir = "{dir}/state"

[api]
listen = "127.0.0.1:0"

[[source]]
name = "apiserver"
type = "tail"
paths = ["{dir}/logs/*.log"]
refresh_interval = "100ms"

[[output]]
name = "out"
type = "stdout"
match = "**"
"#;
    let agent = Agent::builder().stdin().start(config);
    let glob = agent.dir.path().join("logs/*.log");
    let unmatched = r#"auditrail_tail_globs_unmatched{component="apiserver"}"#;
    let bytes_read = r#"auditrail_tail_bytes_read_total{component="apiserver"}"#;
    assert!(wait_until(Duration::from_secs(20), || agent
        .log()
        .contains(&format!(
            "matches no file: directory `{}` does not exist",
            agent.dir.path().join("logs").display()
        ))));
    assert!(agent.log().contains(&glob.display().to_string()));
    assert_eq!(metric(&agent.get("/metrics").1, unmatched), 1.0);

    std::fs::create_dir(agent.dir.path().join("logs")).unwrap();
    let line = r#"{"kind":"Event","auditID":"a1","stage":"ResponseComplete","verb":"get"}"#;
    std::fs::write(agent.dir.path().join("logs/audit.log"), format!("{line}\n")).unwrap();
    assert!(wait_until(Duration::from_secs(20), || agent.stdout_len() == 1));
    let (_, text) = agent.get("/metrics");
    assert_eq!(metric(&text, unmatched), 0.0);
    let before = metric(&text, bytes_read);
    assert_eq!(before, (line.len() + 1) as f64);

    agent.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(20), || agent
        .log()
        .contains("Config reloaded")));
    assert!(wait_until(Duration::from_secs(20), || {
        metric(&agent.get("/metrics").1, bytes_read) >= before
    }));
    assert_eq!(metric(&agent.get("/metrics").1, bytes_read), before);
}

/// Idle connections to `[api]` are closed after its `header_read_timeout`
/// and at most `max_connections` are served at once, so scrapers that hang
/// cannot use up the agent's file descriptors.
#[test]
fn idle_api_connections_are_closed_and_capped() {
    use std::io::Read;
    let config = r#"
data_dir = "{dir}"

[api]
listen = "127.0.0.1:0"
header_read_timeout = "1s"
max_connections = 2

[[source]]
type = "stdin"

[[output]]
type = "null"
match = "**"
"#;
    let agent = Agent::builder().stdin().start(config);
    let api = agent.api();
    let mut idle: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(api).unwrap())
        .collect();
    // Two are served (and closed once idle for 1s), the others wait in the
    // backlog and are then served and closed in turn.
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        let closed = stream.read_to_end(&mut rest);
        assert!(closed.is_ok(), "an idle connection stayed open: {closed:?}");
    }
    assert_eq!(agent.get("/healthz"), (200, "ok\n".to_owned()));
}
