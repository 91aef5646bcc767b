//! Shared harness for black-box tests: runs the real `auditrail` binary in a
//! temp dir, waits on conditions with deadlines (never bare sleeps).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// A running agent with its own temp dir; killed when dropped.
pub struct Agent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Agent {
    /// Writes `config` (with `{dir}` replaced by the temp dir) and starts
    /// `auditrail run -c` on it.
    pub fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Self {
        let path = dir.path().join("auditrail.toml");
        std::fs::write(
            &path,
            config.replace("{dir}", &dir.path().display().to_string()),
        )
        .expect("write config");
        let child = spawn_run(&path, Stdio::null());
        Self {
            child,
            dir,
            config: path,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we own; no memory is involved.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(30))
    }

    /// Waits for exit, killing the agent if it takes longer than `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("agent did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_run(config: &Path, stdin: Stdio) -> Child {
    auditrail()
        .args(["run", "-c"])
        .arg(config)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start auditrail")
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
