//! Black-box tests: the real binary, real files, real sockets on 127.0.0.1.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub, dead_code)]

mod servers; // real search servers: tests/servers/* on a free port in a temp dir, killed at the end
mod support; // the one agent harness (`Agent`), test data paths, waits, the [api] client
mod test_server; // an HTTP and `_bulk` server in the test process, with fault injection

mod accounting; // every component type's counters add up: in = out + dropped
mod audit_cli; // audit, policy check and policy explain: exact outputs and exit codes
mod audit_pipeline; // legacy/access_json sources, audit_policy and redact filters, canary secrets
mod cli; // run as a pipe filter, check, config default, exit codes, SIGTERM
mod conf; // conf/ and examples/ configs check; sample policies load and stay verbatim
mod config_errors; // broken configs and their exact file:line:col diagnostics
mod elasticsearch; // `type = "elasticsearch"`: `_bulk`, per-item retries, ids, 413, endpoints
mod elasticsearch_node; // the same output against a real Elasticsearch 8.19 node (tests/servers/elasticsearch)
mod es_setup; // `auditrail elasticsearch setup` on the real OpenSearch and Elasticsearch nodes: template, idempotence, errors
mod file_output; // the `file` output: per-namespace gzip files, crashes, rotation, a failing disk
mod hardening; // hostile content: tags, file names and memory stay bounded and safe
mod http_output; // `type = "http"`: body formats, retries, dead letters, throttling, outages
mod http_source; // the audit webhook receiver: fixtures, bad input, TLS, retries
mod legacy_crash; // legacy request/response joins on a tail source survive kill -9
mod metrics; // /metrics adds up (in = out + dropped) while events flow; /healthz, /readyz
mod null_output; // the `null` output: dropped events are acknowledged and counted
mod opensearch; // the `elasticsearch` output against a real OpenSearch 2.19 node (tests/servers/opensearch)
mod reload; // SIGHUP reloads while events stream: exactly once, invalid configs ignored
mod search_scenarios; // the `elasticsearch` output's scenarios on a real node, for opensearch and elasticsearch_node
mod seed_scenarios; // the DESIGN.md seed scenarios 1-5, run from examples/ with their sample data
mod systemd; // sd_notify READY/RELOADING/STOPPING and watchdog pings on a NOTIFY_SOCKET
mod tail; // the tail source: positions, rotation, crashes, bad input
