#!/usr/bin/env bash
# test/deb-install.sh — as root on Debian 12: build the Debian package
# (`make deb`), install it with dpkg -i beside postgresql-15, and check from
# the installed files alone that a fresh cluster preloads aura and that
# CREATE EXTENSION aura works.  Removes the package again at the end (KEEP=1
# keeps it installed).  Not part of `make test`: it changes the system.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root (dpkg -i)"; exit 2; }
bin=/usr/lib/postgresql/15/bin
fail=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fail=1; fi; }

bash "$top/test/deb-build.sh" >/dev/null
deb=$(ls "$top"/postgresql-15-aura_*.deb | tail -1)
echo "== dpkg -i $(basename "$deb")"
dpkg -i "$deb" >/dev/null
cleanup() {
    [ -n "${work:-}" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "${work:-/nonexistent}"
    [ -n "${KEEP:-}" ] || dpkg -r postgresql-15-aura >/dev/null
}
trap cleanup EXIT
check "package installed" "dpkg-query -W -f='\${Status}' postgresql-15-aura | grep -q 'install ok installed'"
check "library in the PostgreSQL 15 lib directory" "[ -f \$($bin/pg_config --pkglibdir)/aura.so ]"
check "control file in the extension directory" "[ -f \$($bin/pg_config --sharedir)/extension/aura.control ]"
check "install and upgrade scripts installed" "[ -f \$($bin/pg_config --sharedir)/extension/aura--0.1.sql ] && ls \$($bin/pg_config --sharedir)/extension/aura--0.1--*.sql >/dev/null"

work=$(mktemp -d /tmp/aura-debtest.XXXXXX)
chown postgres: "$work"
port=$(( 20000 + RANDOM % 30000 ))
runuser -u postgres -- "$bin/initdb" -D "$work/data" -A trust >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'aura'
aura.database = 'postgres'
CONF
runuser -u postgres -- "$bin/pg_ctl" -D "$work/data" -l "$work/log" -w start >/dev/null
psql() { runuser -u postgres -- "$bin/psql" -X -At -h "$work" -p "$port" -d postgres -v ON_ERROR_STOP=1 "$@"; }
check "CREATE EXTENSION aura CASCADE" "psql -c 'CREATE EXTENSION aura CASCADE' >/dev/null"
check "extension version is the default version" \
    "[ \"\$(psql -c \"SELECT extversion = default_version FROM pg_extension JOIN pg_available_extensions ON name = extname WHERE extname = 'aura'\")\" = t ]"
check "library preloaded and versions agree" \
    "[ \"\$(psql -c \"SELECT ok FROM aura.deployment_check() WHERE name = 'extension_version'\")\" = t ]"
check "the dispatcher worker runs" \
    "sleep 2; [ -n \"\$(psql -c 'SELECT pid FROM aura.worker_status()')\" ]"
check "a function of the library answers" \
    "[ \"\$(psql -c \"SELECT aura.flag_bucket('AB12A', '122')\")\" = 23 ]"
check "update from 0.1 works from the installed scripts" \
    "psql -c 'CREATE DATABASE upg' >/dev/null && runuser -u postgres -- $bin/psql -X -At -h $work -p $port -d upg -v ON_ERROR_STOP=1 -c \"CREATE EXTENSION aura VERSION '0.1' CASCADE; ALTER EXTENSION aura UPDATE\" >/dev/null"
[ $fail = 0 ] && echo "deb-install: all checks passed" || echo "deb-install: FAILED"
exit $fail
