#!/usr/bin/env bash
# Throughput of the pipeline core: stdin -> router -> stdout on generated
# audit events, byte for byte. Prints events/s, MB/s, CPU seconds per 1M
# events and peak RSS for each of 3 runs, then the median.
#
#   bench/passthrough.sh [COUNT]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000000}"
cache="${AUDITRAIL_BENCH_CACHE:-$HOME/.cache/auditrail-bench}"
shared="${AUDITRAIL_SHARED:-../shared}"
input="$cache/audit-$count-s42.log"
mkdir -p "$cache"
if [ ! -s "$input" ]; then
    echo "generating $count events into $input (about 100 CPU-s per million)" >&2
    "$shared/bench/gen-audit-log" --count "$count" --seed 42 --output "$input.tmp" --counts "$cache/audit-$count-s42.counts.json"
    mv "$input.tmp" "$input"
fi
cargo build --release --quiet
bin=target/release/auditrail
bytes=$(stat -c %s "$input")
cat "$input" > /dev/null # warm the page cache
results=()
for run in 1 2 3; do
    out=$(mktemp)
    stats=$(mktemp)
    start=$(date +%s.%N)
    /usr/bin/time -v "$bin" run -c examples/stdin-to-stdout.toml < "$input" > "$out" 2> "$stats"
    end=$(date +%s.%N)
    if ! cmp -s "$input" "$out"; then
        echo "run $run: output differs from input" >&2
        exit 1
    fi
    rm -f "$out"
    user=$(awk -F': ' '/User time/ {print $2}' "$stats")
    sys=$(awk -F': ' '/System time/ {print $2}' "$stats")
    rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$stats")
    rm -f "$stats"
    line=$(awk -v s="$start" -v e="$end" -v n="$count" -v b="$bytes" -v u="$user" -v y="$sys" -v r="$rss" 'BEGIN {
        t = e - s; printf "%.0f events/s  %.0f MB/s  %.2f CPU-s per 1M  %.0f MB RSS  (%.2f s wall)", n / t, b / t / 1e6, (u + y) * 1e6 / n, r / 1024, t }')
    echo "run $run: $line"
    results+=("$line")
done
printf '%s\n' "${results[@]}" | sort -n | sed -n 2p | sed 's/^/median: /'
