//! The DESIGN.md seed scenarios, run as users run them: each example in
//! `examples/` is copied with `examples/data/` into a temp dir and run
//! there by the real binary, so its relative paths (`out/...`) resolve in
//! the temp dir; outputs are compared exactly with the sample input.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

use super::http_source::{post, raw_request};
use super::support::{Agent, auditrail, repo, wait_until};
use super::test_server::{Mode, TestServer};

const WAIT: Duration = Duration::from_secs(60);

/// An example and a copy of `examples/data/` in a temp dir.
struct Example {
    dir: tempfile::TempDir,
    /// The config, relative to `dir`.
    config: String,
}

impl Example {
    /// Copies `examples/<name>` (changed by `edit`) and `examples/data/`.
    fn copy(name: &str, edit: impl FnOnce(String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("examples/data");
        std::fs::create_dir_all(&data).expect("mkdir");
        for entry in std::fs::read_dir(repo("examples/data")).expect("examples/data") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, data.join(path.file_name().expect("name"))).expect("copy");
        }
        let config = format!("examples/{name}");
        let text = std::fs::read_to_string(repo(&config)).expect("example");
        std::fs::write(dir.path().join(&config), edit(text)).expect("write example");
        Self { dir, config }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `auditrail run -c examples/<name>` in the temp dir.
    fn command(&self) -> Command {
        let mut cmd = auditrail();
        cmd.current_dir(self.dir.path())
            .args(["run", "-c", &self.config]);
        cmd
    }

    /// Runs the example to its end, with `stdin` (relative to the temp
    /// dir) as input; returns what it wrote to stdout.
    fn run_to_end(&self, stdin: Option<&str>) -> Vec<u8> {
        let stdin = match stdin {
            Some(path) => Stdio::from(std::fs::File::open(self.path(path)).expect("input")),
            None => Stdio::null(),
        };
        let mut child = self
            .command()
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start auditrail");
        let stdout = read_all(child.stdout.take().expect("stdout"));
        let stderr = read_all(child.stderr.take().expect("stderr"));
        let status = wait_exit(&mut child);
        let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
        assert!(status.success(), "{}: exit {status}\n{stderr}", self.config);
        stdout.join().expect("stdout reader")
    }
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let mut status = None;
    if !wait_until(WAIT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    }) {
        let _ = child.kill();
        panic!("the agent did not exit within {WAIT:?}");
    }
    status.expect("exited")
}

/// The bundled sample: 500 events, one JSON object per line.
fn sample_lines() -> Vec<String> {
    std::fs::read_to_string(repo("examples/data/audit.log"))
        .expect("sample")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).expect("JSON")
}

fn namespace(event: &Value) -> String {
    event
        .pointer("/objectRef/namespace")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_owned()
}

/// Every file below `dir` (relative name -> bytes, gzip decompressed).
fn files_below(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            let text = if path.extension().is_some_and(|e| e == "gz") {
                let mut text = String::new();
                flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_string(&mut text)
                    .expect("valid gzip");
                text
            } else {
                String::from_utf8(bytes).expect("UTF-8")
            };
            let name = path.strip_prefix(dir).expect("below dir");
            out.insert(name.display().to_string(), text);
        }
    }
    out
}

/// Scenario 1: tail -> rewrite_tag `audit.<namespace>` -> hourly gzip files.
/// The run ends on its own (`stop_at_eof`), every event is in its
/// namespace's file in input order, the position covers the whole file,
/// and a second run writes nothing new.
#[test]
fn fluentd_example_tails_to_hourly_gzip_files_per_namespace() {
    let example = Example::copy("fluentd-namespace-files.toml", |text| text);
    example.run_to_end(None);

    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for line in sample_lines() {
        let event = json(&line);
        let stamp = event["stageTimestamp"].as_str().expect("stageTimestamp");
        // `2024-05-14T09:...Z` -> `2024051409` (the sample is in UTC).
        let hour: String = [&stamp[0..4], &stamp[5..7], &stamp[8..10], &stamp[11..13]].concat();
        let name = format!("audit-audit.{}.{hour}.log.gz", namespace(&event));
        expected.entry(name).or_default().push_str(&(line + "\n"));
    }
    let out = example.path("out/fluentd");
    let written: BTreeMap<String, String> = files_below(&out)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("data/"))
        .collect();
    assert!(expected.len() > 20, "the sample spans many namespaces");
    assert_eq!(written, expected);

    let positions = json(
        &std::fs::read_to_string(out.join("data/tail/apiserver.positions.json"))
            .expect("positions saved"),
    );
    let size = std::fs::metadata(example.path("examples/data/audit.log"))
        .expect("sample")
        .len();
    assert_eq!(positions["files"][0]["offset"].as_u64(), Some(size));

    example.run_to_end(None);
    let again: BTreeMap<String, String> = files_below(&out)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("data/"))
        .collect();
    assert_eq!(again, expected, "the second run resumed at the end");
}

