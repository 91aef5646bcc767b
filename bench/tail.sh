#!/usr/bin/env bash
# Benchmark of the tail source alone: reads a generated kube-apiserver audit
# log (1,000,000 events by default) into a `null` output (or, with
# OUTPUT=stdout, a `stdout` output sent to /dev/null), and reports events/s,
# MB/s, CPU seconds and peak RSS, next to the page-cache read rate of the same
# file (the target is at least a third of it). The end-to-end workloads
# (files, Elasticsearch) are in bench/run.
#
#   bench/tail.sh                  # 1,000,000 events, seed 42
#   COUNT=100000 bench/tail.sh     # smaller
#   INPUT=/path/to/audit.log bench/tail.sh   # any JSON-lines file
#   OUTPUT=stdout bench/tail.sh    # include writing every event out
set -euo pipefail
source "$(dirname "$0")/lib.sh"

count=${COUNT:-1000000}
output=${OUTPUT:-null}
case $output in
    null | stdout) ;;
    *) bench_die "OUTPUT must be null or stdout, not $output" ;;
esac
if [[ -n ${INPUT:-} ]]; then
    input=$INPUT
else
    bench_input "$count"
    input=$INPUT
fi
bench_build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bytes=$(stat -c %s "$input")
events=$(grep -c '' "$input")

# Warm the page cache, then time a plain read of it.
bench_warm "$input"
start=$(bench_now)
bench_warm "$input"
end=$(bench_now)
cache_mbs=$(echo "$bytes / ($end - $start) / 1000000" | bc -l)

mkdir -p "$work/logs"
ln -s "$input" "$work/logs/audit.log"
stop_at_eof=
if bench_has_stop_at_eof; then stop_at_eof='stop_at_eof = true'; fi
cat >"$work/auditrail.toml" <<TOML
data_dir = "$work/data"

[[source]]
name = "bench"
type = "tail"
paths = ["$work/logs/audit.log"]
tag = "audit"
time_key = "stageTimestamp"
position_flush_interval = "50ms"
$stop_at_eof

[[output]]
name = "out"
type = "$output"
match = "**"
TOML

positions=$work/data/tail/bench.positions.json
done_tail() { (($(bench_tail_offset "$positions") >= bytes)); }
if [[ -n $stop_at_eof ]]; then
    # The agent exits once every event is acknowledged and its position saved.
    AUDITRAIL_LOG=warn bench_measure_exit "$work/time.txt" -- "$BIN" run -c "$work/auditrail.toml" >/dev/null
    done_tail || bench_die "the agent exited before acknowledging the whole file"
else
    AUDITRAIL_LOG=warn bench_measure "$work/time.txt" done_tail -- "$BIN" run -c "$work/auditrail.toml" >/dev/null
fi
((MEASURE_TIMEOUT == 0)) || bench_die "timed out"

elapsed=$(echo "$MEASURE_DONE - $MEASURE_START" | bc -l)
read -r cpu rss < <(bench_parse_time "$work/time.txt")
printf 'input:        %s (%d events, %.1f MB)\n' "$input" "$events" "$(echo "$bytes / 1000000" | bc -l)"
printf 'output:       %s\n' "$output"
printf 'page cache:   %.0f MB/s (cat)\n' "$cache_mbs"
printf 'elapsed:      %.2f s (all events acknowledged and saved)\n' "$elapsed"
printf 'throughput:   %.0f events/s, %.0f MB/s (%.2f of the page-cache rate)\n' \
    "$(echo "$events / $elapsed" | bc -l)" "$(echo "$bytes / $elapsed / 1000000" | bc -l)" \
    "$(echo "$bytes / $elapsed / 1000000 / $cache_mbs" | bc -l)"
printf 'cpu:          %.2f s user+sys (%.2f per 1M events)\n' "$cpu" "$(echo "$cpu * 1000000 / $events" | bc -l)"
printf 'peak rss:     %.1f MiB\n' "$(echo "$rss / 1024" | bc -l)"
printf 'load average: %s (%s cores)\n' "$(bench_loadavg)" "$(nproc)"
