//! The one harness for a running agent: `auditrail run` on a config in a
//! temp dir, with its stdout lines and its log collected by threads (so a
//! chatty agent never blocks on a full pipe), optional piped stdin, and the
//! addresses it logs (`listening on`, `api listening on`).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{BIN, http_get, listening_addr, wait_until};

/// How long an agent gets to start listening or to exit after a signal
/// (an agent that still delivers to a real search node may need long).
const WAIT: Duration = Duration::from_secs(120);

/// What an agent wrote to standard output, line by line. Clones share the
/// lines, so one collector can outlive an agent and gather the output of
/// its restarts.
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

    pub fn last(&self) -> Option<String> {
        self.lines.lock().unwrap().last().cloned()
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
                        let text = String::from_utf8_lossy(&line).into_owned();
                        lines.lock().unwrap().push(text);
                    }
                }
            }
        })
    }
}

/// How to start an agent: [`Agent::builder`], then `start` or `spawn`.
#[derive(Default)]
pub struct Launch {
    env: Vec<(String, String)>,
    stdin: bool,
    output: Option<Output>,
    dir: Option<tempfile::TempDir>,
}

impl Launch {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (key, value) in pairs {
            self = self.env(key, value);
        }
        self
    }

    /// A pipe to the agent's stdin (`Agent::stdin`), for a `stdin` source.
    pub fn stdin(mut self) -> Self {
        self.stdin = true;
        self
    }

    /// Collects stdout into `output` (shared with the caller) instead of a
    /// collector of the agent's own.
    pub fn output(mut self, output: &Output) -> Self {
        self.output = Some(output.clone());
        self
    }

    /// Runs in `dir` (prepared with the files the config names, or left by
    /// an agent before) instead of a new temp dir.
    pub fn dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// Writes `config` as `auditrail.toml` in the dir, `{dir}` replaced by
    /// the dir's path, and runs the agent on it.
    pub fn start(mut self, config: &str) -> Agent {
        let dir = self.take_dir();
        let path = dir.path().join("auditrail.toml");
        std::fs::write(&path, fill(config, dir.path())).expect("write config");
        self.run(dir, path)
    }

    /// Runs the agent on a config file written by the caller.
    pub fn config_file(mut self, path: &Path) -> Agent {
        let dir = self.take_dir();
        self.run(dir, path.to_owned())
    }

    fn take_dir(&mut self) -> tempfile::TempDir {
        self.dir
            .take()
            .unwrap_or_else(|| tempfile::tempdir().expect("temp dir"))
    }

    fn run(self, dir: tempfile::TempDir, config: PathBuf) -> Agent {
        let mut command = Command::new(BIN);
        command.args(["run", "-c"]).arg(&config);
        self.spawn_in(dir, config, command)
    }

    /// Runs `command` (an `auditrail` command line of the caller's).
    pub fn spawn(mut self, command: Command) -> Agent {
        let dir = self.take_dir();
        self.spawn_in(dir, PathBuf::new(), command)
    }

    fn spawn_in(self, dir: tempfile::TempDir, config: PathBuf, mut command: Command) -> Agent {
        command
            .env("AUDITRAIL_LOG", "info")
            .env("AUDITRAIL_LOG_FORMAT", "human")
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start auditrail");
        let output = self.output.unwrap_or_default();
        let stdout_reader = Some(output.read_from(child.stdout.take().expect("piped stdout")));
        let log = Arc::new(Mutex::new(String::new()));
        let log_reader = Some(read_log(
            child.stderr.take().expect("piped stderr"),
            log.clone(),
        ));
        Agent {
            stdin: child.stdin.take(),
            child,
            dir,
            config,
            output,
            stdout_reader,
            log,
            log_reader,
        }
    }
}

/// Collects the log; warnings and errors also go to the test's own stderr,
/// which the test runner shows when the test fails.
fn read_log(stderr: impl Read + Send + 'static, log: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains(" WARN ") || line.contains(" ERROR ") {
                eprint!("agent: {line}");
            }
            log.lock().unwrap().push_str(&line);
            line.clear();
        }
    })
}

