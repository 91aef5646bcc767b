//! Bad requests get the right status, emit nothing, and never stop the
//! source from serving the next client.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Output, config, event, event_list, post, raw_request, read_response, start};

/// A request with extra headers.
fn post_with(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Sends one good batch and expects 200: the server still serves others.
fn still_serves(addr: SocketAddr, good: &mut Vec<String>, after: &str) {
    let id = format!("good-{}", good.len());
    let item = event(&id);
    let response = raw_request(
        addr,
        &post(
            "/events",
            "application/json",
            event_list(&[&item]).as_bytes(),
        ),
    )
    .unwrap_or_else(|e| panic!("after {after}: {e}"));
    assert_eq!(
        response.status,
        200,
        "after {after}: {}",
        String::from_utf8_lossy(&response.body)
    );
    good.push(item);
}

/// The 100 MB body: declared up front, and streamed without a length.
fn too_large(addr: SocketAddr) {
    let head = "POST /events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n";
    let response = raw_request(addr, head.as_bytes()).unwrap();
    assert_eq!(response.status, 413, "declared 100 MB");

    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let head = "POST /events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let chunk = vec![b' '; 1 << 20];
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        let _ = writer.write_all(head.as_bytes());
        // Stops when the server closes the connection.
        for _ in 0..100 {
            if writer.write_all(&framed).is_err() {
                return;
            }
        }
    });
    let response =
        read_response(&mut BufReader::new(stream)).expect("a reply before the body ends");
    assert_eq!(response.status, 413, "streamed 100 MB");
    sender.join().unwrap();
}

/// Headers arriving one byte at a time are cut off by `header_read_timeout`.
fn slow_headers(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let request = post(
        "/events",
        "application/json",
        event_list(&[event("bad-slow")]).as_bytes(),
    );
    let started = Instant::now();
    let mut closed = false;
    for byte in &request {
        if stream.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if started.elapsed() > Duration::from_secs(30) => break,
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("a reply to headers that never completed"),
            Err(_) => {} // still open: send the next byte
        }
    }
    assert!(
        closed,
        "a client sending one byte at a time was not cut off"
    );
}

/// A body arriving one byte at a time is answered 408 after
/// `request_timeout`.
fn slow_body(addr: SocketAddr) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let body = event_list(&[event("bad-slow-body")]);
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stop_sender = stop.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(head.as_bytes()).unwrap();
        for byte in body.as_bytes() {
            if stop_sender.load(Ordering::SeqCst) || writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let response = read_response(&mut BufReader::new(stream)).expect("a reply");
    stop.store(true, Ordering::SeqCst);
    assert_eq!(response.status, 408);
    sender.join().unwrap();
}

/// HTTP/1.0 works, and the connection closes after the reply.
fn http_1_0(addr: SocketAddr, good: &mut Vec<String>) {
    let item = event(&format!("good-{}", good.len()));
    let body = event_list(&[&item]);
    let request = format!(
        "POST /events HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader).unwrap();
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(response.head.starts_with("HTTP/1."), "{}", response.head);
    let mut rest = Vec::new();
    assert_eq!(
        reader.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the reply"
    );
    good.push(item);
}

/// Many requests on one keep-alive connection.
fn keep_alive(addr: SocketAddr, good: &mut Vec<String>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..200 {
        let item = event(&format!("good-{}", good.len()));
        writer
            .write_all(&post(
                "/events",
                "application/json",
                event_list(&[&item]).as_bytes(),
            ))
            .unwrap();
        let response = read_response(&mut reader).unwrap();
        assert_eq!(response.status, 200);
        good.push(item);
    }
    // And a bad request on the same connection does not end it.
    writer
        .write_all(&post("/events", "application/json", b"{\"kind\":"))
        .unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 400);
    let item = event(&format!("good-{}", good.len()));
    writer
        .write_all(&post(
            "/events",
            "application/json",
            event_list(&[&item]).as_bytes(),
        ))
        .unwrap();
    assert_eq!(read_response(&mut reader).unwrap().status, 200);
    good.push(item);
}

