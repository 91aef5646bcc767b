#!/usr/bin/env bash
# Throughput of the pipeline core: stdin -> router -> stdout on generated
# audit events, byte for byte. Prints events/s, MB/s, CPU seconds per 1M
# events and peak RSS for each of 3 runs, then the median (by events/s).
#
#   bench/passthrough.sh [COUNT]        (default 1000000)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
count=${1:-1000000}
bench_build
bench_input "$count"
bytes=$(stat -c %s "$INPUT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_warm "$INPUT"
results=()
for run in 1 2 3; do
    start=$(bench_now)
    /usr/bin/time -v -o "$work/time" "$BIN" run -c "$BENCH_ROOT/examples/stdin-to-stdout.toml" <"$INPUT" >"$work/out"
    end=$(bench_now)
    if ! cmp -s "$INPUT" "$work/out"; then
        echo "run $run: output differs from input" >&2
        exit 1
    fi
    rm -f "$work/out"
    read -r cpu rss < <(bench_parse_time "$work/time")
    line=$(awk -v s="$start" -v e="$end" -v n="$count" -v b="$bytes" -v c="$cpu" -v r="$rss" 'BEGIN {
        t = e - s; printf "%.0f events/s  %.0f MB/s  %.2f CPU-s per 1M  %.0f MB RSS  (%.2f s wall)", n / t, b / t / 1e6, c * 1e6 / n, r / 1024, t }')
    echo "run $run: $line"
    results+=("$line")
done
printf '%s\n' "${results[@]}" | sort -n | sed -n 2p | sed 's/^/median: /'
echo "load average $(bench_loadavg); $(nproc) cores"
