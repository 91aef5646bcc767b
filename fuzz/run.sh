#!/usr/bin/env bash
# Runs one fuzz target on one core for a while, on its corpus (seeded by
# seed.py when empty), and prints libFuzzer's closing statistics.
#
#   fuzz/run.sh TARGET [SECONDS]      (default 600)
#
# Crashes are written to fuzz/artifacts/TARGET/; the full log is
# fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [SECONDS]}
seconds=${2:-600}

# Longer inputs slow every execution; these cover the formats' structures.
case "$target" in
    webhook_body | audit_lines) max_len=16384 ;;
    policy | config) max_len=8192 ;;
    *) max_len=4096 ;;
esac

[ -n "$(ls -A "corpus/$target" 2>/dev/null)" ] || python3 seed.py
mkdir -p logs "artifacts/$target"
# One libFuzzer process at a time. A crash stops libFuzzer (the input goes to
# artifacts/); the run then goes on for the time left, at most 5 times.
: >"logs/$target.log"
end=$((SECONDS + seconds))
for _ in 1 2 3 4 5 6; do
    left=$((end - SECONDS))
    [ "$left" -gt 5 ] || break
    cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
        -max_total_time="$left" -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >>"logs/$target.log" 2>&1 || true
done
log="logs/$target.log"
execs=$(awk '/^stat::number_of_executed_units/ {n += $2} END {print n + 0}' "$log")
echo "$target: ${seconds}s, $execs executions, $((execs / seconds)) exec/s"
grep -E '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -1
echo "corpus: $(ls "corpus/$target" | wc -l) files, $(du -sh "corpus/$target" | cut -f1)"
grep -E '^==[0-9]+==ERROR|panicked at|^SUMMARY' "$log" | sort | uniq -c || true
ls "artifacts/$target" | sed 's/^/artifact: /'
