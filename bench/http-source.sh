#!/bin/sh
# Throughput of the http source (the audit webhook receiver): EventLists of 400 real
# kube-apiserver events from 8 keep-alive connections on loopback into a
# `stdout` output sent to /dev/null; prints events/s and reply latencies.
#
#   bench/http-source.sh [EVENTS] [CONNECTIONS] [delivered|accepted]
#
# Builds in release mode (slow the first time).
set -eu
cd "$(dirname "$0")/.."
exec cargo bench --bench http_source -- "${1:-2000000}" "${2:-8}" "${3:-delivered}"