#[test]
fn malformed_requests_get_the_right_status_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let output = Output::default();
    let (agent, addr) = start(
        dir,
        &config(
            r#"path = "/events"
header_read_timeout = "1s"
request_timeout = "1s""#,
        ),
        &output,
    );
    let mut good = Vec::new();
    let bad = event("bad-1");
    let list = event_list(&[&bad, &event("bad-2")]);
    // A gzip bomb: one member of 1 MiB of spaces, repeated: 100 MiB inflated.
    let bomb = gzip(&vec![b' '; 1 << 20]).repeat(100);

    let json = "Content-Type: application/json\r\n";
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "truncated JSON",
            post(
                "/events",
                "application/json",
                &list.as_bytes()[..list.len() / 2],
            ),
            400,
        ),
        (
            "wrong kind",
            post(
                "/events",
                "application/json",
                format!(r#"{{"kind":"PodList","items":[{bad}]}}"#).as_bytes(),
            ),
            400,
        ),
        (
            "items not a list",
            post(
                "/events",
                "application/json",
                format!(r#"{{"kind":"EventList","items":{bad}}}"#).as_bytes(),
            ),
            400,
        ),
        (
            "an item not an object",
            post(
                "/events",
                "application/json",
                format!(r#"{{"kind":"EventList","items":[{bad},42]}}"#).as_bytes(),
            ),
            400,
        ),
        (
            "not JSON at all",
            post("/events", "application/json", b"hello"),
            400,
        ),
        ("empty body", post("/events", "application/json", b""), 400),
        (
            "not UTF-8",
            post("/events", "application/json", b"{\"auditID\":\"\xff\"}"),
            400,
        ),
        (
            "NDJSON with a bad line",
            post(
                "/events",
                "application/x-ndjson",
                format!("{bad}\n{{oops\n").as_bytes(),
            ),
            400,
        ),
        (
            "invalid gzip",
            post_with(
                "/events",
                &format!("{json}Content-Encoding: gzip\r\n"),
                b"not gzip at all",
            ),
            400,
        ),
        (
            "gzip bomb",
            post_with(
                "/events",
                &format!("{json}Content-Encoding: gzip\r\n"),
                &bomb,
            ),
            413,
        ),
        (
            "wrong content type",
            post("/events", "text/plain", list.as_bytes()),
            415,
        ),
        (
            "unknown content encoding",
            post_with(
                "/events",
                &format!("{json}Content-Encoding: br\r\n"),
                list.as_bytes(),
            ),
            415,
        ),
        (
            "GET on the events path",
            b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(),
            405,
        ),
        (
            "outside the events path",
            post("/elsewhere", "application/json", list.as_bytes()),
            404,
        ),
    ];
    for (name, request, status) in cases {
        let response = raw_request(addr, &request).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            response.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&response.body)
        );
        if status == 400 {
            let reply: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(reply["error"], "malformed_body", "{name}");
            assert!(
                reply["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{name}"
            );
        }
        still_serves(addr, &mut good, name);
    }

    too_large(addr);
    still_serves(addr, &mut good, "100 MB bodies");
    slow_headers(addr);
    still_serves(addr, &mut good, "slow headers");
    slow_body(addr);
    still_serves(addr, &mut good, "a slow body");
    http_1_0(addr, &mut good);
    keep_alive(addr, &mut good);

    // Gzip and NDJSON done right, and the health probe.
    let item = event(&format!("good-{}", good.len()));
    let gz = gzip(event_list(&[&item]).as_bytes());
    let response = raw_request(
        addr,
        &post_with("/events", &format!("{json}Content-Encoding: gzip\r\n"), &gz),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    good.push(item);
    let (a, b) = (
        event(&format!("good-{}", good.len())),
        event(&format!("good-{}", good.len() + 1)),
    );
    let response = raw_request(
        addr,
        &post(
            "/events",
            "application/x-ndjson",
            format!("{a}\n{b}\n").as_bytes(),
        ),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    good.extend([a, b]);
    let health = raw_request(addr, b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    assert_eq!(health.status, 200);

    assert!(output.wait_for(good.len(), Duration::from_secs(30)));
    agent.stop().assert_success();
    let mut got = output.lines();
    assert!(
        got.iter().all(|line| !line.contains("bad-")),
        "nothing from a rejected body"
    );
    got.sort();
    good.sort();
    assert!(got == good, "every good event exactly once");
}
