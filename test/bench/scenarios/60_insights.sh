#!/usr/bin/env bash
# 60_insights: aura.record_insight with threading (fingerprint, advisory lock,
# open-thread probe, dedupe, thread update with recurrence, insert, event).
# Insights/s when aura.insights holds 10,000 rows and when it holds 1,000,000
# (QUICK=1: 200,000): the thread lookup is an index probe, so the two rates
# should be within 1.5x.  Baseline: the same threading in PL/pgSQL
# (test/bench/insights_plpgsql.sql) on the same table.
# The small table lives in a second database of the same cluster, so the
# measurements on both sizes can alternate.  Each measurement is a batch of
# calls in one statement, rolled back so the table keeps its size (CPU, no
# commit cost).
set -euo pipefail
cd "$(dirname "$0")/../../.."
small=10000
big=1000000
n=3000
rounds=5
if [ -n "${QUICK:-}" ]; then big=200000; n=500; rounds=3; fi
entities=500

q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
small_db=${PGDATABASE}_insights_small
big_db=$PGDATABASE
dropdb --if-exists "$small_db" >&2
createdb "$small_db" >&2
cleanup() {
    dropdb --if-exists "$small_db" >&2
    q -d "$big_db" -c "ALTER TABLE aura.insights RESET (autovacuum_enabled)" \
      -c "ALTER TABLE aura.insight_threads RESET (autovacuum_enabled)" >&2 || true
}
trap cleanup EXIT
q -d "$small_db" -c 'CREATE EXTENSION aura CASCADE' >&2 2>/dev/null
for db in "$small_db" "$big_db"; do
    q -d "$db" -c "INSERT INTO aura.restaurants (id, name) VALUES (1, 'Bench') ON CONFLICT DO NOTHING" >&2
    q -d "$db" -f test/bench/insights_plpgsql.sql >&2
done
q -d "$small_db" -c "SELECT bench.grow_insights($small)" >/dev/null
q -d "$big_db" -c "SELECT bench.grow_insights($big)" >/dev/null
# the rolled-back batches leave dead rows: without this, autovacuum would
# visit the small tables (20% dead) during the measurement but not the big ones
for db in "$small_db" "$big_db"; do
    q -d "$db" -c "VACUUM ANALYZE aura.insights, aura.insight_threads" \
      -c "ALTER TABLE aura.insights SET (autovacuum_enabled = false)" \
      -c "ALTER TABLE aura.insight_threads SET (autovacuum_enabled = false)" >&2
done

# Five rounds (QUICK: three); each round measures, in a fresh session per database (after a
# warm-up), C then PL/pgSQL on the small table and then on the big one, so
# all four figures see the same machine load.  Each figure is the best of
# its rounds.  Prints "small|big c|plpgsql rate" lines.
{
    for _ in $(seq $rounds); do
        for db in big small; do
            name=$small_db; [ $db = big ] && name=$big_db
            echo "\\c $name"
            echo "BEGIN; SELECT bench.insight_batch('c', 100, $entities, 0.1) \\g /dev/null"
            echo "ROLLBACK;"
            echo "BEGIN; SELECT bench.insight_batch('plpgsql', 100, $entities, 0.1) \\g /dev/null"
            echo "ROLLBACK;"
            echo "BEGIN; SELECT '$db', 'c', bench.insight_batch('c', $n, $entities, 0.42); ROLLBACK;"
            echo "BEGIN; SELECT '$db', 'plpgsql', bench.insight_batch('plpgsql', $n, $entities, 0.42); ROLLBACK;"
        done
    done
} | psql -X -qAt -F ' ' -v ON_ERROR_STOP=1 -d "$big_db" >"${TMPDIR:-/tmp}/aura_insights_bench.$$"
best() { awk -v d="$1" -v i="$2" '$1 == d && $2 == i && $3 > b { b = $3 } END { print b }' "${TMPDIR:-/tmp}/aura_insights_bench.$$"; }
c_small=$(best small c); pl_small=$(best small plpgsql)
c_big=$(best big c); pl_big=$(best big plpgsql)
rm -f "${TMPDIR:-/tmp}/aura_insights_bench.$$"
rows_big=$(psql -X -qAt -d "$big_db" -c "SELECT count(*) FROM aura.insights")
echo "small: c=$c_small pl=$pl_small; big ($rows_big rows): c=$c_big pl=$pl_big" >&2

python3 - "$c_small" "$pl_small" "$c_big" "$pl_big" "$big" <<'PY'
import json, sys
c_small, pl_small, c_big, pl_big = map(float, sys.argv[1:5])
big = int(sys.argv[5])
label = f'{big // 1000:,}k' if big < 1000000 else f'{big // 1000000}M'
print(json.dumps({"scenario": f"insights: record_insight with threading, {label} rows vs 10k rows",
                  "unit": "insights/s", "aura": round(c_big, 1), "baseline": round(c_small, 1),
                  "baseline_name": "aura at 10k rows", "ratio": round(c_big / c_small, 3),
                  "target": "within 1.5x either way", "met": max(c_big, c_small) / min(c_big, c_small) <= 1.5}))
print(json.dumps({"scenario": "insights: record_insight with threading, 10k rows",
                  "unit": "insights/s", "aura": round(c_small, 1), "baseline": round(pl_small, 1),
                  "baseline_name": "PL/pgSQL", "target": "faster than PL/pgSQL", "met": c_small > pl_small}))
print(json.dumps({"scenario": f"insights: record_insight with threading, {label} rows",
                  "unit": "insights/s", "aura": round(c_big, 1), "baseline": round(pl_big, 1),
                  "baseline_name": "PL/pgSQL", "target": "faster than PL/pgSQL", "met": c_big > pl_big}))
PY
