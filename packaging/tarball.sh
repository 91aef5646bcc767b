#!/usr/bin/env bash
# Builds the release tarball auditrail-<version>-<arch>-linux.tar.gz:
#
#   auditrail-<version>/
#     bin/auditrail
#     etc/auditrail/auditrail.toml               the default service config
#     share/auditrail/policies/*.yaml            sample audit policies (+ PROVENANCE.md)
#     share/auditrail/systemd/auditrail.service  the hardened unit
#     share/doc/auditrail/                       README.md and docs/*.md
#
# Usage: packaging/tarball.sh [--binary PATH] [--out DIR]
#   --binary  the auditrail binary to ship (default target/release/auditrail;
#             build it first with `cargo build --release --locked`)
#   --out     where the tarball is written (default target/dist)
# Prints the tarball's path. The archive is reproducible: sorted, owned by
# root, dated SOURCE_DATE_EPOCH (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/release/auditrail
out=target/dist
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "tarball.sh: unknown argument \`$1\`" >&2; exit 2 ;;
    esac
done
if [ ! -x "$binary" ]; then
    echo "tarball.sh: no binary at \`$binary\`; run \`cargo build --release --locked\` first" >&2
    exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name="auditrail-${version}"
archive="${name}-$(uname -m)-linux.tar.gz"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"

install -D -m 755 "$binary" "$root/bin/auditrail"
install -D -m 644 conf/auditrail.toml "$root/etc/auditrail/auditrail.toml"
install -d "$root/share/auditrail/policies"
install -m 644 conf/policies/*.yaml conf/policies/PROVENANCE.md "$root/share/auditrail/policies/"
install -D -m 644 packaging/auditrail.service "$root/share/auditrail/systemd/auditrail.service"
install -d "$root/share/doc/auditrail"
install -m 644 README.md docs/*.md "$root/share/doc/auditrail/"

mkdir -p "$out"
tar --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@${SOURCE_DATE_EPOCH:-0}" -C "$stage" -cf - "$name" |
    gzip -n -9 >"$out/$archive"
echo "$out/$archive"
