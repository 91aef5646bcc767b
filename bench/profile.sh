#!/usr/bin/env bash
# Where the CPU time goes: runs one bench/run workload (bench/configs/W.toml)
# on a small input under `perf record` (software cpu-clock event, so it works
# in VMs without hardware counters) and prints the top functions, flat (self
# time) and by shared object.
#
#   bench/profile.sh [--workload gzip6|plain|es] [--count 50000] [--top 40]
#                    [--freq 4000] [--cache DIR]
#
# Needs `perf` (Debian: linux-perf). The release profile keeps line tables
# (Cargo.toml), so symbols resolve. perf.data is kept in the temp dir only
# with --keep.
set -euo pipefail

workload=gzip6
count=50000
top=40
freq=4000
keep=0
while (($#)); do
    case $1 in
        --workload) workload=$2; shift 2 ;;
        --count) count=$2; shift 2 ;;
        --top) top=$2; shift 2 ;;
        --freq) freq=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --cache) BENCH_CACHE=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
source "$(dirname "$0")/lib.sh"
command -v perf >/dev/null || bench_die "perf is missing (apt-get install -y linux-perf)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/auditrail-profile.XXXXXX")
SINK_PID=
cleanup() { bench_sink_stop; if ((keep)); then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
bench_build
bench_input "$count"
bytes=$(stat -c %s "$INPUT")
total=$(bench_json "$COUNTS" total)
bench_warm "$INPUT"
[[ $workload == es ]] && bench_sink_start --no-ns
stop_at_eof=
if bench_has_stop_at_eof; then stop_at_eof='stop_at_eof = true'; fi

mkdir -p "$WORK/logs" "$WORK/out" "$WORK/data"
ln -s "$INPUT" "$WORK/logs/audit.log"
bench_render "$BENCH_ROOT/bench/configs/$workload.toml" "$WORK/auditrail.toml" \
    DATA="$WORK/data" LOGS="$WORK/logs" OUT="$WORK/out" PORT="${SINK_PORT:-0}" TAIL_EXTRA="$stop_at_eof"
positions=$WORK/data/tail/bench.positions.json

AUDITRAIL_LOG=warn perf record -q -e cpu-clock -F "$freq" -g -o "$WORK/perf.data" -- \
    "$BIN" run -c "$WORK/auditrail.toml" >/dev/null 2>"$WORK/stderr" &
perf_pid=$!
agent=
for _ in $(seq 200); do
    agent=$(pgrep -P "$perf_pid" | head -1 || true)
    [[ -n $agent ]] && break
    sleep 0.01
done
[[ -n $agent ]] || bench_die "the agent did not start"
start=$(bench_now)
while kill -0 "$agent" 2>/dev/null; do
    if [[ $workload == es ]]; then
        (($(bench_sink_stat events) >= total)) && break
    else
        (($(bench_tail_offset "$positions") >= bytes)) && break
    fi
    sleep 0.05
done
end=$(bench_now)
kill -TERM "$agent" 2>/dev/null || true
wait "$perf_pid" || true

echo "workload $workload, $total events ($((bytes / 1000000)) MB), $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s; load average $(bench_loadavg); $(nproc) cores"
echo
echo "== by shared object (self) =="
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | grep '%' | head -10
echo
echo "== top $top functions (self, all threads) =="
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    grep -v '^#' | grep '%' | head -"$top"
echo
echo "== by thread (comm) =="
perf report -i "$WORK/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' | head -10
