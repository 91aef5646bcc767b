//! Black-box tests: the real binary, real files, real sockets on 127.0.0.1.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub, dead_code)]

mod http_source;
mod support; // the audit webhook receiver: fixtures, bad input, TLS, retries
