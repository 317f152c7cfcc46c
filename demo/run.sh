#!/usr/bin/env bash
# demo/run.sh — `make demo`: build, private install, a throwaway cluster with
# aura preloaded, a demo database, and the demo scripts demo/NN_*.sql in order.
# KEEP=1 leaves the cluster running and prints how to reach and stop it.
set -uo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh

step() { printf '\n\033[1m== %s\033[0m  \033[2m[%ss]\033[0m\n' "$*" "$SECONDS"; }

step "building aura (strict warnings) and installing it privately"
export MAKEFLAGS="-j$(nproc) ${MAKEFLAGS:-}"   # the build is most of the demo's time
aura_build || exit 1
unset MAKEFLAGS

DEMO_DIR=$PWD/tmp_check/demo
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
PORT=$(free_port)
export PGHOST=$DEMO_DIR PGPORT=$PORT PGDATABASE=aura_demo

step "starting a throwaway cluster (port $PORT, aura in shared_preload_libraries)"
"$PG_BIN/initdb" -D "$DEMO_DIR/data" -A trust -U postgres --no-sync >"$DEMO_DIR/initdb.log" 2>&1 || {
    cat "$DEMO_DIR/initdb.log"; exit 1; }
cat >>"$DEMO_DIR/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$DEMO_DIR'
port = $PORT
shared_preload_libraries = 'aura'
aura.database = 'aura_demo'
CONF
"$PG_BIN/pg_ctl" -D "$DEMO_DIR/data" -l "$DEMO_DIR/server.log" -w start >/dev/null || {
    tail -20 "$DEMO_DIR/server.log"; exit 1; }
stop_cluster() { "$PG_BIN/pg_ctl" -D "$DEMO_DIR/data" -m fast -w stop >/dev/null 2>&1; }
[ -n "${KEEP:-}" ] || trap stop_cluster EXIT

"$PG_BIN/createdb" -U postgres aura_demo || exit 1

# loopback HTTP and SMTP sinks that record what the dispatcher delivers
# (demo/70_notifications.sql, demo/90_day.sql)
SINK_PORT=$(free_port)
/usr/bin/python3 test/sinks/http_sink.py --port "$SINK_PORT" --log "$DEMO_DIR/sink.log" >/dev/null 2>&1 &
SINK_PID=$!
SMTP_PORT=$(free_port)
: >"$DEMO_DIR/smtp.log"
/usr/bin/python3 test/sinks/smtp_sink.py --port "$SMTP_PORT" --log "$DEMO_DIR/smtp.log" >/dev/null 2>&1 &
SMTP_PID=$!
[ -n "${KEEP:-}" ] || trap 'stop_cluster; kill $SINK_PID $SMTP_PID 2>/dev/null' EXIT

# DEMO=day: only the foundation and the restaurant's day (demo/90_day.sql)
scripts=(demo/[0-9]*.sql)
[ "${DEMO:-}" = day ] && scripts=(demo/00_*.sql demo/90_day.sql)
rc=0; failed=()
for f in "${scripts[@]}"; do
    step "$(sed -n '1s/^-- *//p' "$f")"
    "$PG_BIN/psql" -U postgres -X -q -v ON_ERROR_STOP=1 -P pager=off \
        -v sink_url="http://127.0.0.1:$SINK_PORT" -v sink_log="$DEMO_DIR/sink.log" \
        -v smtp_port="$SMTP_PORT" -v smtp_log="$DEMO_DIR/smtp.log" -f "$f" || { rc=1; failed+=("$f"); }
done
[ $rc = 0 ] || printf '\n\033[1;31mFAILED: %s (the demos after it ran on regardless)\033[0m\n' "${failed[*]}"

if [ -n "${KEEP:-}" ]; then
    step "the cluster keeps running"
    as_pg="sudo -u postgres"; command -v sudo >/dev/null || as_pg="runuser -u postgres --"
    echo "explore:  $as_pg $PG_BIN/psql -h $DEMO_DIR -p $PORT -U postgres aura_demo"
    echo "stop:     $as_pg $PG_BIN/pg_ctl -D $DEMO_DIR/data stop; kill $SINK_PID $SMTP_PID"
    echo "sinks:    HTTP 127.0.0.1:$SINK_PORT (log $DEMO_DIR/sink.log), SMTP 127.0.0.1:$SMTP_PORT (log $DEMO_DIR/smtp.log)"
else
    step "done; the throwaway cluster is stopped (make demo KEEP=1 keeps it running)"
fi
exit $rc
