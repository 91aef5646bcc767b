//! Black-box tests: the real binary, real files, real sockets on 127.0.0.1.
#![allow(clippy::print_stdout, clippy::print_stderr, unreachable_pub, dead_code)]

mod support;

mod cli; // run as a pipe filter, check, config default, exit codes, SIGTERM
mod conf;
mod config_errors; // broken configs and their exact file:line:col diagnostics
mod live; // a running agent on piped stdio, its log, its [api] address and a tiny HTTP client
mod metrics; // /metrics adds up (in = out + dropped) while events flow; /healthz, /readyz
mod reload; // SIGHUP reloads while events stream: exactly once, invalid configs ignored
mod seed_scenarios; // the fluentd and logstash seed scenarios from examples/
mod systemd; // sd_notify READY/RELOADING/STOPPING and watchdog pings on a NOTIFY_SOCKET // conf/ and examples/ configs check; sample policies load and stay verbatim