/// A running example with an `http` source on a free port, and its address.
fn start_listening(example: &Example) -> (Agent, SocketAddr) {
    let mut agent = Agent::builder().spawn(example.command());
    let addr = agent.listening();
    (agent, addr)
}

#[derive(serde::Deserialize)]
struct EventList<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// Scenario 2: webhook `EventList`s -> one file per user. Every item is
/// written byte for byte to `out/kube-audit-<username>/audit`, in order,
/// and a hostile user name cannot leave `out/`.
#[test]
fn logstash_example_writes_webhook_events_to_one_file_per_user() {
    let example = Example::copy("logstash-webhook-users.toml", |text| {
        assert!(text.contains(r#"listen = "127.0.0.1:8888""#));
        text.replace(r#"listen = "127.0.0.1:8888""#, r#"listen = "127.0.0.1:0""#)
    });
    let (agent, addr) = start_listening(&example);
    let hostile = r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"kind":"Event","auditID":"x1","stage":"ResponseComplete","user":{"username":"../../escape/me"},"stageTimestamp":"2024-05-14T09:00:01Z"}]}"#;
    let bodies =
        std::fs::read_to_string(repo("examples/data/webhook-eventlists.jsonl")).expect("fixture");
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    // One at a time: each answers 200 once its events are in their files,
    // so the files keep the input order.
    for body in bodies.lines().chain([hostile]) {
        let response = raw_request(addr, &post("/audit", "application/json", body.as_bytes()))
            .expect("request");
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let list: EventList<'_> = serde_json::from_str(body).expect("an EventList");
        for item in list.items {
            let user = json(item.get())["user"]["username"]
                .as_str()
                .expect("username")
                .to_owned();
            // The one hostile name, sanitised: leading dots and `/` -> `_`.
            let user = user.replace("../../escape/me", "___.._escape_me");
            let file = format!("kube-audit-{user}/audit");
            expected
                .entry(file)
                .or_default()
                .push_str(&format!("{}\n", item.get()));
        }
    }
    agent.stop().assert_success();
    let written: BTreeMap<String, String> = files_below(&example.path("out"))
        .into_iter()
        .filter(|(name, _)| !name.starts_with("logstash/"))
        .collect();
    assert!(expected.len() > 10, "the fixture holds many users");
    assert_eq!(written, expected);
}

/// Scenario 3: `path = "-"` is stdout byte for byte, and the rotated file
/// output keeps `max_backups` backups under `max_size`, holding the newest
/// events in order.
#[test]
fn log_backend_example_writes_stdout_and_rotates_and_prunes() {
    let example = Example::copy("log-backend-rotation.toml", |text| text);
    let stdout = example.run_to_end(Some("examples/data/audit.log"));
    let input = std::fs::read_to_string(repo("examples/data/audit.log")).expect("sample");
    assert!(stdout == input.as_bytes(), "stdout differs from the input");

    let files = files_below(&example.path("out/log-backend"));
    let mut backups: Vec<&String> = files
        .keys()
        .filter(|name| name.starts_with("audit-") && name.ends_with(".log"))
        .collect();
    backups.sort();
    assert_eq!(backups.len(), 3, "max_backups = 3: {:?}", files.keys());
    let mut kept = String::new();
    for name in backups.iter().copied().chain([&"audit.log".to_owned()]) {
        let text = &files[name];
        assert!(text.len() <= 128 * 1024, "{name} is over max_size");
        kept.push_str(text);
    }
    assert!(kept.len() < input.len(), "older backups were pruned");
    let dropped = &input[..input.len() - kept.len()];
    assert!(input.ends_with(&kept) && dropped.ends_with('\n'));
}

