//! Black-box tests: the real binary, real files, real sockets on 127.0.0.1.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub, dead_code)]

mod file_output; // the `file` output: per-namespace gzip files, crashes, rotation, a failing disk
mod support;

mod cli; // run as a pipe filter, check, config default, exit codes, SIGTERM
mod config_errors; // broken configs and their exact file:line:col diagnostics
mod seed_scenarios; // the fluentd and logstash seed scenarios from examples/
mod tail; // the tail source: positions, rotation, crashes, bad input
