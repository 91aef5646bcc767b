//! The tail source against real files: restarts, crashes, rotation,
//! truncation, symlinks, bad input, locking. Each test runs the real binary
//! with a `stdout` output and reads what it prints.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{Agent, BIN, Exit, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// A temp dir with `logs/`, `data/` and a config tailing `paths`.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    /// `extra` is appended to the `[[source]]` table.
    fn new(paths: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("logs")).unwrap();
        let root = dir.path().display().to_string();
        let config = dir.path().join("auditrail.toml");
        let text = format!(
            r#"data_dir = "{root}/data"
shutdown_timeout = "20s"

[[source]]
name = "files"
type = "tail"
paths = [{paths}]
tag = "audit"
refresh_interval = "500ms"
poll_interval = "100ms"
rotate_wait = "300ms"
{extra}

[[output]]
name = "out"
type = "stdout"
match = "**"
"#,
            paths = paths.replace("{logs}", &format!("{root}/logs"))
        );
        fs::write(&config, text).unwrap();
        Self { dir, config }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join("logs").join(name)
    }

    fn positions(&self) -> PathBuf {
        self.dir.path().join("data/tail/files.positions.json")
    }

    fn start(&self) -> Agent {
        Agent::builder().config_file(&self.config)
    }
}

/// What the descriptors of process `pid` point at.
fn open_files(pid: u32) -> Vec<String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
                .map(|target| target.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn event(id: u64) -> String {
    format!(
        "{{\"id\":{id},\"verb\":\"get\",\"pad\":\"{}\"}}\n",
        "x".repeat((id % 50) as usize)
    )
}

fn append(path: &Path, ids: std::ops::Range<u64>) {
    let text: String = ids.map(event).collect();
    append_bytes(path, text.as_bytes());
}

/// Appends raw bytes, e.g. half a line.
fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn id_of(line: &str) -> u64 {
    let value: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    value["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id: {line}"))
}

/// How often each id was printed.
fn tally(lines: &[String]) -> BTreeMap<u64, usize> {
    let mut seen = BTreeMap::new();
    for line in lines {
        *seen.entry(id_of(line)).or_insert(0) += 1;
    }
    seen
}

/// Asserts `lines` hold every id in `ids` exactly once and nothing else.
fn assert_exactly_once(lines: &[String], ids: impl IntoIterator<Item = u64>) {
    let seen = tally(lines);
    let expected: Vec<u64> = ids.into_iter().collect();
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|id| !seen.contains_key(id))
        .take(10)
        .collect();
    let repeated: Vec<(u64, usize)> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| (*i, *n))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing ids (first 10): {missing:?}");
    assert!(repeated.is_empty(), "repeated ids (first 10): {repeated:?}");
    assert_eq!(lines.len(), expected.len(), "unexpected extra lines");
}

/// Saved offset of the only file in the position file.
fn saved_offsets(setup: &Setup) -> Vec<(u64, u64)> {
    let text = fs::read_to_string(setup.positions()).unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["ino"].as_u64().unwrap(), f["offset"].as_u64().unwrap()))
        .collect()
}

/// Line start offsets of a file: id -> offset.
fn offsets_by_id(path: &Path) -> BTreeMap<u64, u64> {
    let bytes = fs::read(path).unwrap();
    let mut out = BTreeMap::new();
    let mut offset = 0u64;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        if line.ends_with(b"\n") {
            out.insert(
                id_of(std::str::from_utf8(&line[..line.len() - 1]).unwrap()),
                offset,
            );
        }
        offset += line.len() as u64;
    }
    out
}

/// A small deterministic PRNG (xorshift), seeded per run and printed.
struct Rng(u64);

