//! Black-box tests: the real binary, real files, real sockets on 127.0.0.1.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub, dead_code)]

mod support;
// An HTTP and `_bulk` server in the test process, with fault injection.
mod test_server;
// `type = "http"`: body formats, retries, dead letters, throttling, outages.
mod http_output;
// `type = "elasticsearch"`: `_bulk`, per-item retries, ids, 413, endpoints.
mod elasticsearch;
