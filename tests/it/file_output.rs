//! The `file` output end to end: per-namespace hourly gzip files, hostile
//! names, `kill -9` and restart, rotation, a blocked directory, stdout.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::support::{Agent, data};

const NS_TEMPLATE: &str =
    r#"{dir}/out/audit-audit.${objectRef.namespace ?? "none"}.%Y%m%d%H.log.gz"#;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("auditrail.toml");
    let text = text.replace("{dir}", &dir.display().to_string());
    std::fs::write(&path, text).expect("write config");
    path
}

fn stdin_config(output_keys: &str) -> String {
    format!(
        "data_dir = \"{{dir}}/data\"\n[[source]]\ntype = \"stdin\"\ntag = \"audit\"\ntime_key = \"stageTimestamp\"\n\
         [[output]]\ntype = \"file\"\nmatch = \"audit\"\n{output_keys}\n"
    )
}

/// Runs the agent on `input` until stdin ends and it exits.
fn run_with_input(config: &Path, input: &[u8]) -> ExitStatus {
    let mut agent = Agent::builder().stdin().config_file(config);
    agent
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("feed stdin");
    agent.wait().status
}

fn fixture_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for name in [
        "openshift-clo-apiaudit-in-v1.jsonl",
        "falco-k8s-audit-trace-files.jsonl",
    ] {
        let text = std::fs::read_to_string(data(&format!("file_output/{name}"))).expect("fixture");
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

fn namespace(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
    value
        .pointer("/objectRef/namespace")
        .and_then(|v| v.as_str())
        .unwrap_or("none")
        .to_owned()
}

fn hour(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
    let stamp = value["stageTimestamp"].as_str().expect("stageTimestamp");
    let time = chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
    time.with_timezone(&chrono::Utc)
        .format("%Y%m%d%H")
        .to_string()
}

/// Decompresses a whole file, failing on any torn or corrupt member.
fn gunzip_strict(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{} is not valid gzip: {e}", path.display()));
    text
}

/// `gzip -t` agrees, when the tool is installed.
fn gzip_t(path: &Path) {
    if let Ok(status) = std::process::Command::new("gzip")
        .arg("-t")
        .arg(path)
        .status()
    {
        assert!(status.success(), "gzip -t rejects {}", path.display());
    }
}

fn files_in(dir: &Path) -> BTreeMap<String, PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("dir entry"))
                .map(|e| (e.file_name().into_string().expect("utf-8 name"), e.path()))
                .collect()
        })
        .unwrap_or_default()
}

/// The fluentd scenario's output on its own: real events from stdin, one
/// gzip file per namespace and hour, exactly (the tail-based example runs
/// in `seed_scenarios`).
#[test]
fn one_gzip_file_per_namespace_and_hour_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &stdin_config(
            r#"path = '{dir}/audit-audit.${objectRef.namespace ?? "none"}.%Y%m%d%H.log.gz'
compress = "gzip""#,
        ),
    );
    let lines = fixture_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(run_with_input(&config, input.as_bytes()).success());

    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for line in &lines {
        let name = format!("audit-audit.{}.{}.log.gz", namespace(line), hour(line));
        expected
            .entry(name)
            .or_default()
            .push_str(&format!("{line}\n"));
    }
    let written = files_in(dir.path());
    let written: BTreeMap<String, String> = written
        .into_iter()
        .filter(|(name, _)| name.ends_with(".gz"))
        .map(|(name, path)| {
            gzip_t(&path);
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&path).expect("stat").permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "{name}");
            (name, gunzip_strict(&path))
        })
        .collect();
    assert!(
        expected.len() > 10,
        "the fixtures span many namespaces and hours"
    );
    assert_eq!(written, expected);
}

#[test]
fn hostile_namespaces_and_tags_stay_under_the_base_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &stdin_config(&format!(
            "path = '{}'\ncompress = \"gzip\"",
            NS_TEMPLATE.replace(".%Y%m%d%H", "")
        )),
    );
    let long = "n".repeat(5000);
    let hostile = [
        "../../escaped",
        "/etc/cron.d/x",
        "..",
        ".",
        "",
        ".hidden",
        "a\\u0000b",
        "a\\nb",
        long.as_str(),
        "ok",
    ];
    let lines: Vec<String> = hostile
        .iter()
        .enumerate()
        .map(|(n, ns)| {
            format!(r#"{{"objectRef":{{"namespace":"{ns}"}},"stageTimestamp":"2026-11-22T10:00:00Z","n":{n}}}"#)
        })
        .collect();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(run_with_input(&config, input.as_bytes()).success());

    // Nothing but the config, the data dir and the output dir at the top.
    let top: Vec<String> = files_in(dir.path()).into_keys().collect();
    assert_eq!(top, ["auditrail.toml", "out"]);
    let out = dir.path().join("out");
    let mut seen = Vec::new();
    for (name, path) in files_in(&out) {
        assert!(path.is_file(), "{name} is not a plain file");
        assert!(!name.starts_with('.') || name.starts_with("._"), "{name}");
        assert!(name.len() <= 255, "{name}");
        seen.extend(gunzip_strict(&path).lines().map(str::to_owned));
    }
    seen.sort();
    let mut expected = lines.clone();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every hostile event was written once, under out/"
    );
}

