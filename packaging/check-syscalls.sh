#!/usr/bin/env bash
# The systemd unit forbids the system calls of `@privileged` and `@resources`
# (`SystemCallFilter=~...`): a call the agent makes from those sets would kill
# the service at the first use. This runs the agent under strace on the jobs
# the unit runs (check, a tail -> gzip files run to its end, the webhook and
# metrics endpoint taking a request) and fails if it made any call of those sets, as
# systemd-analyze expands them on this machine.
#
# Usage: packaging/check-syscalls.sh [BINARY]   (default target/release/auditrail)
# Needs: strace, systemd-analyze, pgrep (procps); talks HTTP with bash's /dev/tcp.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/auditrail}
[[ -x $bin ]] || { echo "check-syscalls: no binary at $bin" >&2; exit 1; }
for tool in strace systemd-analyze; do
    command -v "$tool" >/dev/null || { echo "check-syscalls: \`$tool\` is not installed" >&2; exit 1; }
done

# Every call a set holds, with nested sets (@chown, @clock, ...) expanded.
expand() {
    systemd-analyze syscall-filter "$1" | awk 'NR > 1 && NF { print $1 }' | while read -r name; do
        case $name in
            @*) expand "$name" ;;
            *) echo "$name" ;;
        esac
    done
}
forbidden=$( { expand @privileged; expand @resources; } | sort -u)
[[ -n $forbidden ]] || { echo "check-syscalls: systemd-analyze listed no calls" >&2; exit 1; }

work=$(mktemp -d)
agent=
trap 'if [[ -n $agent ]]; then kill "$agent" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
trace() {
    strace -f -qq -o "$work/trace.$1" -e trace=all "${@:2}"
}

# 1. check, and the main job: tail the sample log into per-namespace gzip files.
trace check "$bin" check -c examples/fluentd-namespace-files.toml >/dev/null
sed -e "s#\"out/#\"$work/out/#g" examples/fluentd-namespace-files.toml >"$work/fluentd.toml"
trace tail "$bin" run -c "$work/fluentd.toml" >/dev/null 2>&1

# 2. The webhook source and the [api] endpoint taking a request.
cat >"$work/webhook.toml" <<TOML
data_dir = "$work/state"
[api]
listen = "127.0.0.1:0"
[[source]]
type = "http"
listen = "127.0.0.1:0"
[[output]]
type = "file"
match = "**"
path = "$work/out/webhook.log"
TOML
trace webhook "$bin" run -c "$work/webhook.toml" 2>"$work/log" &
tracer=$!
# Signals go to the agent, strace's child, not to strace.
for _ in $(seq 100); do
    agent=$(pgrep -P "$tracer" || true)
    [[ -n $agent ]] && grep -q "Pipeline started" "$work/log" && break
    sleep 0.1
done
[[ -n $agent ]] || { echo "check-syscalls: the agent did not start" >&2; cat "$work/log" >&2; exit 1; }
addr=$(grep -v "api listening" "$work/log" | grep -o 'listening on [0-9.]*:[0-9]*' | head -1 | cut -d' ' -f3)
[[ -n $addr ]] || { echo "check-syscalls: the webhook did not listen" >&2; cat "$work/log" >&2; exit 1; }
body=$(head -c 2000 examples/data/audit.log | head -1)
exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}"
printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
    "${#body}" "$body" >&3
timeout 20 cat <&3 >/dev/null || true
exec 3<&-
# (Signals to a traced tokio process stall under strace here, so the run
# ends with SIGKILL; the trace has every call made until then.)
kill -KILL "$agent"
wait "$tracer" || true

used=$(cat "$work"/trace.* | grep -o '^[0-9]* *[a-z_0-9]*(' | sed 's/^[0-9]* *//; s/($//' | sort -u)
bad=$(comm -12 <(echo "$forbidden") <(echo "$used"))
if [[ -n $bad ]]; then
    echo "check-syscalls: FAIL: the agent called what the unit forbids: $bad" >&2
    exit 1
fi
echo "check-syscalls: ok: $(echo "$used" | wc -l) distinct calls, none of @privileged or @resources"
