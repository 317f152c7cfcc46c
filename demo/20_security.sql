-- API keys, the audit log and the privilege matrix
\set QUIET on
CREATE FUNCTION pg_temp.attempt(k text, scope text DEFAULT NULL, addr inet DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE v record;
BEGIN
    SELECT * INTO v FROM aura.verify_api_key(k, scope, addr);
    RETURN format('accepted: key %s of restaurant %s', v.key_id, v.restaurant_id);
EXCEPTION WHEN OTHERS THEN
    RETURN format('refused (%s): %s', SQLSTATE, SQLERRM);
END $$;
SELECT id AS trattoria FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset

\echo
\echo 'An admin creates a key for the point-of-sale app of Trattoria Aurora. The key is shown'
\echo 'once (here only its start); the table keeps a keyed hash and a 10-character lookup prefix:'
SELECT aura.create_api_key(:trattoria, 'POS terminals', ARRAY['loyalty:*', 'settings:read'],
                           rate_per_minute => 600) AS pos_key \gset
SELECT left(:'pos_key', 20) || '…' AS key_starts_with, length(:'pos_key') AS length,
       aura.api_key_well_formed(:'pos_key') AS checksum_ok,
       aura.api_key_well_formed(left(:'pos_key', 57) || 'x') AS typo_checksum_ok;

\echo 'The app authenticates (pass the key as a bind parameter) and gets its tenant context:'
SELECT aura.set_context_from_key(:'pos_key', 'loyalty:points:write') AS restaurant,
       (SELECT name FROM aura.restaurants WHERE id = aura.current_restaurant()) AS name;
SELECT aura.clear_context() \g /dev/null

\echo 'Scopes with wildcards, networks, and a generic refusal that reveals nothing:'
SELECT aura.create_api_key(:trattoria, 'Back office', ARRAY['settings:read'],
                           allowed_cidrs => ARRAY['10.20.0.0/16']::cidr[]) AS office_key \gset
SELECT t.what, pg_temp.attempt(t.k, t.scope, t.addr) AS outcome
  FROM (VALUES ('POS key, scope loyalty:read', :'pos_key', 'loyalty:read', NULL::inet),
               ('POS key, scope settings:write', :'pos_key', 'settings:write', NULL),
               ('office key from 10.20.3.4', :'office_key', NULL, '10.20.3.4'),
               ('office key from 203.0.113.9', :'office_key', NULL, '203.0.113.9'),
               ('a typo in the key', left(:'pos_key', 57) || 'x', NULL, NULL),
               ('SQL in the key', 'aura_live_''; DROP TABLE aura.api_keys; --', NULL, NULL)) t(what, k, scope, addr);

\echo 'Rotation with a grace period: old and new keys both work for an hour, then only the new:'
SELECT aura.rotate_api_key(id, '1 hour') AS new_key FROM aura.api_keys WHERE name = 'POS terminals' \gset
SELECT pg_temp.attempt(:'pos_key') AS old_key, pg_temp.attempt(:'new_key') AS new_key;
\echo 'Revocation is immediate:'
SELECT aura.revoke_api_key(id) FROM aura.api_keys WHERE name = 'Back office';
SELECT pg_temp.attempt(:'office_key', NULL, '10.20.3.4') AS office_key_now;

\echo 'aura.api_keys_view: no hashes; a manager sees its own restaurant only (row-level security):'
SELECT name, key_prefix || '…' AS key_prefix, scopes, status, rate_per_minute AS per_min,
       use_count > 0 AS used
  FROM aura.api_keys_view WHERE restaurant_id = :trattoria ORDER BY id;

\echo 'The audit log (append-only; denied calls and failure bursts are kept even though the'
\echo 'failing transaction rolls back):'
CREATE ROLE demo_pos IN ROLE aura_manager;
SET ROLE demo_pos;
DO $$ BEGIN PERFORM aura.create_api_key(1, 'sneaky', ARRAY['*']); EXCEPTION WHEN insufficient_privilege THEN NULL; END $$;
RESET ROLE;
SELECT count(*) FILTER (WHERE pg_temp.attempt('aura_live_guess' || n) LIKE 'refused%') AS failed_guesses
  FROM generate_series(1, 25) n;
SELECT aura.audit_flush() AS queued_events_flushed;
SELECT to_char(at, 'HH24:MI:SS') AS at, event, actor_role, restaurant_id AS restaurant,
       left(details::text, 70) AS details
  FROM aura.audit_log ORDER BY id DESC LIMIT 8;
\echo 'UPDATE aura.audit_log:'
DO $$ BEGIN UPDATE aura.audit_log SET event = 'x.y'; EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLERRM; END $$;

\echo 'The privilege matrix (effective privileges per role) for the API key functions,'
\echo 'checked against the catalog by aura.privilege_mismatches. Managers may call the key'
\echo 'management functions, which refuse (and audit) anyone but aura_admin:'
SELECT split_part(p.oid::regprocedure::text, '(', 1) AS function,
       has_function_privilege('aura_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('aura_manager', p.oid, 'EXECUTE') AS manager,
       has_function_privilege('aura_staff', p.oid, 'EXECUTE') AS staff,
       has_function_privilege('aura_reporting', p.oid, 'EXECUTE') AS reporting
  FROM pg_proc p
 WHERE p.pronamespace = 'aura'::regnamespace AND p.proname ~ 'api_key|context_from_key'
   AND p.proname !~ '^_' ORDER BY 1;
SELECT count(*) AS privilege_mismatches FROM aura.privilege_mismatches;
SELECT name, ok, detail FROM aura.deployment_check() WHERE name = 'api_keys';
\set QUIET off
