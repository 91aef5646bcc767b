#!/usr/bin/env bash
# Builds the release tarball auditrail-<version>-<arch>-linux.tar.gz:
#
#   auditrail-<version>/
#     bin/auditrail                              stripped; installs as /usr/bin/auditrail
#     etc/auditrail/auditrail.toml               the default service config (mode 0640)
#     share/auditrail/policies/*.yaml            sample audit policies (+ PROVENANCE.md)
#     share/auditrail/systemd/auditrail.service  the hardened unit (runs /usr/bin/auditrail)
#     share/auditrail/sysusers/auditrail.conf    the service user, for systemd-sysusers
#     share/doc/auditrail/                       README.md and docs/*.md
#
# docs/install.md says how to install it the way the .deb does.
#
# Usage: packaging/tarball.sh [--binary PATH] [--out DIR]
#   --binary  the auditrail binary to ship (default target/dist/auditrail;
#             build it first with `cargo build --profile dist --locked`);
#             the copy in the tarball is stripped in any case
#   --out     where the tarball is written (default target/tarball)
# Prints the tarball's path. The archive is reproducible: sorted, owned by
# root, dated SOURCE_DATE_EPOCH (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/dist/auditrail
out=target/tarball
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "tarball.sh: unknown argument \`$1\`" >&2; exit 2 ;;
    esac
done
if [ ! -x "$binary" ]; then
    echo "tarball.sh: no binary at \`$binary\`; run \`cargo build --profile dist --locked\` first" >&2
    exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
name="auditrail-${version}"
archive="${name}-$(uname -m)-linux.tar.gz"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"

install -D -m 755 "$binary" "$root/bin/auditrail"
# Debug info and symbols are for developers; the shipped binary goes without
# (a no-op for the dist profile, which cargo already strips).
command -v strip >/dev/null 2>&1 || {
    echo "tarball.sh: \`strip\` (binutils) is needed to strip the binary" >&2
    exit 1
}
strip --strip-unneeded "$root/bin/auditrail"
# Readable by root and the service's group only, as the .deb installs it: the
# config may hold credentials.
install -D -m 640 conf/auditrail.toml "$root/etc/auditrail/auditrail.toml"
install -D -m 644 packaging/auditrail.sysusers "$root/share/auditrail/sysusers/auditrail.conf"
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
