//! `type = "http"`: the audit webhook receiver, driven over real sockets.
//! The agent writes to a `stdout` output whose pipe the test reads in a
//! thread (and can stop reading, to slow the output down).

mod fixtures;
mod malformed;
mod retry;
mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::{BIN, wait_until};

/// What the agent wrote to standard output, shared across restarts.
#[derive(Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
    /// While set, the reader stops reading: the pipe fills and the agent's
    /// output blocks, as a slow destination would.
    paused: Arc<AtomicBool>,
}

impl Output {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Waits until at least `n` lines arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.len() >= n)
    }

    fn read_from(&self, stdout: impl Read + Send + 'static) -> JoinHandle<()> {
        let lines = self.lines.clone();
        let paused = self.paused.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 * 1024, stdout);
            let mut line = Vec::new();
            loop {
                while paused.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    // A line cut off by a killed agent was never acknowledged.
                    Ok(_) if line.last() != Some(&b'\n') => return,
                    Ok(_) => {
                        line.pop();
                        let text = String::from_utf8(line.clone()).expect("output is UTF-8");
                        lines.lock().unwrap().push(text);
                    }
                }
            }
        })
    }
}

/// A running agent with an http source.
pub struct HttpAgent {
    child: Child,
    pub addr: SocketAddr,
    stdout_reader: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl HttpAgent {
    /// Writes `config` (`{dir}` replaced by `dir`) and starts the agent,
    /// sending its output to `output`; returns once it is listening.
    pub fn start(dir: &Path, config: &str, output: &Output) -> Self {
        let path = dir.join("auditrail.toml");
        std::fs::write(&path, config.replace("{dir}", &dir.display().to_string()))
            .expect("write config");
        let mut child = Command::new(BIN)
            .args(["run", "-c"])
            .arg(&path)
            .env("AUDITRAIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start auditrail");
        let stdout_reader = Some(output.read_from(child.stdout.take().expect("stdout")));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = stderr.clone();
        let child_stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(child_stderr).lines() {
                let Ok(line) = line else { return };
                if !line.contains(" INFO ") {
                    eprintln!("agent: {line}");
                }
                stderr_lines.lock().unwrap().push(line);
            }
        });
        let mut agent = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout_reader,
            stderr,
        };
        let mut addr = None;
        let listening = wait_until(Duration::from_secs(30), || {
            addr = agent.stderr.lock().unwrap().iter().find_map(|line| {
                let rest = &line[line.find("listening on ")? + "listening on ".len()..];
                rest.split_whitespace().next()?.parse().ok()
            });
            addr.is_some() || agent.child.try_wait().expect("try_wait").is_some()
        });
        match addr {
            Some(addr) if listening => agent.addr = addr,
            _ => panic!(
                "the agent did not start listening: {:?}",
                agent.stderr_text()
            ),
        }
        agent
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// SIGTERM, then waits for exit and for its output to be read.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let exited = wait_until(Duration::from_secs(30), || {
            self.child.try_wait().expect("try_wait").is_some()
        });
        assert!(exited, "the agent did not stop: {}", self.stderr_text());
        self.finish()
    }

    /// `kill -9`, then waits for its output to be read.
    pub fn kill(mut self) -> std::process::ExitStatus {
        let _ = self.child.kill();
        self.finish()
    }

    fn finish(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait");
        if let Some(reader) = self.stdout_reader.take() {
            reader.join().expect("stdout reader");
        }
        status
    }
}

impl Drop for HttpAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
