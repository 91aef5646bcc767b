#!/usr/bin/env bash
# Builds the .deb with cargo-deb and the tarball, lists what they hold and
# checks it: binary (stripped, where the unit runs it), unit, conffile
# (0640, made root:auditrail by postinst, which also creates the service
# user), sample policies, docs, the systemd maintainer scripts; the packaged
# binary validates the packaged config; `systemd-analyze verify` accepts the
# unit (skipped, saying so, where systemd-analyze is missing); the install
# docs name the package file cargo-deb really produces and the path the unit
# runs. Fails loudly on the first problem.
#
# Needs: cargo-deb (`cargo install cargo-deb --locked`), dpkg-deb (dpkg),
# readelf and strip (binutils), tar, gzip. Builds the `dist` profile (release,
# stripped); AUDITRAIL_DEB_PROFILE=dev packages a debug build instead (quick
# local runs; cargo-deb strips it).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check-deb: FAIL: $*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null 2>&1 || fail "\`$1\` is not installed ($2)"
}
# has PATTERN...: grep's verdict on standard input, read to its end. (`grep -q`
# stops at the first match, and under pipefail the writer's SIGPIPE would
# then fail a pipeline that matched.)
has() {
    grep "$@" >/dev/null
}
need cargo-deb "cargo install cargo-deb --locked"
need dpkg-deb "apt-get install dpkg"
need tar "apt-get install tar"
need readelf "apt-get install binutils"
need strip "apt-get install binutils"

# not_stripped FILE: succeeds (and names them) when FILE still has a symbol
# table or debug sections.
not_stripped() {
    readelf -S --wide "$1" | grep -Eo '\.(symtab|debug_[a-z_]+)' | sort -u | tr '\n' ' ' | grep .
}

profile=${AUDITRAIL_DEB_PROFILE:-dist}
echo "== cargo deb (profile $profile)"
rm -rf target/debian
# The dist profile is stripped by cargo; --strip covers an override.
cargo deb --locked --profile "$profile" --strip --output target/debian/ \
    || fail "cargo deb failed"
deb=$(find target/debian -maxdepth 1 -name 'auditrail_*.deb' | head -n 1)
[ -n "$deb" ] || fail "cargo deb produced no auditrail_*.deb in target/debian/"
echo "built $deb"
arch=$(dpkg-deb --field "$deb" Architecture)

echo "== control"
dpkg-deb --field "$deb" Package Version Architecture Section Depends Maintainer
[ "$(dpkg-deb --field "$deb" Package)" = auditrail ] || fail "package name is not \`auditrail\`"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
dpkg-deb --field "$deb" Version | has "^${version}" || fail "package version is not $version"
dpkg-deb --field "$deb" Depends | has libc6 || fail "Depends lacks libc6 (\$auto)"
deb_name="auditrail_${version}-1_${arch}.deb"
[ "$(basename "$deb")" = "$deb_name" ] \
    || fail "cargo deb produced $(basename "$deb"), the docs name auditrail_<version>-1_<arch>.deb"

echo "== contents"
contents=$(dpkg-deb --contents "$deb")
echo "$contents"
for path in \
    ./usr/bin/auditrail \
    ./etc/auditrail/auditrail.toml \
    ./usr/share/auditrail/policies/k8s-website-example-audit-policy.yaml \
    ./usr/share/auditrail/policies/gce-configure-helper-master-audit-policy.yaml \
    ./usr/share/auditrail/policies/PROVENANCE.md \
    ./usr/lib/sysusers.d/auditrail.conf \
    ./usr/share/doc/auditrail/README.md \
    ./usr/share/doc/auditrail/copyright; do
    echo "$contents" | awk '{print $6}' | has -x -- "$path" || fail "the package lacks $path"
done
echo "$contents" | awk '{print $6}' | has -Ex '\./(usr/)?lib/systemd/system/auditrail\.service' \
    || fail "the package lacks the systemd unit auditrail.service"
echo "$contents" | grep -E ' \./usr/bin/auditrail$' | has '^-rwxr-xr-x' \
    || fail "usr/bin/auditrail is not mode 0755"
# The config may hold secrets: unpacked 0640 root:root, then postinst makes
# it root:auditrail (checked below).
echo "$contents" | grep -E ' \./etc/auditrail/auditrail\.toml$' | has -E '^-rw-r----- (root/root|0/0) ' \
    || fail "etc/auditrail/auditrail.toml is not packaged 0640 root/root"

