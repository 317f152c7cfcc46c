#!/usr/bin/env bash
# 40 ledger: the order trigger and transfers.
#  1. N completed orders (200,000; QUICK=1: 20,000) inserted in one statement
#     into a table attached with aura.attach_orders, vs the same table without
#     trigger, vs the same logic as a PL/pgSQL trigger (test/bench/ledger_plpgsql.sql),
#     vs the set-based floor: the orders insert plus one INSERT ... SELECT
#     into the ledger, one into the lots and one aggregated account upsert.
#  2. aura.transfer_points under pgbench, 8 clients on 50 accounts, vs a
#     lock-ordered PL/pgSQL double-entry transfer.
set -euo pipefail
N=200000; T=15
if [ -n "${QUICK:-}" ]; then N=20000; T=5; fi
CUSTOMERS=2000
cd "$(dirname "$0")/../../.."
P() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

P -f test/bench/ledger_plpgsql.sql >/dev/null
P <<SQL >/dev/null
INSERT INTO aura.restaurants (id, name) VALUES (4001, 'bench aura'), (4002, 'bench plpgsql'), (4003, 'bench floor'), (4004, 'bench bare'), (4005, 'bench transfers');
-- tiers exist up front for every variant (aura creates them on first use)
INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, benefits)
SELECT r, t.name, t.min_points, jsonb_build_object('earn_multiplier', t.m)
  FROM (VALUES (4001), (4002), (4003)) rr(r),
       (VALUES ('Bronze', 0, 1.0), ('Silver', 2000, 1.2), ('Gold', 5000, 1.5), ('Platinum', 10000, 2.0)) t(name, min_points, m);
CREATE TABLE orders_aura (id bigint PRIMARY KEY, restaurant_id bigint, customer_id bigint, amount numeric(10,2), status text);
CREATE TABLE orders_plpgsql (LIKE orders_aura INCLUDING ALL);
CREATE TABLE orders_floor (LIKE orders_aura INCLUDING ALL);
CREATE TABLE orders_bare (LIKE orders_aura INCLUDING ALL);
SELECT aura.attach_orders('orders_aura', 'restaurant_id', 'customer_id', 'amount', 'status', 'id');
CREATE TRIGGER plpgsql_loyalty AFTER INSERT OR UPDATE OF status ON orders_plpgsql
    FOR EACH ROW EXECUTE FUNCTION bench_plpgsql_orders_trigger();
CHECKPOINT;
SQL

# timed SQL: prints seconds
timed() {
    local s e
    s=$(date +%s.%N)
    P -c "$1" >/dev/null
    e=$(date +%s.%N)
    python3 -c "print($e - $s)"
}
orders_sql() {   # table restaurant
    echo "INSERT INTO $1 SELECT g, $2, 1 + g % $CUSTOMERS, 5 + (g % 97), 'completed' FROM generate_series(1, $N) g"
}