/// Scenario 4: the http output, configured by the bundled kubeconfig,
/// POSTs `EventList`s with its token to its server and retries a failure
/// after `initial_backoff` until every event is delivered.
#[test]
fn webhook_backend_example_forwards_event_lists_by_kubeconfig() {
    let server = TestServer::start();
    server.set_mode(Mode::Status(503, None));
    let example = Example::copy("webhook-backend-kubeconfig.toml", |text| text);
    let kubeconfig = example.path("examples/data/webhook-kubeconfig.yaml");
    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(text.contains("http://127.0.0.1:8888"));
    std::fs::write(
        &kubeconfig,
        text.replace("http://127.0.0.1:8888", &server.url("")),
    )
    .expect("write kubeconfig");
    let mut child = example
        .command()
        .stdin(Stdio::from(
            std::fs::File::open(example.path("examples/data/audit.log")).expect("sample"),
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start auditrail");
    assert!(wait_until(WAIT, || !server.requests().is_empty()));
    server.set_mode(Mode::Ok);
    assert!(wait_exit(&mut child).success());

    let requests = server.requests();
    assert_eq!(requests[0].status, 503);
    for request in &requests {
        assert_eq!(request.uri, "/audit?cluster=example");
        assert_eq!(
            request.headers["authorization"],
            "Bearer example-webhook-token"
        );
        assert_eq!(
            json(std::str::from_utf8(&request.body).expect("UTF-8"))["kind"],
            "EventList"
        );
    }
    let mut delivered: Vec<String> = server
        .accepted_events()
        .iter()
        .map(Value::to_string)
        .collect();
    let mut sent: Vec<String> = sample_lines().iter().map(|l| json(l).to_string()).collect();
    delivered.sort();
    sent.sort();
    assert_eq!(delivered, sent);
}

/// Scenario 5: batching on an Elasticsearch output: no `_bulk` request over
/// `max_size`, and every event indexed once, per namespace, as it was.
#[test]
fn batching_example_sends_bounded_bulk_requests_to_elasticsearch() {
    let server = TestServer::start();
    let example = Example::copy("batching-elasticsearch.toml", |text| {
        assert!(text.contains("http://127.0.0.1:9200"));
        text.replace("http://127.0.0.1:9200", &server.url(""))
    });
    example.run_to_end(Some("examples/data/audit.log"));

    let bulks: Vec<usize> = server
        .requests()
        .iter()
        .filter(|r| r.uri.starts_with("/_bulk"))
        .map(|r| {
            r.body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                / 2
        })
        .collect();
    assert!(
        bulks.len() >= 5 && bulks.iter().all(|n| *n <= 100),
        "{bulks:?}"
    );
    assert_eq!(bulks.iter().sum::<usize>(), 500);
    let docs = server.es(|es| es.docs.clone());
    assert_eq!(docs.len(), 500);
    for line in sample_lines() {
        let event = json(&line);
        let index = match event.pointer("/objectRef/namespace") {
            Some(namespace) => namespace.as_str().expect("a string").to_owned(),
            None => "cluster".to_owned(),
        };
        let key = format!(
            "kube-audit-{index}-2024.05.14/{}-{}",
            event["auditID"].as_str().expect("auditID"),
            event["stage"].as_str().expect("stage")
        );
        let mut doc = docs
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .clone();
        doc.as_object_mut().expect("object").remove("@timestamp");
        assert_eq!(doc, event, "{key}");
    }
}

/// A DSL mistake in a filter is a config error at the exact line and
/// column, saying what was expected and what was found.
#[test]
fn dsl_errors_point_at_file_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("auditrail.toml");
    std::fs::write(
        &config,
        r#"[[source]]
type = "stdin"
tag = "audit"

[[filter]]
type = "rewrite_tag"
match = "audit"
tag = 'audit.${objectRef.namespace ?? }'

[[output]]
type = "stdout"
match = "audit.**"
"#,
    )
    .expect("write config");
    let output = Command::new(super::support::BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("run auditrail check");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: expected an expression after `??`"),
        "{stderr}"
    );
    assert!(stderr.contains("auditrail.toml:8:39"), "{stderr}");
    assert!(stderr.contains("^ found `}`"), "{stderr}");
}
