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
cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 2>&1 | tee "logs/$target.log" | grep -E '^#[0-9]+ +(DONE|INITED)|^stat::|ERROR|panicked|SUMMARY' || true