t_bare=$(timed "$(orders_sql orders_bare 4004)")
P -c "CHECKPOINT" >/dev/null
t_aura=$(timed "$(orders_sql orders_aura 4001)")
P -c "CHECKPOINT" >/dev/null
t_plpgsql=$(timed "$(orders_sql orders_plpgsql 4002)")
P -c "CHECKPOINT" >/dev/null
t_floor=$(timed "BEGIN;
$(orders_sql orders_floor 4003);
WITH o AS (
    SELECT o.id, o.customer_id, o.amount,
           floor(o.amount)::bigint AS pts,
           sum(floor(o.amount)::bigint) OVER (PARTITION BY o.customer_id ORDER BY o.id) AS running
      FROM orders_floor o WHERE o.status = 'completed' AND o.customer_id IS NOT NULL)
INSERT INTO aura.points_transactions (restaurant_id, customer_id, kind, points, balance_before, balance_after,
    source, reference, idempotency_key, expires_at, available_at, actor_role, amount)
SELECT 4003, customer_id, 'earn', pts, running - pts, running, 'order', id::text, 'order:' || id,
       now() + interval '365 days', now(), current_user, amount FROM o;
INSERT INTO aura.points_lots (restaurant_id, customer_id, transaction_id, amount, remaining, expires_at, available_at)
SELECT restaurant_id, customer_id, id, points, points, expires_at, available_at
  FROM aura.points_transactions WHERE restaurant_id = 4003 AND points > 0;
INSERT INTO aura.loyalty_accounts (restaurant_id, customer_id, balance, lifetime_earned, lifetime_spend_amount, order_count, tier)
SELECT 4003, customer_id, sum(points), sum(points), sum(amount), count(*), 'Bronze'
  FROM aura.points_transactions WHERE restaurant_id = 4003 GROUP BY customer_id
ON CONFLICT (restaurant_id, customer_id) DO UPDATE
   SET balance = aura.loyalty_accounts.balance + EXCLUDED.balance,
       lifetime_earned = aura.loyalty_accounts.lifetime_earned + EXCLUDED.lifetime_earned,
       lifetime_spend_amount = aura.loyalty_accounts.lifetime_spend_amount + EXCLUDED.lifetime_spend_amount,
       order_count = aura.loyalty_accounts.order_count + EXCLUDED.order_count;
COMMIT;")

# sanity: every variant posted the same number of rows, and the ledgers are sound
check=$(P -At -c "SELECT string_agg(restaurant_id || ':' || n, ' ' ORDER BY restaurant_id) FROM (SELECT restaurant_id, count(*) n FROM aura.points_transactions WHERE restaurant_id IN (4001, 4002, 4003) GROUP BY 1) d")
bad=$(P -At -c "SELECT count(*) FROM aura.verify_ledger(4001)")
echo "ledger rows per variant: $check; aura ledger problems: $bad" >&2

python3 - "$N" "$t_bare" "$t_aura" "$t_plpgsql" "$t_floor" <<'PY'
import json, sys
n = int(sys.argv[1]); bare, aura, plpg, floor = map(float, sys.argv[2:])
r = lambda t: n / t
print(json.dumps({"scenario": f"order trigger: {n} completed orders, one INSERT", "unit": "orders/s",
                  "aura": r(aura), "baseline": r(plpg), "baseline_name": "same logic as PL/pgSQL trigger",
                  "target": ">= 3x baseline", "met": r(aura) >= 3 * r(plpg)}))
print(json.dumps({"scenario": f"order trigger vs set-based floor ({n} orders)", "unit": "orders/s",
                  "aura": r(aura), "baseline": r(floor), "baseline_name": "orders insert + set-based ledger/lots/accounts",
                  "target": "within 1.5x of floor (ratio >= 0.67)", "met": r(aura) * 1.5 >= r(floor)}))
print(json.dumps({"scenario": f"orders insert without any trigger ({n} orders)", "unit": "orders/s",
                  "aura": r(aura), "baseline": r(bare), "baseline_name": "bare table insert",
                  "target": "(cost of loyalty per order)", "met": None}))
PY

# transfers: 8 clients, 50 accounts
P <<SQL >/dev/null
SELECT aura.earn_points(4005, c, 1000000000) FROM generate_series(1, 50) c;
INSERT INTO bench_accounts SELECT c, 1000000000 FROM generate_series(1, 50) c;
SQL
B=$(mktemp -d)
cat > "$B/aura.sql" <<'S'
\set a random(1, 50)
\set b (:a % 50) + 1
SELECT aura.transfer_points(4005, :a, :b, 1);
S
cat > "$B/plpgsql.sql" <<'S'
\set a random(1, 50)
\set b (:a % 50) + 1
SELECT bench_plpgsql_transfer(:a, :b, 1);
S
tps() { pgbench -n -c 8 -j 2 -T "$T" -f "$1" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1; }
tps_aura=$(tps "$B/aura.sql")
tps_plpgsql=$(tps "$B/plpgsql.sql")
rm -rf "$B"
bad=$(P -At -c "SELECT count(*) FROM aura.verify_ledger(4005)")
echo "transfers: aura ledger problems after pgbench: $bad" >&2
python3 - "$tps_aura" "$tps_plpgsql" <<'PY'
import json, sys
a, b = float(sys.argv[1] or 0), float(sys.argv[2] or 0)
print(json.dumps({"scenario": "aura.transfer_points, pgbench 8 clients, 50 accounts", "unit": "transfers/s",
                  "aura": a, "baseline": b, "baseline_name": "lock-ordered PL/pgSQL double entry",
                  "target": "(reported)", "met": None}))
PY
