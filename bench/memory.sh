#!/usr/bin/env bash
# Memory cases, against the target "Memory stays bounded and independent of file size
# and backlog: a 100 KB event, 1M queued events, 10,000 tags - report peak RSS
# for each."
#
#   bench/memory.sh [--count N] [--cache DIR] [--block-secs S]
#
#   huge     events of 50-100 KB each (gen-audit-log --mix with huge = 1,
#            2,000 events, ~150 MB) -> gzip 6 files per namespace
#   backlog  the N-event input (default 1,000,000) -> elasticsearch output to
#            an http-sink that answers 503 to every POST, for --block-secs
#            (default 20) s: nothing is ever acknowledged, so every event is
#            queued (in the file, behind the agent's bounded read-ahead)
#   tags     200,000 events rewritten to 10,000 namespaces, rewrite_tag
#            `audit.<namespace>` -> one plain file per tag (10,000 files, more
#            than max_open_files)
# Each prints wall time, CPU-s and peak RSS (/usr/bin/time -v) and checks the
# output where there is one.
set -euo pipefail

count=1000000
block_secs=20
while (($#)); do
    case $1 in
        --count) count=$2; shift 2 ;;
        --cache) BENCH_CACHE=$2; shift 2 ;;
        --block-secs) block_secs=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
source "$(dirname "$0")/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/auditrail-memory.XXXXXX")
SINK_PID=
trap 'bench_sink_stop; rm -rf "$WORK"' EXIT
bench_build
stop_at_eof=
if bench_has_stop_at_eof; then stop_at_eof='stop_at_eof = true'; fi

# Inputs (cached).
mkdir -p "$BENCH_CACHE"
huge=$BENCH_CACHE/gen-huge-2000-s$BENCH_SEED.log
if [[ ! -s $huge ]]; then
    bench_log "generating 2,000 events of 50-100 KB into $huge"
    "$BENCH_TOOLS/gen-audit-log" --count 2000 --seed "$BENCH_SEED" \
        --mix metadata=0,request=0.5,requestresponse=0.5,huge=1 \
        --output "$huge.tmp" --counts "${huge%.log}.counts.json"
    mv "$huge.tmp" "$huge"
fi
bench_input 200000
tags=$BENCH_CACHE/gen-tags10k-200000-s$BENCH_SEED.log
if [[ ! -s $tags ]]; then
    bench_log "rewriting $INPUT to 10,000 namespaces into $tags"
    python3 - "$INPUT" >"$tags.tmp" <<'PY'
import json, sys
out = sys.stdout
with open(sys.argv[1]) as f:
    for i, line in enumerate(f):
        ev = json.loads(line)
        ev.setdefault("objectRef", {})["namespace"] = "ns-%04d" % (i % 10000)
        out.write(json.dumps(ev, separators=(",", ":")) + "\n")
PY
    bench_counts "$tags.tmp" "$BENCH_SEED" >"${tags%.log}.counts.json"
    mv "$tags.tmp" "$tags"
fi
bench_input "$count"
backlog=$INPUT

positions=
done_tail() {
    local content=
    [[ -r $positions ]] && read -r -d '' content <"$positions" || true
    [[ $content =~ \"offset\":\ *([0-9]+) ]] && ((BASH_REMATCH[1] >= target_bytes))
}
block_until=0
done_timer() { (($(date +%s) >= block_until)); }

printf '%-8s %10s %8s %9s %9s  %s\n' case input_MB wall_s cpu_s rss_MiB check
report() { # name input wall check
    local cpu rss
    read -r cpu rss < <(bench_parse_time "$WORK/$1/time")
    printf '%-8s %10d %8.2f %9.2f %9.1f  %s\n' "$1" "$(($(stat -c %s "$2") / 1000000))" "$3" "$cpu" \
        "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "$4"
}

setup() { # name input
    mkdir -p "$WORK/$1/logs" "$WORK/$1/out" "$WORK/$1/data"
    ln -s "$2" "$WORK/$1/logs/audit.log"
    positions=$WORK/$1/data/tail/bench.positions.json
    target_bytes=$(stat -c %s "$2")
}
head_toml() { # name
    cat <<EOF
data_dir = "$WORK/$1/data"

[[source]]
name = "bench"
type = "tail"
paths = ["$WORK/$1/logs/audit.log"]
tag = "audit"
position_flush_interval = "50ms"
$stop_at_eof
EOF
}
wall() { awk -v s="$MEASURE_START" -v e="$MEASURE_DONE" 'BEGIN { printf "%.2f", e - s }'; }

# 1. 100 KB events.
setup huge "$huge"
{
    head_toml huge
    cat <<EOF

[[output]]
name = "files"
type = "file"
match = "audit"
path = '$WORK/huge/out/\${objectRef.namespace ?? "none"}.log.gz'
compress = "gzip"
max_size = "0"
EOF
} >"$WORK/huge/auditrail.toml"
bench_warm "$huge"
AUDITRAIL_LOG=warn bench_measure "$WORK/huge/time" done_tail -- "$BIN" run -c "$WORK/huge/auditrail.toml" 2>"$WORK/huge/stderr"
check=$("$BENCH_TOOLS/check-output" "$WORK/huge/out" "${huge%.log}.counts.json" 2>&1 | tail -1) || check="FAILED: $check"
report huge "$huge" "$(wall)" "$check"
rm -rf "$WORK/huge"

# 2. Backlog: an output that never accepts.
bench_sink_start --no-ns --status 503
setup backlog "$backlog"
{
    head_toml backlog
    cat <<EOF

[[output]]
name = "es"
type = "elasticsearch"
match = "audit"
endpoints = ["http://127.0.0.1:$SINK_PORT"]
batch = { max_size = 2000, max_wait = "1s", throttle_enable = false }
EOF
} >"$WORK/backlog/auditrail.toml"
bench_warm "$backlog"
block_until=$(($(date +%s) + block_secs))
AUDITRAIL_LOG=error bench_measure "$WORK/backlog/time" done_timer -- "$BIN" run -c "$WORK/backlog/auditrail.toml" 2>"$WORK/backlog/stderr"
acked=$(bench_tail_offset "$positions")
report backlog "$backlog" "$(wall)" "$(bench_json "$COUNTS" total) events queued for ${block_secs} s, $(bench_sink_stat requests) refused requests, $acked bytes acknowledged"
bench_sink_stop
rm -rf "$WORK/backlog"

# 3. 10,000 tags.
setup tags "$tags"
{
    head_toml tags
    cat <<EOF

[[filter]]
name = "by-namespace"
type = "rewrite_tag"
match = "audit"
tag = 'audit.\${objectRef.namespace ?? "none"}'

[[output]]
name = "files"
type = "file"
match = "audit.*"
path = '$WORK/tags/out/\${tag}.log'
max_size = "0"
EOF
} >"$WORK/tags/auditrail.toml"
bench_warm "$tags"
AUDITRAIL_LOG=warn bench_measure "$WORK/tags/time" done_tail -- "$BIN" run -c "$WORK/tags/auditrail.toml" 2>"$WORK/tags/stderr"
check=$("$BENCH_TOOLS/check-output" "$WORK/tags/out" "${tags%.log}.counts.json" --prefix audit. 2>&1 | tail -1) || check="FAILED: $check"
report tags "$tags" "$(wall)" "$(find "$WORK/tags/out" -type f | wc -l) files; $check"
echo "load average $(bench_loadavg); $(nproc) cores"