impl Rng {
    fn from_time() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed: {seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Appends events at about `rate` per second until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// `rotate`: every this often, rename the file to `<name>.<n>` (keeping
    /// `keep` backups, deleting older ones) and start a new one.
    fn start(path: PathBuf, rate: u64, rotate: Option<(Duration, usize)>) -> Self {
        Self::spawn(path, rate, 0, rotate)
    }

    /// Appends ids from `first` on.
    fn start_at(path: PathBuf, rate: u64, first: u64) -> Self {
        Self::spawn(path, rate, first, None)
    }

    fn spawn(path: PathBuf, rate: u64, first: u64, rotate: Option<(Duration, usize)>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(first));
        let handle = {
            let stop = stop.clone();
            let written = written.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut next = first;
                let mut last_rotation = Instant::now();
                let mut backups = 0usize;
                let mut file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let due = first + (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    if due > next {
                        let text: String = (next..due).map(event).collect();
                        file.write_all(text.as_bytes()).unwrap();
                        next = due;
                        written.store(next, Ordering::Release);
                    }
                    if let Some((every, keep)) = rotate
                        && last_rotation.elapsed() >= every
                    {
                        // lumberjack: close, rename, create anew, prune.
                        drop(file);
                        backups += 1;
                        let backup = PathBuf::from(format!("{}.{backups:06}", path.display()));
                        fs::rename(&path, &backup).unwrap();
                        file = OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&path)
                            .unwrap();
                        if backups > keep {
                            let old = format!("{}.{:06}", path.display(), backups - keep);
                            fs::remove_file(old).unwrap();
                        }
                        last_rotation = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            stop,
            written,
            handle: Some(handle),
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Stops and returns how many events were written.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.written()
    }
}

#[test]
fn restart_mid_file_neither_loses_nor_repeats() {
    // SIGTERM lands while a writer appends 20k events/s and the agent reads.
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    let log = setup.log("audit.log");
    append(&log, 0..3000);
    let run = setup.start();
    run.wait_for_lines(3000);
    let writer = Writer::start_at(log, 20_000, 3000);
    std::thread::sleep(Duration::from_millis(700));
    let Exit {
        lines: first,
        log: stderr,
        ..
    } = run.stop().assert_success();
    assert!(stderr.contains("Stopped cleanly"), "{stderr}");
    let written_at_stop = writer.written();
    assert!(
        first.len() > 3000,
        "the first run read none of the appended events"
    );
    std::thread::sleep(Duration::from_millis(300));
    let run = setup.start();
    std::thread::sleep(Duration::from_millis(700));
    let total = writer.finish();
    assert!(
        total > written_at_stop + 1000,
        "the writer stopped before SIGTERM"
    );
    run.wait_for_lines((total as usize).saturating_sub(first.len()));
    std::thread::sleep(Duration::from_millis(300));
    let second = run.stop().assert_success().lines;
    assert!(!first.is_empty() && !second.is_empty());
    let all: Vec<String> = first.into_iter().chain(second).collect();
    assert_exactly_once(&all, 0..total);
}

#[test]
fn kill_9_under_load_repeats_only_the_unsaved_window() {
    let setup = Setup::new(
        r#""{logs}/audit.log""#,
        "position_flush_interval = \"200ms\"\nmax_unacked = \"512KiB\"",
    );
    let log = setup.log("audit.log");
    let writer = Writer::start(log.clone(), 20_000, None);
    let mut rng = Rng::from_time();
    let mut runs: Vec<(Vec<String>, Option<u64>)> = Vec::new();
    for _ in 0..10 {
        let run = setup.start();
        std::thread::sleep(Duration::from_millis(300 + rng.below(900)));
        let lines = run.kill().lines;
        let saved = saved_offsets(&setup).first().map(|(_, offset)| *offset);
        runs.push((lines, saved));
    }
    let total = writer.finish();
    let run = setup.start();
    let printed: usize = runs.iter().map(|(l, _)| l.len()).sum();
    assert!(
        wait_until(WAIT, || {
            let mut seen: std::collections::HashSet<u64> =
                run.output().lines().iter().map(|l| id_of(l)).collect();
            for (lines, _) in &runs {
                seen.extend(lines.iter().filter(|l| l.ends_with('}')).map(|l| id_of(l)));
            }
            seen.len() as u64 >= total
        }),
        "not every event arrived; printed {printed}"
    );
    let last = run.stop().assert_success().lines;
    runs.push((last, None));

    let offsets = offsets_by_id(&log);
    assert_eq!(offsets.len() as u64, total);
    let id_at: BTreeMap<u64, u64> = offsets.iter().map(|(id, off)| (*off, *id)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut expected_start = 0u64; // first id the next run must print
    let mut duplicates = 0usize;
    for (n, (lines, saved)) in runs.iter().enumerate() {
        // A kill can cut the last line short; it was never acknowledged.
        let ids: Vec<u64> = lines
            .iter()
            .filter(|l| l.ends_with('}'))
            .map(|l| id_of(l))
            .collect();
        if let Some(first) = ids.first() {
            assert_eq!(
                *first, expected_start,
                "run {n} did not resume at the saved position"
            );
        }
        for pair in ids.windows(2) {
            assert_eq!(pair[1], pair[0] + 1, "run {n} skipped or reordered events");
        }
        if let Some(saved) = saved {
            // The saved position never passes an event that was not printed.
            let printed_end = ids
                .last()
                .map_or(0, |id| offsets[id] + event(*id).len() as u64);
            let resumed_at = ids.first().map_or(expected_start, |id| offsets[id]);
            let resumed_at = if ids.is_empty() {
                offsets.get(&expected_start).copied().unwrap_or(0)
            } else {
                resumed_at
            };
            assert!(*saved >= resumed_at, "run {n}: position went backwards");
            assert!(
                *saved <= printed_end.max(resumed_at),
                "run {n}: saved {saved} past printed end {printed_end}"
            );
            // The next run starts exactly at the saved line: the only repeats
            // are lines printed after the last save.
            expected_start = id_at.get(saved).copied().unwrap_or(total);
            duplicates += ids.iter().filter(|id| offsets[id] >= *saved).count();
        }
        seen.extend(ids);
    }
    assert_eq!(seen.len() as u64, total, "some event was never delivered");
    let printed: usize = runs
        .iter()
        .map(|(l, _)| l.iter().filter(|l| l.ends_with('}')).count())
        .sum();
    assert_eq!(
        printed,
        total as usize + duplicates,
        "repeats outside the unsaved window"
    );
    eprintln!("{total} events, {duplicates} repeated across 10 kills");
}

#[test]
fn rotation_by_rename_under_load_is_read_exactly_once() {
    let setup = Setup::new(r#""{logs}/audit.log*""#, "");
    let log = setup.log("audit.log");
    let run = setup.start();
    let writer = Writer::start(log, 10_000, Some((Duration::from_millis(200), 3)));
    std::thread::sleep(Duration::from_secs(5));
    let total = writer.finish();
    run.wait_for_lines(total as usize);
    std::thread::sleep(Duration::from_millis(500));
    let Exit {
        lines, log: stderr, ..
    } = run.stop().assert_success();
    assert!(
        stderr.contains("Released a rotated or deleted file"),
        "{stderr}"
    );
    assert_exactly_once(&lines, 0..total);
}

#[test]
fn renamed_file_is_read_to_its_end_before_release() {
    // Only the live name matches: the backup is read from the open
    // descriptor, including lines written after the rename.
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    let log = setup.log("audit.log");
    append(&log, 0..1000);
    let run = setup.start();
    run.wait_for_lines(1000);
    let backup = setup.log("audit-1.log");
    fs::rename(&log, &backup).unwrap();
    append(&backup, 1000..2000);
    append(&log, 2000..3000);
    run.wait_for_lines(3000);
    assert!(wait_until(WAIT, || run
        .log()
        .contains("Released a rotated")));
    append(&log, 3000..3100);
    run.wait_for_lines(3100);
    let lines = run.stop().assert_success().lines;
    assert_exactly_once(&lines, 0..3100);
}

#[test]
fn copytruncate_and_truncation_start_over() {
    let setup = Setup::new(r#""{logs}/app.log""#, "watch = \"poll\"");
    let log = setup.log("app.log");
    append(&log, 0..2000);
    let run = setup.start();
    run.wait_for_lines(2000);
    // copytruncate: copy away (not matched), truncate, keep writing.
    fs::copy(&log, setup.log("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, 2000..2100);
    run.wait_for_lines(2100);
    // Truncation while the agent is paused, then more bytes than before
    // were written: only the changed first bytes tell.
    run.signal(libc::SIGSTOP);
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, 10_000..14_000);
    run.signal(libc::SIGCONT);
    run.wait_for_lines(6100);
    let Exit {
        lines, log: stderr, ..
    } = run.stop().assert_success();
    assert_exactly_once(&lines, (0..2100).chain(10_000..14_000));
    assert_eq!(
        stderr.matches("was truncated or rewritten").count(),
        2,
        "{stderr}"
    );
}

#[test]
fn deleted_and_recreated_file_is_read_whole_also_when_polling() {
    for watch in ["notify", "poll"] {
        let setup = Setup::new(r#""{logs}/*.log""#, &format!("watch = \"{watch}\""));
        let log = setup.log("audit.log");
        append(&log, 0..500);
        let run = setup.start();
        run.wait_for_lines(500);
        fs::remove_file(&log).unwrap();
        append(&log, 500..700);
        run.wait_for_lines(700);
        append(&log, 700..800);
        run.wait_for_lines(800);
        let lines = run.stop().assert_success().lines;
        assert_exactly_once(&lines, 0..800);
    }
}

#[test]
fn reused_inode_is_told_apart_by_fingerprint() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    let log = setup.log("audit.log");
    append(&log, 0..100);
    let run = setup.start();
    run.wait_for_lines(100);
    let first = run.stop().assert_success().lines;
    let old_ino = fs::metadata(&log).unwrap().ino();
    fs::remove_file(&log).unwrap();
    // A new file, longer than the saved offset, so only the fingerprint can
    // tell it apart.
    append(&log, 1000..1300);
    let new_ino = fs::metadata(&log).unwrap().ino();
    if new_ino != old_ino {
        // The filesystem did not reuse the inode: make the saved position
        // claim the new one, exactly as a reuse would.
        let text = fs::read_to_string(setup.positions()).unwrap();
        fs::write(
            setup.positions(),
            text.replace(
                &format!("\"ino\": {old_ino}"),
                &format!("\"ino\": {new_ino}"),
            ),
        )
        .unwrap();
    }
    assert_eq!(saved_offsets(&setup)[0].0, new_ino);
    let run = setup.start();
    run.wait_for_lines(300);
    std::thread::sleep(Duration::from_millis(300));
    let Exit {
        lines: second,
        log: stderr,
        ..
    } = run.stop().assert_success();
    assert_exactly_once(&first, 0..100);
    assert_exactly_once(&second, 1000..1300);
    assert!(stderr.contains("does not fit this file"), "{stderr}");
}

#[test]
fn symlink_retarget_follows_the_new_target_and_drains_the_old() {
    let setup = Setup::new(r#""{logs}/*.log""#, "");
    let targets = setup.dir.path().join("targets");
    fs::create_dir(&targets).unwrap();
    let (a, b) = (targets.join("a"), targets.join("b"));
    append(&a, 0..300);
    std::os::unix::fs::symlink(&a, setup.log("current.log")).unwrap();
    let run = setup.start();
    run.wait_for_lines(300);
    append(&b, 300..600);
    let tmp = setup.log("current.tmp");
    std::os::unix::fs::symlink(&b, &tmp).unwrap();
    fs::rename(&tmp, setup.log("current.log")).unwrap();
    append(&a, 600..700); // late writes to the old target
    run.wait_for_lines(700);
    append(&b, 700..800);
    run.wait_for_lines(800);
    std::thread::sleep(Duration::from_millis(300));
    let lines = run.stop().assert_success().lines;
    assert_exactly_once(&lines, 0..800);
}

#[test]
fn garbage_lines_are_counted_and_skipped() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    let log = setup.log("audit.log");
    let mut file = File::create(&log).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut valid = 0u64;
    let mut bad = 0u64;
    for n in 0..20_000u64 {
        if n % 2 == 0 {
            file.write_all(event(valid).as_bytes()).unwrap();
            valid += 1;
            continue;
        }
        bad += 1;
        let junk: Vec<u8> = match n % 3 {
            // Invalid UTF-8 bytes, never a newline.
            0 => std::iter::once(0xff)
                .chain((0..rng.below(200)).map(|_| (rng.below(255) as u8).max(11)))
                .collect(),
            // Truncated JSON.
            1 => event(n).as_bytes()[..(5 + rng.below(20)) as usize].to_vec(),
            // Not an object.
            _ => b"[1,2,3]".to_vec(),
        };
        file.write_all(&junk).unwrap();
        file.write_all(b"\n").unwrap();
        if n == 9_999 {
            // One 50 MB line, over the 16 MiB default `max_line_size`.
            let big = vec![b'a'; 50 << 20];
            file.write_all(&big).unwrap();
            file.write_all(b"\n").unwrap();
            bad += 1;
        }
    }
    drop(file);
    assert_eq!(bad, 10_001);
    let run = setup.start();
    run.wait_for_lines(valid as usize);
    std::thread::sleep(Duration::from_millis(300));
    let Exit {
        lines, log: stderr, ..
    } = run.stop().assert_success();
    assert_exactly_once(&lines, 0..valid);
    assert!(
        stderr.contains(&format!("skipped {bad} bad lines in total")),
        "{stderr}"
    );
    // Logged once per kind with the offset, never per line.
    assert_eq!(stderr.matches("Skipped a bad line").count(), 3, "{stderr}");
    assert!(stderr.contains("too_long"), "{stderr}");
    assert!(!stderr.contains("aaaa"), "line content must not be logged");
}

#[test]
fn second_agent_on_the_same_data_dir_refuses_to_start() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    append(&setup.log("audit.log"), 0..10);
    let first = setup.start();
    first.wait_for_lines(10);
    let second = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&setup.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is in use by another auditrail process"),
        "{stderr}"
    );
    assert!(second.stdout.is_empty(), "the second agent read events");
    let lines = first.stop().assert_success().lines;
    assert_exactly_once(&lines, 0..10);
}

#[test]
fn corrupt_position_file_is_moved_aside_and_reading_starts_per_read_from() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    append(&setup.log("audit.log"), 0..50);
    fs::create_dir_all(setup.positions().parent().unwrap()).unwrap();
    fs::write(setup.positions(), b"\0\0\0\0{garbage").unwrap();
    let run = setup.start();
    run.wait_for_lines(50);
    let Exit {
        lines, log: stderr, ..
    } = run.stop().assert_success();
    assert_exactly_once(&lines, 0..50);
    assert!(stderr.contains("position file is corrupt"), "{stderr}");
    let aside = fs::read_dir(setup.positions().parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".corrupt-")
        })
        .count();
    assert_eq!(aside, 1);
    assert_eq!(
        saved_offsets(&setup)[0].1,
        fs::metadata(setup.log("audit.log")).unwrap().len()
    );
}

#[test]
fn read_from_end_skips_old_lines_but_not_new_files() {
    let setup = Setup::new(r#""{logs}/*.log""#, "read_from = \"end\"");
    append(&setup.log("old.log"), 0..100);
    let run = setup.start();
    assert!(wait_until(WAIT, || run.log().contains("Following a file")));
    append(&setup.log("old.log"), 100..150);
    append(&setup.log("new.log"), 1000..1100);
    run.wait_for_lines(150);
    std::thread::sleep(Duration::from_millis(300));
    let lines = run.stop().assert_success().lines;
    assert_exactly_once(&lines, (100..150).chain(1000..1100));
}

#[test]
fn partial_last_line_waits_for_its_newline_across_a_restart() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "");
    let log = setup.log("audit.log");
    append(&log, 0..10);
    let half = event(10);
    let (head, tail) = half.split_at(12);
    append_bytes(&log, head.as_bytes());
    let run = setup.start();
    run.wait_for_lines(10);
    std::thread::sleep(Duration::from_millis(400));
    let first = run.stop().assert_success().lines;
    let run = setup.start();
    append_bytes(&log, tail.as_bytes());
    run.wait_for_lines(1);
    std::thread::sleep(Duration::from_millis(300));
    let second = run.stop().assert_success().lines;
    assert_exactly_once(&first, 0..10);
    assert_exactly_once(&second, 10..11);
}

