//! Every captured webhook body, replayed: each item must come out exactly
//! once, byte for byte.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Output, config, data, start};

const TOKEN: &str = "audit-webhook-shared-token-fixture-main";

/// Path, headers and body of one request to replay.
type Request = (String, Vec<(String, String)>, String);

/// One POST as the fixture capture recorded it.
#[derive(Deserialize)]
struct Post {
    path: String,
    headers: Vec<(String, String)>,
    body_bytes: usize,
    body: String,
}

#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

/// The item texts of an `EventList` body, exactly as they appear in it.
fn items_of(body: &str) -> Vec<String> {
    let list: EventList<'_> = serde_json::from_str(body).expect("fixture is an EventList");
    list.items.iter().map(|i| i.get().to_owned()).collect()
}

fn recorded_posts(path: &str) -> Vec<Post> {
    let text = std::fs::read_to_string(data(path)).expect("fixture");
    let posts: Vec<Post> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a recorded POST"))
        .collect();
    for post in &posts {
        assert_eq!(
            post.body.len(),
            post.body_bytes,
            "the capture keeps bodies whole"
        );
    }
    posts
}

/// Real kube-apiserver POSTs (batch and blocking mode) and the EventList
/// fixtures all arrive exactly once with byte-identical items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_captured_webhook_item_arrives_once_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
    let output = Output::default();
    let (agent, addr) = start(
        dir,
        &config(
            r#"path = "/audit/v1/events"
auth = { bearer_tokens_file = "{dir}/tokens" }"#,
        ),
        &output,
    );

    // (path, headers, body) for every request, and the items we expect.
    let mut requests: Vec<Request> = Vec::new();
    for run in ["run1-batch", "run2-blocking"] {
        for post in recorded_posts(&format!("real-apiserver/{run}/webhook-posts.jsonl")) {
            // Replay the recorded headers but the length: reqwest sets it.
            let headers = post
                .headers
                .into_iter()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
                .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
                .collect();
            requests.push((post.path, headers, post.body));
        }
    }
    assert_eq!(requests.len(), 8 + 680);
    let mut files: Vec<_> = std::fs::read_dir(data("webhook"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    for file in files {
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Authorization".to_owned(), format!("Bearer {TOKEN}")),
        ];
        let body = std::fs::read_to_string(file).unwrap();
        requests.push(("/audit/v1/events".to_owned(), headers, body));
    }

    let mut expected: Vec<String> = Vec::new();
    for (_, _, body) in &requests {
        expected.extend(items_of(body));
    }
    assert_eq!(expected.len(), 639 + 680 + 400 + 100 + 1 + 1);

    // Four concurrent senders, like kube-apiserver's paired batch POSTs.
    let client = reqwest::Client::new();
    let base = format!("http://{addr}{}", "");
    let mut tasks = tokio::task::JoinSet::new();
    let requests = std::sync::Arc::new(requests);
    for worker in 0..4 {
        let (client, base, requests) = (client.clone(), base.clone(), requests.clone());
        tasks.spawn(async move {
            for (path, headers, body) in requests.iter().skip(worker).step_by(4) {
                let mut request = client.post(format!("{base}{path}")).body(body.clone());
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.send().await.expect("POST");
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    // 200 means written and flushed: everything is in the pipe already.
    assert!(output.wait_for(expected.len(), Duration::from_secs(30)));
    agent.stop();

    let mut got = output.lines();
    assert_eq!(got.len(), expected.len(), "each item exactly once");
    // Pretty-printed items (the v1alpha1 docs example) come out on one line
    // with only the whitespace between tokens removed. That example has no
    // escapes or exotic numbers, so serde_json's compact form is exactly it.
    for item in &mut expected {
        if item.contains('\n') {
            let value: serde_json::Value = serde_json::from_str(item).unwrap();
            *item = serde_json::to_string(&value).unwrap();
        }
    }
    got.sort();
    expected.sort();
    assert!(got == expected, "output differs from the posted items");
}
