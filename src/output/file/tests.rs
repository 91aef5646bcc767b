//! Engine tests: failing writes (disk full), acks, the open-file bound.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tokio::sync::mpsc;

use super::open_files::{Limits, OpenFiles};
use super::rotate::SystemClock;
use super::worker::{self, DiskOpener, Opener, SinkFile, WriteSettings};
use super::*;
use crate::config::Config;
use crate::event::test_event;
use crate::event::{Ack, BatchStatus, Event};
use crate::metrics::Metrics;
use crate::output::OutputConfig;

fn file_config(keys: &str) -> FileConfig {
    let text = format!(
        "[[source]]\ntype = \"stdin\"\ntag = \"t\"\n[[output]]\ntype = \"file\"\nmatch = \"**\"\n{keys}\n"
    );
    let mut config = Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    match config.outputs.remove(0).config {
        OutputConfig::File(c) => *c,
        other => panic!("not a file output: {other:?}"),
    }
}

fn event(ns: &str, n: usize, ack: Ack) -> Event {
    let line = format!(r#"{{"objectRef":{{"namespace":"{ns}"}},"n":{n}}}"#);
    Event {
        ack,
        ..test_event(&line)
    }
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Files that fail every write while `fail` is set, after writing half of
/// the bytes (a torn append, as on a full disk).
struct FlakyOpener {
    inner: DiskOpener,
    fail: Arc<AtomicBool>,
}

struct FlakyFile {
    inner: Box<dyn SinkFile>,
    fail: Arc<AtomicBool>,
}

impl Opener for FlakyOpener {
    fn open(&self, path: &Path, trusted: Option<u64>) -> io::Result<(Box<dyn SinkFile>, u64)> {
        let (inner, len) = self.inner.open(path, trusted)?;
        let fail = self.fail.clone();
        Ok((Box::new(FlakyFile { inner, fail }), len))
    }
}

impl Write for FlakyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fail.load(Ordering::SeqCst) {
            self.inner.write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "a `Write` impl passes a short write on"
        )]
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SinkFile for FlakyFile {
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_acks_and_resumes_without_loss() {
    for compress in ["gzip", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.log");
        let config = file_config(&format!(
            "path = \"{}\"\ncompress = \"{compress}\"\nflush_interval = \"20ms\"",
            out.display()
        ));
        let fail = Arc::new(AtomicBool::new(true));
        let opener = Arc::new(FlakyOpener {
            inner: DiskOpener {
                gzip: compress == "gzip",
                file_mode: 0o600,
                dir_mode: 0o700,
            },
            fail: fail.clone(),
        });
        let metrics = Metrics::new().component("file");
        let (tx, rx) = mpsc::channel(4);
        let task = config.build_with(
            OutputContext {
                name: Arc::from("file"),
                input: rx,
                metrics: metrics.clone(),
                data_dir: dir.path().to_owned(),
                batch: crate::batch::BatchConfig::default(),
            },
            opener,
            Arc::new(SystemClock),
        );
        let task = tokio::spawn(task);
        let (ack, mut waiter) = Ack::batch();
        let batch: Vec<Event> = (0..200).map(|n| event("a", n, ack.clone())).collect();
        ack.settle();
        tx.send(batch).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while metrics.errors.get() < 3 {
            assert!(Instant::now() < deadline, "no retries seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(waiter.try_status(), None, "acked while the disk was full");
        assert_eq!(metrics.events_out.get(), 0);
        fail.store(false, Ordering::SeqCst);
        let status = tokio::time::timeout(Duration::from_secs(10), waiter.wait())
            .await
            .unwrap();
        assert_eq!(status, BatchStatus::Delivered);
        drop(tx);
        task.await.unwrap().unwrap();
        let text = if compress == "gzip" {
            let bytes = std::fs::read(&out).unwrap();
            assert_eq!(
                gzip::complete_members_len(&bytes[..]).unwrap(),
                Some(bytes.len() as u64)
            );
            gunzip(&out)
        } else {
            std::fs::read_to_string(&out).unwrap()
        };
        let expected: String = (0..200)
            .map(|n| format!("{{\"objectRef\":{{\"namespace\":\"a\"}},\"n\":{n}}}\n"))
            .collect();
        assert_eq!(text, expected, "{compress}");
        assert_eq!(metrics.events_out.get(), 200);
    }
}

/// Counts descriptors the opener hands out and the most open at once.
struct CountingOpener {
    inner: DiskOpener,
    open: Arc<AtomicUsize>,
}

struct CountedFile {
    inner: Box<dyn SinkFile>,
    open: Arc<AtomicUsize>,
}

impl Opener for CountingOpener {
    fn open(&self, path: &Path, trusted: Option<u64>) -> io::Result<(Box<dyn SinkFile>, u64)> {
        let (inner, len) = self.inner.open(path, trusted)?;
        self.open.fetch_add(1, Ordering::SeqCst);
        Ok((
            Box::new(CountedFile {
                inner,
                open: self.open.clone(),
            }),
            len,
        ))
    }
}

impl Drop for CountedFile {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Write for CountedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[expect(
            clippy::disallowed_methods,
            reason = "a `Write` impl passes a short write on"
        )]
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SinkFile for CountedFile {
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.inner.sync()
    }
}

#[test]
fn open_files_stay_within_max_open_files_and_reopen_for_append() {
    let dir = tempfile::tempdir().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let settings = WriteSettings {
        compress_level: Some(1),
        fsync: false,
        max_size: 0,
        retention: rotate::Retention::default(),
        clock: Arc::new(SystemClock),
        opener: Arc::new(CountingOpener {
            inner: DiskOpener {
                gzip: true,
                file_mode: 0o600,
                dir_mode: 0o700,
            },
            open: open.clone(),
        }),
    };
    let limits = Limits {
        flush_bytes: 1,
        flush_interval: Duration::ZERO,
        idle_timeout: Duration::from_secs(3600),
        max_open_files: 3,
        max_files: 1000,
        overflow_path: "overflow.log".into(),
        max_in_flight: 2,
        max_buffered: 1 << 20,
        flush_all_bytes: usize::MAX,
        slice_seconds: None,
    };
    let mut files = OpenFiles::new(limits, Metrics::new().component("file"));
    let mut jobs = Vec::new();
    let mut compressed = Vec::new();
    let mut max_seen = 0;
    // Three rounds over 20 files: every file is closed and reopened.
    for round in 0..3 {
        for ns in 0..20 {
            let path = dir.path().join(format!("ns{ns}.log.gz"));
            let path = path.to_str().unwrap();
            files.add(
                path,
                true,
                event(&format!("ns{ns}"), round, Ack::none()),
                Instant::now(),
            );
            files.next_jobs(Instant::now(), false, &mut jobs);
            for mut job in jobs.drain(..) {
                let result = worker::execute(&mut job, &settings, &mut compressed);
                max_seen = max_seen.max(open.load(Ordering::SeqCst));
                files.complete(
                    worker::Done {
                        key: job.key,
                        slot: job.slot,
                        data: job.data,
                        result,
                    },
                    Instant::now(),
                );
            }
        }
    }
    assert!(files.is_empty());
    assert!(max_seen <= 3, "{max_seen} files open at once");
    assert_eq!(files.open_fds(), open.load(Ordering::SeqCst));
    for ns in 0..20 {
        let text = gunzip(&dir.path().join(format!("ns{ns}.log.gz")));
        let expected: String = (0..3)
            .map(|n| format!("{{\"objectRef\":{{\"namespace\":\"ns{ns}\"}},\"n\":{n}}}\n"))
            .collect();
        assert_eq!(text, expected);
    }
}

/// The error `Config::parse` gives for a file output with `keys`; the
/// output's keys start on line 6.
fn config_error(keys: &str) -> String {
    let text = format!(
        "[[source]]\ntype = \"stdin\"\n[[output]]\ntype = \"file\"\nmatch = \"**\"\n{keys}\n"
    );
    Config::parse("c.toml", &text).unwrap_err().to_string()
}

#[test]
fn config_errors_point_into_the_path_string() {
    let err = config_error("path = '/x/${objectRef.namespace ?? }.gz'");
    assert!(err.contains("c.toml:6:37"), "{err}");
    assert!(err.contains("expected an expression after `??`"), "{err}");
    // Each broken template points at its exact character: the value starts
    // at column 9 of `path = '...'`, so byte N of it is column 9 + N.
    let cases = [
        ("/a/${tag", 8, "expected an operator or `}`"),
        ("/a/${}", 5, "expected an expression after `${`"),
        ("/a/${x ?? }", 10, "expected an expression after `??`"),
        ("/a/${x..y}", 7, "expected a field name after `.`"),
        ("/a/${x ?? \"open}", 16, "expected `\"` to close the string"),
        ("/a/%", 3, "expected a strftime field"),
        ("/a/%Q.log", 3, "expected a strftime field"),
        (
            "/a/${tag_parts[x]}",
            15,
            "expected an array index after `[`",
        ),
        ("/a/$x", 4, "expected `{`, `$` or a digit after `$`"),
    ];
    for (template, offset, message) in cases {
        let err = config_error(&format!("path = '{template}'"));
        let at = format!("c.toml:6:{}", 9 + offset);
        assert!(
            err.contains(&at) && err.contains(message),
            "{template}: {err}"
        );
    }
    let err = config_error("path = ''");
    assert!(
        err.contains("c.toml:6:8") && err.contains("`path` is empty"),
        "{err}"
    );
    let err = config_error("path = \"/a/\\u0000\"");
    assert!(err.contains("c.toml:6:8") && err.contains("NUL"), "{err}");
    let err = config_error("path = '/x/a.gz'\ncompress_level = 12");
    assert!(
        err.contains("c.toml:7:18") && err.contains("between 1 and 9"),
        "{err}"
    );
    let err = config_error("path = '/x/a.gz'\nmax_sise = \"1MiB\"");
    assert!(err.contains("did you mean `max_size`"), "{err}");
    let err = config_error("path = '/x/${tag}'\nbase_dir = \"/y\"");
    assert!(err.contains("does not start with `base_dir`"), "{err}");
}

#[test]
fn config_defaults_and_modes() {
    let c = file_config(
        "path = '/var/log/a-${tag}.log.gz'\ncompress = \"gzip\"\nmode = 0o640\ndir_mode = \"0750\"",
    );
    assert_eq!(c.mode.0, 0o640);
    assert_eq!(c.dir_mode.0, 0o750);
    assert_eq!(c.compress_level, 6);
    assert_eq!(c.max_size.0, 100 << 20);
    assert_eq!(c.base_dir(), "/var/log/");
    let c = file_config("path = '-'");
    assert!(c.is_stdout());
}

#[test]
fn files_close_when_their_time_slice_ends_or_they_go_idle() {
    let dir = tempfile::tempdir().unwrap();
    let settings = WriteSettings {
        compress_level: None,
        fsync: false,
        max_size: 0,
        retention: rotate::Retention::default(),
        clock: Arc::new(SystemClock),
        opener: Arc::new(DiskOpener {
            gzip: false,
            file_mode: 0o600,
            dir_mode: 0o700,
        }),
    };
    let limits = Limits {
        flush_bytes: 1,
        flush_interval: Duration::ZERO,
        idle_timeout: Duration::from_secs(3600),
        max_open_files: 10,
        max_files: 1000,
        overflow_path: "overflow.log".into(),
        max_in_flight: 4,
        max_buffered: 1 << 20,
        flush_all_bytes: usize::MAX,
        slice_seconds: Some(3600),
    };
    let mut files = OpenFiles::new(limits, Metrics::new().component("file"));
    let write = |files: &mut OpenFiles, name: &str, minute: i64| {
        let mut e = event("a", 0, Ack::none());
        e.time = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
            + chrono::TimeDelta::minutes(minute);
        let path = dir.path().join(name);
        files.add(path.to_str().unwrap(), true, e, Instant::now());
        let mut jobs = Vec::new();
        files.next_jobs(Instant::now(), true, &mut jobs);
        for mut job in jobs {
            let result = worker::execute(&mut job, &settings, &mut Vec::new());
            files.complete(
                worker::Done {
                    key: job.key,
                    slot: job.slot,
                    data: job.data,
                    result,
                },
                Instant::now(),
            );
        }
    };
    write(&mut files, "h10", 5);
    write(&mut files, "h11", 60);
    files.close_idle(Instant::now());
    assert_eq!(
        files.open_fds(),
        2,
        "within the grace minute both stay open"
    );
    write(&mut files, "h11", 62);
    files.close_idle(Instant::now());
    assert_eq!(files.open_fds(), 1, "the 10:00 slice ended");
    // Late events for a closed slice reopen it for append.
    write(&mut files, "h10", 59);
    assert_eq!(files.open_fds(), 2);
    files.close_idle(Instant::now() + Duration::from_secs(3601));
    assert_eq!(files.open_fds(), 0, "idle files are closed");
    let h10 = std::fs::read_to_string(dir.path().join("h10")).unwrap();
    assert_eq!(h10.lines().count(), 2);
}
