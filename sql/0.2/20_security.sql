-- aura 0.2, part 20: security — audit log, API keys, privilege matrix.
-- Reference: docs/security.md.

------------------------------------------------------------------------------
-- Caller identity inside SECURITY DEFINER functions
------------------------------------------------------------------------------
CREATE FUNCTION aura._caller() RETURNS name
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_caller';
COMMENT ON FUNCTION aura._caller() IS 'Role acting for the session (login or SET ROLE); unlike current_user it is not changed by SECURITY DEFINER.';

CREATE FUNCTION aura._caller_is_admin() RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_is_admin';
COMMENT ON FUNCTION aura._caller_is_admin() IS 'Same as aura.is_admin() (both ask about the calling role, also inside SECURITY DEFINER functions); kept as the name the module parts call.';

------------------------------------------------------------------------------
-- Audit log (append-only)
------------------------------------------------------------------------------
CREATE TABLE aura.audit_log (
    restaurant_id bigint NOT NULL DEFAULT 0,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    event       text NOT NULL CHECK (event ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' AND length(event) < 64),
    actor_role  text NOT NULL DEFAULT aura._caller(),
    actor_user  bigint DEFAULT aura.current_user_id(),
    client_addr inet DEFAULT inet_client_addr(),
    details     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.audit_log IS 'Security events (API keys created, revoked, rotated; verification failures over the threshold; denied calls; secrets revealed). Append-only. restaurant_id 0: not tied to a restaurant (visible to aura_admin only).';
SELECT aura._register_tenant_table('aura.audit_log');

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON aura.audit_log
    FOR EACH ROW EXECUTE FUNCTION aura._append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON aura.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION aura._append_only();

CREATE FUNCTION aura._audit_later(event text, details jsonb DEFAULT NULL, restaurant_id bigint DEFAULT 0)
    RETURNS void
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_audit_later';
COMMENT ON FUNCTION aura._audit_later(text, jsonb, bigint) IS 'Queues an audit event that survives the ERROR raised next (denied calls); appended to aura.audit_log by the next writing transaction of aura''s security code or aura.audit_flush().';

CREATE FUNCTION aura.audit_flush() RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_audit_flush';
COMMENT ON FUNCTION aura.audit_flush() IS 'Appends queued audit events to aura.audit_log now; returns how many were queued.';

CREATE FUNCTION aura._audit_pending() RETURNS integer
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_audit_pending';
COMMENT ON FUNCTION aura._audit_pending() IS 'Number of audit events waiting in the queue.';

CREATE FUNCTION aura.audit(event text, details jsonb DEFAULT '{}', restaurant_id bigint DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    new_id bigint;
BEGIN
    PERFORM aura.audit_flush();
    INSERT INTO aura.audit_log (restaurant_id, event, details)
    VALUES (coalesce(audit.restaurant_id, aura.current_restaurant(), 0), event, coalesce(details, '{}'))
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;
COMMENT ON FUNCTION aura.audit(text, jsonb, bigint) IS 'Internal: appends one event to aura.audit_log (in the caller''s transaction). Called by aura''s SECURITY DEFINER functions; not granted to any role.';

------------------------------------------------------------------------------
-- API keys
------------------------------------------------------------------------------
CREATE FUNCTION aura._valid_scope(scope text, allow_wildcard boolean DEFAULT true) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT scope IS NOT NULL AND length(scope) <= 64 AND (
           (allow_wildcard AND scope = '*')
        OR scope ~ CASE WHEN allow_wildcard THEN '^[a-z0-9_]+(:[a-z0-9_]+)*(:\*)?$'
                        ELSE '^[a-z0-9_]+(:[a-z0-9_]+)*$' END)
$$;
COMMENT ON FUNCTION aura._valid_scope(text, boolean) IS 'Scope syntax: lower-case words separated by ":", optionally ending in ":*"; "*" alone is every scope.';

CREATE TABLE aura.api_keys (
    restaurant_id   bigint NOT NULL REFERENCES aura.restaurants (id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    environment     text NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
    lookup_prefix   text NOT NULL CHECK (lookup_prefix ~ '^[0-9A-Za-z]{10}$'),
    lookup          bigint NOT NULL CHECK (lookup >= 0),
    key_hash        bytea NOT NULL CHECK (length(key_hash) = 32),
    hmac            boolean NOT NULL,
    scopes          text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 32),
    allowed_cidrs   cidr[] CHECK (cardinality(allowed_cidrs) BETWEEN 1 AND 64),
    expires_at      timestamptz,
    rate_per_minute integer CHECK (rate_per_minute > 0),
    rate_per_hour   integer CHECK (rate_per_hour > 0),
    rate_per_day    integer CHECK (rate_per_day > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL DEFAULT aura._caller(),
    revoked_at      timestamptz,
    rotated_from    bigint,
    rotated_to      bigint,
    last_used_at    timestamptz,
    use_count       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (restaurant_id, id)
);
-- verify_api_key probes this index directly: lookup is the lookup prefix read
-- as a base62 number (not unique: the prefix is random, a collision only means
-- two rows to compare).
CREATE INDEX api_keys_lookup_idx ON aura.api_keys USING hash (lookup);
CREATE INDEX api_keys_id_idx ON aura.api_keys (id);
COMMENT ON TABLE aura.api_keys IS 'API keys of restaurants: only a keyed hash and a lookup prefix of each key are stored. Read it through aura.api_keys_view.';
SELECT aura._register_tenant_table('aura.api_keys');

CREATE FUNCTION aura._api_key_generate(environment text DEFAULT 'live',
        OUT key text, OUT lookup_prefix text, OUT lookup bigint, OUT key_hash bytea, OUT hmac boolean)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_api_key_generate';
COMMENT ON FUNCTION aura._api_key_generate(text) IS 'Internal: a new random key with its lookup prefix and keyed hash.';

CREATE FUNCTION aura.verify_api_key(key text, required_scope text DEFAULT NULL, client_addr inet DEFAULT NULL)
    RETURNS TABLE (key_id bigint, restaurant_id bigint, scopes text[])
    LANGUAGE c VOLATILE ROWS 1
    AS 'MODULE_PATHNAME', 'aura_verify_api_key';
COMMENT ON FUNCTION aura.verify_api_key(text, text, inet) IS 'Authenticates an API key (pass it as a bind parameter): one row (key_id, restaurant_id, scopes), or SQLSTATE 28000 invalid API key / 42501 scope not granted / 53400 rate limit exceeded.';

CREATE FUNCTION aura.api_key_well_formed(key text) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_api_key_well_formed';
COMMENT ON FUNCTION aura.api_key_well_formed(text) IS 'Offline check of an API key''s format and CRC-32 checksum (what secret scanners do); says nothing about whether it exists.';

CREATE FUNCTION aura._api_key_secret_status() RETURNS text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_api_key_secret_status';
COMMENT ON FUNCTION aura._api_key_secret_status() IS 'hmac (hashing secret loaded), none (plain SHA-256) or broken: reason.';

CREATE FUNCTION aura.api_key_stats(OUT verified bigint, OUT failed bigint, OUT scope_denied bigint,
                                   OUT rate_limited bigint, OUT shared boolean)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_api_key_stats';
COMMENT ON FUNCTION aura.api_key_stats() IS 'API key verification counters since server start (shared = true, aura preloaded) or since this backend started.';

-- Internal: admin check with a denial that is audited even though the caller's
-- transaction rolls back.
CREATE FUNCTION aura._require_admin(fn text, p_restaurant bigint DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF NOT aura._caller_is_admin() THEN
        PERFORM aura._audit_later('access.denied',
            jsonb_build_object('function', fn, 'restaurant_id', p_restaurant),
            coalesce(p_restaurant, 0));
        RAISE EXCEPTION 'permission denied for %', fn
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %s is not a member of aura_admin.', aura._caller()),
                  HINT = 'API keys are managed by aura_admin.';
    END IF;
END
$$;
COMMENT ON FUNCTION aura._require_admin(text, bigint) IS 'Raises 42501 unless the caller is an aura admin; the denial is audited.';

CREATE FUNCTION aura._check_key_args(p_name text, p_scopes text[], p_expires timestamptz, p_cidrs cidr[],
                                     p_minute integer, p_hour integer, p_day integer) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    s text;
BEGIN
    IF p_name IS NULL OR length(btrim(p_name)) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'API key name must have 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s characters.', coalesce(length(p_name)::text, 'NULL'));
    END IF;
    IF p_scopes IS NULL OR cardinality(p_scopes) NOT BETWEEN 1 AND 32 THEN
        RAISE EXCEPTION 'an API key needs 1 to 32 scopes'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Example: ARRAY[''loyalty:*'', ''settings:read''].';
    END IF;
    FOREACH s IN ARRAY p_scopes LOOP
        IF NOT coalesce(aura._valid_scope(s), false) THEN
            RAISE EXCEPTION 'invalid scope "%"', left(coalesce(s, 'NULL'), 64)
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A scope is up to 64 characters: lower-case words separated by ":", optionally ending in ":*", or "*".';
        END IF;
    END LOOP;
    IF p_expires IS NOT NULL AND (p_expires <= now() OR p_expires = 'infinity') THEN
        RAISE EXCEPTION 'expires_at must be in the future'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', p_expires),
                  HINT = 'Pass NULL for a key that does not expire.';
    END IF;
    IF p_cidrs IS NOT NULL AND (cardinality(p_cidrs) NOT BETWEEN 1 AND 64 OR array_position(p_cidrs, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION 'allowed_cidrs must hold 1 to 64 networks and no NULL'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass NULL to allow every address.';
    END IF;
    IF p_minute <= 0 OR p_hour <= 0 OR p_day <= 0 THEN
        RAISE EXCEPTION 'rate limits must be positive'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got per minute %s, per hour %s, per day %s.', p_minute, p_hour, p_day),
                  HINT = 'Pass NULL for no limit.';
    END IF;
END
$$;
COMMENT ON FUNCTION aura._check_key_args(text, text[], timestamptz, cidr[], integer, integer, integer) IS 'Validates the arguments of aura.create_api_key.';

CREATE FUNCTION aura.create_api_key(restaurant_id bigint, name text, scopes text[],
                                    expires_at timestamptz DEFAULT NULL, allowed_cidrs cidr[] DEFAULT NULL,
                                    environment text DEFAULT 'live',
                                    rate_per_minute integer DEFAULT NULL, rate_per_hour integer DEFAULT NULL,
                                    rate_per_day integer DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    g record;
    new_id bigint;
BEGIN
    PERFORM aura._require_admin('aura.create_api_key', create_api_key.restaurant_id);
    IF create_api_key.restaurant_id IS NULL THEN
        RAISE EXCEPTION 'restaurant_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM aura.restaurants r WHERE r.id = create_api_key.restaurant_id) THEN
        RAISE EXCEPTION 'restaurant % does not exist', create_api_key.restaurant_id USING ERRCODE = 'no_data_found';
    END IF;
    IF environment IS NULL OR environment NOT IN ('live', 'test') THEN
        RAISE EXCEPTION 'invalid API key environment "%"', left(coalesce(environment, 'NULL'), 32)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''live'' or ''test''.';
    END IF;
    PERFORM aura._check_key_args(name, scopes, expires_at, allowed_cidrs, rate_per_minute, rate_per_hour, rate_per_day);
    g := aura._api_key_generate(environment);
    INSERT INTO aura.api_keys AS k (restaurant_id, name, environment, lookup_prefix, lookup, key_hash, hmac, scopes,
                                    allowed_cidrs, expires_at, rate_per_minute, rate_per_hour, rate_per_day)
    VALUES (create_api_key.restaurant_id, btrim(name), environment, g.lookup_prefix, g.lookup, g.key_hash, g.hmac,
            (SELECT array_agg(DISTINCT s ORDER BY s) FROM unnest(scopes) s), allowed_cidrs, expires_at,
            rate_per_minute, rate_per_hour, rate_per_day)
    RETURNING k.id INTO new_id;
    PERFORM aura.audit('api_key.created',
        jsonb_build_object('key_id', new_id, 'name', btrim(name), 'environment', environment,
                           'prefix', format('aura_%s_%s', environment, g.lookup_prefix), 'scopes', scopes,
                           'expires_at', expires_at, 'allowed_cidrs', allowed_cidrs),
        create_api_key.restaurant_id);
    RETURN g.key;
END
$$;
COMMENT ON FUNCTION aura.create_api_key(bigint, text, text[], timestamptz, cidr[], text, integer, integer, integer) IS 'Creates an API key and returns it in plain text, once; only its hash is kept. aura_admin only.';

CREATE FUNCTION aura._api_key_row(p_id bigint) RETURNS aura.api_keys
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    k aura.api_keys;
BEGIN
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'API key id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO k FROM aura.api_keys WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'API key % does not exist', p_id USING ERRCODE = 'no_data_found';
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION aura._api_key_row(bigint) IS 'Internal: the API key row, locked; P0002 when missing.';

CREATE FUNCTION aura.revoke_api_key(id bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    k aura.api_keys;
BEGIN
    PERFORM aura._require_admin('aura.revoke_api_key');
    k := aura._api_key_row(revoke_api_key.id);
    IF k.revoked_at IS NOT NULL THEN
        RETURN false;
    END IF;
    UPDATE aura.api_keys a SET revoked_at = now()
     WHERE a.restaurant_id = k.restaurant_id AND a.id = k.id;
    PERFORM aura.audit('api_key.revoked', jsonb_build_object('key_id', k.id, 'name', k.name), k.restaurant_id);
    RETURN true;
END
$$;
COMMENT ON FUNCTION aura.revoke_api_key(bigint) IS 'Revokes an API key at once; false when it already was. aura_admin only.';

CREATE FUNCTION aura.rotate_api_key(id bigint, grace interval) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    k aura.api_keys;
    g record;
    new_id bigint;
BEGIN
    PERFORM aura._require_admin('aura.rotate_api_key');
    IF grace IS NULL OR grace < interval '0' OR grace > interval '30 days' THEN
        RAISE EXCEPTION 'grace must be between 0 and 30 days'
            USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', coalesce(grace::text, 'NULL'));
    END IF;
    k := aura._api_key_row(rotate_api_key.id);
    IF k.revoked_at IS NOT NULL OR (k.expires_at IS NOT NULL AND k.expires_at <= now()) THEN
        RAISE EXCEPTION 'API key % is revoked or expired', k.id
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Create a new key instead.';
    END IF;
    g := aura._api_key_generate(k.environment);
    INSERT INTO aura.api_keys AS a (restaurant_id, name, environment, lookup_prefix, lookup, key_hash, hmac, scopes,
                                    allowed_cidrs, expires_at, rate_per_minute, rate_per_hour, rate_per_day,
                                    rotated_from)
    VALUES (k.restaurant_id, k.name, k.environment, g.lookup_prefix, g.lookup, g.key_hash, g.hmac, k.scopes,
            k.allowed_cidrs, k.expires_at, k.rate_per_minute, k.rate_per_hour, k.rate_per_day, k.id)
    RETURNING a.id INTO new_id;
    UPDATE aura.api_keys a
       SET expires_at = least(coalesce(a.expires_at, 'infinity'), now() + grace), rotated_to = new_id
     WHERE a.restaurant_id = k.restaurant_id AND a.id = k.id;
    PERFORM aura.audit('api_key.rotated',
        jsonb_build_object('key_id', k.id, 'new_key_id', new_id, 'grace', grace::text), k.restaurant_id);
    RETURN g.key;
END
$$;
COMMENT ON FUNCTION aura.rotate_api_key(bigint, interval) IS 'Replaces an API key: returns the new key (plain text, once); the old one keeps working for the grace period. aura_admin only.';

CREATE FUNCTION aura.set_api_key_limits(id bigint, rate_per_minute integer, rate_per_hour integer, rate_per_day integer)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    k aura.api_keys;
BEGIN
    PERFORM aura._require_admin('aura.set_api_key_limits');
    k := aura._api_key_row(set_api_key_limits.id);
    PERFORM aura._check_key_args(k.name, k.scopes, NULL, NULL, rate_per_minute, rate_per_hour, rate_per_day);
    UPDATE aura.api_keys a SET rate_per_minute = set_api_key_limits.rate_per_minute,
           rate_per_hour = set_api_key_limits.rate_per_hour, rate_per_day = set_api_key_limits.rate_per_day
     WHERE a.restaurant_id = k.restaurant_id AND a.id = k.id;
    PERFORM aura.audit('api_key.limits_changed',
        jsonb_build_object('key_id', k.id, 'per_minute', rate_per_minute, 'per_hour', rate_per_hour,
                           'per_day', rate_per_day), k.restaurant_id);
END
$$;
COMMENT ON FUNCTION aura.set_api_key_limits(bigint, integer, integer, integer) IS 'Sets the per-minute, per-hour and per-day limits of an API key (NULL: none). aura_admin only.';

-- Not SECURITY DEFINER and without a SET clause on purpose: a function-level
-- SET would undo set_config(..., true) at function exit (as aura.set_context).
CREATE FUNCTION aura.set_context_from_key(key text, required_scope text DEFAULT NULL, is_local boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    v record;
BEGIN
    SELECT * INTO v FROM aura.verify_api_key(key, required_scope, NULL);
    PERFORM pg_catalog.set_config('aura.restaurant_id', v.restaurant_id::text, coalesce(is_local, false));
    PERFORM pg_catalog.set_config('aura.location_id', '', coalesce(is_local, false));
    PERFORM pg_catalog.set_config('aura.user_id', '', coalesce(is_local, false));
    RETURN v.restaurant_id;
END
$$;
COMMENT ON FUNCTION aura.set_context_from_key(text, text, boolean) IS 'Verifies an API key (pass it as a bind parameter) and sets the tenant context to its restaurant; returns the restaurant id.';

CREATE VIEW aura.api_keys_view WITH (security_invoker = true, security_barrier = true) AS
SELECT k.restaurant_id, k.id, k.name, k.environment,
       format('aura_%s_%s', k.environment, k.lookup_prefix) AS key_prefix,
       k.scopes, k.allowed_cidrs, k.expires_at,
       k.rate_per_minute, k.rate_per_hour, k.rate_per_day,
       CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
            WHEN k.expires_at IS NOT NULL AND k.expires_at <= now() THEN 'expired'
            WHEN k.rotated_to IS NOT NULL THEN 'rotating'
            ELSE 'active' END AS status,
       CASE WHEN k.hmac THEN 'hmac-sha256' ELSE 'sha256' END AS hash,
       k.created_at, k.created_by, k.revoked_at, k.rotated_from, k.rotated_to,
       k.last_used_at, k.use_count
  FROM aura.api_keys k;
COMMENT ON VIEW aura.api_keys_view IS 'API keys without their hashes; row-level security shows the restaurant in context (every restaurant to aura_admin).';

------------------------------------------------------------------------------
-- Privilege matrix (the table is created by part 05 so that every part can
-- declare its objects): what the catalog grants, and the differences.
------------------------------------------------------------------------------
-- what the catalog grants, one row per object and grantee (owner excluded)
CREATE VIEW aura.privileges_granted AS
WITH objs AS (
    SELECT format('aura.%s', c.relname) AS object,
           CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' ELSE 'table' END AS kind,
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl,
           c.relowner AS owner, c.oid AS relid
      FROM pg_class c
     WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT format('aura.%s(%s)', p.proname, oidvectortypes(p.proargtypes)), 'function',
           coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner, NULL
      FROM pg_proc p
     WHERE p.pronamespace = 'aura'::regnamespace
), grants AS (
    SELECT o.object, o.kind, a.grantee, a.privilege_type AS priv
      FROM objs o, aclexplode(o.acl) a
     WHERE a.grantee <> o.owner
    UNION
    SELECT o.object, o.kind, a.grantee,
           format('%s(%s)', a.privilege_type, string_agg(att.attname::text, ',' ORDER BY att.attname))
      FROM objs o
      JOIN pg_attribute att ON att.attrelid = o.relid AND att.attnum > 0 AND NOT att.attisdropped
                           AND att.attacl IS NOT NULL,
           aclexplode(att.attacl) a
     WHERE a.grantee <> o.owner
     GROUP BY o.object, o.kind, a.grantee, a.privilege_type
)
SELECT o.object, o.kind,
       coalesce(CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(g.grantee)::text END, '-') AS role,
       coalesce(string_agg(g.priv, ',' ORDER BY g.priv), '') AS privileges
  FROM objs o LEFT JOIN grants g USING (object, kind)
 GROUP BY o.object, o.kind, g.grantee;
COMMENT ON VIEW aura.privileges_granted IS 'Privileges the catalog grants on every object of schema aura (owner excluded; role ''-'': nobody).';

CREATE VIEW aura.privilege_mismatches AS
SELECT coalesce(g.object, m.object) AS object, coalesce(g.kind, m.kind) AS kind,
       coalesce(g.role, m.role) AS role, m.privileges AS declared, g.privileges AS granted,
       CASE WHEN g.role = 'PUBLIC' THEN 'granted to PUBLIC'
            WHEN NOT EXISTS (SELECT 1 FROM aura.privilege_matrix x WHERE x.object = g.object) THEN 'missing from the matrix'
            WHEN m.object IS NULL THEN 'granted but not declared'
            WHEN NOT EXISTS (SELECT 1 FROM aura.privileges_granted y WHERE y.object = m.object) THEN 'declared object does not exist'
            WHEN g.object IS NULL THEN 'declared but not granted'
            ELSE 'different privileges' END AS problem
  FROM aura.privileges_granted g
  FULL JOIN aura.privilege_matrix m ON m.object = g.object AND m.role = g.role
 WHERE g.object IS NULL OR m.object IS NULL OR g.privileges IS DISTINCT FROM m.privileges
    OR g.kind IS DISTINCT FROM m.kind OR g.role = 'PUBLIC';
COMMENT ON VIEW aura.privilege_mismatches IS 'Differences between aura.privilege_matrix and the catalog; empty when every object is declared exactly and nothing is granted to PUBLIC.';

------------------------------------------------------------------------------
-- deployment_check: api_keys
------------------------------------------------------------------------------
CREATE FUNCTION aura._check_api_keys(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    secret text := aura._api_key_secret_status();
    active bigint;
    plain bigint;
    public_grants bigint;
    problems text[] := '{}';
BEGIN
    SELECT count(*) FILTER (WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())),
           count(*) FILTER (WHERE revoked_at IS NULL AND NOT hmac)
      INTO active, plain FROM aura.api_keys;
    SELECT count(*) INTO public_grants FROM aura.privileges_granted WHERE role = 'PUBLIC';
    IF secret = 'none' THEN
        problems := problems || 'no hashing secret: keys are hashed with plain SHA-256 (set aura.api_key_secret_file or aura.api_key_secret_command and restart)'::text;
    ELSIF secret <> 'hmac' THEN
        problems := problems || format('hashing secret %s', secret);
    END IF;
    IF active = 0 THEN
        problems := problems || 'no active API key (aura.create_api_key)'::text;
    END IF;
    IF secret = 'hmac' AND plain > 0 THEN
        problems := problems || format('%s active keys hashed without the secret: rotate them', plain);
    END IF;
    IF public_grants > 0 THEN
        problems := problems || format('%s objects of schema aura are granted to PUBLIC', public_grants);
    END IF;
    ok := cardinality(problems) = 0;
    detail := CASE WHEN ok THEN format('%s active keys, HMAC-SHA-256 with the server secret, nothing granted to PUBLIC', active)
                   ELSE array_to_string(problems, '; ') END;
END
$$;
UPDATE aura.deployment_items SET check_fn = 'aura._check_api_keys' WHERE name = 'api_keys';

------------------------------------------------------------------------------
-- Grants (see docs/security.md and aura.privilege_matrix)
------------------------------------------------------------------------------
REVOKE ALL ON aura.audit_log, aura.api_keys, aura.api_keys_view, aura.privilege_matrix,
    aura.privileges_granted, aura.privilege_mismatches FROM PUBLIC;
REVOKE ALL ON FUNCTION aura._caller(), aura._caller_is_admin(), aura._append_only(),
    aura._audit_later(text, jsonb, bigint), aura.audit_flush(), aura._audit_pending(),
    aura.audit(text, jsonb, bigint), aura._valid_scope(text, boolean),
    aura._api_key_generate(text), aura.verify_api_key(text, text, inet), aura.api_key_well_formed(text),
    aura._api_key_secret_status(), aura.api_key_stats(), aura._require_admin(text, bigint),
    aura._check_key_args(text, text[], timestamptz, cidr[], integer, integer, integer),
    aura.create_api_key(bigint, text, text[], timestamptz, cidr[], text, integer, integer, integer),
    aura._api_key_row(bigint), aura.revoke_api_key(bigint), aura.rotate_api_key(bigint, interval),
    aura.set_api_key_limits(bigint, integer, integer, integer), aura.set_context_from_key(text, text, boolean),
    aura._check_api_keys() FROM PUBLIC;

-- applications authenticate with keys: every aura role
GRANT EXECUTE ON FUNCTION aura.verify_api_key(text, text, inet), aura.set_context_from_key(text, text, boolean),
    aura.api_key_well_formed(text), aura._caller(), aura._caller_is_admin()
    TO aura_staff, aura_reporting;
-- key management (the functions check aura_admin themselves and audit denials)
GRANT EXECUTE ON FUNCTION
    aura.create_api_key(bigint, text, text[], timestamptz, cidr[], text, integer, integer, integer),
    aura.revoke_api_key(bigint), aura.rotate_api_key(bigint, interval),
    aura.set_api_key_limits(bigint, integer, integer, integer)
    TO aura_manager;
GRANT EXECUTE ON FUNCTION aura.audit_flush(), aura.api_key_stats() TO aura_admin;
GRANT EXECUTE ON FUNCTION aura._check_api_keys() TO aura_manager;
-- reading keys (without hashes) and the restaurant's audit trail
GRANT SELECT ON aura.api_keys_view TO aura_manager;
GRANT SELECT (restaurant_id, id, name, environment, lookup_prefix, hmac, scopes, allowed_cidrs, expires_at,
              rate_per_minute, rate_per_hour, rate_per_day, created_at, created_by, revoked_at,
              rotated_from, rotated_to, last_used_at, use_count) ON aura.api_keys TO aura_manager;
GRANT SELECT ON aura.audit_log TO aura_manager;
GRANT SELECT ON aura.privilege_matrix, aura.privileges_granted, aura.privilege_mismatches TO aura_admin;

------------------------------------------------------------------------------
-- The matrix of the foundation's and this part's objects (direct grants; a role
-- also has what the roles it includes have: admin > manager > staff, reporting).
-- Other parts add rows for their own objects the same way.
------------------------------------------------------------------------------
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._api_key_generate(text)', 'function', '-', ''),
    ('aura._api_key_row(bigint)', 'function', '-', ''),
    ('aura._api_key_secret_status()', 'function', '-', ''),
    ('aura._append_only()', 'function', '-', ''),
    ('aura._audit_later(text, jsonb, bigint)', 'function', '-', ''),
    ('aura._audit_pending()', 'function', '-', ''),
    ('aura._caller()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._caller()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._caller_is_admin()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._caller_is_admin()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._check_api_keys()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._check_context(bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._check_context(bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._check_extension_version()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._check_key_args(text, text[], timestamp with time zone, cidr[], integer, integer, integer)', 'function', '-', ''),
    ('aura._check_preload()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._enable_tenancy(regclass, name)', 'function', '-', ''),
    ('aura._preloaded()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._require_admin(text, bigint)', 'function', '-', ''),
    ('aura._valid_scope(text, boolean)', 'function', '-', ''),
    ('aura._valid_timezone(text)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._valid_timezone(text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.api_key_stats()', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.api_key_well_formed(text)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.api_key_well_formed(text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.audit(text, jsonb, bigint)', 'function', '-', ''),
    ('aura.audit_flush()', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.clear_context(boolean)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.clear_context(boolean)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.create_api_key(bigint, text, text[], timestamp with time zone, cidr[], text, integer, integer, integer)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.current_location()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.current_location()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.current_restaurant()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.current_restaurant()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.current_user_id()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.current_user_id()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.deployment_check()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.is_admin()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.is_admin()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.revoke_api_key(bigint)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.rotate_api_key(bigint, interval)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.set_api_key_limits(bigint, integer, integer, integer)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.set_context(bigint, bigint, bigint, boolean)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.set_context(bigint, bigint, bigint, boolean)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.set_context_from_key(text, text, boolean)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.set_context_from_key(text, text, boolean)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.verify_api_key(text, text, inet)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.verify_api_key(text, text, inet)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.version()', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.version()', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.api_keys_id_seq', 'sequence', '-', ''),
    ('aura.audit_log_id_seq', 'sequence', '-', ''),
    ('aura.locations_id_seq', 'sequence', 'aura_manager', 'USAGE'),
    ('aura.restaurants_id_seq', 'sequence', 'aura_admin', 'USAGE'),
    ('aura.api_keys', 'table', 'aura_manager', 'SELECT(allowed_cidrs,created_at,created_by,environment,expires_at,hmac,id,last_used_at,lookup_prefix,name,rate_per_day,rate_per_hour,rate_per_minute,restaurant_id,revoked_at,rotated_from,rotated_to,scopes,use_count)'),
    ('aura.audit_log', 'table', 'aura_manager', 'SELECT'),
    ('aura.deployment_items', 'table', 'aura_manager', 'SELECT'),
    ('aura.locations', 'table', 'aura_manager', 'DELETE,INSERT,UPDATE'),
    ('aura.locations', 'table', 'aura_reporting', 'SELECT'),
    ('aura.locations', 'table', 'aura_staff', 'SELECT'),
    ('aura.privilege_matrix', 'table', 'aura_admin', 'SELECT'),
    ('aura.restaurants', 'table', 'aura_admin', 'DELETE,INSERT'),
    ('aura.restaurants', 'table', 'aura_manager', 'UPDATE(currency,name,timezone)'),
    ('aura.restaurants', 'table', 'aura_reporting', 'SELECT'),
    ('aura.restaurants', 'table', 'aura_staff', 'SELECT'),
    ('aura.api_keys_view', 'view', 'aura_manager', 'SELECT'),
    ('aura.privilege_mismatches', 'view', 'aura_admin', 'SELECT'),
    ('aura.privileges_granted', 'view', 'aura_admin', 'SELECT');
