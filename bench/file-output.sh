#!/usr/bin/env bash
# File output benchmark: 1,000,000 generated audit events through stdin into
# one gzip file per namespace (~50), at gzip levels 1 and 6. Reports events/s,
# CPU seconds (user+sys) and peak RSS from /usr/bin/time -v, next to plain
# `gzip -1`/`gzip -6` over the same bytes, and checks the output files with
# the shared check-output tool.
#
#   bench/file-output.sh                  # uses target/release/auditrail
#   AUDIT_LOG=/path/audit.log COUNTS=/path/audit.counts.json bench/file-output.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
bench_tools=${BENCH_TOOLS:-/work/shared/bench}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/auditrail-bench
count=${COUNT:-1000000}
bin=${AUDITRAIL:-$repo/target/release/auditrail}
levels=${LEVELS:-"1 6"}

# Input: reuse a generated log when there is one (generating takes ~100 CPU-s).
if [[ -z "${AUDIT_LOG:-}" ]]; then
    if [[ $count == 1000000 && -s /tmp/bench-audit.log ]]; then
        AUDIT_LOG=$(readlink -f /tmp/bench-audit.log)
    else
        AUDIT_LOG=$cache/audit-$count-s42.log
    fi
fi
COUNTS=${COUNTS:-${AUDIT_LOG%.log}.counts.json}
if [[ ! -s $AUDIT_LOG || ! -s $COUNTS ]]; then
    mkdir -p "$(dirname "$AUDIT_LOG")"
    echo "generating $count events into $AUDIT_LOG ..." >&2
    "$bench_tools/gen-audit-log" --count "$count" --seed 42 -o "$AUDIT_LOG.tmp" --counts "$COUNTS"
    mv "$AUDIT_LOG.tmp" "$AUDIT_LOG"
fi
if [[ ! -x $bin ]]; then
    (cd "$repo" && cargo build --release)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
events=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"])' "$COUNTS")
bytes=$(stat -c %s "$AUDIT_LOG")
# Warm the page cache so the first run is not charged for reading the disk.
cat "$AUDIT_LOG" >/dev/null

# Prints "elapsed_s cpu_s rss_mib" from a /usr/bin/time -v report.
summarize() {
    awk -F': ' '
        /Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; wall = s }
        /User time/ { cpu += $2 }
        /System time/ { cpu += $2 }
        /Maximum resident set size/ { rss = $2 / 1024 }
        END { printf "%.2f %.2f %.0f\n", wall, cpu, rss }' "$1"
}

printf '%-22s %10s %9s %9s %12s %9s %s\n' run wall_s cpu_s rss_MiB events/s MB/s output
for level in $levels; do
    out=$work/out-$level
    cfg=$work/level-$level.toml
    cat >"$cfg" <<EOF
data_dir = "$work/data"
[[source]]
type = "stdin"
tag = "audit"
[[output]]
type = "file"
match = "audit"
path = '$out/ns.\${objectRef.namespace ?? "none"}.log.gz'
compress = "gzip"
compress_level = $level
max_size = "0"
EOF
    AUDITRAIL_LOG=warn /usr/bin/time -v "$bin" run -c "$cfg" <"$AUDIT_LOG" 2>"$work/time-$level" >/dev/null
    read -r wall cpu rss < <(summarize "$work/time-$level")
    size=$(du -sb "$out" | cut -f1)
    files=$(find "$out" -type f | wc -l)
    check=$("$bench_tools/check-output" "$out" "$COUNTS" --prefix ns. >/dev/null 2>&1 && echo ok || echo FAILED)
    printf '%-22s %10s %9s %9s %12.0f %9.1f %s\n' "auditrail gzip level $level" "$wall" "$cpu" "$rss" \
        "$(echo "$events / $wall" | bc -l)" "$(echo "$bytes / $wall / 1000000" | bc -l)" \
        "$files files, $((size / 1000000)) MB, check-output $check"

    /usr/bin/time -v gzip "-$level" -c "$AUDIT_LOG" 2>"$work/gzip-$level" | wc -c >"$work/gzip-size-$level"
    read -r wall cpu rss < <(summarize "$work/gzip-$level")
    printf '%-22s %10s %9s %9s %12.0f %9.1f %s\n' "gzip -$level (1 core)" "$wall" "$cpu" "$rss" \
        "$(echo "$events / $wall" | bc -l)" "$(echo "$bytes / $wall / 1000000" | bc -l)" \
        "$(($(cat "$work/gzip-size-$level") / 1000000)) MB"
    rm -rf "$out"
done
