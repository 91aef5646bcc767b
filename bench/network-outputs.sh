#!/usr/bin/env bash
# Throughput of the network outputs: events/s from a Kubernetes audit log on
# stdin through auditrail's `http` and `elasticsearch` outputs to the local
# benchmark sink (bench/tools/http-sink, 127.0.0.1), with and without gzip.
# (bench/run measures tail -> elasticsearch end to end against rsyslog; this
# one covers the http output and request compression.)
#
#   bench/network-outputs.sh                 # builds --release first
#   COUNT=100000 bench/network-outputs.sh
#
# The agent exits once stdin ends and every event has been accepted, so the
# wall time of `auditrail run` covers delivery end to end. Each run checks the
# sink counted exactly COUNT events.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-200000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/auditrail-netbench.XXXXXX")
SINK_PID=
trap 'bench_sink_stop; rm -rf "$WORK"' EXIT

bench_build
bench_input "$COUNT"
lines=$(bench_json "$COUNTS" total)
bytes=$(stat -c %s "$INPUT")
bench_warm "$INPUT"
bench_sink_start --no-ns
PORT=$SINK_PORT

run() { # name, output table body
    local name=$1 output=$2
    cat > "$WORK/$name.toml" <<TOML
data_dir = "$WORK/data-$name"
[[source]]
type = "stdin"
tag = "audit"
time_key = "stageTimestamp"
[[output]]
name = "$name"
match = "**"
$output
TOML
    bench_sink_reset
    local start end
    start=$(bench_now)
    AUDITRAIL_LOG=warn /usr/bin/time -v -o "$WORK/time" "$BIN" run -c "$WORK/$name.toml" < "$INPUT"
    end=$(bench_now)
    local got wire cpu rss
    got=$(bench_sink_stat events)
    wire=$(bench_sink_stat wire_bytes)
    read -r cpu rss < <(bench_parse_time "$WORK/time")
    if [ "$got" != "$lines" ]; then
        echo "$name: the sink counted $got events, expected $lines" >&2
        exit 1
    fi
    python3 - "$name" "$lines" "$bytes" "$wire" "$start" "$end" "$cpu" "$rss" <<'PY'
import sys
name, n, size, wire, start, end, cpu, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
secs = end - start
print(f"{name:<10} {n:>8} events {secs:7.2f} s {n / secs:>10,.0f} events/s {size / secs / 1e6:7.1f} MB/s "
      f"{cpu * 1e6 / n:6.2f} CPU-s/1M {rss / 1024:6.1f} MiB RSS, {wire / 1e6:8.1f} MB on the wire")
PY
}

BATCH='batch = { throttle_enable = false, max_size = 5000, buffer_size = 50000, max_wait = "1s" }'
echo "input: $lines events, $((bytes / 1000000)) MB; sink 127.0.0.1:$PORT; $(nproc) cores; load average $(bench_loadavg)"
run http "type = \"http\"
url = \"http://127.0.0.1:$PORT/audit\"
$BATCH"
run http-gzip "type = \"http\"
url = \"http://127.0.0.1:$PORT/audit\"
compress = \"gzip\"
$BATCH"
run es "type = \"elasticsearch\"
endpoints = [\"http://127.0.0.1:$PORT\"]
$BATCH"
run es-gzip "type = \"elasticsearch\"
endpoints = [\"http://127.0.0.1:$PORT\"]
compress = \"gzip\"
$BATCH"
