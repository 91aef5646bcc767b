# Shared helpers of the bench scripts (sourced, not run).
#
#   source "$(dirname "$0")/lib.sh"
#
# Settings (environment, or set before sourcing):
#   BENCH_CACHE   generated inputs (default ~/.cache/auditrail-bench; the
#                 older AUDITRAIL_BENCH_CACHE is honoured too)
#   BENCH_SEED    seed of the generated inputs (default 42)
#   AUDITRAIL     the agent binary (default target/release/auditrail, built)
#
# Nothing here writes into the repo except bench/results/ (gitignored).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_CACHE=${BENCH_CACHE:-${AUDITRAIL_BENCH_CACHE:-$HOME/.cache/auditrail-bench}}
# gen-audit-log, check-output and http-sink (Python 3, standard library).
BENCH_TOOLS=$BENCH_ROOT/bench/tools
BENCH_SEED=${BENCH_SEED:-42}

bench_log() { printf '%s\n' "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

# Builds the release binary (unless AUDITRAIL points at one) and sets BIN.
bench_build() {
    if [[ -n ${AUDITRAIL:-} ]]; then
        BIN=$AUDITRAIL
    else
        (cd "$BENCH_ROOT" && cargo build --release --quiet)
        BIN=$BENCH_ROOT/target/release/auditrail
    fi
    [[ -x $BIN ]] || bench_die "no agent binary at $BIN"
}

# bench_input COUNT: sets INPUT and COUNTS to the cached input of COUNT events
# (bench/tools/gen-audit-log --count COUNT --seed BENCH_SEED, default mix) and
# its counts JSON, generating them the first time (~100 CPU-s per million
# events). A
# smaller input is cut from a cached bigger one of the same seed when there is
# one (gen-audit-log writes event i the same whatever --count is), with the
# counts recomputed the way gen-audit-log does.
bench_input() {
    local count=$1
    mkdir -p "$BENCH_CACHE"
    INPUT=$BENCH_CACHE/gen-$count-s$BENCH_SEED.log
    COUNTS=$BENCH_CACHE/gen-$count-s$BENCH_SEED.counts.json
    if [[ -s $INPUT && -s $COUNTS ]]; then return; fi
    local bigger=
    local f n
    for f in "$BENCH_CACHE"/gen-*-s"$BENCH_SEED".log; do
        [[ -s $f ]] || continue
        n=${f##*/gen-}; n=${n%%-*}
        if [[ $n =~ ^[0-9]+$ ]] && ((n > count)) && [[ -s ${f%.log}.counts.json ]]; then
            bigger=$f
            break
        fi
    done
    if [[ -n $bigger ]]; then
        bench_log "cutting $count events from $bigger into $INPUT"
        head -n "$count" "$bigger" >"$INPUT.tmp"
        bench_counts "$INPUT.tmp" "$BENCH_SEED" >"$COUNTS.tmp"
    else
        bench_log "generating $count events into $INPUT (about 100 CPU-s per million)"
        "$BENCH_TOOLS/gen-audit-log" --count "$count" --seed "$BENCH_SEED" \
            --output "$INPUT.tmp" --counts "$COUNTS.tmp"
    fi
    mv "$COUNTS.tmp" "$COUNTS"
    mv "$INPUT.tmp" "$INPUT"
}

# bench_counts FILE [SEED]: counts JSON (total, bytes, namespaces) of a
# JSON-lines file, as gen-audit-log --counts writes it.
bench_counts() {
    python3 - "$1" "${2:-0}" <<'PY'
import json, sys
counts, total, size = {}, 0, 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        total += 1
        size += len(line)
        ref = json.loads(line).get("objectRef") or {}
        ns = ref.get("namespace") or "none"
        counts[ns] = counts.get(ns, 0) + 1
json.dump({"total": total, "bytes": size, "seed": int(sys.argv[2]),
           "namespaces": dict(sorted(counts.items()))}, sys.stdout, indent=1)
PY
}

# bench_json FILE KEY: one top-level value of a JSON file.
bench_json() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# bench_ns_lines NS: path of a cached file holding the lines of INPUT whose
# namespace is NS, in input order (for byte-identity checks).
bench_ns_lines() {
    local ns=$1 out=${INPUT%.log}.ns-$1.log
    if [[ ! -s $out ]]; then
        python3 - "$INPUT" "$ns" >"$out.tmp" <<'PY'
import json, sys
want = sys.argv[2]
needle = ('"namespace":"%s"' % want).encode() if want != "none" else None
out = sys.stdout.buffer
with open(sys.argv[1], "rb") as f:
    for line in f:
        if needle is not None and needle not in line:
            continue
        ref = json.loads(line).get("objectRef") or {}
        if (ref.get("namespace") or "none") == want:
            out.write(line)
PY
        mv "$out.tmp" "$out"
    fi
    printf '%s\n' "$out"
}

# bench_warm FILE: reads FILE into the page cache.
bench_warm() { cat "$1" >/dev/null; }

bench_loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

bench_now() { date +%s.%N; }

# bench_render TEMPLATE OUT KEY=VALUE...: copies TEMPLATE to OUT replacing
# every @KEY@ by VALUE.
bench_render() {
    local template=$1 out=$2 kv key value
    shift 2
    cp "$template" "$out"
    for kv in "$@"; do
        key=${kv%%=*}
        value=${kv#*=}
        value=${value//\\/\\\\}
        value=${value//&/\\&}
        value=${value//|/\\|}
        sed -i "s|@$key@|$value|g" "$out"
    done
    if grep -q '@[A-Z_]*@' "$out"; then
        bench_die "$out: unreplaced placeholder $(grep -o '@[A-Z_]*@' "$out" | head -1)"
    fi
}

# Whether the tail source of this checkout has `stop_at_eof` (the agent then
# exits by itself at the end of the input).
bench_has_stop_at_eof() { grep -q 'stop_at_eof' "$BENCH_ROOT/src/source/tail/mod.rs" 2>/dev/null; }

# bench_parse_time FILE: "cpu_s rss_kib" from a /usr/bin/time -v report
# (user + system time, maximum resident set size).
bench_parse_time() {
    awk -F': ' '
        /User time/ { cpu += $2 }
        /System time/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 }
        END { printf "%.2f %d\n", cpu, rss }' "$1"
}

# bench_measure_exit TIMEFILE -- CMD...: runs CMD under /usr/bin/time -v
# (report in TIMEFILE) until it exits by itself (BENCH_TIMEOUT, default 900 s,
# then SIGTERM) and sets MEASURE_START, MEASURE_DONE, MEASURE_TIMEOUT and
# MEASURE_RC like bench_measure. Nothing polls meanwhile, so on a small
# machine no checker process competes with CMD for the CPU, and the end time
# is the exit itself rather than the next 50 ms poll.
bench_measure_exit() {
    local timefile=$1
    shift 2
    MEASURE_START=$(bench_now)
    local rc=0
    timeout "${BENCH_TIMEOUT:-900}" /usr/bin/time -v -o "$timefile" "$@" || rc=$?
    MEASURE_DONE=$(bench_now)
    MEASURE_RC=$rc
    MEASURE_TIMEOUT=0
    if ((rc == 124)); then
        MEASURE_TIMEOUT=1
        bench_log "timed out after ${BENCH_TIMEOUT:-900} s"
    fi
}

# bench_measure TIMEFILE DONE_FN -- CMD...: runs CMD under /usr/bin/time -v
# (report in TIMEFILE), calling DONE_FN every 50 ms until it succeeds or CMD
# exits by itself; then SIGTERMs CMD (if still running) and waits for it.
# Sets MEASURE_START and MEASURE_DONE (epoch seconds: start, and when DONE_FN
# first succeeded or the process exited), MEASURE_PID, and MEASURE_TIMEOUT=1
# when BENCH_TIMEOUT (default 900 s) ran out first. DONE_FN gets the pid.
bench_measure() {
    local timefile=$1 done_fn=$2
    shift 3
    MEASURE_TIMEOUT=0
    MEASURE_START=$(bench_now)
    /usr/bin/time -v -o "$timefile" "$@" &
    local timer=$! pid= i
    for i in $(seq 200); do
        pid=$(pgrep -P "$timer" | head -1 || true)
        [[ -n $pid ]] && break
        kill -0 "$timer" 2>/dev/null || break
        sleep 0.01
    done
    MEASURE_PID=$pid
    local deadline
    deadline=$(awk -v s="$MEASURE_START" -v t="${BENCH_TIMEOUT:-900}" 'BEGIN { printf "%d", s + t }')
    while :; do
        if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
            MEASURE_DONE=$(bench_now)
            break
        fi
        if "$done_fn" "$pid"; then
            MEASURE_DONE=$(bench_now)
            kill -TERM "$pid" 2>/dev/null || true
            break
        fi
        if (($(date +%s) > deadline)); then
            MEASURE_DONE=$(bench_now)
            MEASURE_TIMEOUT=1
            bench_log "timed out after ${BENCH_TIMEOUT:-900} s; stopping pid $pid"
            kill -TERM "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
    local rc=0
    wait "$timer" || rc=$?
    MEASURE_RC=$rc
}

# bench_tail_offset POSITIONS_FILE: acknowledged offset of the (one) file in
# an auditrail tail positions file, 0 when there is none yet.
bench_tail_offset() {
    local o
    o=$(grep -o '"offset": *[0-9]*' "$1" 2>/dev/null | grep -o '[0-9]*$' | sort -n | tail -1 || true)
    echo "${o:-0}"
}

# bench_max_mtime DIR: newest modification time (epoch seconds) of the files
# in DIR, or empty.
bench_max_mtime() {
    find "$1" -type f -printf '%T@\n' 2>/dev/null | sort -n | tail -1
}

# bench_median: median of the numbers on stdin (lower middle for an even
# count).
bench_median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# http-sink: bench_sink_start [ARGS] sets SINK_PID and SINK_PORT; the caller
# stops it with bench_sink_stop (also call it from an EXIT trap).
bench_sink_start() {
    local portfile
    portfile=$(mktemp)
    rm -f "$portfile"
    python3 "$BENCH_TOOLS/http-sink" --port 0 --port-file "$portfile" "$@" 2>/dev/null &
    SINK_PID=$!
    local i
    for i in $(seq 200); do [[ -s $portfile ]] && break; sleep 0.05; done
    [[ -s $portfile ]] || bench_die "http-sink did not start"
    SINK_PORT=$(cat "$portfile")
    rm -f "$portfile"
}
bench_sink_stop() {
    if [[ -n ${SINK_PID:-} ]]; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
        SINK_PID=
    fi
}
bench_sink_reset() {
    python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request("http://127.0.0.1:%s/__stats" % sys.argv[1], method="DELETE"))' "$SINK_PORT"
}
# bench_sink_stat KEY: one value of the sink's /__stats.
bench_sink_stat() {
    python3 -c 'import json, sys, urllib.request as u; print(json.load(u.urlopen("http://127.0.0.1:%s/__stats" % sys.argv[1]))[sys.argv[2]])' "$SINK_PORT" "$1"
}
