-- Security: API keys (create, verify, revoke, rotate, limits), audit log,
-- privilege matrix.  Restaurants 201-299.  Keys are random: outputs mask them.
CREATE EXTENSION IF NOT EXISTS aura CASCADE;

INSERT INTO aura.restaurants (id, name) VALUES (201, 'Security A'), (202, 'Security B');
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['admin', 'manager', 'staff', 'reporting'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sec_' || r) THEN
            EXECUTE format('CREATE ROLE %I IN ROLE %I', 'sec_' || r, 'aura_' || r);
        END IF;
    END LOOP;
END $$;

-- run a statement, show ok or SQLSTATE and message (keys never appear in them)
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.verify(k text, s text DEFAULT NULL, a inet DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE v record;
BEGIN
    SELECT * INTO v FROM aura.verify_api_key(k, s, a);
    RETURN format('ok restaurant %s scopes %s', v.restaurant_id, v.scopes);
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- the hashing secret is not configured in this cluster: plain SHA-256
SELECT aura._api_key_secret_status();

-- a key: shown once, recognisable, checksummed
SELECT aura.create_api_key(201, 'pos terminal', ARRAY['loyalty:*', 'settings:read']) AS k1 \gset
SELECT length(:'k1') AS length, left(:'k1', 10) AS tag, :'k1' ~ '^aura_live_[0-9A-Za-z]{48}$' AS base62,
       aura.api_key_well_formed(:'k1') AS well_formed;
SELECT aura.create_api_key(201, 'staging', ARRAY['*'], environment => 'test') AS kt \gset
SELECT left(:'kt', 10) AS tag, aura.api_key_well_formed(:'kt') AS well_formed;

-- only a hash and the lookup prefix are stored
SELECT count(*) AS rows_holding_the_key FROM aura.api_keys k
 WHERE k::text LIKE '%' || substr(:'k1', 21, 30) || '%';
SELECT length(key_hash) AS hash_bytes, hmac, lookup_prefix = substr(:'k1', 11, 10) AS prefix_stored
  FROM aura.api_keys WHERE restaurant_id = 201 AND name = 'pos terminal';

-- verification, scopes and wildcards
SELECT pg_temp.verify(:'k1');
SELECT pg_temp.verify(:'k1', 'loyalty:points:write');
SELECT pg_temp.verify(:'k1', 'settings:read');
SELECT pg_temp.verify(:'k1', 'settings:write');
SELECT pg_temp.verify(:'k1', 'loyalty');
SELECT pg_temp.verify(:'kt', 'anything:at:all');
SELECT aura.api_key_well_formed('aura_live_' || repeat('A', 48)) AS lookalike;

-- bad input: one generic error, no oracle
SELECT pg_temp.verify(NULL);
SELECT pg_temp.verify('');
SELECT pg_temp.verify(left(:'k1', 57));
SELECT pg_temp.verify(:'k1' || 'x');
SELECT pg_temp.verify(left(:'k1', 57) || CASE WHEN right(:'k1', 1) = 'a' THEN 'b' ELSE 'a' END);
SELECT pg_temp.verify('aura_prod_' || substr(:'k1', 11));
SELECT pg_temp.verify(upper(:'k1'));
SELECT pg_temp.verify('aura_live_'' OR 1=1; DROP TABLE aura.api_keys; --');
SELECT pg_temp.verify(repeat('x', 1048576));
SELECT pg_temp.verify(E'aura_live_\\x00');
-- a well-formed key that does not exist
SELECT pg_temp.verify(k.key) FROM aura._api_key_generate('live') k;
-- bad required scopes are the caller's mistake: 22023
SELECT pg_temp.verify(:'k1', 'loyalty:*');
SELECT pg_temp.verify(:'k1', 'Loyalty');
SELECT pg_temp.verify(:'k1', repeat('a', 100000));
SELECT pg_temp.verify(:'k1', '');

-- NULL everywhere else
SELECT pg_temp.verify(NULL, NULL, NULL);
SELECT pg_temp.try('SELECT aura.set_context_from_key(NULL)');
SELECT pg_temp.try('SELECT aura.set_context_from_key(NULL, NULL, NULL)');
SELECT aura.api_key_well_formed(NULL) AS null_well_formed;
SELECT pg_temp.try('SELECT aura.set_api_key_limits(NULL, 1, 1, 1)');
SELECT pg_temp.try(format('SELECT aura.rotate_api_key(%s, NULL)', id)) FROM aura.api_keys WHERE name = 'pos terminal';
SELECT pg_temp.try('SELECT aura.audit(NULL, NULL)');
SELECT pg_temp.try('SELECT aura._audit_later(NULL)');
SELECT pg_temp.try('SELECT aura._audit_later(repeat(''x'', 100))');

-- networks
SELECT aura.create_api_key(201, 'office only', ARRAY['loyalty:read'], allowed_cidrs => ARRAY['10.0.0.0/8', '2001:db8::/32']::cidr[]) AS kc \gset
SELECT pg_temp.verify(:'kc', NULL, '10.1.2.3');
SELECT pg_temp.verify(:'kc', NULL, '2001:db8::1');
SELECT pg_temp.verify(:'kc', NULL, '192.168.1.1');
SELECT pg_temp.verify(:'kc');  -- unix socket: no address, refused

-- expiry
SELECT aura.create_api_key(201, 'short lived', ARRAY['loyalty:read'], expires_at => now() + interval '1 day') AS ke \gset
SELECT pg_temp.verify(:'ke');
UPDATE aura.api_keys SET expires_at = now() - interval '1 second' WHERE name = 'short lived';
SELECT pg_temp.verify(:'ke');

-- revocation: immediate, idempotent
SELECT aura.create_api_key(202, 'to revoke', ARRAY['loyalty:read']) AS kr \gset
SELECT pg_temp.verify(:'kr');
SELECT aura.revoke_api_key(id) FROM aura.api_keys WHERE name = 'to revoke';
SELECT aura.revoke_api_key(id) FROM aura.api_keys WHERE name = 'to revoke';
SELECT pg_temp.verify(:'kr');

-- rotation: both keys work during the grace period; without grace the old one stops
SELECT aura.create_api_key(202, 'rotating', ARRAY['loyalty:read']) AS ko \gset
SELECT aura.rotate_api_key(id, '1 hour') AS kn FROM aura.api_keys WHERE name = 'rotating' AND rotated_from IS NULL \gset
SELECT pg_temp.verify(:'ko'), pg_temp.verify(:'kn');
SELECT name, status, rotated_to IS NOT NULL AS has_successor, rotated_from IS NOT NULL AS has_predecessor
  FROM aura.api_keys_view WHERE name = 'rotating' ORDER BY id;
SELECT aura.rotate_api_key(id, '0') AS kn2 FROM aura.api_keys WHERE name = 'rotating' AND rotated_to IS NULL \gset
SELECT pg_temp.verify(:'kn'), pg_temp.verify(:'kn2');
SELECT regexp_replace(pg_temp.try(format('SELECT aura.rotate_api_key(%s, %L)', id, '1 hour')), ' [0-9]+ ', ' N ')
  FROM aura.api_keys WHERE name = 'to revoke';
SELECT pg_temp.try(format('SELECT aura.rotate_api_key(%s, %L)', id, '-1 hour')) FROM aura.api_keys WHERE name = 'rotating' AND rotated_to IS NULL;
SELECT pg_temp.try(format('SELECT aura.rotate_api_key(%s, %L)', id, '31 days')) FROM aura.api_keys WHERE name = 'rotating' AND rotated_to IS NULL;
SELECT pg_temp.try('SELECT aura.rotate_api_key(NULL, ''1 hour'')');
SELECT pg_temp.try('SELECT aura.rotate_api_key(987654321, ''1 hour'')');
SELECT pg_temp.try('SELECT aura.revoke_api_key(NULL)');
SELECT pg_temp.try('SELECT aura.revoke_api_key(987654321)');

-- rate limits (GCRA): 3 per minute
SELECT aura.create_api_key(201, 'limited', ARRAY['loyalty:read'], rate_per_minute => 3) AS kl \gset
SELECT pg_temp.verify(:'kl') FROM generate_series(1, 3);
SELECT regexp_replace(pg_temp.verify(:'kl'), '[0-9.]+ seconds', 'N seconds');
SELECT pg_temp.try(format('SELECT aura.set_api_key_limits(%s, NULL, NULL, NULL)', id)) FROM aura.api_keys WHERE name = 'limited';
SELECT pg_temp.verify(:'kl');
SELECT pg_temp.try(format('SELECT aura.set_api_key_limits(%s, 0, NULL, NULL)', id)) FROM aura.api_keys WHERE name = 'limited';

-- creation: bad input, nothing written
SELECT count(*) AS keys_before FROM aura.api_keys \gset
SELECT pg_temp.try('SELECT aura.create_api_key(NULL, ''x'', ARRAY[''a''])');
SELECT pg_temp.try('SELECT aura.create_api_key(299, ''x'', ARRAY[''a''])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, NULL, ARRAY[''a''])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''  '', ARRAY[''a''])');
SELECT pg_temp.try(format('SELECT aura.create_api_key(201, %L, ARRAY[''a''])', repeat('n', 1048576)));
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', NULL)');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[]::text[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[NULL]::text[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''Loyalty'']::text[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''loyalty:*:read'']::text[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''''; DROP TABLE aura.api_keys; --'']::text[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', array_fill(''a''::text, ARRAY[33]))');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], expires_at => now() - interval ''1 day'')');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], expires_at => ''infinity'')');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], allowed_cidrs => ARRAY[NULL]::cidr[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], allowed_cidrs => ARRAY[]::cidr[])');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], environment => ''prod'')');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], environment => NULL)');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], rate_per_minute => -1)');
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''x'', ARRAY[''a''], rate_per_day => 0)');
SELECT count(*) - :keys_before AS keys_written FROM aura.api_keys;

-- the tenant context from a key, in one call
SELECT aura.set_context_from_key(:'k1', 'loyalty:read') AS restaurant, aura.current_restaurant();
BEGIN;
SELECT aura.set_context_from_key(:'kr', NULL, true);
ROLLBACK;
SELECT aura.current_restaurant() AS context_unchanged_after_failure;
BEGIN;
SELECT aura.set_context_from_key(:'kn2', NULL, true) AS local_restaurant;
SELECT aura.current_restaurant();
COMMIT;
SELECT aura.current_restaurant() AS after_local_transaction;
SELECT aura.clear_context();

-- usage is recorded without a write per call
SELECT use_count > 0 AS used, last_used_at IS NOT NULL AS last_used FROM aura.api_keys WHERE name = 'pos terminal';

-- roles: only aura_admin manages keys; denials are audited after the rollback
SET ROLE sec_manager;
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''sneaky'', ARRAY[''*''])');
SELECT aura.set_context(201);
SELECT pg_temp.try(format('SELECT aura.revoke_api_key(%s)', (SELECT min(id) FROM aura.api_keys_view)));
SELECT name, key_prefix ~ '^aura_(live|test)_[0-9A-Za-z]{10}$' AS prefix_shape, status, hash
  FROM aura.api_keys_view ORDER BY id;
SELECT pg_temp.try('SELECT key_hash FROM aura.api_keys');
SELECT pg_temp.try('SELECT * FROM aura.api_keys');
SELECT pg_temp.try('UPDATE aura.api_keys SET revoked_at = NULL');
SELECT pg_temp.try('SELECT aura.audit(''api_key.created'', ''{}'')');
SELECT pg_temp.try('SELECT aura._api_key_generate()');
SELECT pg_temp.try('SELECT aura._audit_later(''x.y'')');
SELECT aura.clear_context();
RESET ROLE;
SET ROLE sec_staff;
SELECT pg_temp.try('SELECT aura.create_api_key(201, ''sneaky'', ARRAY[''*''])');
SELECT pg_temp.try('SELECT count(*) FROM aura.api_keys_view');
SELECT pg_temp.verify(:'k1', 'loyalty:read');
RESET ROLE;
SET ROLE sec_reporting;
SELECT pg_temp.verify(:'k1', 'loyalty:read');
RESET ROLE;
SET ROLE sec_admin;
SELECT aura.create_api_key(202, 'by admin', ARRAY['loyalty:read']) IS NOT NULL AS admin_creates;
RESET ROLE;

-- failures cross aura.api_key_failure_threshold (20 a minute) once: one event, although
-- every failing call rolled back
SELECT count(*) AS failures FROM generate_series(1, 25) n
 WHERE pg_temp.verify('aura_live_guess' || n) LIKE '28000%';

-- audit: key events, denials, failure bursts; nothing holds a key
SELECT aura.audit_flush() >= 0 AS flushed;
SELECT event, restaurant_id, actor_role, details->>'function' AS function
  FROM aura.audit_log WHERE restaurant_id IN (0, 201, 202) AND event IN ('access.denied')
 ORDER BY id;
SELECT event, (details->>'failures')::int AS failures, details->>'window_seconds' AS window_seconds
  FROM aura.audit_log WHERE event = 'api_key.verify_failures';
SELECT event, count(*) FROM aura.audit_log WHERE restaurant_id IN (0, 201, 202)
 GROUP BY event ORDER BY event;
SELECT count(*) AS audit_rows_holding_a_key FROM aura.audit_log a
 WHERE a::text ~ 'aura_(live|test)_[0-9A-Za-z]{20}';
SELECT count(*) AS key_rows_holding_a_key FROM aura.api_keys a
 WHERE a::text ~ 'aura_(live|test)_[0-9A-Za-z]{20}';
-- append-only, even for the owner
SELECT pg_temp.try('UPDATE aura.audit_log SET event = ''x.y''');
SELECT pg_temp.try('DELETE FROM aura.audit_log');
SELECT pg_temp.try('TRUNCATE aura.audit_log');
SELECT pg_temp.try('SELECT aura.audit(''Bad Event'', ''{}'')');
SELECT pg_temp.try('SELECT aura.audit(''x.y'', ''[1]'')');
SELECT aura.audit('test.event', '{"ok": true}', 201) > 0 AS appended;
-- a tenant sees its own audit trail only
SET ROLE sec_manager;
SELECT aura.set_context(202);
SELECT DISTINCT restaurant_id FROM aura.audit_log;
SELECT aura.clear_context();
RESET ROLE;

-- counters
SELECT verified > 0 AS verified, failed > 0 AS failed, scope_denied > 0 AS scope_denied,
       rate_limited > 0 AS rate_limited, shared FROM aura.api_key_stats();

-- deployment check: no secret configured here
SELECT name, ok, detail FROM aura.deployment_check() WHERE name = 'api_keys';

-- privilege matrix: every object of schema aura declared, nothing to PUBLIC
SELECT * FROM aura.privilege_mismatches ORDER BY object, role;
-- the check catches a forgotten grant and an undeclared object
CREATE FUNCTION aura.undeclared_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
GRANT SELECT ON aura.api_keys_view TO aura_staff;
SELECT object, role, declared, granted, problem FROM aura.privilege_mismatches ORDER BY object, role;
REVOKE ALL ON FUNCTION aura.undeclared_fn() FROM PUBLIC;
SELECT object, role, declared, granted, problem FROM aura.privilege_mismatches ORDER BY object, role;
DROP FUNCTION aura.undeclared_fn();
REVOKE SELECT ON aura.api_keys_view FROM aura_staff;
SELECT count(*) AS mismatches FROM aura.privilege_mismatches;
