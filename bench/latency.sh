#!/usr/bin/env bash
# Latency at low rates, against the target "at 100 events/s, an event reaches its file
# within flush_interval (default 1 s)". A writer appends real audit events,
# each stamped with its write time, to a file auditrail tails at --rate events/s
# for --secs seconds; a poller reads the output file every 5 ms and takes, for
# each event, the time it was first seen there minus its write time. Prints
# p50/p90/p99/max, and the agent's CPU-s and peak RSS over the run, for each
# --watch mode (default: notify and poll).
#
#   bench/latency.sh [--rate 100] [--secs 30] [--watch "notify poll"]
#                    [--flush-interval 1s] [--cache DIR]
set -euo pipefail

rate=100
secs=30
watches="notify poll"
flush_interval=
while (($#)); do
    case $1 in
        --rate) rate=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --watch) watches=$2; shift 2 ;;
        --flush-interval) flush_interval=$2; shift 2 ;;
        --cache) BENCH_CACHE=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
source "$(dirname "$0")/lib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/auditrail-latency.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
bench_build
n=$((rate * secs))
bench_input 200000 # events to replay (the first n lines)

echo "rate $rate events/s for $secs s ($n events); file output flush_interval ${flush_interval:-default (1s)}; load average $(bench_loadavg); $(nproc) cores"
printf '%-7s %8s %8s %8s %8s %8s %9s %8s  %s\n' watch events p50_ms p90_ms p99_ms max_ms cpu_s rss_MiB check
fi_line=
if [[ -n $flush_interval ]]; then fi_line="flush_interval = \"$flush_interval\""; fi
for watch in $watches; do
    dir=$WORK/$watch
    mkdir -p "$dir/logs" "$dir/out" "$dir/data"
    : >"$dir/logs/live.log"
    cat >"$dir/auditrail.toml" <<EOF
data_dir = "$dir/data"

[[source]]
name = "live"
type = "tail"
paths = ["$dir/logs/live.log"]
tag = "audit"
watch = "$watch"

[[output]]
name = "file"
type = "file"
match = "audit"
path = '$dir/out/live.log'
$fi_line
EOF
    AUDITRAIL_LOG=warn /usr/bin/time -v -o "$dir/time" "$BIN" run -c "$dir/auditrail.toml" 2>"$dir/stderr" &
    timer=$!
    sleep 1 # let it start and open the (empty) file
    python3 - "$INPUT" "$dir/logs/live.log" "$dir/out/live.log" "$rate" "$n" >"$dir/result" <<'PY'
import re, sys, threading, time
src, live, out, rate, n = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
lines = []
with open(src, "rb") as f:
    for line in f:
        lines.append(line)
        if len(lines) == n:
            break
seen = {}
stamp = re.compile(rb'^\{"benchSeq":(\d+),"benchWriteTime":([0-9.]+),')
written = 0
def writer():
    global written
    start = time.time()
    with open(live, "ab", buffering=0) as f:
        for i, line in enumerate(lines):
            due = start + i / rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            f.write(b'{"benchSeq":%d,"benchWriteTime":%.6f,' % (i, time.time()) + line[1:])
            written += 1
t = threading.Thread(target=writer)
t.start()
pos, partial = 0, b""
deadline = None
while len(seen) < n:
    try:
        with open(out, "rb") as f:
            f.seek(pos)
            chunk = f.read()
    except FileNotFoundError:
        chunk = b""
    now = time.time()
    if chunk:
        pos += len(chunk)
        data = partial + chunk
        *complete, partial = data.split(b"\n")
        for line in complete:
            m = stamp.match(line)
            if m:
                seen.setdefault(int(m.group(1)), now - float(m.group(2)))
    if not t.is_alive():
        deadline = deadline or now + 10
        if now > deadline:
            break
    time.sleep(0.005)
t.join()
lat = sorted(seen.values())
def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else float("nan")
check = "ok" if len(seen) == n == written else "MISSING %d of %d" % (n - len(seen), n)
print("%d %.1f %.1f %.1f %.1f %s" % (len(seen), pct(50), pct(90), pct(99), (lat[-1] * 1000 if lat else float("nan")), check))
PY
    agent=$(pgrep -P "$timer" | head -1 || true)
    [[ -n $agent ]] && kill -TERM "$agent" 2>/dev/null || true
    wait "$timer" || true
    read -r got p50 p90 p99 max check <"$dir/result"
    read -r cpu rss < <(bench_parse_time "$dir/time")
    printf '%-7s %8s %8s %8s %8s %8s %9s %8.1f  %s\n' "$watch" "$got" "$p50" "$p90" "$p99" "$max" "$cpu" \
        "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "$check"
done
