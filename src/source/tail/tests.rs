//! Config and metrics of the tail source.

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::source::SourceConfig;

use super::stats::{FileStats, TailStatsSet};
use super::{ReadFrom, WatchMode};

fn tail(body: &str) -> Result<super::TailConfig, String> {
    let text = format!(
        "[[source]]\ntype = \"tail\"\n{body}\n\n[[output]]\ntype = \"stdout\"\nmatch = \"**\"\n"
    );
    match Config::parse("test.toml", &text) {
        Ok(mut config) => match config.sources.remove(0).config {
            SourceConfig::Tail(tail) => Ok(tail),
            other => panic!("not a tail source: {other:?}"),
        },
        Err(ConfigError::Invalid(d)) => Err(d.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn defaults() {
    let c = tail(r#"paths = ["/var/log/audit/*.log"]"#).unwrap();
    assert_eq!(c.tag.get_ref(), "tail");
    assert_eq!(c.read_from, ReadFrom::Head);
    assert_eq!(c.watch, WatchMode::Notify);
    assert_eq!(c.max_line_size.0, 16 << 20);
    assert_eq!(c.position_flush_interval.0.as_secs(), 1);
    assert!(!c.emit_partial_at_shutdown);
    assert!(!c.stop_at_eof);
    assert_eq!(
        c.position_path(Path::new("/var/lib/auditrail"), "kube api/1"),
        Path::new("/var/lib/auditrail/tail/kube_api_1.positions.json")
    );
}

#[test]
fn explicit_pos_file_wins() {
    let c = tail("paths = [\"/a.log\"]\npos_file = \"/var/log/td-agent/audit.pos\"").unwrap();
    assert_eq!(
        c.position_path(Path::new("/data"), "x"),
        Path::new("/var/log/td-agent/audit.pos")
    );
}

#[test]
fn rejects_bad_globs_tags_and_empty_paths() {
    let e = tail(r#"paths = ["/var/log/[a.log"]"#).unwrap_err();
    assert!(e.contains("invalid glob `/var/log/[a.log`"), "{e}");
    assert!(e.contains("test.toml:3:"), "{e}");
    let e = tail("paths = [\"/a.log\"]\ntag = \"a.${tag}\"").unwrap_err();
    assert!(e.contains("invalid tag"), "{e}");
    assert!(e.contains("test.toml:4:"), "{e}");
    let e = tail("paths = []").unwrap_err();
    assert!(e.contains("`paths` of a `tail` source is empty"), "{e}");
    let e = tail("paths = [\"/a\"]\nread_from = \"middle\"").unwrap_err();
    assert!(e.contains("read_from") || e.contains("middle"), "{e}");
}

#[test]
fn stats_are_exported_once_per_family() {
    let metrics = Metrics::new();
    let (set, a) = TailStatsSet::register(&metrics, "a");
    let (_, b) = TailStatsSet::register(&metrics, "b");
    a.update(
        1,
        FileStats {
            path: "/var/log/audit.log".into(),
            size: 300,
            read_offset: 200,
            acked_offset: 100,
            bytes_read: 200,
        },
    );
    b.counters()
        .truncations
        .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    a.counters()
        .vanished
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let text = metrics.render();
    assert!(
        text.contains(
            r#"auditrail_tail_file_acked_offset_bytes{component="a",path="/var/log/audit.log"} 100"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"auditrail_tail_truncations_total{component="b"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"auditrail_tail_files_vanished_total{component="a"} 1"#),
        "{text}"
    );
    assert_eq!(
        text.matches("# HELP auditrail_tail_file_size_bytes ")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(a.files()[0].read_offset, 200);
    set.unregister(&a);
    assert!(!metrics.render().contains(r#"component="a""#));
}

#[test]
fn counters_go_on_across_a_restart_of_the_same_source() {
    use std::sync::atomic::Ordering::Relaxed;
    let metrics = Metrics::new();
    let (set, first) = TailStatsSet::register(&metrics, "apiserver");
    first.counters().bytes_read.fetch_add(500, Relaxed);
    set.unregister(&first);
    // A reload builds the source again under the same name.
    let (_, second) = TailStatsSet::register(&metrics, "apiserver");
    second.counters().bytes_read.fetch_add(20, Relaxed);
    let text = metrics.render();
    assert!(
        text.contains(r#"auditrail_tail_bytes_read_total{component="apiserver"} 520"#),
        "{text}"
    );
    let (_, other) = TailStatsSet::register(&metrics, "other");
    assert_eq!(other.counters().bytes_read.load(Relaxed), 0);
}
