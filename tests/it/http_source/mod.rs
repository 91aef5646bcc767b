//! `type = "http"`: the audit webhook receiver, driven over real sockets.
//! The agent writes to a `stdout` output whose pipe the test reads in a
//! thread (and can stop reading, to slow the output down).

mod fixtures;
mod malformed;
mod retry;
mod tls;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::support::Agent;
pub use crate::support::Output;

/// Starts the agent on `config` in `dir` (`{dir}` replaced by its path),
/// its stdout into `output`; returns it once it listens, with the address.
pub fn start(dir: tempfile::TempDir, config: &str, output: &Output) -> (Agent, SocketAddr) {
    let mut agent = Agent::builder().dir(dir).output(output).start(config);
    let addr = agent.listening();
    (agent, addr)
}

/// A loopback listener config with a stdout output.
pub fn config(source_extra: &str) -> String {
    format!(
        r#"
data_dir = "{{dir}}"
shutdown_timeout = "10s"

[[source]]
name = "webhook"
type = "http"
listen = "127.0.0.1:0"
tag = "audit"
{source_extra}

[[output]]
type = "stdout"
match = "**"
"#
    )
}

/// A test data file's path.
pub fn data(path: &str) -> PathBuf {
    crate::support::data(path)
}

/// A raw HTTP/1.x response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// Reads one response (`Content-Length` framed, or to end of stream).
pub fn read_response(stream: &mut impl BufRead) -> std::io::Result<RawResponse> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            stream.read_exact(&mut body)?;
        }
        None => {
            stream.read_to_end(&mut body)?;
        }
    }
    Ok(RawResponse { status, head, body })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request)?;
    read_response(&mut BufReader::new(stream))
}

/// A POST request's bytes.
pub fn post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// A small, valid audit event with a unique id.
pub fn event(id: &str) -> String {
    format!(
        r#"{{"level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods?limit=500\u0026watch=false","verb":"list","user":{{"username":"alice","groups":["dev","system:authenticated"]}},"sourceIPs":["10.0.0.7"],"objectRef":{{"resource":"pods","namespace":"default","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestReceivedTimestamp":"2026-11-22T10:00:00.123456Z","stageTimestamp":"2026-11-22T10:00:00.130000Z"}}"#
    )
}

/// An `EventList` body as kube-apiserver writes it.
pub fn event_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!(
        "{{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{{}},\"items\":[{}]}}\n",
        items.join(",")
    )
}
