//! The read path's per-line cost: `Record::from_json_line` (validate one
//! JSON object, index its top-level members, UTF-8 only when not ASCII)
//! against what it replaced, serde_json's `RawValue` skip after a UTF-8
//! check. Both do the same job; the figure that matters is the ratio.
//!
//! Events: `tests/data/audit-sample.jsonl` (200 synthetic events of the
//! kind `bench/tools/gen-audit-log` writes), or the file named by
//! `AUDITRAIL_BENCH_LOG`, e.g. one from
//! `bench/tools/gen-audit-log -n 20000 -s 42 -o events.log`. Run with `cargo bench --bench json_scan`.

use std::hint::black_box;

use auditrail::event::Record;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;

fn lines() -> Vec<Bytes> {
    let path = std::env::var("AUDITRAIL_BENCH_LOG").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/audit-sample.jsonl").to_owned()
    });
    let text = std::fs::read(&path).expect("the benchmark's event file is readable");
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(Bytes::copy_from_slice)
        .collect()
}

fn validation(c: &mut Criterion) {
    let lines = lines();
    let bytes: usize = lines.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("validate_line");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("from_json_line", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(Record::from_json_line(line.clone()).expect("valid"));
            }
        });
    });
    group.bench_function("serde_json_raw_value", |b| {
        b.iter(|| {
            for line in &lines {
                let text = std::str::from_utf8(line).expect("UTF-8");
                black_box(serde_json::from_str::<&RawValue>(text).expect("valid"));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