#[test]
fn invalid_tail_config_points_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    fs::write(
        &config,
        "[[source]]\ntype = \"tail\"\npaths = [\"/x/*.log\"]\ntag = \"a.${namespace}\"\n\n[[output]]\ntype = \"stdout\"\nmatch = \"**\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(":4:"), "{stderr}");
    assert!(stderr.contains("only `${file}` and `${path}`"), "{stderr}");
    let mut text = String::new();
    File::open(&config)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    fs::write(
        &config,
        text.replace("a.${namespace}", "a.${file}")
            .replace("paths", "pathz"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `paths`?"), "{stderr}");
}

#[test]
fn partial_last_line_is_sent_at_shutdown_when_configured() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "emit_partial_at_shutdown = true");
    let log = setup.log("audit.log");
    append(&log, 0..5);
    let last = event(5);
    append_bytes(&log, last.trim_end().as_bytes());
    let run = setup.start();
    run.wait_for_lines(5);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        run.stdout_len(),
        5,
        "the partial line was sent before shutdown"
    );
    let lines = run.stop().assert_success().lines;
    assert_exactly_once(&lines, 0..6);
    let size = fs::metadata(&log).unwrap().len();
    assert_eq!(saved_offsets(&setup)[0].1, size);
}

/// `stop_at_eof`: every file is read to its end (a last line without a
/// newline included), acknowledged and its position saved, then the agent
/// exits 0 on its own; a second run resumes from the saved positions.
#[test]
fn stop_at_eof_reads_every_file_then_exits_and_resumes_next_time() {
    let setup = Setup::new(r#""{logs}/*.log""#, "stop_at_eof = true");
    let (a, b) = (setup.log("a.log"), setup.log("b.log"));
    append(&a, 0..300);
    append(&b, 1000..1050);
    let last = event(300);
    append_bytes(&a, last.trim_end().as_bytes());

    let run = setup.start();
    let Exit {
        status,
        lines,
        log: stderr,
        ..
    } = run.wait();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_exactly_once(&lines, (0..301).chain(1000..1050));
    let mut saved: Vec<u64> = saved_offsets(&setup).into_iter().map(|(_, o)| o).collect();
    saved.sort_unstable();
    let sizes = [&b, &a].map(|p| fs::metadata(p).unwrap().len());
    assert_eq!(saved, sizes, "positions cover both files to their end");

    // The partial line counted as whole: the writer's late newline is an
    // empty line (skipped), and only the new lines are read.
    append_bytes(&a, b"\n");
    append(&a, 301..320);
    let run = setup.start();
    let Exit {
        status,
        lines,
        log: stderr,
        ..
    } = run.wait();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_exactly_once(&lines, 301..320);
}

/// Files found at start-up are read at once, not a `poll_interval` later:
/// with an hour-long `poll_interval`, `stop_at_eof` still ends promptly.
#[test]
fn files_found_at_start_are_read_at_once() {
    let setup = Setup::new(r#""{logs}/*.log""#, "stop_at_eof = true");
    let config = fs::read_to_string(&setup.config).unwrap();
    fs::write(
        &setup.config,
        config.replace(r#"poll_interval = "100ms""#, r#"poll_interval = "1h""#),
    )
    .unwrap();
    append(&setup.log("a.log"), 0..100);

    let run = setup.start();
    let Exit {
        status,
        lines,
        log: stderr,
        ..
    } = run.wait();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_exactly_once(&lines, 0..100);
}

/// The reader hands out a file in 1 MiB ranges that decode jobs read and
/// cut in parallel, so lines straddle ranges, and some span several. Every
/// line still comes out whole, once, byte for byte, in file order.
#[test]
fn lines_across_read_ranges_arrive_whole_and_in_file_order() {
    let setup = Setup::new(r#""{logs}/audit.log""#, "stop_at_eof = true");
    let mut expected = Vec::new();
    let mut text = String::new();
    for id in 0..4_000u64 {
        // Mostly a few KiB (odd lengths, so range ends fall anywhere in a
        // line); every 700th line over 1 MiB, so it spans two or three ranges.
        let pad = if id % 700 == 350 {
            (1 << 20) + 4_099 * (id / 700) as usize
        } else {
            (id as usize * 7_919) % 3_001
        };
        let line = format!(r#"{{"id":{id},"pad":"{}"}}"#, "x".repeat(pad));
        text.push_str(&line);
        text.push('\n');
        expected.push(line);
    }
    assert!(text.len() > 10 << 20, "spans ten ranges");
    fs::write(setup.log("audit.log"), &text).unwrap();

    let run = setup.start();
    let Exit {
        status,
        lines,
        log: stderr,
        ..
    } = run.wait();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(lines.len(), expected.len(), "stderr:\n{stderr}");
    for (n, (got, want)) in lines.iter().zip(&expected).enumerate() {
        assert!(
            got == want,
            "line {n} differs: {} bytes, want {}",
            got.len(),
            want.len()
        );
    }
    assert!(!stderr.contains("Skipped a bad line"), "{stderr}");
    let saved: Vec<u64> = saved_offsets(&setup).into_iter().map(|(_, o)| o).collect();
    assert_eq!(saved, [text.len() as u64]);
}

/// A file read before a stop and gone at the next start (a rotated backup
/// compressed and deleted meanwhile) is reported by path and offset: what
/// was written to it after the stop can no longer be read.
#[test]
fn a_file_gone_while_stopped_is_reported_with_its_offset() {
    let setup = Setup::new(r#""{logs}/*.log""#, "stop_at_eof = true");
    let (gone, kept) = (setup.log("audit-old.log"), setup.log("audit.log"));
    append(&gone, 0..10);
    append(&kept, 100..110);
    let run = setup.start();
    let lines = run.wait().assert_success().lines;
    assert_exactly_once(&lines, (0..10).chain(100..110));
    let offset = fs::metadata(&gone).unwrap().len();

    append(&gone, 10..20);
    fs::remove_file(&gone).unwrap();
    append(&kept, 110..120);
    let run = setup.start();
    let Exit {
        status,
        lines,
        log: stderr,
        ..
    } = run.wait();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_exactly_once(&lines, 110..120);
    let warning = stderr
        .lines()
        .find(|line| line.contains("is gone; anything written to it past the saved offset"))
        .unwrap_or_else(|| panic!("no warning about the vanished file:\n{stderr}"));
    assert!(warning.contains("audit-old.log"), "{warning}");
    assert!(warning.contains(&format!("offset={offset}")), "{warning}");
    assert_eq!(
        stderr.matches("is gone; anything written").count(),
        1,
        "{stderr}"
    );
}

/// A deleted file whose events cannot be delivered (the only output's
/// remote is down) is closed after `max_deleted_hold`, so its disk space
/// comes back; the bytes never acknowledged are reported and counted.
#[test]
fn a_deleted_file_is_closed_after_max_deleted_hold_when_outputs_are_stuck() {
    let setup = Setup::new(
        r#""{logs}/audit.log""#,
        "max_deleted_hold = \"1s\"\nmax_unacked = \"64KiB\"",
    );
    // Nothing listens on port 9: every send fails and is retried.
    let config = fs::read_to_string(&setup.config).unwrap().replace(
        "type = \"stdout\"",
        "type = \"http\"\nurl = \"http://127.0.0.1:9/\"",
    );
    fs::write(&setup.config, config).unwrap();
    let log = setup.log("audit.log");
    append(&log, 0..20_000);
    let size = fs::metadata(&log).unwrap().len();
    let run = setup.start();
    let pid = run.child.id();
    assert!(
        wait_until(WAIT, || open_files(pid)
            .iter()
            .any(|t| t.ends_with("audit.log"))),
        "the file was never opened"
    );
    fs::remove_file(&log).unwrap();
    assert!(
        wait_until(WAIT, || !open_files(pid)
            .iter()
            .any(|t| t.contains("audit.log"))),
        "the deleted file is still open: {:?}",
        open_files(pid)
    );
    let stderr = run.log();
    let report = stderr
        .lines()
        .find(|line| line.contains("after `max_deleted_hold`"))
        .unwrap_or_else(|| panic!("no report:\n{stderr}"));
    assert!(report.contains(&format!("size={size}")), "{report}");
    assert!(
        report.contains(&format!("unacknowledged_bytes={size}")),
        "{report}"
    );
}

/// With more files than `max_open_files`, idle files are closed to make
/// room and opened again when they grow: every line is read exactly once,
/// and no more than the limit is ever open.
#[test]
fn more_files_than_max_open_files_are_all_read_within_the_limit() {
    let setup = Setup::new(r#""{logs}/*.log""#, "max_open_files = 3");
    let files: Vec<PathBuf> = (0..12)
        .map(|n| setup.log(&format!("f{n:02}.log")))
        .collect();
    for (n, file) in files.iter().enumerate() {
        let first = n as u64 * 1000;
        append(file, first..first + 50);
    }
    let run = setup.start();
    let pid = run.child.id();
    let mut most_open = 0;
    let mut sample_until = |count: usize| {
        let deadline = Instant::now() + WAIT;
        while run.stdout_len() < count && Instant::now() < deadline {
            most_open = most_open.max(
                open_files(pid)
                    .iter()
                    .filter(|target| target.contains("/logs/"))
                    .count(),
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    sample_until(600);
    // Every file was read and most were closed again; now all grow.
    for (n, file) in files.iter().enumerate() {
        let first = n as u64 * 1000 + 50;
        append(file, first..first + 10);
    }
    sample_until(720);
    let Exit {
        lines, log: stderr, ..
    } = run.stop().assert_success();
    assert!(
        most_open <= 3,
        "{most_open} files open at once; stderr:\n{stderr}"
    );
    let ids = (0..12u64).flat_map(|n| n * 1000..n * 1000 + 60);
    assert_exactly_once(&lines, ids);
    assert!(stderr.contains("wait for a descriptor"), "{stderr}");
}

/// `stop_at_eof` waits for files that had to wait for a descriptor.
#[test]
fn stop_at_eof_reads_files_that_waited_for_a_descriptor() {
    let setup = Setup::new(
        r#""{logs}/*.log""#,
        "max_open_files = 2\nstop_at_eof = true",
    );
    for n in 0..5u64 {
        append(&setup.log(&format!("f{n}.log")), n * 1000..n * 1000 + 20);
    }
    let run = setup.start();
    let Exit {
        status,
        lines,
        log: stderr,
        ..
    } = run.wait();
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert_exactly_once(&lines, (0..5u64).flat_map(|n| n * 1000..n * 1000 + 20));
}

/// `read_from = "end"` holds for files present at the first start even when
/// they have to wait for a descriptor: only lines written later are read.
#[test]
fn read_from_end_holds_for_files_that_wait_for_a_descriptor() {
    let setup = Setup::new(
        r#""{logs}/*.log""#,
        "read_from = \"end\"\nmax_open_files = 2",
    );
    let files: Vec<PathBuf> = (0..6).map(|n| setup.log(&format!("f{n}.log"))).collect();
    for (n, file) in files.iter().enumerate() {
        append(file, n as u64 * 1000..n as u64 * 1000 + 30);
    }
    let run = setup.start();
    // Two files are open, the other four closed with their positions kept.
    assert!(wait_until(WAIT, || run
        .log()
        .matches("Following a file")
        .count()
        == 2));
    for (n, file) in files.iter().enumerate() {
        append(file, n as u64 * 1000 + 30..n as u64 * 1000 + 35);
    }
    run.wait_for_lines(30);
    std::thread::sleep(Duration::from_millis(500));
    let Exit {
        lines, log: stderr, ..
    } = run.stop().assert_success();
    let new = (0..6u64).flat_map(|n| n * 1000 + 30..n * 1000 + 35);
    assert_exactly_once(&lines, new);
    assert!(!stderr.contains("Skipped a bad line"), "{stderr}");
}