echo "== conffiles and maintainer scripts"
control=$(mktemp -d)
trap 'rm -rf "$control"' EXIT
dpkg-deb --control "$deb" "$control/DEBIAN"
cat "$control/DEBIAN/conffiles"
grep -qx /etc/auditrail/auditrail.toml "$control/DEBIAN/conffiles" \
    || fail "/etc/auditrail/auditrail.toml is not a conffile (an upgrade would overwrite edits)"
for script in postinst prerm postrm; do
    [ -f "$control/DEBIAN/$script" ] || fail "no $script (maintainer-scripts or systemd-units missing?)"
done
grep -q 'deb-systemd-helper' "$control/DEBIAN/postinst" || fail "postinst does not register the unit"
grep -q 'auditrail.service' "$control/DEBIAN/postinst" || fail "postinst does not name auditrail.service"
grep -q 'deb-systemd-invoke stop' "$control/DEBIAN/prerm" || fail "prerm does not stop the service"
grep -q 'purge' "$control/DEBIAN/postrm" || fail "postrm does not handle purge"
[ "$(grep -c '#DEBHELPER#' packaging/debian/postinst)" = 1 ] \
    || fail "packaging/debian/postinst must name #DEBHELPER# exactly once (cargo-deb replaces every occurrence)"
sh -n "$control/DEBIAN/postinst" || fail "postinst is not valid sh"
grep -q '#DEBHELPER#' "$control/DEBIAN/postinst" && fail "postinst still holds #DEBHELPER#"
grep -q 'systemd-sysusers auditrail.conf' "$control/DEBIAN/postinst" \
    || fail "postinst does not create the service user"
grep -q 'chown root:auditrail "\$config"' "$control/DEBIAN/postinst" \
    && grep -q 'chmod 0640 "\$config"' "$control/DEBIAN/postinst" \
    && grep -qx 'config=/etc/auditrail/auditrail.toml' <(sed 's/^ *//' "$control/DEBIAN/postinst") \
    || fail "postinst does not make the config 0640 root:auditrail"

# Run the packaged postinst as dpkg would on an upgrade, with stand-ins that
# log the commands it calls, on a copy of the config: the user comes first,
# then the config's owner and mode, all before any restart.
stubs="$control/stubs"
calls="$control/postinst.calls"
mkdir -p "$stubs"
for cmd in systemd-sysusers getent useradd chown chmod deb-systemd-helper deb-systemd-invoke systemctl; do
    printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$cmd" "$calls" >"$stubs/$cmd"
done
printf '#!/bin/sh\nexit 1\n' >"$stubs/dpkg-statoverride" # no override
chmod +x "$stubs"/*
config_copy="$control/auditrail.toml"
: >"$config_copy"
sed "s#/etc/auditrail/auditrail.toml#$config_copy#g" "$control/DEBIAN/postinst" >"$control/postinst.run"
PATH="$stubs" /bin/sh "$control/postinst.run" configure 0.0.1 >/dev/null 2>&1 \
    || fail "postinst configure failed (run with logging stand-ins)"
cat "$calls"
[ "$(head -n 1 "$calls")" = "systemd-sysusers auditrail.conf" ] || fail "postinst does not create the user first"
line_of() { grep -nxF -- "$1" "$calls" | head -n 1 | cut -d: -f1 || true; }
chown_at=$(line_of "chown root:auditrail $config_copy")
chmod_at=$(line_of "chmod 0640 $config_copy")
[ -n "$chown_at" ] && [ -n "$chmod_at" ] || fail "postinst did not chown and chmod the config"
# (No restart here unless /run/systemd/system exists; enabling always runs.)
restart_at=$(grep -n '^deb-systemd-invoke' "$calls" | head -n 1 | cut -d: -f1 || true)
enable_at=$(grep -n '^deb-systemd-helper' "$calls" | head -n 1 | cut -d: -f1 || true)
[ -n "$enable_at" ] || fail "postinst does not enable the unit"
for at in $restart_at $enable_at; do
    [ "$chown_at" -lt "$at" ] && [ "$chmod_at" -lt "$at" ] \
        || fail "postinst touches the service before the config has its owner and mode"
done

echo "== packaged files"
root="$control/root"
dpkg-deb --extract "$deb" "$root"
unit=$(find "$root" -path '*/systemd/system/auditrail.service' | head -n 1)
cmp "$unit" packaging/auditrail.service || fail "the packaged unit differs from packaging/auditrail.service"
# Every command of the unit runs the binary where the package puts it, as the
# user the package creates.
grep -E '^Exec(StartPre|Start|Reload)=' "$unit" | grep -v '=/bin/kill ' | has -v '=/usr/bin/auditrail ' \
    && fail "a command of the unit does not run /usr/bin/auditrail"
