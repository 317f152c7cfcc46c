#!/usr/bin/env bash
# test/run.sh MODE — the engine behind `make test`, `make demo` and `make bench`.
#
# As root it installs the Debian packages aura needs, copies the tree to a
# directory the postgres OS user owns and runs itself there as that user:
# PostgreSQL refuses to run as root.  As any other user it works in place.
#
# Nothing is installed into the system's PostgreSQL: the build is installed
# into tmp_install/, a private copy of the PostgreSQL installation (the
# binaries find their share and lib directories relative to themselves).
set -uo pipefail

mode=${1:-test}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(id -u)" = 0 ]; then
    bash "$top/test/deps.sh" || exit 1
    work=$(mktemp -d "/tmp/aura-$mode.XXXXXX")
    (cd "$top" && tar --exclude=./.git --exclude=./tmp_install --exclude=./tmp_check \
        --exclude=./node_modules -cf - .) | tar -C "$work" -xf -
    chown -R postgres:postgres "$work"
    chmod 755 "$work"
    runuser -u postgres -- env -i HOME="$work" PATH=/usr/local/bin:/usr/bin:/bin \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" KEEP="${KEEP:-}" QUICK="${QUICK:-}" DEMO="${DEMO:-}" ONLY="${ONLY:-}" \
        PROVE_TESTS="${PROVE_TESTS:-}" TESTS="${TESTS:-}" ISO="${ISO:-}" \
        bash "$work/test/run.sh" "$mode"
    rc=$?
    # keep what a developer needs to see: results and logs of the run
    if [ "$mode" = bench ] && [ -d "$work/bench" ]; then
        mkdir -p "$top/bench" && cp -f "$work"/bench/results.* "$top/bench/" 2>/dev/null
    fi
    if [ $rc -ne 0 ] || [ -n "${KEEP:-}" ]; then
        echo "(work tree kept in $work)"
    else
        rm -rf "$work"
    fi
    exit $rc
fi

cd "$top"
. test/lib.sh

case "$mode" in
    test)  exec bash test/check.sh ;;
    demo)  exec bash demo/run.sh ;;
    bench) exec bash test/bench/run.sh ;;
    *)     echo "usage: $0 test|demo|bench" >&2; exit 2 ;;
esac
