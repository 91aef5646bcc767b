#!/usr/bin/env bash
# Benchmark of the tail source: reads a generated kube-apiserver audit log
# (1,000,000 events by default) into a `stdout` output sent to /dev/null, and
# reports events/s, MB/s, CPU seconds and peak RSS, next to the page-cache
# read rate of the same file (the target is at least a third of it).
#
#   bench/tail.sh                  # 1,000,000 events, seed 42
#   COUNT=100000 bench/tail.sh     # smaller
#   INPUT=/path/to/audit.log bench/tail.sh   # any JSON-lines file
#
# The input is generated once (about 100 CPU-seconds for 1M events) into
# $AUDITRAIL_BENCH_CACHE (default ~/.cache/auditrail-bench) with
# shared/bench/gen-audit-log ($GEN_AUDIT_LOG to point elsewhere).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
count=${COUNT:-1000000}
seed=${SEED:-42}
cache=${AUDITRAIL_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/auditrail-bench}
gen=${GEN_AUDIT_LOG:-$root/../shared/bench/gen-audit-log}
input=${INPUT:-$cache/audit-$count-s$seed.log}

mkdir -p "$cache"
if [[ ! -s $input && -z ${INPUT:-} ]]; then
    echo "generating $input ($count events; takes a while)..." >&2
    "$gen" --count "$count" --seed "$seed" -o "$input.tmp" --counts "$cache/audit-$count-s$seed.counts.json"
    mv "$input.tmp" "$input"
fi

(cd "$root" && cargo build --release --quiet)
bin=$root/target/release/auditrail

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bytes=$(stat -c %s "$input")
events=$(grep -c '' "$input")

# Warm the page cache, then time a plain read of it.
cat "$input" >/dev/null
start=$(date +%s.%N)
cat "$input" >/dev/null
end=$(date +%s.%N)
cache_mbs=$(echo "$bytes / ($end - $start) / 1000000" | bc -l)

mkdir -p "$work/logs"
ln -s "$input" "$work/logs/audit.log"
cat >"$work/auditrail.toml" <<TOML
data_dir = "$work/data"

[[source]]
name = "bench"
type = "tail"
paths = ["$work/logs/audit.log"]
tag = "audit"
time_key = "stageTimestamp"
position_flush_interval = "50ms"

[[output]]
name = "devnull"
type = "stdout"
match = "**"
TOML

positions=$work/data/tail/bench.positions.json
offset() { grep -o '"offset": [0-9]*' "$positions" 2>/dev/null | grep -o '[0-9]*$' || echo 0; }

start=$(date +%s.%N)
AUDITRAIL_LOG=warn /usr/bin/time -v -o "$work/time.txt" "$bin" run -c "$work/auditrail.toml" >/dev/null &
timer=$!
sleep 0.05
agent=$(pgrep -P "$timer")
while [[ $(offset) -lt $bytes ]]; do
    sleep 0.02
    kill -0 "$agent" 2>/dev/null || { echo "agent died" >&2; cat "$work/time.txt" >&2; exit 1; }
done
end=$(date +%s.%N)
kill -TERM "$agent"
wait "$timer"

elapsed=$(echo "$end - $start" | bc -l)
user=$(grep 'User time' "$work/time.txt" | grep -o '[0-9.]*$')
sys=$(grep 'System time' "$work/time.txt" | grep -o '[0-9.]*$')
rss=$(grep 'Maximum resident' "$work/time.txt" | grep -o '[0-9]*$')
printf 'input:        %s (%d events, %.1f MB)\n' "$input" "$events" "$(echo "$bytes / 1000000" | bc -l)"
printf 'page cache:   %.0f MB/s (cat)\n' "$cache_mbs"
printf 'elapsed:      %.2f s (all events acknowledged and saved)\n' "$elapsed"
printf 'throughput:   %.0f events/s, %.0f MB/s (%.2f of the page-cache rate)\n' \
    "$(echo "$events / $elapsed" | bc -l)" "$(echo "$bytes / $elapsed / 1000000" | bc -l)" \
    "$(echo "$bytes / $elapsed / 1000000 / $cache_mbs" | bc -l)"
printf 'cpu:          %.2f s user + %.2f s sys\n' "$user" "$sys"
printf 'peak rss:     %.1f MiB\n' "$(echo "$rss / 1024" | bc -l)"