grep -q '^ExecStart=/usr/bin/auditrail run ' "$unit" || fail "the unit's ExecStart does not run /usr/bin/auditrail"
grep -qx 'User=auditrail' "$unit" && grep -qx 'Group=auditrail' "$unit" \
    || fail "the unit does not run as user and group auditrail"
grep -Eq '^u auditrail ' "$root/usr/lib/sysusers.d/auditrail.conf" \
    || fail "usr/lib/sysusers.d/auditrail.conf does not declare the user auditrail"
if reason=$(not_stripped "$root/usr/bin/auditrail"); then
    fail "usr/bin/auditrail is not stripped (it has: $reason)"
fi
echo "usr/bin/auditrail is stripped ($(stat -c %s "$root/usr/bin/auditrail") bytes)"
cmp "$root/etc/auditrail/auditrail.toml" conf/auditrail.toml || fail "the packaged config differs from conf/auditrail.toml"
"$root/usr/bin/auditrail" --version | has -x "auditrail ${version}" || fail "the packaged binary is not version $version"
"$root/usr/bin/auditrail" check -c "$root/etc/auditrail/auditrail.toml" \
    || fail "the packaged binary rejects the packaged config"

for directive in "ProcSubset=pid" "SystemCallFilter=~@privileged @resources"; do
    has -Fx "$directive" <"$unit" || fail "the unit lacks \`$directive\`"
done

echo "== systemd-analyze verify"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify insists that ExecStart's binary exists: point it at the packaged one.
    sed "s#/usr/bin/auditrail#$root/usr/bin/auditrail#g" "$unit" >"$control/auditrail.service"
    systemd-analyze verify "$control/auditrail.service" || fail "systemd-analyze verify rejects the unit"
    echo "unit verified"
else
    echo "SKIP: systemd-analyze is not installed here (apt-get install systemd); the unit was not verified"
fi

echo "== tarball"
tarball=$(packaging/tarball.sh --binary "$root/usr/bin/auditrail" --out target/tarball)
listing=$(tar -tzf "$tarball")
echo "$listing"
top="auditrail-${version}"
for path in bin/auditrail etc/auditrail/auditrail.toml \
    share/auditrail/policies/k8s-website-example-audit-policy.yaml \
    share/auditrail/policies/gce-configure-helper-master-audit-policy.yaml \
    share/auditrail/systemd/auditrail.service share/auditrail/sysusers/auditrail.conf \
    share/doc/auditrail/README.md; do
    echo "$listing" | has -x "$top/$path" || fail "the tarball lacks $top/$path"
done
tar -tvzf "$tarball" "$top/etc/auditrail/auditrail.toml" | has '^-rw-r----- 0/0 ' \
    || fail "the tarball's config is not 0640"
unpacked="$control/tarball"
mkdir -p "$unpacked"
tar -xzf "$tarball" -C "$unpacked"
if reason=$(not_stripped "$unpacked/$top/bin/auditrail"); then
    fail "the tarball's bin/auditrail is not stripped (it has: $reason)"
fi
cmp "$unpacked/$top/share/auditrail/systemd/auditrail.service" packaging/auditrail.service \
    || fail "the tarball's unit differs from packaging/auditrail.service"

echo "== install docs"
# One story: the unit runs /usr/bin/auditrail, and the docs install it there
# and name the package file cargo-deb produces.
for doc in README.md docs/install.md; do
    grep -nE 'install .*/usr/local/bin' "$doc" \
        && fail "$doc installs to /usr/local/bin; the unit runs /usr/bin/auditrail"
    grep -q 'install -m 0755 .*/usr/bin/auditrail' "$doc" \
        || fail "$doc does not install the binary as /usr/bin/auditrail"
    grep -q 'auditrail_<version>-1_amd64\.deb' "$doc" \
        || fail "$doc does not name the package auditrail_<version>-1_amd64.deb"
    # Commands may spell the version out or glob it; the rest of the name is fixed.
    grep -Eo 'auditrail_[^ `/]*\.deb' "$doc" | grep -Evx 'auditrail_(<version>|[0-9][0-9.]*|\*)-1_amd64\.deb' \
        && fail "$doc names the package otherwise than auditrail_<version>-1_amd64.deb"
    grep -q 'install -m 0640 -o root -g auditrail' "$doc" \
        || fail "$doc does not install the config 0640 root:auditrail"
done
echo "README.md and docs/install.md agree with the packages"
case "$tarball" in
    */auditrail-"${version}"-*-linux.tar.gz) ;;
    *) fail "unexpected tarball name $tarball" ;;
esac

echo "check-deb: ok ($deb, $tarball)"
