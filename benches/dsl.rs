//! The fluentd-example routing cost: rendering `audit.${objectRef.namespace
//! ?? "none"}` per event, against a full `serde_json::from_str::<Value>` of
//! the same lines (the cost a parse-everything agent pays). The target is
//! that the template costs less than the parse.
//!
//! Events: `tests/data/audit-sample.jsonl` (200 synthetic events of the
//! kind `bench/tools/gen-audit-log` writes), or the file named by
//! `AUDITRAIL_BENCH_LOG`, e.g. one from
//! `bench/tools/gen-audit-log -n 20000 -s 42 -o events.log`. Run with `cargo bench --bench dsl`.

use std::hint::black_box;

use auditrail::dsl::{EvalContext, Expr, Template, TemplateKind};
use auditrail::event::{Record, Tag};
use bytestring::ByteString;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn lines() -> Vec<String> {
    let path = std::env::var("AUDITRAIL_BENCH_LOG").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/audit-sample.jsonl").to_owned()
    });
    let text = std::fs::read_to_string(&path).expect("the benchmark's event file is readable");
    text.lines().map(str::to_owned).collect()
}

fn routing(c: &mut Criterion) {
    let lines = lines();
    let records: Vec<Record> = lines
        .iter()
        .map(|line| {
            Record::from_json(ByteString::from(line.clone()))
                .expect("sample lines are JSON objects")
        })
        .collect();
    let tag = Tag::new("audit");
    let time = Utc
        .with_ymd_and_hms(2026, 11, 22, 10, 0, 0)
        .single()
        .expect("a valid time");
    let template = Template::compile(
        r#"audit.${objectRef.namespace ?? "none"}"#,
        TemplateKind::Plain,
    )
    .expect("the benchmark template compiles");
    let path = Template::compile("/var/log/audit-${tag}.%Y%m%d%H.log.gz", TemplateKind::Path)
        .expect("the benchmark path compiles");
    let condition = Expr::compile(
        r#"verb in ["get", "list", "watch"] && user.username =~ /^system:serviceaccount:/"#,
    )
    .expect("the benchmark condition compiles");

    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Elements(lines.len() as u64));

    group.bench_function("template_namespace_tag", |b| {
        let mut out = String::new();
        b.iter(|| {
            for record in &records {
                out.clear();
                let cx = EvalContext::new(record, &tag, time);
                template.render(&cx, &mut out).expect("renders");
                black_box(&out);
            }
        });
    });

    group.bench_function("serde_json_from_str_value", |b| {
        b.iter(|| {
            for line in &lines {
                let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
                black_box(value);
            }
        });
    });

    group.bench_function("path_template_tag_and_hour", |b| {
        let mut out = String::new();
        b.iter(|| {
            for record in &records {
                out.clear();
                let cx = EvalContext::new(record, &tag, time);
                path.render(&cx, &mut out).expect("renders");
                black_box(&out);
            }
        });
    });

    group.bench_function("where_condition", |b| {
        b.iter(|| {
            for record in &records {
                let cx = EvalContext::new(record, &tag, time);
                black_box(condition.is_true(&cx).expect("evaluates"));
            }
        });
    });

    // The same template once a stage has parsed the record: a borrow.
    let parsed: Vec<Record> = records.clone();
    for record in &parsed {
        let _ = record.fields();
    }
    group.bench_function("template_namespace_tag_parsed_record", |b| {
        let mut out = String::new();
        b.iter(|| {
            for record in &parsed {
                out.clear();
                let cx = EvalContext::new(record, &tag, time);
                template.render(&cx, &mut out).expect("renders");
                black_box(&out);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
