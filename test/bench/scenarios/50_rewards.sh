#!/usr/bin/env bash
# 50_rewards: validate + redeem pairs of distinct reward codes under pgbench,
# 4 clients: aura.validate_reward then aura.redeem_reward for one code per
# transaction, 100,000 codes (QUICK=1: 10,000).  Baseline: the same pair
# written in PL/pgSQL doing the same work (test/bench/rewards_plpgsql.sql: the
# same checks, rows written and answers) on its own 100,000 codes of the same
# tables.  Redemptions/s = pgbench tps (one pair per transaction).
# Both runs use synchronous_commit = off: the figure is the work of the
# functions, not the WAL flush of a shared disk (which both pay alike).
# Sessions run in restaurant 1's context, as a point of sale does.
set -euo pipefail
cd "$(dirname "$0")/../../.."
n=100000
[ -n "${QUICK:-}" ] && n=10000
clients=4
per_client=$(( n / clients ))

q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
q -c "INSERT INTO aura.restaurants (id, name) VALUES (1, 'Bench') ON CONFLICT DO NOTHING" >&2
q -f test/bench/rewards_plpgsql.sql >&2
q -c "INSERT INTO aura.reward_templates (restaurant_id, key, type, title, percentage, min_order_amount, max_discount_amount)
      VALUES (1, 'bench', 'percentage_discount', 'Bench 10%', 10, 15, 10) ON CONFLICT DO NOTHING" >&2
q -c "TRUNCATE bench.codes" -c "SELECT setval('bench.next_aura', 1, false), setval('bench.next_plpgsql', 1, false)" >/dev/null
q -c "SELECT bench.make_codes('aura', $n)" -c "SELECT bench.make_codes('plpgsql', $n)" >/dev/null
q -c "VACUUM ANALYZE aura.rewards, aura.reward_redemptions, bench.codes" >&2

dir=${TMPDIR:-/tmp}/aura_rewards_bench.$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
cat >"$dir/aura.sql" <<'SQL'
SELECT code, customer_id AS cust FROM bench.codes WHERE path = 'aura' AND i = (SELECT nextval('bench.next_aura')) \gset
SELECT aura.validate_reward(:code, 42.42, :cust);
SELECT aura.redeem_reward(:code, 'bench-' || :cust, 42.42, :cust);
SQL
cat >"$dir/plpgsql.sql" <<'SQL'
SELECT code, customer_id AS cust FROM bench.codes WHERE path = 'plpgsql' AND i = (SELECT nextval('bench.next_plpgsql')) \gset
SELECT bench.validate_plpgsql(:code, 42.42, :cust);
SELECT bench.redeem_plpgsql(:code, 'bench-' || :cust, 42.42, :cust);
SQL

run() {
    PGOPTIONS='-c synchronous_commit=off -c aura.restaurant_id=1' pgbench -n -M prepared -c $clients -j 2 -t "$per_client" -f "$dir/$1.sql" 2>&1 | tee "$dir/$1.log" >&2
    sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$dir/$1.log"
}
tps_aura=$(run aura)
tps_pl=$(run plpgsql)
# every code was redeemed exactly once by its path
q -At -c "SELECT count(*), count(DISTINCT reward_id) FROM aura.reward_redemptions WHERE restaurant_id = 1" >&2

python3 - "$tps_aura" "$tps_pl" "$n" <<'PY'
import json, sys
a, b, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(json.dumps({"scenario": f"rewards: validate + redeem pairs, 4 clients, {n:,} distinct codes",
                  "unit": "redemptions/s", "aura": round(a, 1), "baseline": round(b, 1),
                  "baseline_name": "PL/pgSQL doing the same work (test/bench/rewards_plpgsql.sql)",
                  "ratio": round(a / b, 3), "target": ">= 1.0x baseline", "met": a >= b}))
PY
