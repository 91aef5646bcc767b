//! Policy decisions per second on the GCE master audit policy (17 rules) over a mix of
//! request attributes typical of a cluster: node heartbeats, controller watches, user
//! reads and writes, discovery and health probes. Plus the `access_json` input stage:
//! access records to serialised audit Events.

use std::hint::black_box;

use auditrail::audit::{CompiledPolicy, Policy, RequestInfo, UserAttributes};
use auditrail::metrics::Metrics;
use auditrail::source::{DecodeSpec, InputFormat};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// (user, groups, method, uri)
const REQUESTS: &[(&str, &[&str], &str, &str)] = &[
    (
        "system:node:node-1",
        &["system:nodes", "system:authenticated"],
        "GET",
        "/api/v1/nodes/node-1",
    ),
    (
        "system:node:node-1",
        &["system:nodes", "system:authenticated"],
        "PATCH",
        "/api/v1/nodes/node-1/status",
    ),
    (
        "system:node:node-2",
        &["system:nodes", "system:authenticated"],
        "PUT",
        "/api/v1/namespaces/default/pods/web-0/status",
    ),
    (
        "system:kube-proxy",
        &["system:authenticated"],
        "GET",
        "/api/v1/endpoints?watch=true&resourceVersion=1",
    ),
    (
        "system:kube-proxy",
        &["system:authenticated"],
        "GET",
        "/api/v1/services?watch=1",
    ),
    (
        "system:kube-controller-manager",
        &["system:authenticated"],
        "PUT",
        "/api/v1/namespaces/kube-system/endpoints/kube-controller-manager",
    ),
    (
        "system:kube-controller-manager",
        &["system:authenticated"],
        "GET",
        "/apis/metrics.k8s.io/v1beta1/pods",
    ),
    (
        "system:kube-scheduler",
        &["system:authenticated"],
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler",
    ),
    (
        "system:apiserver",
        &["system:masters"],
        "GET",
        "/api/v1/namespaces/kube-system",
    ),
    (
        "cluster-autoscaler",
        &["system:authenticated"],
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/cluster-autoscaler-status",
    ),
    (
        "system:anonymous",
        &["system:unauthenticated"],
        "GET",
        "/healthz",
    ),
    (
        "system:anonymous",
        &["system:unauthenticated"],
        "GET",
        "/version",
    ),
    (
        "alice",
        &["dev", "system:authenticated"],
        "GET",
        "/api/v1/namespaces/team-a/pods",
    ),
    (
        "alice",
        &["dev", "system:authenticated"],
        "GET",
        "/api/v1/namespaces/team-a/pods/web-0/log?follow=true",
    ),
    (
        "alice",
        &["dev", "system:authenticated"],
        "POST",
        "/api/v1/namespaces/team-a/configmaps",
    ),
    (
        "alice",
        &["dev", "system:authenticated"],
        "GET",
        "/api/v1/namespaces/team-a/secrets/token",
    ),
    (
        "alice",
        &["dev", "system:authenticated"],
        "PATCH",
        "/apis/apps/v1/namespaces/team-a/deployments/web/scale",
    ),
    (
        "alice",
        &["dev", "system:authenticated"],
        "GET",
        "/apis/apps/v1/namespaces/team-a/deployments?watch=true",
    ),
    (
        "bob",
        &["viewers", "system:authenticated"],
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    ),
    (
        "bob",
        &["viewers", "system:authenticated"],
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    ),
    (
        "ci",
        &["ci", "system:authenticated"],
        "DELETE",
        "/apis/batch/v1/namespaces/ci/jobs?labelSelector=run%3D1",
    ),
    (
        "ci",
        &["ci", "system:authenticated"],
        "POST",
        "/api/v1/namespaces/ci/events",
    ),
    (
        "ci",
        &["ci", "system:authenticated"],
        "GET",
        "/apis/example.com/v1/namespaces/ci/widgets/w1",
    ),
    (
        "system:serviceaccount:kube-system:namespace-controller",
        &["system:serviceaccounts"],
        "DELETE",
        "/api/v1/namespaces/old/pods",
    ),
    (
        "system:serviceaccount:kube-system:generic-garbage-collector",
        &["system:serviceaccounts"],
        "GET",
        "/apis",
    ),
    (
        "system:serviceaccount:kube-system:generic-garbage-collector",
        &["system:serviceaccounts"],
        "GET",
        "/openapi/v2",
    ),
    (
        "admin",
        &["system:masters", "system:authenticated"],
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/builder/token",
    ),
    (
        "admin",
        &["system:masters", "system:authenticated"],
        "GET",
        "/metrics",
    ),
];

fn bench_policy(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fixtures/policies/gce-configure-helper-master-audit-policy.yaml"
    );
    let policy = Policy::load(std::path::Path::new(path)).expect("GCE policy loads");
    let policy = CompiledPolicy::new(&policy).expect("GCE policy compiles");
    let resolved: Vec<(RequestInfo, &str, Vec<String>)> = REQUESTS
        .iter()
        .map(|(user, groups, method, uri)| {
            let info = RequestInfo::resolve(method, uri).expect("resolves");
            (
                info,
                *user,
                groups.iter().map(|g| (*g).to_owned()).collect(),
            )
        })
        .collect();
    let attrs: Vec<_> = resolved
        .iter()
        .map(|(info, name, groups)| info.attributes(Some(UserAttributes { name, groups })))
        .collect();

    let mut group = c.benchmark_group("policy");
    group.throughput(Throughput::Elements(attrs.len() as u64));
    group.bench_function("gce_decisions", |b| {
        b.iter(|| {
            for a in &attrs {
                black_box(policy.evaluate(black_box(a)));
            }
        });
    });
    group.finish();
}

/// Access records per second through the `access_json` decoder (parse, resolve,
/// decide, build and serialise the Events) on the example records and the GCE policy.
fn bench_access_records(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fixtures/policies/gce-configure-helper-master-audit-policy.yaml"
    );
    let policy = Policy::load(std::path::Path::new(path)).expect("GCE policy loads");
    let policy = CompiledPolicy::new(&policy).expect("GCE policy compiles");
    let records = include_str!("../examples/data/access-records.jsonl");
    let lines: Vec<bytes::Bytes> = records
        .lines()
        .map(|l| bytes::Bytes::copy_from_slice(l.as_bytes()))
        .collect();
    let spec = DecodeSpec::audited(
        InputFormat::AccessJson,
        std::sync::Arc::new(policy),
        auditrail::config::Duration::from_secs(10),
    );
    let mut decoder = spec.build(&Metrics::new().component("bench"));
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    let mut group = c.benchmark_group("access_json");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("records_to_events", |b| {
        b.iter(|| {
            for line in &lines {
                decoder
                    .decode(line.clone(), now, &mut out)
                    .expect("good record");
            }
            black_box(out.len());
            out.clear();
        });
    });
    group.finish();
}

criterion_group!(benches, bench_policy, bench_access_records);
criterion_main!(benches);