fn fill(config: &str, dir: &Path) -> String {
    config.replace("{dir}", &dir.display().to_string())
}

/// A running agent; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub dir: tempfile::TempDir,
    /// The config file it runs on.
    pub config: PathBuf,
    output: Output,
    stdout_reader: Option<JoinHandle<()>>,
    log: Arc<Mutex<String>>,
    log_reader: Option<JoinHandle<()>>,
}

/// How an agent ended, with everything it wrote.
pub struct Exit {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub log: String,
    /// The agent's dir, to start it again on the same state.
    pub dir: tempfile::TempDir,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Panics with the log unless the agent exited 0.
    pub fn assert_success(self) -> Self {
        assert!(
            self.status.success(),
            "agent exited with {}; log:\n{}",
            self.status,
            self.log
        );
        self
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.status.fmt(f)
    }
}

impl Agent {
    pub fn builder() -> Launch {
        Launch::default()
    }

    /// Writes `config` (`{dir}` replaced by a new temp dir) and runs it.
    pub fn start(config: &str) -> Self {
        Self::builder().start(config)
    }

    /// The same in `dir`, prepared with the files the config names.
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Self {
        Self::builder().dir(dir).start(config)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces the config file atomically (write, then rename), as an
    /// operator's tooling should, so a reload never reads half a file.
    pub fn write_config(&self, config: &str) {
        let tmp = self.config.with_extension("toml.new");
        std::fs::write(&tmp, fill(config, self.dir.path())).expect("write config");
        std::fs::rename(&tmp, &self.config).expect("replace config");
    }

    /// The stdout collector.
    pub fn output(&self) -> &Output {
        &self.output
    }

    pub fn stdout_len(&self) -> usize {
        self.output.len()
    }

    pub fn last_line(&self) -> Option<String> {
        self.output.last()
    }

    /// Waits until at least `n` lines were printed.
    pub fn wait_for_lines(&self, n: usize) {
        assert!(
            self.output.wait_for(n, WAIT),
            "expected {n} lines, got {}; log:\n{}",
            self.output.len(),
            self.log()
        );
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        assert!(
            wait_until(WAIT, || self.log().contains(needle)),
            "no `{needle}` in the log:\n{}",
            self.log()
        );
    }

    /// The address an `http` source bound, from its `listening on` line.
    pub fn listening(&mut self) -> SocketAddr {
        let mut addr = None;
        wait_until(WAIT, || {
            addr = listening_addr(self.log().lines().filter(|l| !l.contains("api listening")));
            addr.is_some() || self.child.try_wait().expect("try_wait").is_some()
        });
        addr.unwrap_or_else(|| panic!("the agent did not start listening:\n{}", self.log()))
    }

    /// The address the `[api]` endpoint bound, from `api listening on ADDR`.
    pub fn api(&self) -> SocketAddr {
        let mut found = None;
        let seen = wait_until(WAIT, || {
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

    /// SIGTERM, then waits for the exit.
    pub fn stop(self) -> Exit {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    /// Closes stdin, then waits for the exit.
    pub fn finish(mut self) -> Exit {
        drop(self.stdin.take());
        self.wait()
    }

    /// `kill -9`.
    pub fn kill(mut self) -> Exit {
        let _ = self.child.kill();
        self.wait()
    }

    /// Waits for the exit (after a signal, or at the end of its input),
    /// killing the agent if it takes longer than [`WAIT`].
    pub fn wait(mut self) -> Exit {
        let status = self.wait_exit();
        for reader in [self.stdout_reader.take(), self.log_reader.take()]
            .into_iter()
            .flatten()
        {
            reader.join().expect("output reader");
        }
        Exit {
            status,
            lines: self.output.lines(),
            log: self.log(),
            dir: std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir")),
        }
    }

    /// Waits for the process to exit, killing it after [`WAIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("agent did not exit within {WAIT:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
