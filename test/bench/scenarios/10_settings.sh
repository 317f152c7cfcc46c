#!/usr/bin/env bash
# Settings: cached aura.get_setting_int resolving through four scopes versus
# the same resolution in PL/pgSQL (test/bench/settings_plpgsql.sql), and
# aura.reveal_secret (AES-256-GCM) versus pgcrypto's pgp_sym_decrypt with its
# defaults.  Single backend, SELECT ... FROM generate_series.
set -uo pipefail
cd "$(dirname "$0")/../../.."

if [ -n "${QUICK:-}" ]; then
    N_READ=300000; N_BASE=20000; N_REVEAL=100000; N_PGP=300
else
    N_READ=3000000; N_BASE=100000; N_REVEAL=1000000; N_PGP=2000
fi

q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

# a master key for this throwaway cluster (a fixed, public benchmark key)
q -c "ALTER SYSTEM SET aura.encryption_key_command = 'echo bench1:$(printf '%064d' 7)'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1

# data: the key has values at every scope for other tenants and users, so each
# read probes user, location, restaurant and system before the system value
q >/dev/null <<'SQL'
INSERT INTO aura.restaurants (id, name) SELECT g, 'Bench ' || g FROM generate_series(1, 200) g
    ON CONFLICT DO NOTHING;
INSERT INTO aura.locations (restaurant_id, id, name)
    SELECT r, r * 100 + l, 'L' || l FROM generate_series(1, 200) r, generate_series(1, 5) l ON CONFLICT DO NOTHING;
SELECT aura.set_setting('loyalty.points_expiry_days', '400');
INSERT INTO aura.setting_values (restaurant_id, scope, scope_id, key, value)
    SELECT r, 'restaurant', r, 'loyalty.points_expiry_days', to_jsonb(300 + r % 7) FROM generate_series(2, 200) r
    ON CONFLICT DO NOTHING;
INSERT INTO aura.setting_values (restaurant_id, scope, scope_id, key, value)
    SELECT r, 'location', r * 100 + l, 'loyalty.points_expiry_days', '200'
      FROM generate_series(2, 200) r, generate_series(1, 5) l ON CONFLICT DO NOTHING;
INSERT INTO aura.setting_values (restaurant_id, scope, scope_id, key, value)
    SELECT r, 'user', u, 'loyalty.points_expiry_days', '100'
      FROM generate_series(1, 200) r, generate_series(1000, 1049) u ON CONFLICT DO NOTHING;
SELECT aura.set_setting('notifications.email.password', '"bench-smtp-password"');
ANALYZE aura.setting_values;
SQL
q -f test/bench/settings_plpgsql.sql >/dev/null

# ms TIMING_SQL: milliseconds of one statement, via psql's \timing
ms() {
    q -At -c "SELECT aura.set_context(1, 101, 7, false)" -c '\timing on' -c "$1" 2>&1 |
        sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
rate() { python3 -c "print($1 / ($2 / 1000.0))"; }

# correctness first: both resolve to the system value 400 for restaurant 1
check=$(q -At -c "SELECT aura.get_setting_int('loyalty.points_expiry_days', 1, 101, 7), bench.plpgsql_get_setting_int('loyalty.points_expiry_days', 1, 101, 7)")
echo "resolution check (aura|plpgsql): $check" >&2
[ "$check" = "400|400" ] || { echo "resolution mismatch: $check" >&2; exit 1; }

# warm once, then measure
ms "SELECT sum(aura.get_setting_int('loyalty.points_expiry_days')) FROM generate_series(1, 1000)" >/dev/null
t_aura=$(ms "SELECT sum(aura.get_setting_int('loyalty.points_expiry_days')) FROM generate_series(1, $N_READ)")
t_base=$(ms "SELECT sum(bench.plpgsql_get_setting_int('loyalty.points_expiry_days', 1, 101, 7)) FROM generate_series(1, $N_BASE)")
# the floor: the same query calling a C function that does no work, to show
# how much of a read is the executor's per-row cost rather than aura's
t_floor=$(ms "SELECT sum(aura.current_restaurant()) FROM generate_series(1, $N_READ)")
aura=$(rate "$N_READ" "$t_aura")
base=$(rate "$N_BASE" "$t_base")
floor=$(rate "$N_READ" "$t_floor")
python3 - "$aura" "$base" <<'PY'
import json, sys
a, b = float(sys.argv[1]), float(sys.argv[2])
print(json.dumps({"scenario": "settings: get_setting_int through 4 scopes (cached)", "unit": "reads/s",
                  "aura": a, "baseline": b, "baseline_name": "PL/pgSQL resolution",
                  "target": ">= 1,000,000/s and >= 20x baseline", "met": a >= 1e6 and a >= 20 * b}))
PY
python3 - "$aura" "$floor" <<'PY'
import json, sys
a, b = float(sys.argv[1]), float(sys.argv[2])
print(json.dumps({"scenario": "settings: get_setting_int vs an empty C call (executor floor)", "unit": "calls/s",
                  "aura": a, "baseline": b, "baseline_name": "aura.current_restaurant()",
                  "target": "informational", "met": None}))
PY

t_rev=$(ms "SELECT count(aura.reveal_secret('notifications.email.password')) FROM generate_series(1, $N_REVEAL)")
t_pgp=$(ms "SELECT count(pgp_sym_decrypt(c, 'bench-passphrase')) FROM (SELECT pgp_sym_encrypt('bench-smtp-password', 'bench-passphrase') AS c) s, generate_series(1, $N_PGP)")
rev=$(rate "$N_REVEAL" "$t_rev")
pgp=$(rate "$N_PGP" "$t_pgp")
python3 - "$rev" "$pgp" <<'PY'
import json, sys
a, b = float(sys.argv[1]), float(sys.argv[2])
print(json.dumps({"scenario": "settings: reveal_secret decrypt (AES-256-GCM)", "unit": "decrypts/s",
                  "aura": a, "baseline": b, "baseline_name": "pgp_sym_decrypt (pgcrypto defaults)",
                  "target": ">= 100,000/s", "met": a >= 1e5}))
PY
