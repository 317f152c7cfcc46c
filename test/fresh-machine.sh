#!/usr/bin/env bash
# test/fresh-machine.sh — prove the README's two commands on a machine that has
# only Debian 12's base system: debootstrap a minimal bookworm into a chroot,
# clone this repository into it and run `make test` and `make demo` there as
# root.  Needs root, debootstrap (installed if missing) and the Debian archive.
# Usage: bash test/fresh-machine.sh [CHROOT_DIR]   (default /srv/aura-fresh)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/srv/aura-fresh}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq; apt-get install -y -qq debootstrap >/dev/null; }
if [ ! -x "$root/bin/bash" ]; then
    debootstrap --variant=minbase --include=make,git,ca-certificates bookworm "$root" \
        http://deb.debian.org/debian >/dev/null
fi
cp /etc/resolv.conf "$root/etc/"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
trap 'umount "$root/dev" "$root/proc" 2>/dev/null || true' EXIT
rm -rf "$root/root/aura"
git clone -q "$top" "$root/root/aura"
chroot "$root" /bin/bash -c 'cd /root/aura && make test && make demo'
