#!/usr/bin/env bash
# test/deb-build.sh — `make deb`: build the Debian package postgresql-15-aura
# with debhelper from the committed tree (git archive HEAD) in a scratch
# directory, and put the .deb into the top directory.  Needs debhelper and the
# build dependencies of debian/control (as root it installs them).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$top/aura.control")
if [ "$(id -u)" = 0 ]; then
    bash "$top/test/deps.sh"
    dpkg-query -W -f='${Status}' debhelper 2>/dev/null | grep -q 'install ok installed' || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends debhelper >/dev/null; }
fi
work=$(mktemp -d /tmp/aura-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/aura-$version
mkdir -p "$src"
# the committed tree, as `make dist` ships it; uncommitted edits are not packaged
(cd "$top" && git archive HEAD 2>/dev/null || tar --exclude=./.git --exclude=./tmp_install \
    --exclude=./tmp_check --exclude='./*.deb' --exclude='./*.zip' -cf - .) | tar -C "$src" -xf -
(cd "$src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
    tail -40 "$work/build.log"; echo "deb build failed"; exit 1; }
cp "$work"/postgresql-15-aura_*.deb "$top/"
ls "$top"/postgresql-15-aura_*.deb
