#!/usr/bin/env bash
# Builds the .deb with cargo-deb and the tarball, lists what they hold and
# checks it: binary, unit, conffile, sample policies, docs, the systemd
# maintainer scripts; the packaged binary validates the packaged config;
# `systemd-analyze verify` accepts the unit (skipped, saying so, where
# systemd-analyze is missing). Fails loudly on the first problem.
#
# Needs: cargo-deb (`cargo install cargo-deb --locked`), dpkg-deb (dpkg),
# tar, gzip. Builds in release mode; AUDITRAIL_DEB_PROFILE=dev packages a
# debug build instead (quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "check-deb: FAIL: $*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null 2>&1 || fail "\`$1\` is not installed ($2)"
}
need cargo-deb "cargo install cargo-deb --locked"
need dpkg-deb "apt-get install dpkg"
need tar "apt-get install tar"

profile=${AUDITRAIL_DEB_PROFILE:-release}
echo "== cargo deb (profile $profile)"
rm -rf target/debian
cargo deb --locked --profile "$profile" --output target/debian/ \
    || fail "cargo deb failed"
deb=$(find target/debian -maxdepth 1 -name 'auditrail_*.deb' | head -n 1)
[ -n "$deb" ] || fail "cargo deb produced no auditrail_*.deb in target/debian/"
echo "built $deb"

echo "== control"
dpkg-deb --field "$deb" Package Version Architecture Section Depends Maintainer
[ "$(dpkg-deb --field "$deb" Package)" = auditrail ] || fail "package name is not \`auditrail\`"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
dpkg-deb --field "$deb" Version | grep -q "^${version}" || fail "package version is not $version"
dpkg-deb --field "$deb" Depends | grep -q libc6 || fail "Depends lacks libc6 (\$auto)"

echo "== contents"
contents=$(dpkg-deb --contents "$deb")
echo "$contents"
for path in \
    ./usr/bin/auditrail \
    ./etc/auditrail/auditrail.toml \
    ./usr/share/auditrail/policies/k8s-website-example-audit-policy.yaml \
    ./usr/share/auditrail/policies/gce-configure-helper-master-audit-policy.yaml \
    ./usr/share/auditrail/policies/PROVENANCE.md \
    ./usr/share/doc/auditrail/README.md \
    ./usr/share/doc/auditrail/copyright; do
    echo "$contents" | awk '{print $6}' | grep -qx -- "$path" || fail "the package lacks $path"
done
echo "$contents" | awk '{print $6}' | grep -Eqx '\./(usr/)?lib/systemd/system/auditrail\.service' \
    || fail "the package lacks the systemd unit auditrail.service"
echo "$contents" | grep -E ' \./usr/bin/auditrail$' | grep -q '^-rwxr-xr-x' \
    || fail "usr/bin/auditrail is not mode 0755"

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

echo "== packaged files"
root="$control/root"
dpkg-deb --extract "$deb" "$root"
unit=$(find "$root" -path '*/systemd/system/auditrail.service' | head -n 1)
cmp "$unit" packaging/auditrail.service || fail "the packaged unit differs from packaging/auditrail.service"
cmp "$root/etc/auditrail/auditrail.toml" conf/auditrail.toml || fail "the packaged config differs from conf/auditrail.toml"
"$root/usr/bin/auditrail" --version | grep -qx "auditrail ${version}" || fail "the packaged binary is not version $version"
"$root/usr/bin/auditrail" check -c "$root/etc/auditrail/auditrail.toml" \
    || fail "the packaged binary rejects the packaged config"

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
tarball=$(packaging/tarball.sh --binary "$root/usr/bin/auditrail" --out target/dist)
listing=$(tar -tzf "$tarball")
echo "$listing"
top="auditrail-${version}"
for path in bin/auditrail etc/auditrail/auditrail.toml \
    share/auditrail/policies/k8s-website-example-audit-policy.yaml \
    share/auditrail/policies/gce-configure-helper-master-audit-policy.yaml \
    share/auditrail/systemd/auditrail.service share/doc/auditrail/README.md; do
    echo "$listing" | grep -qx "$top/$path" || fail "the tarball lacks $top/$path"
done
case "$tarball" in
    */auditrail-"${version}"-*-linux.tar.gz) ;;
    *) fail "unexpected tarball name $tarball" ;;
esac

echo "check-deb: ok ($deb, $tarball)"
