//! Throughput of the http source: starts the release `auditrail` with an
//! http source and a `stdout` output sent to /dev/null, then POSTs
//! `EventList`s of 400 real kube-apiserver events (from
//! `tests/data/real-apiserver`) from several keep-alive connections, as a
//! busy apiserver would. Prints events/s, MB/s and reply latencies.
//!
//! Run: `bench/http-source.sh` or
//! `cargo bench --bench http_source -- [EVENTS] [CONNECTIONS] [ack]`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

const BATCH: usize = 400;

#[derive(Deserialize)]
struct Post {
    body: String,
}

#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// Real events from the fixture capture, cycled into batches of 400.
fn bodies() -> Vec<Bytes> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/real-apiserver/run1-batch/webhook-posts.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let posts: Vec<Post> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("post"))
        .collect();
    let mut items = Vec::new();
    for post in &posts {
        let list: EventList<'_> = serde_json::from_str(&post.body).expect("EventList");
        items.extend(list.items.iter().map(|i| i.get().to_owned()));
    }
    (0..8)
        .map(|n| {
            let batch: Vec<&str> = items.iter().cycle().skip(n * 37).take(BATCH).map(String::as_str).collect();
            Bytes::from(format!(
                "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{{}},\"items\":[{}]}}\n",
                batch.join(",")
            ))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let events: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let ack = args.get(2).map_or("delivered", String::as_str).to_owned();

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("auditrail.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[source]]\ntype = \"http\"\nlisten = \"127.0.0.1:0\"\ntag = \"audit\"\nack = \"{ack}\"\n\
             [[output]]\ntype = \"stdout\"\nmatch = \"**\"\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_auditrail"))
        .args(["run", "-c"])
        .arg(&config)
        .env("AUDITRAIL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start auditrail");
    let mut stderr = BufReader::new(agent.stderr.take().expect("stderr"));
    let addr = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).expect("stderr") > 0,
            "the agent exited"
        );
        if let Some(at) = line.find("listening on ") {
            break line[at + 13..]
                .split_whitespace()
                .next()
                .expect("address")
                .to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    let bodies = Arc::new(bodies());
    let bytes_per_batch = bodies.iter().map(Bytes::len).sum::<usize>() / bodies.len();
    let requests = events.div_ceil(BATCH);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (elapsed, mut latencies) = runtime.block_on(async move {
        let url = format!("http://{addr}/");
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..connections {
            // One client per connection: each keeps its own keep-alive socket.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let (url, next, bodies) = (url.clone(), next.clone(), bodies.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= requests {
                        return latencies;
                    }
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(bodies[n % bodies.len()].clone())
                        .send()
                        .await
                        .expect("POST");
                    assert_eq!(response.status(), 200);
                    latencies.push(sent.elapsed());
                }
            });
        }
        let mut all = Vec::new();
        while let Some(result) = tasks.join_next().await {
            all.extend(result.expect("sender"));
        }
        (started.elapsed(), all)
    });
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(agent.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = agent.wait();

    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let sent = requests * BATCH;
    let secs = elapsed.as_secs_f64();
    println!(
        "http source, ack = {ack}: {sent} events in {requests} EventLists of {BATCH} ({} KiB each) from {connections} connections",
        bytes_per_batch / 1024
    );
    println!(
        "{:.0} events/s, {:.1} MB/s, {:.2} s; reply latency p50 {:?}, p99 {:?}, max {:?}",
        sent as f64 / secs,
        (requests * bytes_per_batch) as f64 / secs / 1e6,
        secs,
        at(0.50),
        at(0.99),
        latencies.last().copied().unwrap_or(Duration::ZERO)
    );
}