#[test]
fn kill_9_mid_stream_leaves_valid_gzip_and_a_restart_appends_to_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &stdin_config(&format!(
            "path = '{NS_TEMPLATE}'\ncompress = \"gzip\"\nflush_interval = \"20ms\""
        )),
    );
    let line = |ns: &str, n: usize| {
        format!(
            r#"{{"objectRef":{{"namespace":"{ns}"}},"stageTimestamp":"2026-11-22T10:00:00Z","n":{n}}}"#
        )
    };
    let namespaces = ["a", "b", "c"];
    let out = dir.path().join("out");
    let mut agent = Agent::builder().stdin().config_file(&config);
    let mut stdin = agent.stdin.take().expect("stdin");
    let mut sent: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // Feed slowly until every namespace has flushed something, then a bit
    // more, and kill -9 in the middle of the stream.
    let mut n = 0;
    let mut extra = 0;
    while extra < 20 {
        let ns = namespaces[n % namespaces.len()];
        let l = line(ns, n);
        if stdin.write_all(format!("{l}\n").as_bytes()).is_err() {
            break;
        }
        sent.entry(ns).or_default().push(l);
        n += 1;
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(15));
        }
        let files = files_in(&out);
        if files.len() == namespaces.len()
            && files
                .values()
                .all(|p| p.metadata().is_ok_and(|m| m.len() > 0))
        {
            extra += 1;
        }
        assert!(n < 100_000, "the agent wrote nothing");
    }
    agent.kill();
    drop(stdin);

    // Each file holds a prefix of what was sent to it (a torn last member,
    // were there one, is read as far as it goes here).
    for (name, path) in files_in(&out) {
        let ns = name.split('.').nth(1).expect("namespace in name");
        let mut text = String::new();
        let _ = flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).expect("open"))
            .read_to_string(&mut text);
        let got: Vec<&str> = text.lines().collect();
        let want = &sent[ns];
        assert!(!got.is_empty());
        assert_eq!(
            got[..],
            want[..got.len()]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..],
            "{name}"
        );
    }
    // A power cut can leave half a member behind, which kill -9 rarely does:
    // add one by hand to show the restart cuts it off.
    let torn = out.join("audit-audit.a.2026112210.log.gz");
    let before = gunzip_strict(&torn);
    let mut member = Vec::new();
    {
        let mut encoder = flate2::write::GzEncoder::new(&mut member, flate2::Compression::fast());
        encoder.write_all(b"{\"torn\":true}\n").expect("compress");
        encoder.finish().expect("finish");
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&torn)
        .expect("open")
        .write_all(&member[..member.len() / 2])
        .expect("tear");

    // Restart and append to the same files.
    let more: Vec<String> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| line(ns, 1_000_000 + i))
        .collect();
    let input: String = more.iter().map(|l| format!("{l}\n")).collect();
    assert!(run_with_input(&config, input.as_bytes()).success());
    for (name, path) in files_in(&out) {
        gzip_t(&path);
        let text = gunzip_strict(&path);
        let ns = name.split('.').nth(1).expect("namespace in name");
        let got: Vec<&str> = text.lines().collect();
        let (last, earlier) = got.split_last().expect("lines");
        assert_eq!(
            *last,
            more[namespaces.iter().position(|n| *n == ns).expect("ns")]
        );
        let want = &sent[ns];
        assert_eq!(
            earlier[..],
            want[..earlier.len()]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..]
        );
        if path == torn {
            assert_eq!(text, format!("{before}{last}\n"));
        }
    }
}

#[test]
fn size_rotation_keeps_every_line_in_order_across_backups() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &stdin_config(
            "path = '{dir}/out/audit.log.gz'\ncompress = \"gzip\"\nmax_size = \"4KiB\"\nmax_backups = 0\nflush_bytes = \"8KiB\"",
        ),
    );
    let lines = fixture_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(run_with_input(&config, input.as_bytes()).success());
    let files = files_in(&dir.path().join("out"));
    assert!(files.len() > 5, "{:?}", files.keys());
    let mut seen = Vec::new();
    // Backup names sort by rotation time; the current file comes last.
    let (current, backups): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|(n, _)| n == "audit.log.gz");
    for (name, path) in backups.iter().chain(&current) {
        assert!(
            name == "audit.log.gz" || name.len() == "audit-2026-11-22T10-00-00.000.log.gz".len(),
            "{name}"
        );
        gzip_t(path);
        seen.extend(gunzip_strict(path).lines().map(str::to_owned));
    }
    assert_eq!(seen, lines);
}

