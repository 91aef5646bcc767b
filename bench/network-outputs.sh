#!/usr/bin/env bash
# Throughput of the network outputs: events/s from a Kubernetes audit log on
# stdin through auditrail's `http` and `elasticsearch` outputs to the local
# benchmark sink (shared/bench/http-sink, 127.0.0.1), with and without gzip.
#
#   bench/network-outputs.sh                 # builds --release first
#   COUNT=100000 INPUT=/path/audit.log bench/network-outputs.sh
#
# The agent exits once stdin ends and every event has been accepted, so the
# wall time of `auditrail run` covers delivery end to end. Each run checks the
# sink counted exactly COUNT events.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
COUNT=${COUNT:-200000}
INPUT=${INPUT:-/tmp/bench-audit.log}
BIN=${AUDITRAIL:-$ROOT/target/release/auditrail}
WORK=$(mktemp -d /tmp/auditrail-netbench.XXXXXX)
SINK_PID=

cleanup() {
    if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${AUDITRAIL:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
fi
if [ ! -s "$INPUT" ]; then
    echo "generating $COUNT events into $INPUT" >&2
    "$SHARED/bench/gen-audit-log" --count "$COUNT" --seed 42 --output "$INPUT"
fi
head -n "$COUNT" "$INPUT" > "$WORK/input.log"
lines=$(wc -l < "$WORK/input.log")
bytes=$(wc -c < "$WORK/input.log")

python3 "$SHARED/bench/http-sink" --port 0 --port-file "$WORK/port" --no-ns 2>/dev/null &
SINK_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
stats() { python3 -c "import json,sys,urllib.request as u; print(json.load(u.urlopen('http://127.0.0.1:$PORT/__stats'))[sys.argv[1]])" "$1"; }
reset() { python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$PORT/__stats', method='DELETE'))"; }

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
    reset
    local start end
    start=$(date +%s.%N)
    AUDITRAIL_LOG=warn "$BIN" run -c "$WORK/$name.toml" < "$WORK/input.log"
    end=$(date +%s.%N)
    local got wire
    got=$(stats events)
    wire=$(stats wire_bytes)
    if [ "$got" != "$lines" ]; then
        echo "$name: the sink counted $got events, expected $lines" >&2
        exit 1
    fi
    python3 - "$name" "$lines" "$bytes" "$wire" "$start" "$end" <<'PY'
import sys
name, n, size, wire, start, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
secs = end - start
print(f"{name:<14} {n:>8} events {secs:7.2f} s {n / secs:>10,.0f} events/s {size / secs / 1e6:7.1f} MB/s in {wire / 1e6:8.1f} MB on the wire")
PY
}

BATCH='batch = { throttle_enable = false, max_size = 5000, buffer_size = 50000, max_wait = "1s" }'
echo "input: $lines events, $((bytes / 1000000)) MB ($INPUT); sink 127.0.0.1:$PORT; $(nproc) cores"
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
