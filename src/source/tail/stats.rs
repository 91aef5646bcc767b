//! Per-file progress of a tail source, shared with whoever wants to show it
//! (the `/metrics` endpoint, a future `positions` CLI): for each open file
//! its size, how far it was read and how far the outputs acknowledged, so
//! lag is `size - acked_offset`. Also exported to the metrics registry as
//! `auditrail_tail_file_*` gauges labelled by component and path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// One open file's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub path: PathBuf,
    /// File size at the last check, bytes.
    pub size: u64,
    /// Offset just past the last byte read.
    pub read_offset: u64,
    /// Offset just past the last line every output acknowledged (the one
    /// saved as the position).
    pub acked_offset: u64,
    /// Bytes read from this file since the agent started.
    pub bytes_read: u64,
}

/// Source-wide counters.
#[derive(Debug, Default)]
pub struct TailCounters {
    /// Files whose size dropped below the read offset or whose first bytes
    /// changed (copytruncate, truncation): read again from 0.
    pub truncations: AtomicU64,
    /// Files that were let go after being read to the end (rotated away,
    /// deleted).
    pub released: AtomicU64,
    /// Files with a saved position found gone at start: what was written to
    /// them past it was not read.
    pub vanished: AtomicU64,
    /// Bytes of deleted files closed after `max_deleted_hold` before they
    /// were read and acknowledged.
    pub abandoned_bytes: AtomicU64,
    /// Bad lines skipped (not JSON, not UTF-8, over `max_line_size`).
    pub bad_lines: AtomicU64,
    /// Bytes read from all files since the agent started.
    pub bytes_read: AtomicU64,
    /// Unacknowledged bytes held, against `max_unacked`.
    pub unacked_bytes: AtomicU64,
    /// `paths` globs that matched no file at the last scan (a gauge).
    pub unmatched_globs: AtomicU64,
}

/// Shared view of one tail source's files, keyed by an internal file id.
#[derive(Debug, Clone, Default)]
pub struct TailStats {
    files: Arc<Mutex<BTreeMap<u64, FileStats>>>,
    counters: Arc<TailCounters>,
    component: Arc<str>,
}

impl TailStats {
    /// The name of the source these stats are of.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The open files, by path.
    pub fn files(&self) -> Vec<FileStats> {
        let mut files: Vec<FileStats> = self.lock().values().cloned().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }

    pub fn counters(&self) -> &TailCounters {
        &self.counters
    }

    pub(super) fn counters_arc(&self) -> Arc<TailCounters> {
        Arc::clone(&self.counters)
    }

    pub(super) fn update(&self, id: u64, stats: FileStats) {
        self.lock().insert(id, stats);
    }

    pub(super) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, FileStats>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every tail source's stats in one metrics registry, encoded as one set of
/// metric families (one `# HELP` per family, whatever the number of sources).
#[derive(Debug, Clone, Default)]
pub(super) struct TailStatsSet {
    sources: Arc<Mutex<Vec<TailStats>>>,
    /// Counters by component name, kept when a source stops so that the
    /// source of the same name after a reload counts on (Prometheus would
    /// read a counter starting again from 0 as a reset).
    counters: Arc<Mutex<BTreeMap<Arc<str>, Arc<TailCounters>>>>,
}

impl TailStatsSet {
    /// The stats of the source `component`, added to the set registered
    /// with `metrics` (registered on first use); its counters go on from
    /// those of an earlier source of the same name.
    pub(super) fn register(
        metrics: &crate::metrics::Metrics,
        component: &str,
    ) -> (Self, TailStats) {
        let set = Self::of(metrics);
        let component: Arc<str> = Arc::from(component);
        let counters = set
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(Arc::clone(&component))
            .or_default()
            .clone();
        let stats = TailStats {
            files: Arc::default(),
            counters,
            component,
        };
        set.lock().push(stats.clone());
        (set, stats)
    }

