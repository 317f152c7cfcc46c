#!/usr/bin/env bash
# test/matrix_draft.sh — developer tool: build, install privately, create the
# extension in a throwaway cluster and print draft aura.privilege_matrix rows
# for every object that is granted but not declared yet.  Review the rows (they
# describe what IS granted; make sure that is what SHOULD be) and paste them
# at the end of your module's sql/0.2 part.
set -uo pipefail
if [ "$(id -u)" = 0 ]; then
    work=$(mktemp -d /tmp/aura-matrix.XXXXXX)
    top=$(cd "$(dirname "$0")/.." && pwd)
    (cd "$top" && tar --exclude=./.git --exclude=./tmp_install --exclude=./tmp_check -cf - .) | tar -C "$work" -xf -
    chown -R postgres:postgres "$work"
    runuser -u postgres -- env -i PATH=/usr/bin:/bin bash "$work/test/matrix_draft.sh"
    rc=$?; rm -rf "$work"; exit $rc
fi
cd "$(dirname "$0")/.."
. test/lib.sh
aura_build >/dev/null || exit 1
D=$PWD/tmp_check/matrix; rm -rf "$D"; mkdir -p "$D"
"$PG_BIN/initdb" -D "$D/data" -A trust -U postgres --no-sync >/dev/null 2>&1
PORT=$(free_port)
"$PG_BIN/pg_ctl" -D "$D/data" -o "-k $D -p $PORT -c listen_addresses=''" -l "$D/log" -w start >/dev/null
trap '"$PG_BIN/pg_ctl" -D "$D/data" -m immediate stop >/dev/null 2>&1' EXIT
"$PG_BIN/psql" -h "$D" -p "$PORT" -U postgres -d postgres -X -q -At <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION aura CASCADE;
SELECT format('    (%L, %L, %L, %L),', object, kind, coalesce(role, '-'), coalesce(granted, ''))
  FROM aura.privilege_mismatches
 WHERE problem = 'missing from the matrix'
 ORDER BY object, role;
SQL
