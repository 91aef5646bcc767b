//! Shared harness for black-box tests: runs the real `auditrail` binary in a
//! temp dir ([`Agent`]), waits on conditions with deadlines (never bare
//! sleeps), and talks to its `[api]` endpoint.

mod agent;

pub use agent::{Agent, Exit, Output};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_auditrail");

/// Test data shipped in the repository.
pub fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// Repository root (for `examples/`, `conf/`).
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A command for the binary with quiet logs.
pub fn auditrail() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("AUDITRAIL_LOG", "warn");
    cmd
}

/// The address an http source logged as `listening on ADDR`, if any line
/// of `log` has it.
pub fn listening_addr<'a>(mut log: impl Iterator<Item = &'a str>) -> Option<std::net::SocketAddr> {
    log.find_map(|line| {
        let rest = &line[line.find("listening on ")? + "listening on ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Polls `condition` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads every line of a file, or of a multi-member gzip file.
pub fn read_lines(path: &Path) -> Vec<String> {
    use std::io::Read;
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = String::new();
        let _ = flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_string(&mut out);
        out
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    text.lines().map(str::to_owned).collect()
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
