//! A running agent fed on a piped stdin, with its stdout lines and its
//! stderr log collected, its `[api]` address read from the log, and a tiny
//! HTTP/1.0 client for `/metrics`, `/healthz` and `/readyz`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::{BIN, wait_until};

pub struct LiveAgent {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    stdout: Arc<Mutex<Vec<String>>>,
    stdout_thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<String>>,
}

impl LiveAgent {
    /// Writes `config` (`{dir}` replaced by a temp dir) and runs the agent on
    /// it at log level `info`, with `env` added.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), config, env)
    }

    /// [`LiveAgent::start`] in a temp dir prepared with the files the
    /// config names.
    pub fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Self {
        let path = dir.path().join("auditrail.toml");
        std::fs::write(&path, fill(config, &dir)).expect("write config");
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["run", "-c"])
            .arg(&path)
            .env("AUDITRAIL_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut child = cmd.spawn().expect("start auditrail");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_thread = {
            let lines = stdout.clone();
            let out = child.stdout.take().expect("piped stdout");
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("lock").push(line);
                }
            })
        };
        let log = Arc::new(Mutex::new(String::new()));
        {
            let log = log.clone();
            let mut err = child.stderr.take().expect("piped stderr");
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock()
                        .expect("lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Self {
            stdin: child.stdin.take(),
            child,
            dir,
            config: path,
            stdout,
            stdout_thread: Some(stdout_thread),
            log,
        }
    }

    /// Replaces the config file atomically (write, then rename), as an
    /// operator's tooling should, so a reload never reads half a file.
    pub fn write_config(&self, config: &str) {
        let tmp = self.dir.path().join("auditrail.toml.new");
        std::fs::write(&tmp, fill(config, &self.dir)).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("replace config");
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("lock").clone()
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    pub fn stdout_len(&self) -> usize {
        self.stdout.lock().expect("lock").len()
    }

    pub fn last_line(&self) -> Option<String> {
        self.stdout.lock().expect("lock").last().cloned()
    }

    /// The address the `[api]` endpoint bound, from `api listening on ADDR`.
    pub fn api(&self) -> SocketAddr {
        let mut found = None;
        let seen = wait_until(Duration::from_secs(20), || {
            found = self.log().lines().find_map(|line| {
                let (_, rest) = line.split_once("api listening on ")?;
                rest.split_whitespace().next()?.parse().ok()
            });
            found.is_some()
        });
        assert!(seen, "no `api listening on` line in:\n{}", self.log());
        found.expect("found")
    }

    /// GET `path` from the api; (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.api(), path)
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child; no memory is involved.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Closes stdin, waits for the agent to exit and returns its status and
    /// every line it printed.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let status = self.wait_exit();
        (status, self.take_stdout())
    }

    /// Waits for the agent to exit (after a signal) without closing stdin.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        let exited = wait_until(Duration::from_secs(60), || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(exited, "agent did not exit; log:\n{}", self.log());
        status.expect("exited")
    }

    pub fn take_stdout(&mut self) -> Vec<String> {
        if let Some(thread) = self.stdout_thread.take() {
            thread.join().expect("stdout reader");
        }
        std::mem::take(&mut *self.stdout.lock().expect("lock"))
    }
}

impl Drop for LiveAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fill(config: &str, dir: &tempfile::TempDir) -> String {
    config.replace("{dir}", &dir.path().display().to_string())
}

/// A one-shot HTTP/1.0 GET; the server closes the connection after it.
pub fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the api");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of one series (`name{labels}` exactly as exposed), 0 when the
/// series is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0.0)
}
