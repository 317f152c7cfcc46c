#!/usr/bin/env bash
# API key verification: aura.verify_api_key (C, hash-index probe, SHA-256 /
# HMAC-SHA-256, constant-time compare) on a table of 1,000,000 keys (QUICK:
# 100,000), one backend (= one core), against bcrypt through pgcrypto crypt()
# (cost 10, what many applications store) measured in the same run.  A second
# figure compares the time of a failed verification with a successful one
# (failures must not be cheaper or dearer: no timing oracle).
set -euo pipefail
HZ=$(getconf CLK_TCK)
N=1000000; SAMPLE=200000; BCRYPT=20; PARITY=20000
if [ -n "${QUICK:-}" ]; then N=100000; SAMPLE=50000; BCRYPT=8; PARITY=5000; fi

psql -X -q -v ON_ERROR_STOP=1 <<SQL >&2
DROP SCHEMA IF EXISTS bench_sec CASCADE;
CREATE SCHEMA bench_sec;
INSERT INTO aura.restaurants (id, name) VALUES (9001, 'bench security') ON CONFLICT DO NOTHING;
-- keys made by aura's own generator, stored as create_api_key stores them
CREATE TABLE bench_sec.keys AS
  SELECT n, (k).* FROM (SELECT n, aura._api_key_generate('live') AS k FROM generate_series(1, $N) n) g;
ALTER TABLE aura.api_keys DISABLE TRIGGER USER;
INSERT INTO aura.api_keys (restaurant_id, name, lookup_prefix, lookup, key_hash, hmac, scopes)
  SELECT 9001, 'bench ' || n, lookup_prefix, lookup, key_hash, hmac, ARRAY['loyalty:*'] FROM bench_sec.keys;
ALTER TABLE aura.api_keys ENABLE TRIGGER USER;
VACUUM ANALYZE aura.api_keys;
CREATE TABLE bench_sec.sample AS SELECT key FROM bench_sec.keys ORDER BY random() LIMIT $SAMPLE;
-- baseline: the same lookup, then bcrypt (pgcrypto crypt, cost 10)
CREATE TABLE bench_sec.bcrypt AS
  SELECT lookup_prefix, crypt(key, gen_salt('bf', 10)) AS hash, key FROM bench_sec.keys WHERE n <= $BCRYPT;
CREATE INDEX ON bench_sec.bcrypt (lookup_prefix);

-- CPU seconds this backend has used (utime + stime from /proc, clock ticks):
-- the machine is shared, so rates are per CPU-second of the one backend
CREATE FUNCTION bench_sec.cpu() RETURNS numeric LANGUAGE sql AS \$\$
    SELECT (f[12]::numeric + f[13]::numeric) / $HZ  -- fields 14, 15 of stat (1 and 2 are cut)
      FROM (SELECT string_to_array(split_part(pg_read_file('/proc/self/stat'), ') ', 2), ' ') AS f) s
\$\$;
CREATE FUNCTION bench_sec.rate(q text, OUT per_cpu_second numeric, OUT per_second numeric) LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; c0 numeric; n bigint;
BEGIN
    c0 := bench_sec.cpu();
    t0 := clock_timestamp();
    EXECUTE q INTO n;
    per_second := n / extract(epoch FROM clock_timestamp() - t0);
    per_cpu_second := n / greatest(bench_sec.cpu() - c0, 0.01);
END \$\$;
-- microseconds per call of verify_api_key for a list of keys, errors caught
CREATE FUNCTION bench_sec.us_per_call(keys text[]) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz; k text;
BEGIN
    t0 := clock_timestamp();
    FOREACH k IN ARRAY keys LOOP
        BEGIN
            PERFORM * FROM aura.verify_api_key(k);
        EXCEPTION WHEN invalid_authorization_specification THEN NULL;
        END;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / cardinality(keys);
END \$\$;
SQL

# warm up once, then best of three
psql -X -qAt -c "SELECT count(*) FROM bench_sec.sample s, aura.verify_api_key(s.key, 'loyalty:read')" >/dev/null
read -r aura aura_wall <<<"$(psql -X -qAt -F ' ' -c "SELECT round(max(per_cpu_second), 0), round(max(per_second), 0) FROM generate_series(1, 3), bench_sec.rate('SELECT count(*) FROM bench_sec.sample s, aura.verify_api_key(s.key, ''loyalty:read'')')")"
read -r bcrypt bcrypt_wall <<<"$(psql -X -qAt -F ' ' -c "SELECT round(per_cpu_second, 2), round(per_second, 2) FROM bench_sec.rate('SELECT count(*) FROM bench_sec.bcrypt b, LATERAL (SELECT 1 FROM bench_sec.bcrypt x WHERE x.lookup_prefix = substr(b.key, 11, 10) AND x.hash = crypt(b.key, x.hash)) v')")"
met=$(python3 -c "print('true' if $aura >= 100000 else 'false')")
echo "{\"scenario\": \"verify_api_key, $N keys, 1 core (per CPU-second of the backend)\", \"unit\": \"verifications/s\", \"aura\": $aura, \"baseline\": $bcrypt, \"baseline_name\": \"bcrypt cost 10 via pgcrypto crypt()\", \"target\": \">= 100,000/s\", \"met\": $met}"
echo "{\"scenario\": \"verify_api_key, $N keys, wall clock on the shared machine\", \"unit\": \"verifications/s\", \"aura\": $aura_wall, \"baseline\": $bcrypt_wall, \"baseline_name\": \"bcrypt cost 10 via pgcrypto crypt()\", \"target\": \"(informative)\", \"met\": null}"

# timing parity: valid keys vs unknown well-formed keys vs bad checksums
read -r ok unknown badsum <<<"$(psql -X -qAt -F ' ' -c "
  WITH v AS (SELECT array_agg(key) AS a FROM (SELECT key FROM bench_sec.sample LIMIT $PARITY) s),
       u AS (SELECT array_agg((aura._api_key_generate('live')).key) AS a FROM generate_series(1, $PARITY)),
       c AS (SELECT array_agg(left(key, 57) || CASE WHEN right(key, 1) = 'A' THEN 'B' ELSE 'A' END) AS a
               FROM (SELECT key FROM bench_sec.sample LIMIT $PARITY) s)
  SELECT round(bench_sec.us_per_call(v.a), 2), round(bench_sec.us_per_call(u.a), 2), round(bench_sec.us_per_call(c.a), 2)
    FROM v, u, c")"
echo "{\"scenario\": \"verify_api_key: unknown key vs valid key (no timing oracle)\", \"unit\": \"us/call\", \"aura\": $unknown, \"baseline\": $ok, \"baseline_name\": \"valid key\", \"target\": \"same order (0.5x-2x)\", \"met\": $(python3 -c "print('true' if 0.5 <= $unknown / $ok <= 2 else 'false')")}"
echo "{\"scenario\": \"verify_api_key: bad checksum vs valid key (no timing oracle)\", \"unit\": \"us/call\", \"aura\": $badsum, \"baseline\": $ok, \"baseline_name\": \"valid key\", \"target\": \"same order (0.5x-2x)\", \"met\": $(python3 -c "print('true' if 0.5 <= $badsum / $ok <= 2 else 'false')")}"

psql -X -q -c "DELETE FROM aura.api_keys WHERE restaurant_id = 9001; DROP SCHEMA bench_sec CASCADE" >&2
