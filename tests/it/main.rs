//! Black-box tests: the real binary, real files, real sockets on 127.0.0.1.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub, dead_code)]

mod support;

mod audit_cli; // audit, policy check and policy explain: exact outputs and exit codes
mod audit_pipeline; // legacy/access_json sources, audit_policy and redact filters, canary secrets
mod cli; // run as a pipe filter, check, config default, exit codes, SIGTERM
mod config_errors; // broken configs and their exact file:line:col diagnostics
mod seed_scenarios; // the fluentd and logstash seed scenarios from examples/
