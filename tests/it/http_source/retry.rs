//! A client that behaves like kube-apiserver's webhook backend (batches of
//! 400, whole-batch retries with exponential backoff on 429, 5xx and
//! connection errors) against an agent whose output is slowed, then stopped
//! and restarted twice (SIGTERM, then `kill -9` with its output blocked).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{Output, event, event_list, start};

const BATCHES: usize = 250;
const BATCH_SIZE: usize = 400;
const SENDERS: usize = 4;

struct Batch {
    body: String,
}

/// Shared progress of the client.
#[derive(Default)]
struct Progress {
    next: AtomicUsize,
    done: AtomicUsize,
    /// Attempts per batch.
    attempts: Vec<AtomicUsize>,
    /// Replies other than 200 (429 and 503) and connection errors.
    refusals: AtomicUsize,
}

fn event_id(batch: usize, item: usize) -> String {
    format!("b{batch:04}-e{item:03}")
}

fn agent_config(listen: &str) -> String {
    super::config(
        r#"ack_timeout = "1s"
queue_timeout = "200ms""#,
    )
    .replace("127.0.0.1:0", listen)
    .replace("shutdown_timeout = \"10s\"", "shutdown_timeout = \"5s\"")
}

/// Retries one batch until it is answered 200. kube-apiserver stops after 5
/// attempts; this client never gives up, so every event must arrive.
async fn send_until_accepted(
    client: &reqwest::Client,
    url: &str,
    batch: &Batch,
    progress: &Progress,
    index: usize,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        progress.attempts[index].fetch_add(1, Ordering::SeqCst);
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .body(batch.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == 200 => return,
            Ok(response) => {
                let status = response.status();
                assert!(
                    status == 429 || status.is_server_error(),
                    "unexpected status {status}"
                );
            }
            Err(_) => {} // refused while the agent restarts, or reset by a kill
        }
        progress.refusals.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 3 / 2).min(Duration::from_millis(500));
    }
}

async fn wait_done(progress: &Progress, at_least: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while progress.done.load(Ordering::SeqCst) < at_least {
        assert!(tokio::time::Instant::now() < deadline, "the client stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_across_slow_output_and_restarts() {
    let texts: Vec<Vec<String>> = (0..BATCHES)
        .map(|b| (0..BATCH_SIZE).map(|i| event(&event_id(b, i))).collect())
        .collect();
    let batches: Arc<Vec<Batch>> = Arc::new(
        texts
            .iter()
            .map(|items| Batch {
                body: event_list(items),
            })
            .collect(),
    );
    let progress = Arc::new(Progress {
        attempts: (0..BATCHES).map(|_| AtomicUsize::new(0)).collect(),
        ..Progress::default()
    });

    let dir = tempfile::tempdir().unwrap();
    let output = Output::default();
    let (agent, addr) = blocking(|| start(dir, &agent_config("127.0.0.1:0"), &output));
    // Restarts reuse the port, so the client keeps one URL.
    let listen = addr.to_string();
    let url = format!("http://{addr}/");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (client, url, batches, progress) = (
            client.clone(),
            url.clone(),
            batches.clone(),
            progress.clone(),
        );
        senders.spawn(async move {
            loop {
                let index = progress.next.fetch_add(1, Ordering::SeqCst);
                let Some(batch) = batches.get(index) else {
                    return;
                };
                send_until_accepted(&client, &url, batch, &progress, index).await;
                progress.done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    // A slow output: nobody reads it for a while.
    wait_done(&progress, 50).await;
    output.pause(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    output.pause(false);

    // A graceful restart.
    wait_done(&progress, 110).await;
    let dir = blocking(|| agent.stop()).assert_success().dir;
    let (agent, _) = blocking(|| start(dir, &agent_config(&listen), &output));

    // A crash while the output is blocked.
    wait_done(&progress, 170).await;
    output.pause(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = blocking(|| {
        output.pause(false);
        agent.kill().dir
    });
    let (agent, _) = blocking(|| start(dir, &agent_config(&listen), &output));

    while let Some(result) = senders.join_next().await {
        result.unwrap();
    }
    blocking(|| agent.stop()).assert_success();

    let mut seen: HashMap<&str, usize> = HashMap::new();
    let lines = output.lines();
    for line in &lines {
        let start = line.find("\"auditID\":\"").expect("an audit event") + 11;
        let id = &line[start..start + 10];
        let (batch, item): (usize, usize) = (id[1..5].parse().unwrap(), id[7..].parse().unwrap());
        assert_eq!(line, &texts[batch][item], "the event is unchanged");
        *seen.entry(id).or_default() += 1;
    }
    let mut duplicated_batches = 0;
    for (batch, attempts) in progress.attempts.iter().enumerate() {
        let attempts = attempts.load(Ordering::SeqCst);
        let counts: Vec<usize> = (0..BATCH_SIZE)
            .map(|i| seen.get(event_id(batch, i).as_str()).copied().unwrap_or(0))
            .collect();
        assert!(
            counts.iter().all(|&n| n >= 1),
            "batch {batch} lost events: {counts:?}"
        );
        if counts.iter().any(|&n| n > 1) {
            duplicated_batches += 1;
            assert!(
                attempts > 1,
                "batch {batch} was sent once but arrived twice"
            );
            assert!(
                counts.iter().all(|&n| n <= attempts),
                "batch {batch}: more copies than attempts"
            );
        }
    }
    let refusals = progress.refusals.load(Ordering::SeqCst);
    assert!(refusals > 0, "the slow output and restarts refused nothing");
    eprintln!(
        "{} lines for {} events; {refusals} refused attempts; {duplicated_batches} batches duplicated",
        lines.len(),
        BATCHES * BATCH_SIZE
    );
}