#[test]
fn max_backups_prunes_the_oldest_backups_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &stdin_config(
            "path = '{dir}/out/audit.log.gz'\ncompress = \"gzip\"\nmax_size = \"4KiB\"\nmax_backups = 2\nflush_bytes = \"8KiB\"",
        ),
    );
    let bystander = dir
        .path()
        .join("out/audit-notes-2020-01-01T00-00-00.000.log.gz");
    std::fs::create_dir_all(bystander.parent().expect("parent")).expect("mkdir");
    std::fs::write(&bystander, b"not ours").expect("write");
    let lines = fixture_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert!(run_with_input(&config, input.as_bytes()).success());
    let files = files_in(&dir.path().join("out"));
    assert_eq!(
        files.len(),
        4,
        "two backups, the current file, the bystander: {:?}",
        files.keys()
    );
    assert!(bystander.exists());
    let mut seen = Vec::new();
    for (name, path) in files.iter().filter(|(n, _)| !n.contains("notes")) {
        if name != "audit.log.gz" {
            seen.extend(gunzip_strict(path).lines().map(str::to_owned));
        }
    }
    seen.extend(
        gunzip_strict(&files["audit.log.gz"])
            .lines()
            .map(str::to_owned),
    );
    // What is left is the newest part of the input, in order.
    assert!(!seen.is_empty() && seen.len() < lines.len());
    assert_eq!(seen[..], lines[lines.len() - seen.len()..]);
}

#[test]
fn a_blocked_directory_pauses_the_output_and_it_resumes_without_loss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &stdin_config(&format!(
            "path = '{NS_TEMPLATE}'\ncompress = \"gzip\"\nflush_interval = \"20ms\""
        )),
    );
    // A plain file where the output directory should be: every open fails
    // (as on a full or read-only disk) until it is removed.
    let out = dir.path().join("out");
    std::fs::write(&out, b"blocker").expect("write blocker");
    let lines = fixture_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut agent = Agent::builder().stdin().config_file(&config);
    let mut stdin = agent.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("feed");
    drop(stdin);
    // The agent holds the events and keeps running instead of exiting.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "the agent gave up while the disk was failing"
    );
    std::fs::remove_file(&out).expect("remove blocker");
    agent.wait().assert_success();
    let mut seen = Vec::new();
    for path in files_in(&out).values() {
        gzip_t(path);
        seen.extend(gunzip_strict(path).lines().map(str::to_owned));
    }
    seen.sort();
    let mut expected = lines;
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn dash_path_writes_standard_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(dir.path(), &stdin_config("path = \"-\""));
    let lines = fixture_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut agent = Agent::builder().stdin().config_file(&config);
    let mut stdin = agent.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let exit = agent.wait().assert_success();
    writer.join().expect("writer").expect("feed");
    assert_eq!(exit.lines, lines);
}

/// Unmounts a test tmpfs, even when the test fails.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_tmpfs_pauses_the_output_and_it_resumes_when_space_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _guard = mounted.then(|| Mounted(out.clone()));
    // Fill the disk, leaving no room for the output. Without permission to
    // mount (CI), a filler on the real disk cannot fill it: the scenario
    // then blocks the directory instead (see the blocked-directory test).
    let filler = out.join("filler");
    if mounted {
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![b'x'; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    } else {
        eprintln!("tmpfs cannot be mounted here; blocking the output directory instead");
        std::fs::remove_dir(&out).expect("rmdir");
        std::fs::write(&out, b"blocker").expect("blocker");
    }
    let config = write_config(
        dir.path(),
        &stdin_config(
            "path = '{dir}/out/audit.${objectRef.namespace ?? \"none\"}.log'\nflush_interval = \"20ms\"",
        ),
    );
    let lines = fixture_lines();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut agent = Agent::builder().stdin().config_file(&config);
    let mut stdin = agent.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("feed");
    drop(stdin);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "the agent gave up while the disk was full"
    );
    if mounted {
        std::fs::remove_file(&filler).expect("free space");
    } else {
        std::fs::remove_file(&out).expect("remove blocker");
    }
    agent.wait().assert_success();
    let mut seen = Vec::new();
    for path in files_in(&out).values() {
        let text = std::fs::read_to_string(path).expect("read");
        assert!(
            text.ends_with('\n'),
            "no partial line in {}",
            path.display()
        );
        seen.extend(text.lines().map(str::to_owned));
    }
    seen.sort();
    let mut expected = lines;
    expected.sort();
    assert_eq!(seen, expected);
}
