//! `Type=notify`: the agent tells the socket in `NOTIFY_SOCKET` READY once
//! its api is bound, RELOADING (with MONOTONIC_USEC) and READY around every
//! reload, accepted or not, STOPPING on SIGTERM, and pings the watchdog.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::Agent;

const CONFIG: &str = r#"
data_dir = "{dir}"

[api]
listen = "127.0.0.1:0"

[[source]]
name = "in"
type = "stdin"

[[output]]
name = "out"
type = "stdout"
match = "**"
"#;

/// The notification socket systemd would own.
struct Notify {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Notify {
    fn bind() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind notify socket");
        Self {
            socket,
            _dir: dir,
            path,
        }
    }

    /// The next message that is not a watchdog ping, within a deadline.
    fn next_state(&self, pings: &mut usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no notification within the deadline");
            self.socket
                .set_read_timeout(Some(left))
                .expect("read timeout");
            let n = self.socket.recv(&mut buf).expect("a notification");
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.trim() == "WATCHDOG=1" {
                *pings += 1;
                continue;
            }
            return message;
        }
    }
}

fn has(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

#[test]
fn notifies_ready_reloading_stopping_and_pings_the_watchdog() {
    let notify = Notify::bind();
    let socket_path = notify.path.display().to_string();
    let mut agent = Agent::builder()
        .stdin()
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .start(CONFIG);
    let mut pings = 0;

    let ready = notify.next_state(&mut pings);
    assert!(has(&ready, "READY=1"), "{ready:?}");
    // READY comes after the api is bound and the pipeline runs.
    assert_eq!(agent.get("/readyz"), (200, "ready\n".to_owned()));

    // A valid reload, then a rejected one: both are bracketed.
    for rejected in [false, true] {
        if rejected {
            agent.write_config("[[source]]\ntype = \"nope\"\n");
        }
        agent.signal(libc::SIGHUP);
        let reloading = notify.next_state(&mut pings);
        assert!(has(&reloading, "RELOADING=1"), "{reloading:?}");
        let usec = reloading
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .expect("MONOTONIC_USEC with RELOADING=1");
        assert!(usec.parse::<u64>().expect("a number") > 0);
        let ready = notify.next_state(&mut pings);
        assert!(has(&ready, "READY=1"), "{ready:?}");
    }
    // The log is read by another thread; it may trail the notification.
    assert!(crate::support::wait_until(Duration::from_secs(10), || {
        agent.log_count("Rejected the new config") == 1
    }));

    // Pings keep coming at about half of WATCHDOG_USEC.
    let deadline = Instant::now() + Duration::from_secs(5);
    let before = pings;
    let mut buf = [0u8; 256];
    notify
        .socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while pings < before + 3 && Instant::now() < deadline {
        let n = notify.socket.recv(&mut buf).expect("a ping");
        if &buf[..n] == b"WATCHDOG=1\n" {
            pings += 1;
        }
    }
    assert!(pings >= before + 3, "only {pings} watchdog pings");

    agent.signal(libc::SIGTERM);
    let stopping = notify.next_state(&mut pings);
    assert!(has(&stopping, "STOPPING=1"), "{stopping:?}");
    let status = agent.wait_exit();
    assert!(status.success(), "{status:?}\n{}", agent.log());
}
