#!/usr/bin/env bash
# 60_insights: aura.record_insight with threading (fingerprint, advisory lock,
# open-thread probe, dedupe, thread update with recurrence, insert, event).
# Insights/s when aura.insights holds 10,000 rows and when it holds 1,000,000
# (QUICK=1: 200,000): the thread lookup is an index probe, so the two rates
# should be within 1.5x.  Baseline: the same threading in PL/pgSQL
# (test/bench/insights_plpgsql.sql) on the same table.
# Each measurement is a batch of calls in one statement, rolled back so the
# table keeps its size; the figure is the median of three batches (CPU, no
# commit cost).
set -euo pipefail
cd "$(dirname "$0")/../../.."
small=10000
big=1000000
n=3000
if [ -n "${QUICK:-}" ]; then big=200000; n=1500; fi
entities=500

q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
q -c "INSERT INTO aura.restaurants (id, name) VALUES (1, 'Bench') ON CONFLICT DO NOTHING" >&2
q -f test/bench/insights_plpgsql.sql >&2

# median_rate IMPL: median insights/s of three rolled-back batches (after a warm-up)
median_rate() {
    psql -X -qAt -v ON_ERROR_STOP=1 <<SQL | sort -g | sed -n 2p
BEGIN; SELECT bench.insight_batch('$1', 200, $entities, 0.1) \g /dev/null
ROLLBACK;
BEGIN; SELECT bench.insight_batch('$1', $n, $entities, 0.42); ROLLBACK;
BEGIN; SELECT bench.insight_batch('$1', $n, $entities, 0.42); ROLLBACK;
BEGIN; SELECT bench.insight_batch('$1', $n, $entities, 0.42); ROLLBACK;
SQL
}

grow() {
    q -c "SELECT bench.grow_insights($1)" >/dev/null
    q -c "VACUUM ANALYZE aura.insights, aura.insight_threads" >&2
}

grow $small
c_small=$(median_rate c)
pl_small=$(median_rate plpgsql)
grow $big
c_big=$(median_rate c)
pl_big=$(median_rate plpgsql)
rows_big=$(psql -X -qAt -c "SELECT count(*) FROM aura.insights")
echo "small: c=$c_small pl=$pl_small; big ($rows_big rows): c=$c_big pl=$pl_big" >&2

python3 - "$c_small" "$pl_small" "$c_big" "$pl_big" "$big" <<'PY'
import json, sys
c_small, pl_small, c_big, pl_big = map(float, sys.argv[1:5])
big = int(sys.argv[5])
label = f'{big // 1000:,}k' if big < 1000000 else f'{big // 1000000}M'
print(json.dumps({"scenario": f"insights: record_insight with threading, {label} rows vs 10k rows",
                  "unit": "insights/s", "aura": round(c_big, 1), "baseline": round(c_small, 1),
                  "baseline_name": "aura at 10k rows", "ratio": round(c_big / c_small, 3),
                  "target": "within 1.5x (ratio >= 0.67)", "met": c_big / c_small >= 1 / 1.5}))
print(json.dumps({"scenario": "insights: record_insight with threading, 10k rows",
                  "unit": "insights/s", "aura": round(c_small, 1), "baseline": round(pl_small, 1),
                  "baseline_name": "PL/pgSQL", "target": "faster than PL/pgSQL", "met": c_small > pl_small}))
print(json.dumps({"scenario": f"insights: record_insight with threading, {label} rows",
                  "unit": "insights/s", "aura": round(c_big, 1), "baseline": round(pl_big, 1),
                  "baseline_name": "PL/pgSQL", "target": "faster than PL/pgSQL", "met": c_big > pl_big}))
PY