    /// The set registered with `metrics`, registered on first use.
    fn of(metrics: &crate::metrics::Metrics) -> Self {
        type Registry = Mutex<prometheus_client::registry::Registry>;
        static SETS: Mutex<Vec<(Weak<Registry>, TailStatsSet)>> = Mutex::new(Vec::new());
        let registry = metrics.registry();
        let mut sets = SETS.lock().unwrap_or_else(PoisonError::into_inner);
        sets.retain(|(weak, _)| weak.strong_count() > 0);
        let found = sets
            .iter()
            .find(|(weak, _)| weak.upgrade().is_some_and(|r| Arc::ptr_eq(&r, registry)));
        match found {
            Some((_, set)) => set.clone(),
            None => {
                let set = Self::default();
                metrics
                    .registry()
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .register_collector(Box::new(set.clone()));
                sets.push((Arc::downgrade(registry), set.clone()));
                set
            }
        }
    }

    /// Removes a stopped source's stats.
    pub(super) fn unregister(&self, stats: &TailStats) {
        self.lock().retain(|s| !Arc::ptr_eq(&s.files, &stats.files));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TailStats>> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type FileValue = fn(&FileStats) -> u64;
type SourceValue = fn(&TailCounters) -> u64;

impl Collector for TailStatsSet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources: Vec<(String, Vec<FileStats>, Arc<TailCounters>)> = self
            .lock()
            .iter()
            .map(|s| (s.component.to_string(), s.files(), s.counters.clone()))
            .collect();
        let per_file: [(&str, &str, FileValue); 3] = [
            ("tail_file_size_bytes", "Size of a tailed file", |f| f.size),
            (
                "tail_file_read_offset_bytes",
                "Offset a tailed file was read to",
                |f| f.read_offset,
            ),
            (
                "tail_file_acked_offset_bytes",
                "Offset of a tailed file every output acknowledged (the saved position)",
                |f| f.acked_offset,
            ),
        ];
        for (name, help, value) in per_file {
            let gauge = ConstGauge::new(0i64);
            let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            for (component, files, _) in &sources {
                for file in files {
                    let labels = [
                        ("component", component.clone()),
                        ("path", file.path.display().to_string()),
                    ];
                    let gauge = ConstGauge::new(i64::try_from(value(file)).unwrap_or(i64::MAX));
                    gauge.encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let totals: [(&str, &str, SourceValue); 6] = [
            (
                "tail_truncations",
                "Files read again from 0 after truncation or copytruncate",
                |c| c.truncations.load(Ordering::Relaxed),
            ),
            (
                "tail_files_released",
                "Rotated or deleted files closed after being read to the end",
                |c| c.released.load(Ordering::Relaxed),
            ),
            (
                "tail_files_vanished",
                "Files with a saved position found gone at start; what was written to them past it was not read",
                |c| c.vanished.load(Ordering::Relaxed),
            ),
            (
                "tail_deleted_bytes_abandoned",
                "Bytes of deleted files closed after max_deleted_hold before every output acknowledged them",
                |c| c.abandoned_bytes.load(Ordering::Relaxed),
            ),
            (
                "tail_bad_lines",
                "Lines skipped as not JSON, not UTF-8 or over max_line_size",
                |c| c.bad_lines.load(Ordering::Relaxed),
            ),
            ("tail_bytes_read", "Bytes read from tailed files", |c| {
                c.bytes_read.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, value) in totals {
            let counter = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            for (component, _, counters) in &sources {
                let counter = ConstCounter::new(value(counters));
                counter.encode(family.encode_family(&[("component", component.clone())])?)?;
            }
        }
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "tail_globs_unmatched",
            "Globs of a tail source's paths that matched no file at the last scan",
            None,
            gauge.metric_type(),
        )?;
        for (component, _, counters) in &sources {
            let unmatched = counters.unmatched_globs.load(Ordering::Relaxed);
            let gauge = ConstGauge::new(i64::try_from(unmatched).unwrap_or(i64::MAX));
            gauge.encode(family.encode_family(&[("component", component.clone())])?)?;
        }
        Ok(())
    }
}
