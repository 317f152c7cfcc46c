------------------------------------------------------------------------------
-- Settings: typed multi-scope configuration (docs/settings.md).
--
-- Layout
--   aura.setting_groups, aura.setting_definitions   catalog (shared by all tenants)
--   aura.system_settings                            values at system scope (no tenant)
--   aura.setting_values                             values at restaurant, location and
--                                                   user scope (tenant table)
--   aura.system_setting_history, aura.setting_history   append-only audit trail
-- Reads go through a backend-local cache in C (src/settings.c); a statement
-- trigger on each table above sends a relcache invalidation at commit so every
-- backend drops its cache (no stale read after commit).  Writes go through
-- the SECURITY DEFINER functions below, which check the caller (the role that
-- called them, aura._caller_*), the tenant and locks, validate in C and write
-- history in the same transaction.
------------------------------------------------------------------------------

-- C helpers ------------------------------------------------------------------
CREATE FUNCTION aura._caller_has(role_name text) RETURNS boolean
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'aura_caller_has';
COMMENT ON FUNCTION aura._caller_has(text) IS 'Inside SECURITY DEFINER functions: has the role that called (SET ROLE level) the privileges of role_name? Superusers have all.';

CREATE FUNCTION aura._caller_name() RETURNS text
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'aura_caller_name';
COMMENT ON FUNCTION aura._caller_name() IS 'Inside SECURITY DEFINER functions: the name of the role that called.';

CREATE FUNCTION aura._settings_invalidate() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'aura_settings_invalidate';
COMMENT ON FUNCTION aura._settings_invalidate() IS 'Statement trigger: every backend drops its settings cache when the transaction commits.';

CREATE FUNCTION aura._setting_definition_check() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'aura_setting_definition_check';
COMMENT ON FUNCTION aura._setting_definition_check() IS 'Row trigger: a definition''s rules are consistent and its default satisfies them (stored canonically).';

-- Catalog --------------------------------------------------------------------
CREATE TABLE aura.setting_groups (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    description text,
    sort        int NOT NULL DEFAULT 100,
    builtin     boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE aura.setting_groups IS 'Logical groups of setting definitions, with their display order.';

CREATE TABLE aura.setting_definitions (
    key                 text PRIMARY KEY
                        CHECK (length(key) <= 100 AND key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    category            text NOT NULL CHECK (category IN ('general', 'operations', 'payment',
                            'pos_integration', 'notifications', 'security', 'display', 'features',
                            'api', 'compliance', 'loyalty', 'insights')),
    type                text NOT NULL CHECK (type IN ('string', 'integer', 'numeric', 'boolean',
                            'json', 'datetime', 'duration', 'enum', 'secret')),
    default_value       jsonb,
    min_value           numeric,
    max_value           numeric,
    min_length          int CHECK (min_length >= 0),
    max_length          int CHECK (max_length >= 0),
    pattern             text,
    allowed_values      text[],
    required_keys       text[],
    allowed_scopes      text[] NOT NULL DEFAULT '{system,restaurant,location,user}'
                        CHECK (cardinality(allowed_scopes) > 0
                               AND allowed_scopes <@ '{system,restaurant,location,user}'),
    sensitive           boolean NOT NULL DEFAULT false,
    requires_restart    boolean NOT NULL DEFAULT false,
    depends_on          text[] NOT NULL DEFAULT '{}',
    conflicts_with      text[] NOT NULL DEFAULT '{}',
    group_name          text REFERENCES aura.setting_groups (name),
    sort                int NOT NULL DEFAULT 100,
    description         text NOT NULL,
    help_text           text,
    deprecated          boolean NOT NULL DEFAULT false,
    deprecation_message text,
    introduced_version  text NOT NULL DEFAULT '0.2',
    deprecated_version  text,
    builtin             boolean NOT NULL DEFAULT false,
    CHECK (type <> 'enum' OR coalesce(cardinality(allowed_values), 0) > 0),
    CHECK (type <> 'secret' OR sensitive),
    CHECK (min_value IS NULL OR max_value IS NULL OR min_value <= max_value),
    CHECK (min_length IS NULL OR max_length IS NULL OR min_length <= max_length)
);
COMMENT ON TABLE aura.setting_definitions IS 'Catalog of settings: type, default, validation rules, allowed scopes, sensitivity. Shared by all tenants.';

CREATE TRIGGER setting_definitions_check
    BEFORE INSERT OR UPDATE ON aura.setting_definitions
    FOR EACH ROW EXECUTE FUNCTION aura._setting_definition_check();

-- Values ---------------------------------------------------------------------
-- A value is either plain (value) or sealed (secret: AES-256-GCM, key_id names
-- the master key it was sealed with; fingerprint identifies it in history).
CREATE TABLE aura.system_settings (
    key         text PRIMARY KEY REFERENCES aura.setting_definitions (key) ON DELETE CASCADE,
    value       jsonb,
    secret      bytea,
    key_id      text,
    fingerprint text,
    locked      boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT current_user,
    CHECK ((value IS NULL) <> (secret IS NULL)),
    CHECK ((secret IS NULL) = (key_id IS NULL))
);
COMMENT ON TABLE aura.system_settings IS 'Setting values at system scope (the whole installation): not tenant rows; only aura_admin writes them.';

CREATE TABLE aura.setting_values (
    restaurant_id bigint NOT NULL REFERENCES aura.restaurants (id) ON DELETE CASCADE,
    scope       text NOT NULL CHECK (scope IN ('restaurant', 'location', 'user')),
    scope_id    bigint NOT NULL CHECK (scope_id > 0),
    key         text NOT NULL REFERENCES aura.setting_definitions (key) ON DELETE CASCADE,
    value       jsonb,
    secret      bytea,
    key_id      text,
    fingerprint text,
    locked      boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (restaurant_id, scope, scope_id, key),
    CHECK (scope <> 'restaurant' OR scope_id = restaurant_id),
    CHECK ((value IS NULL) <> (secret IS NULL)),
    CHECK ((secret IS NULL) = (key_id IS NULL))
);
COMMENT ON TABLE aura.setting_values IS 'Setting values of a restaurant, one of its locations, or one of its users (scope_id = restaurant, location or application user id).';
CREATE INDEX setting_values_key_id ON aura.setting_values (key_id) WHERE key_id IS NOT NULL;
CREATE INDEX system_settings_key_id ON aura.system_settings (key_id) WHERE key_id IS NOT NULL;

SELECT aura._register_tenant_table('aura.setting_values');

-- History --------------------------------------------------------------------
CREATE TABLE aura.system_setting_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text NOT NULL,
    scope       text NOT NULL DEFAULT 'system' CHECK (scope = 'system'),
    scope_id    bigint CHECK (scope_id IS NULL),
    action      text NOT NULL CHECK (action IN ('create', 'update', 'delete', 'lock', 'unlock', 'reveal', 'reencrypt')),
    source      text NOT NULL CHECK (source IN ('direct', 'bulk', 'template', 'import', 'rollback', 'rotation')),
    old_value   jsonb,
    new_value   jsonb,
    changed_by  text NOT NULL,
    app_user_id bigint,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    reason      text CHECK (length(reason) <= 1000)
);
COMMENT ON TABLE aura.system_setting_history IS 'Append-only history of system-scope settings (secrets as fingerprints).';

CREATE TABLE aura.setting_history (
    restaurant_id bigint NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    key         text NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('restaurant', 'location', 'user')),
    scope_id    bigint NOT NULL,
    action      text NOT NULL CHECK (action IN ('create', 'update', 'delete', 'lock', 'unlock', 'reveal', 'reencrypt')),
    source      text NOT NULL CHECK (source IN ('direct', 'bulk', 'template', 'import', 'rollback', 'rotation')),
    old_value   jsonb,
    new_value   jsonb,
    changed_by  text NOT NULL,
    app_user_id bigint,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    reason      text CHECK (length(reason) <= 1000),
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.setting_history IS 'Append-only history of restaurant, location and user settings (secrets as fingerprints).';
SELECT aura._register_tenant_table('aura.setting_history');

CREATE TRIGGER setting_history_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON aura.setting_history FOR EACH STATEMENT EXECUTE FUNCTION aura._append_only();
CREATE TRIGGER system_setting_history_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON aura.system_setting_history FOR EACH STATEMENT EXECUTE FUNCTION aura._append_only();

-- Catalog tables are shared: everybody in aura reads them, admins change them.
ALTER TABLE aura.setting_groups ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.setting_groups FORCE ROW LEVEL SECURITY;
CREATE POLICY read_all ON aura.setting_groups FOR SELECT USING (true);
CREATE POLICY admin_write ON aura.setting_groups USING (aura.is_admin()) WITH CHECK (aura.is_admin());
ALTER TABLE aura.setting_definitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.setting_definitions FORCE ROW LEVEL SECURITY;
CREATE POLICY read_all ON aura.setting_definitions FOR SELECT USING (true);
CREATE POLICY admin_write ON aura.setting_definitions USING (aura.is_admin()) WITH CHECK (aura.is_admin());
-- System values and their history: readable by aura roles through views, written by admins.
ALTER TABLE aura.system_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.system_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_only ON aura.system_settings USING (aura.is_admin()) WITH CHECK (aura.is_admin());
ALTER TABLE aura.system_setting_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.system_setting_history FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_only ON aura.system_setting_history USING (aura.is_admin()) WITH CHECK (aura.is_admin());

-- any committed change drops every backend's cache
CREATE TRIGGER setting_definitions_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON aura.setting_definitions FOR EACH STATEMENT EXECUTE FUNCTION aura._settings_invalidate();
CREATE TRIGGER system_settings_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON aura.system_settings FOR EACH STATEMENT EXECUTE FUNCTION aura._settings_invalidate();
CREATE TRIGGER setting_values_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON aura.setting_values FOR EACH STATEMENT EXECUTE FUNCTION aura._settings_invalidate();

-- shipped rows (builtin) come with CREATE EXTENSION; pg_dump keeps the others
SELECT pg_catalog.pg_extension_config_dump('aura.setting_groups', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('aura.setting_definitions', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('aura.system_settings', '');
SELECT pg_catalog.pg_extension_config_dump('aura.system_setting_history', '');
SELECT pg_catalog.pg_extension_config_dump('aura.system_setting_history_id_seq', '');

-- Crypto (src/crypto.c) -------------------------------------------------------
CREATE FUNCTION aura._seal(plaintext text, aad text) RETURNS bytea
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'aura_seal';
COMMENT ON FUNCTION aura._seal(text, text) IS 'AES-256-GCM seal with the current master key (key id embedded); internal.';
CREATE FUNCTION aura._unseal(sealed bytea, aad text) RETURNS text
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'aura_unseal';
COMMENT ON FUNCTION aura._unseal(bytea, text) IS 'Authenticated decryption of aura._seal output; internal, granted to nobody.';
CREATE FUNCTION aura._sealed_key_id(sealed bytea) RETURNS text
    LANGUAGE c IMMUTABLE STRICT
    AS 'MODULE_PATHNAME', 'aura_sealed_key_id';
CREATE FUNCTION aura._fingerprint(plaintext text) RETURNS text
    LANGUAGE c STABLE STRICT
    AS 'MODULE_PATHNAME', 'aura_fingerprint';
COMMENT ON FUNCTION aura._fingerprint(text) IS 'Keyed fingerprint (HMAC-SHA256 under a sub-key of the master key) of a secret, for history.';
CREATE FUNCTION aura.encryption_key_status(OUT configured boolean, OUT current_key_id text,
                                           OUT key_count int, OUT source text, OUT error text)
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_encryption_key_status';
COMMENT ON FUNCTION aura.encryption_key_status() IS 'Is a master key loaded (never the key itself): current key id, number of keys, file or command, load error.';

-- Reads (src/settings.c, cached) ----------------------------------------------
CREATE FUNCTION aura.get_setting(key text, restaurant_id bigint DEFAULT NULL,
                                 location_id bigint DEFAULT NULL, user_id bigint DEFAULT NULL)
    RETURNS jsonb LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_get_setting';
COMMENT ON FUNCTION aura.get_setting(text, bigint, bigint, bigint) IS 'Effective value: user, location, restaurant, system, default (locks first). NULL ids: the session context. Secrets read ********.';
CREATE FUNCTION aura.get_setting_int(key text, restaurant_id bigint DEFAULT NULL,
                                     location_id bigint DEFAULT NULL, user_id bigint DEFAULT NULL)
    RETURNS bigint LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_get_setting_int';
CREATE FUNCTION aura.get_setting_numeric(key text, restaurant_id bigint DEFAULT NULL,
                                         location_id bigint DEFAULT NULL, user_id bigint DEFAULT NULL)
    RETURNS numeric LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_get_setting_numeric';
CREATE FUNCTION aura.get_setting_bool(key text, restaurant_id bigint DEFAULT NULL,
                                      location_id bigint DEFAULT NULL, user_id bigint DEFAULT NULL)
    RETURNS boolean LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_get_setting_bool';
CREATE FUNCTION aura.get_setting_text(key text, restaurant_id bigint DEFAULT NULL,
                                      location_id bigint DEFAULT NULL, user_id bigint DEFAULT NULL)
    RETURNS text LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_get_setting_text';
CREATE FUNCTION aura.get_setting_interval(key text, restaurant_id bigint DEFAULT NULL,
                                          location_id bigint DEFAULT NULL, user_id bigint DEFAULT NULL)
    RETURNS interval LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aura_get_setting_interval';
COMMENT ON FUNCTION aura.get_setting_int(text, bigint, bigint, bigint) IS 'Effective value of an integer setting.';
COMMENT ON FUNCTION aura.get_setting_numeric(text, bigint, bigint, bigint) IS 'Effective value of a numeric or integer setting.';
COMMENT ON FUNCTION aura.get_setting_bool(text, bigint, bigint, bigint) IS 'Effective value of a boolean setting.';
COMMENT ON FUNCTION aura.get_setting_text(text, bigint, bigint, bigint) IS 'Effective value as text (strings, enums, datetimes and durations unquoted; JSON as text; secrets ********).';
COMMENT ON FUNCTION aura.get_setting_interval(text, bigint, bigint, bigint) IS 'Effective value of a duration setting.';

CREATE FUNCTION aura._resolve_setting(key text, restaurant_id bigint, location_id bigint, user_id bigint,
                                      OUT value jsonb, OUT source_scope text, OUT source_id bigint, OUT locked boolean)
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'aura_resolve_setting';

CREATE FUNCTION aura._validate_setting(key text, value jsonb, scope text DEFAULT NULL) RETURNS jsonb
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'aura_validate_setting';
COMMENT ON FUNCTION aura._validate_setting(text, jsonb, text) IS 'Validates a value for a setting (type, rules, scope) and returns it canonically, or raises 22023 with key, rule and value.';

CREATE FUNCTION aura.effective_settings(restaurant_id bigint DEFAULT NULL, location_id bigint DEFAULT NULL,
                                        user_id bigint DEFAULT NULL)
    RETURNS TABLE (key text, value jsonb, source_scope text, source_id bigint, locked boolean,
                   type text, category text, sensitive boolean)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT d.key, r.value, r.source_scope, r.source_id, r.locked, d.type, d.category, d.sensitive
      FROM aura.setting_definitions d,
           LATERAL aura._resolve_setting(d.key, effective_settings.restaurant_id,
                                         effective_settings.location_id, effective_settings.user_id) r
     ORDER BY d.key
$$;
COMMENT ON FUNCTION aura.effective_settings(bigint, bigint, bigint) IS 'Every setting with its effective value and the scope it came from (secrets ********).';

-- Writes ---------------------------------------------------------------------
-- _setting_target: the restaurant and canonical scope id a write targets,
-- after the caller's permission and tenant checks.
CREATE FUNCTION aura._setting_target(p_scope text, p_scope_id bigint,
                                     OUT restaurant_id bigint, OUT scope text, OUT scope_id bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    admin boolean := aura._caller_has('aura_admin');
    ctx bigint := aura.current_restaurant();
BEGIN
    scope := lower(coalesce(p_scope, 'system'));
    CASE scope
    WHEN 'system' THEN
        IF p_scope_id IS NOT NULL THEN
            RAISE EXCEPTION 'system scope takes no scope_id'
                USING ERRCODE = 'invalid_parameter_value', DETAIL = format('scope_id: %s', p_scope_id);
        END IF;
        IF NOT admin THEN
            RAISE EXCEPTION 'only aura_admin may change system settings'
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Managers change restaurant, location and user settings.';
        END IF;
        RETURN;
    WHEN 'restaurant' THEN
        scope_id := coalesce(p_scope_id, ctx);
        restaurant_id := scope_id;
        IF scope_id IS NULL THEN
            RAISE EXCEPTION 'no restaurant given and none in context'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass scope_id or call aura.set_context(...).';
        END IF;
        IF (admin OR scope_id = ctx) AND NOT EXISTS (SELECT 1 FROM aura.restaurants r WHERE r.id = scope_id) THEN
            RAISE EXCEPTION 'restaurant % does not exist', scope_id USING ERRCODE = 'no_data_found';
        END IF;
    WHEN 'location' THEN
        scope_id := coalesce(p_scope_id, aura.current_location());
        IF scope_id IS NULL THEN
            RAISE EXCEPTION 'no location given and none in context'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass scope_id or call aura.set_context(...).';
        END IF;
        SELECT l.restaurant_id INTO restaurant_id FROM aura.locations l WHERE l.id = scope_id;
        IF restaurant_id IS NULL OR (NOT admin AND restaurant_id IS DISTINCT FROM ctx) THEN
            RAISE EXCEPTION 'location % does not exist in restaurant %', scope_id, coalesce(ctx::text, '(none in context)')
                USING ERRCODE = 'no_data_found';
        END IF;
    WHEN 'user' THEN
        scope_id := coalesce(p_scope_id, aura.current_user_id());
        restaurant_id := ctx;
        IF scope_id IS NULL OR scope_id <= 0 THEN
            RAISE EXCEPTION 'user scope needs a positive user id'
                USING ERRCODE = 'invalid_parameter_value', DETAIL = format('scope_id: %s', coalesce(scope_id::text, 'NULL')),
                      HINT = 'Pass scope_id or set the user in the context.';
        END IF;
        IF restaurant_id IS NULL THEN
            RAISE EXCEPTION 'user scope needs a restaurant in context'
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Call aura.set_context(restaurant_id, location_id, user_id).';
        END IF;
    ELSE
        RAISE EXCEPTION 'unknown scope "%"', left(p_scope, 100)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Scopes are system, restaurant, location and user.';
    END CASE;

    IF NOT admin THEN
        IF restaurant_id IS DISTINCT FROM ctx THEN
            RAISE EXCEPTION 'restaurant % is not the restaurant in context', restaurant_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NOT (aura._caller_has('aura_manager')
                OR (scope = 'user' AND scope_id = aura.current_user_id() AND aura._caller_has('aura_staff'))) THEN
            RAISE EXCEPTION 'permission denied to change % settings', scope
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'aura_manager changes its restaurant''s settings; staff only their own user settings.';
        END IF;
    END IF;
END
$$;

-- _log_setting: one history row (system or tenant table)
CREATE FUNCTION aura._log_setting(p_restaurant bigint, p_scope text, p_scope_id bigint, p_key text,
                                  p_action text, p_source text, p_old jsonb, p_new jsonb, p_reason text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'reason is too long' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('%s characters; at most 1000.', length(p_reason));
    END IF;
    IF p_scope = 'system' THEN
        INSERT INTO aura.system_setting_history (key, action, source, old_value, new_value, changed_by, app_user_id, reason)
        VALUES (p_key, p_action, p_source, p_old, p_new, aura._caller_name(), aura.current_user_id(), p_reason);
    ELSE
        INSERT INTO aura.setting_history (restaurant_id, key, scope, scope_id, action, source, old_value, new_value,
                                          changed_by, app_user_id, reason)
        VALUES (p_restaurant, p_key, p_scope, p_scope_id, p_action, p_source, p_old, p_new,
                aura._caller_name(), aura.current_user_id(), p_reason);
    END IF;
END
$$;

-- _history_value: what history shows of a stored value (fingerprint for secrets)
CREATE FUNCTION aura._history_value(p_value jsonb, p_fingerprint text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN p_fingerprint IS NOT NULL THEN jsonb_build_object('fingerprint', p_fingerprint)
                      ELSE p_value END $$;

-- _put_setting: validate, check locks, seal secrets, upsert, log.  Returns
-- the stored value as readers see it (********* for secrets).
CREATE FUNCTION aura._put_setting(p_restaurant bigint, p_scope text, p_scope_id bigint, p_key text,
                                  p_value jsonb, p_reason text, p_source text)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    def aura.setting_definitions;
    canonical jsonb;
    plain text;
    sealed bytea;
    fp text;
    old_value jsonb;
    old_fp text;
    had_row boolean;
    lock_at text;
BEGIN
    IF p_key IS NULL THEN
        RAISE EXCEPTION 'setting key must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RAISE EXCEPTION 'value of setting "%" must not be NULL', left(p_key, 100)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use aura.reset_setting(...) to remove a value.';
    END IF;
    canonical := aura._validate_setting(p_key, p_value, p_scope);
    SELECT * INTO def FROM aura.setting_definitions d WHERE d.key = p_key;

    -- a lock at a higher scope wins over lower scopes
    SELECT s INTO lock_at FROM (
        SELECT 'system' AS s FROM aura.system_settings v
         WHERE p_scope <> 'system' AND v.key = p_key AND v.locked
        UNION ALL
        SELECT 'restaurant' FROM aura.setting_values v
         WHERE p_scope IN ('location', 'user') AND v.restaurant_id = p_restaurant AND v.scope = 'restaurant'
           AND v.scope_id = p_restaurant AND v.key = p_key AND v.locked) x LIMIT 1;
    IF lock_at IS NOT NULL THEN
        RAISE EXCEPTION 'setting "%" is locked at % scope', p_key, lock_at
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('A %s value may not be overridden at %s scope.', lock_at, p_scope),
                  HINT = format('Unlock it at %s scope with aura.unlock_setting(...) first.', lock_at);
    END IF;

    IF def.sensitive THEN
        plain := CASE WHEN jsonb_typeof(canonical) = 'string' THEN canonical #>> '{}' ELSE canonical::text END;
        sealed := aura._seal(plain, p_key);
        fp := aura._fingerprint(plain);
        plain := NULL;
        canonical := NULL;
    END IF;

    -- writers of one setting at one scope queue here, so a first write racing
    -- another sees its row and history records create, then update
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('aura.setting'),
        pg_catalog.hashtext(concat_ws('/', p_restaurant, p_scope, p_scope_id, p_key)));
    IF p_scope = 'system' THEN
        SELECT v.value, v.fingerprint, true INTO old_value, old_fp, had_row
          FROM aura.system_settings v WHERE v.key = p_key FOR UPDATE;
    ELSE
        SELECT v.value, v.fingerprint, true INTO old_value, old_fp, had_row
          FROM aura.setting_values v
         WHERE v.restaurant_id = p_restaurant AND v.scope = p_scope AND v.scope_id = p_scope_id AND v.key = p_key
           FOR UPDATE;
    END IF;
    had_row := coalesce(had_row, false);
    IF had_row AND old_value IS NOT DISTINCT FROM canonical AND old_fp IS NOT DISTINCT FROM fp THEN
        RETURN coalesce(canonical, '"********"');          -- unchanged: nothing to write or log
    END IF;

    IF p_scope = 'system' THEN
        INSERT INTO aura.system_settings AS v (key, value, secret, key_id, fingerprint, updated_by)
        VALUES (p_key, canonical, sealed, aura._sealed_key_id(sealed), fp, aura._caller_name())
        ON CONFLICT (key) DO UPDATE
           SET value = EXCLUDED.value, secret = EXCLUDED.secret, key_id = EXCLUDED.key_id,
               fingerprint = EXCLUDED.fingerprint, updated_at = now(), updated_by = EXCLUDED.updated_by;
    ELSE
        INSERT INTO aura.setting_values AS v (restaurant_id, scope, scope_id, key, value, secret, key_id,
                                              fingerprint, updated_by)
        VALUES (p_restaurant, p_scope, p_scope_id, p_key, canonical, sealed, aura._sealed_key_id(sealed), fp,
                aura._caller_name())
        ON CONFLICT (restaurant_id, scope, scope_id, key) DO UPDATE
           SET value = EXCLUDED.value, secret = EXCLUDED.secret, key_id = EXCLUDED.key_id,
               fingerprint = EXCLUDED.fingerprint, updated_at = now(), updated_by = EXCLUDED.updated_by;
    END IF;
    PERFORM aura._log_setting(p_restaurant, p_scope, p_scope_id, p_key,
                              CASE WHEN had_row THEN 'update' ELSE 'create' END, p_source,
                              aura._history_value(old_value, old_fp), aura._history_value(canonical, fp), p_reason);
    RETURN coalesce(canonical, '"********"');
END
$$;

-- _delete_setting: remove the value at one scope; true when there was one
CREATE FUNCTION aura._delete_setting(p_restaurant bigint, p_scope text, p_scope_id bigint, p_key text,
                                     p_reason text, p_source text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    old_value jsonb;
    old_fp text;
BEGIN
    IF p_scope = 'system' THEN
        DELETE FROM aura.system_settings v WHERE v.key = p_key
        RETURNING v.value, v.fingerprint INTO old_value, old_fp;
    ELSE
        DELETE FROM aura.setting_values v
         WHERE v.restaurant_id = p_restaurant AND v.scope = p_scope AND v.scope_id = p_scope_id AND v.key = p_key
        RETURNING v.value, v.fingerprint INTO old_value, old_fp;
    END IF;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM aura._log_setting(p_restaurant, p_scope, p_scope_id, p_key, 'delete', p_source,
                              aura._history_value(old_value, old_fp), NULL, p_reason);
    RETURN true;
END
$$;

CREATE FUNCTION aura._require_key(p_key text) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF p_key IS NULL THEN
        RAISE EXCEPTION 'setting key must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM aura.setting_definitions d WHERE d.key = p_key) THEN
        RAISE EXCEPTION 'unknown setting "%"', left(p_key, 100)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'aura.setting_definitions lists the settings.';
    END IF;
END
$$;

CREATE FUNCTION aura.set_setting(key text, value jsonb, scope text DEFAULT 'system',
                                 scope_id bigint DEFAULT NULL, reason text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
    result jsonb;
BEGIN
    PERFORM aura._require_key(set_setting.key);
    t := aura._setting_target(set_setting.scope, set_setting.scope_id);
    result := aura._put_setting(t.restaurant_id, t.scope, t.scope_id, set_setting.key, set_setting.value,
                                set_setting.reason, 'direct');
    -- depends_on / conflicts_with (aura._check_relations, 11_settings_templates.sql)
    PERFORM aura._check_relations(t.restaurant_id, t.scope, t.scope_id, ARRAY[set_setting.key]);
    RETURN result;
END
$$;
COMMENT ON FUNCTION aura.set_setting(text, jsonb, text, bigint, text) IS 'Validates and stores a setting value at a scope (system, restaurant, location, user); returns it canonically (secrets ********).';

CREATE FUNCTION aura.reset_setting(key text, scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                   reason text DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
BEGIN
    PERFORM aura._require_key(reset_setting.key);
    t := aura._setting_target(reset_setting.scope, reset_setting.scope_id);
    RETURN aura._delete_setting(t.restaurant_id, t.scope, t.scope_id, reset_setting.key, reset_setting.reason, 'direct');
END
$$;
COMMENT ON FUNCTION aura.reset_setting(text, text, bigint, text) IS 'Removes the value at one scope, so the setting inherits again; true when there was a value.';

CREATE FUNCTION aura.bulk_set_settings(settings jsonb, scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                       reason text DEFAULT NULL)
    RETURNS TABLE (key text, value jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
    item record;
BEGIN
    IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
        RAISE EXCEPTION 'settings must be a JSON object of key: value'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('got %s', coalesce(jsonb_typeof(settings), 'NULL'));
    END IF;
    t := aura._setting_target(bulk_set_settings.scope, bulk_set_settings.scope_id);
    -- validate everything first: one bad value rejects the whole batch
    FOR item IN SELECT e.key, e.value FROM jsonb_each(settings) e ORDER BY e.key LOOP
        PERFORM aura._require_key(item.key);
        PERFORM aura._validate_setting(item.key, item.value, t.scope);
    END LOOP;
    FOR item IN SELECT e.key, e.value FROM jsonb_each(settings) e ORDER BY e.key LOOP
        key := item.key;
        value := aura._put_setting(t.restaurant_id, t.scope, t.scope_id, item.key, item.value,
                                   bulk_set_settings.reason, 'bulk');
        RETURN NEXT;
    END LOOP;
    PERFORM aura._check_relations(t.restaurant_id, t.scope, t.scope_id, ARRAY(SELECT jsonb_object_keys(settings)));
END
$$;
COMMENT ON FUNCTION aura.bulk_set_settings(jsonb, text, bigint, text) IS 'Sets many settings at one scope, all or nothing.';

CREATE FUNCTION aura._set_lock(p_key text, p_scope text, p_scope_id bigint, p_locked boolean, p_reason text)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
    was boolean;
BEGIN
    PERFORM aura._require_key(p_key);
    t := aura._setting_target(p_scope, p_scope_id);
    IF t.scope = 'user' THEN
        RAISE EXCEPTION 'user settings cannot be locked' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Lock at system, restaurant or location scope.';
    END IF;
    IF t.scope = 'system' THEN
        SELECT v.locked INTO was FROM aura.system_settings v WHERE v.key = p_key FOR UPDATE;
    ELSE
        SELECT v.locked INTO was FROM aura.setting_values v
         WHERE v.restaurant_id = t.restaurant_id AND v.scope = t.scope AND v.scope_id = t.scope_id AND v.key = p_key
           FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'setting "%" has no value at % scope to lock', p_key, t.scope
            USING ERRCODE = 'no_data_found', HINT = 'Set a value at that scope first with aura.set_setting(...).';
    END IF;
    IF was = p_locked THEN
        RETURN false;
    END IF;
    IF t.scope = 'system' THEN
        UPDATE aura.system_settings v SET locked = p_locked, updated_at = now(), updated_by = aura._caller_name()
         WHERE v.key = p_key;
    ELSE
        UPDATE aura.setting_values v SET locked = p_locked, updated_at = now(), updated_by = aura._caller_name()
         WHERE v.restaurant_id = t.restaurant_id AND v.scope = t.scope AND v.scope_id = t.scope_id AND v.key = p_key;
    END IF;
    PERFORM aura._log_setting(t.restaurant_id, t.scope, t.scope_id, p_key,
                              CASE WHEN p_locked THEN 'lock' ELSE 'unlock' END, 'direct', NULL, NULL, p_reason);
    RETURN true;
END
$$;

CREATE FUNCTION aura.lock_setting(key text, scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                  reason text DEFAULT NULL)
    RETURNS boolean LANGUAGE sql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$ SELECT aura._set_lock(key, scope, scope_id, true, reason) $$;
COMMENT ON FUNCTION aura.lock_setting(text, text, bigint, text) IS 'Locks the value at a scope: lower scopes can no longer override it (and existing lower values are ignored).';
CREATE FUNCTION aura.unlock_setting(key text, scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                    reason text DEFAULT NULL)
    RETURNS boolean LANGUAGE sql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$ SELECT aura._set_lock(key, scope, scope_id, false, reason) $$;
COMMENT ON FUNCTION aura.unlock_setting(text, text, bigint, text) IS 'Removes a lock set by aura.lock_setting.';

-- History query ---------------------------------------------------------------
-- _check_scope_name: NULL or a scope name, else 22023
CREATE FUNCTION aura._check_scope_name(p_scope text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
    IF p_scope IS NOT NULL AND lower(p_scope) NOT IN ('system', 'restaurant', 'location', 'user') THEN
        RAISE EXCEPTION 'unknown scope "%"', left(p_scope, 100)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Scopes are system, restaurant, location and user.';
    END IF;
    RETURN true;
END
$$;
CREATE FUNCTION aura.setting_history(key text DEFAULT NULL, scope text DEFAULT NULL, scope_id bigint DEFAULT NULL,
                                     since timestamptz DEFAULT NULL)
    RETURNS TABLE (id bigint, restaurant_id bigint, key text, scope text, scope_id bigint, action text,
                   source text, old_value jsonb, new_value jsonb, changed_by text, app_user_id bigint,
                   changed_at timestamptz, reason text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT x.* FROM (
        SELECT h.id, NULL::bigint AS restaurant_id, h.key, h.scope, h.scope_id, h.action, h.source, h.old_value, h.new_value,
               h.changed_by, h.app_user_id, h.changed_at, h.reason
          FROM aura.system_setting_history h
         WHERE coalesce(setting_history.scope, 'system') = 'system'
        UNION ALL
        SELECT h.id, h.restaurant_id, h.key, h.scope, h.scope_id, h.action, h.source, h.old_value, h.new_value,
               h.changed_by, h.app_user_id, h.changed_at, h.reason
          FROM aura.setting_history h
         WHERE coalesce(setting_history.scope, h.scope) = h.scope
           AND (setting_history.scope_id IS NULL OR h.scope_id = setting_history.scope_id)) x
     WHERE aura._check_scope_name(setting_history.scope)    -- evaluated once, before any row
       AND (setting_history.key IS NULL OR x.key = setting_history.key)
       AND (setting_history.since IS NULL OR x.changed_at >= setting_history.since)
     ORDER BY x.changed_at, x.restaurant_id NULLS FIRST, x.id
$$;
COMMENT ON FUNCTION aura.setting_history(text, text, bigint, timestamptz) IS 'History of setting changes visible to the caller (tenant rows by row-level security; system rows for aura_admin).';

-- Views: values as readers may see them (secrets ********) ------------------
CREATE VIEW aura.configured_settings WITH (security_barrier) AS
    SELECT 'system'::text AS scope, NULL::bigint AS restaurant_id, NULL::bigint AS scope_id, s.key,
           CASE WHEN s.secret IS NOT NULL THEN '"********"'::jsonb ELSE s.value END AS value,
           s.key_id, s.locked, s.updated_at, s.updated_by
      FROM aura.system_settings s
    UNION ALL
    SELECT v.scope, v.restaurant_id, v.scope_id, v.key,
           CASE WHEN v.secret IS NOT NULL THEN '"********"'::jsonb ELSE v.value END,
           v.key_id, v.locked, v.updated_at, v.updated_by
      FROM aura.setting_values v
     WHERE v.restaurant_id = aura.current_restaurant() OR aura.is_admin();
COMMENT ON VIEW aura.configured_settings IS 'Every stored value (system rows and the restaurant in context), secrets shown as ********.';

-- Privileges -----------------------------------------------------------------
GRANT SELECT ON aura.setting_groups, aura.setting_definitions TO aura_staff, aura_reporting;
GRANT INSERT, UPDATE, DELETE ON aura.setting_groups, aura.setting_definitions TO aura_admin;
GRANT SELECT ON aura.configured_settings TO aura_manager, aura_reporting;
GRANT SELECT ON aura.setting_history TO aura_manager;
GRANT SELECT ON aura.system_setting_history TO aura_manager;   -- rows: aura_admin only (RLS)
GRANT EXECUTE ON FUNCTION
    aura.get_setting(text, bigint, bigint, bigint), aura.get_setting_int(text, bigint, bigint, bigint),
    aura.get_setting_numeric(text, bigint, bigint, bigint), aura.get_setting_bool(text, bigint, bigint, bigint),
    aura.get_setting_text(text, bigint, bigint, bigint), aura.get_setting_interval(text, bigint, bigint, bigint),
    aura._resolve_setting(text, bigint, bigint, bigint), aura.effective_settings(bigint, bigint, bigint),
    aura._validate_setting(text, jsonb, text)
    TO aura_staff, aura_reporting;
-- staff may change only their own user settings (checked in aura._setting_target)
GRANT EXECUTE ON FUNCTION
    aura.set_setting(text, jsonb, text, bigint, text), aura.reset_setting(text, text, bigint, text),
    aura.bulk_set_settings(jsonb, text, bigint, text)
    TO aura_staff;
GRANT EXECUTE ON FUNCTION
    aura.lock_setting(text, text, bigint, text), aura.unlock_setting(text, text, bigint, text),
    aura._set_lock(text, text, bigint, boolean, text),
    aura.setting_history(text, text, bigint, timestamptz), aura._check_scope_name(text)
    TO aura_manager;
GRANT EXECUTE ON FUNCTION aura.encryption_key_status() TO aura_admin;

CREATE FUNCTION aura.reveal_secret(key text, scope text DEFAULT 'system', scope_id bigint DEFAULT NULL)
    RETURNS text LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_reveal_secret';
COMMENT ON FUNCTION aura.reveal_secret(text, text, bigint) IS 'Plaintext of a sensitive setting stored at exactly that scope; aura_admin only; recorded in history once per transaction and in the server log.';
GRANT EXECUTE ON FUNCTION aura.reveal_secret(text, text, bigint) TO aura_admin;

-- Shipped catalog -------------------------------------------------------------
INSERT INTO aura.setting_groups (name, label, description, sort) VALUES
    ('general',       'General',        'Identity and locale of the restaurant', 10),
    ('display',       'Display',        'How amounts, dates and receipts look', 20),
    ('operations',    'Operations',     'Opening hours, service, tables and orders', 30),
    ('payment',       'Payment',        'Taxes, tips and service charges', 40),
    ('loyalty',       'Loyalty',        'Points, tiers and their expiry', 50),
    ('rewards',       'Rewards',        'Issued rewards and redemption', 60),
    ('insights',      'Insights',       'Business insights: threading, deduplication, export', 70),
    ('notifications', 'Notifications',  'Email, Slack and SMS channels', 80),
    ('security',      'Security',       'Sessions and access', 90),
    ('compliance',    'Compliance',     'Data retention', 100);

INSERT INTO aura.setting_definitions
    (key, category, group_name, sort, type, default_value, min_value, max_value, min_length, max_length,
     pattern, allowed_values, required_keys, allowed_scopes, description) VALUES
-- general
('general.restaurant_name', 'general', 'general', 10, 'string', NULL, NULL, NULL, 1, 200, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Display name used on receipts and messages (location names may differ)'),
('general.timezone', 'general', 'general', 20, 'string', '"UTC"', NULL, NULL, 1, 64, '^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$', NULL, NULL,
    '{system,restaurant,location}', 'IANA time zone used for business days, hours and reports'),
('general.locale', 'general', 'general', 30, 'string', '"en-US"', NULL, NULL, 2, 35, '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$', NULL, NULL,
    '{system,restaurant,location,user}', 'BCP 47 language tag for messages and formatting'),
('general.go_live_at', 'general', 'general', 35, 'datetime', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'When the restaurant or location started using aura (reports start here)'),
('general.business_day_start', 'general', 'general', 40, 'string', '"04:00"', NULL, NULL, 5, 5, '^([01][0-9]|2[0-3]):[0-5][0-9]$', NULL, NULL,
    '{system,restaurant,location}', 'Local time at which a business day starts (HH:MM)'),
-- display
('display.currency', 'display', 'display', 10, 'string', '"USD"', NULL, NULL, 3, 3, '^[A-Z]{3}$', NULL, NULL,
    '{system,restaurant,location}', 'ISO 4217 currency code shown with amounts'),
('display.currency_position', 'display', 'display', 20, 'enum', '"before"', NULL, NULL, NULL, NULL, NULL, '{before,after}', NULL,
    '{system,restaurant,location,user}', 'Currency symbol before or after the amount'),
('display.decimal_places', 'display', 'display', 30, 'integer', '2', 0, 4, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Decimal places shown for amounts'),
('display.date_format', 'display', 'display', 40, 'enum', '"YYYY-MM-DD"', NULL, NULL, NULL, NULL, NULL, '{YYYY-MM-DD,DD/MM/YYYY,MM/DD/YYYY,DD.MM.YYYY}', NULL,
    '{system,restaurant,location,user}', 'Date format of screens and receipts'),
('display.time_format', 'display', 'display', 50, 'enum', '"24h"', NULL, NULL, NULL, NULL, NULL, '{24h,12h}', NULL,
    '{system,restaurant,location,user}', 'Clock format'),
('display.receipt_footer', 'display', 'display', 60, 'string', '""', NULL, NULL, 0, 500, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Text printed at the bottom of receipts'),
-- operations
('operations.business_hours', 'operations', 'operations', 10, 'json',
    '{"mon": [["11:00","22:00"]], "tue": [["11:00","22:00"]], "wed": [["11:00","22:00"]], "thu": [["11:00","22:00"]], "fri": [["11:00","23:00"]], "sat": [["11:00","23:00"]], "sun": [["11:00","21:00"]]}',
    NULL, NULL, NULL, NULL, NULL, NULL, '{mon,tue,wed,thu,fri,sat,sun}',
    '{system,restaurant,location}', 'Opening hours per weekday: lists of [open, close] local times'),
('operations.service_style', 'operations', 'operations', 20, 'enum', '"table_service"', NULL, NULL, NULL, NULL, NULL, '{counter,table_service,mixed}', NULL,
    '{system,restaurant,location}', 'How guests are served'),
('operations.table_turn_minutes', 'operations', 'operations', 30, 'integer', '90', 5, 600, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Planned minutes per table seating'),
('operations.reservations_enabled', 'operations', 'operations', 40, 'boolean', 'true', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Accept table reservations'),
('operations.online_ordering_enabled', 'operations', 'operations', 50, 'boolean', 'false', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Accept online orders'),
('operations.order_prep_minutes', 'operations', 'operations', 60, 'integer', '20', 1, 240, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Promised preparation time of takeout orders'),
('operations.max_party_size', 'operations', 'operations', 70, 'integer', '12', 1, 500, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Largest party accepted without manager approval'),
-- payment
('payment.tax_rate', 'payment', 'payment', 10, 'numeric', '0', 0, 1, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Sales tax rate as a fraction (0.0825 = 8.25%)'),
('payment.prices_include_tax', 'payment', 'payment', 20, 'boolean', 'false', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Menu prices already include tax'),
('payment.service_charge_rate', 'payment', 'payment', 30, 'numeric', '0', 0, 0.5, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Service charge as a fraction of the bill'),
('payment.tip_suggestions', 'payment', 'payment', 40, 'json', '[0.15, 0.18, 0.20]', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Suggested tip fractions shown at payment'),
('payment.rounding_increment', 'payment', 'payment', 50, 'numeric', '0.01', 0.01, 1, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Cash rounding increment'),
-- loyalty
('loyalty.points_per_unit', 'loyalty', 'loyalty', 10, 'numeric', '1', 0, 1000, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Points earned per unit of currency spent'),
('loyalty.point_value', 'loyalty', 'loyalty', 20, 'numeric', '0.01', 0, 100, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Currency value of one point when redeemed'),
('loyalty.points_expiry_days', 'loyalty', 'loyalty', 30, 'integer', '365', 0, 3650, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Days after which earned points expire (0: never)'),
('loyalty.pending_days', 'loyalty', 'loyalty', 40, 'integer', '0', 0, 90, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Days earned points stay pending before they can be spent'),
('loyalty.allow_negative_balance', 'loyalty', 'loyalty', 50, 'boolean', 'false', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Allow reversals to take a balance below zero'),
('loyalty.tier_downgrade', 'loyalty', 'loyalty', 60, 'enum', '"none"', NULL, NULL, NULL, NULL, NULL, '{none,rolling_12_months,anniversary}', NULL,
    '{system,restaurant}', 'When members can lose a tier'),
('loyalty.tier_grace_days', 'loyalty', 'loyalty', 70, 'integer', '30', 0, 365, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Days a member keeps a tier after falling below its threshold'),
('loyalty.birthday_points', 'loyalty', 'loyalty', 80, 'integer', '0', 0, 1000000, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Points granted on a member''s birthday'),
-- rewards
('rewards.default_validity_days', 'loyalty', 'rewards', 10, 'integer', '30', 1, 3650, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Days an issued reward stays valid unless its template says otherwise'),
('rewards.restore_points_on_cancel', 'loyalty', 'rewards', 20, 'boolean', 'true', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Give the points back when a redeemed reward is cancelled'),
-- insights
('insights.thread_window', 'insights', 'insights', 10, 'duration', '"7 days"', 60, 31536000, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Insights on the same subject within this window join one thread'),
('insights.dedupe_window', 'insights', 'insights', 20, 'duration', '"1 hour"', 0, 2592000, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'An identical insight within this window is a duplicate'),
('insights.auto_dismiss_min_ratings', 'insights', 'insights', 30, 'integer', '3', 1, 1000, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Ratings needed before an insight type can be auto-dismissed'),
('insights.auto_dismiss_irrelevant_ratio', 'insights', 'insights', 40, 'numeric', '0.6', 0, 1, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Share of "irrelevant" ratings that auto-dismisses an insight type'),
('insights.export_row_cap', 'insights', 'insights', 50, 'integer', '100000', 1, 10000000, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Most rows one insights export returns'),
-- notifications
('notifications.email.smtp_host', 'notifications', 'notifications', 10, 'string', NULL, NULL, NULL, 1, 253, '^[A-Za-z0-9.-]+$', NULL, NULL,
    '{system,restaurant}', 'SMTP server host name'),
('notifications.email.smtp_port', 'notifications', 'notifications', 20, 'integer', '587', 1, 65535, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'SMTP server port'),
('notifications.email.smtp_tls', 'notifications', 'notifications', 30, 'enum', '"starttls"', NULL, NULL, NULL, NULL, NULL, '{none,starttls,tls}', NULL,
    '{system,restaurant}', 'SMTP transport security'),
('notifications.email.username', 'notifications', 'notifications', 40, 'string', NULL, NULL, NULL, 1, 320, NULL, NULL, NULL,
    '{system,restaurant}', 'SMTP login'),
('notifications.email.from', 'notifications', 'notifications', 60, 'string', NULL, NULL, NULL, 3, 320, '^[^@\s]+@[^@\s]+$', NULL, NULL,
    '{system,restaurant}', 'Sender address of notification emails'),
('notifications.sms.base_url', 'notifications', 'notifications', 110, 'string', NULL, NULL, NULL, 8, 2048, '^https?://', NULL, NULL,
    '{system,restaurant}', 'Base URL of the SMS provider API'),
('notifications.sms.account_sid', 'notifications', 'notifications', 120, 'string', NULL, NULL, NULL, 1, 200, NULL, NULL, NULL,
    '{system,restaurant}', 'SMS provider account id'),
('notifications.sms.from', 'notifications', 'notifications', 140, 'string', NULL, NULL, NULL, 3, 32, '^\+?[0-9A-Za-z ]+$', NULL, NULL,
    '{system,restaurant}', 'Sender number or name of SMS'),
('notifications.retention_days', 'compliance', 'compliance', 10, 'integer', '90', 1, 3650, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Days delivered notifications are kept'),
-- security
('security.session_timeout', 'security', 'security', 10, 'duration', '"8 hours"', 60, 604800, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant}', 'Idle time after which application sessions end'),
('security.require_manager_pin_for_refunds', 'security', 'security', 20, 'boolean', 'true', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    '{system,restaurant,location}', 'Refunds need a manager PIN');

-- secrets: type secret (always sensitive, no default)
INSERT INTO aura.setting_definitions
    (key, category, group_name, sort, type, sensitive, min_length, max_length, pattern, allowed_scopes, description) VALUES
('notifications.email.password', 'notifications', 'notifications', 50, 'secret', true, 1, 1024, NULL,
    '{system,restaurant}', 'SMTP password (encrypted at rest)'),
('notifications.slack.webhook_url', 'notifications', 'notifications', 100, 'secret', true, 20, 2048, '^https://',
    '{system,restaurant,location}', 'Slack incoming-webhook URL (encrypted at rest)'),
('notifications.sms.auth_token', 'notifications', 'notifications', 130, 'secret', true, 1, 1024, NULL,
    '{system,restaurant}', 'SMS provider auth token (encrypted at rest)');

UPDATE aura.setting_definitions SET help_text = 'Months count as 30 days for the minimum and maximum (seconds).'
 WHERE type = 'duration';
UPDATE aura.setting_definitions SET builtin = true;
UPDATE aura.setting_groups SET builtin = true;

-- Key rotation -----------------------------------------------------------------
CREATE FUNCTION aura._current_key_id() RETURNS text
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'aura_current_key_id';

-- rotate_encryption_key_batch: re-seal up to batch values sealed with an
-- older key under the current key; returns progress.  Rows locked by a
-- concurrent writer are skipped and picked up by a later batch.
CREATE FUNCTION aura.rotate_encryption_key_batch(batch int DEFAULT 1000,
                                                 OUT reencrypted int, OUT remaining bigint, OUT current_key_id text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r record;
    plain text;
    fp text;
BEGIN
    IF NOT aura._caller_has('aura_admin') THEN
        RAISE EXCEPTION 'only aura_admin may rotate the encryption key' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF batch IS NULL OR batch < 1 OR batch > 100000 THEN
        RAISE EXCEPTION 'batch must be between 1 and 100000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('batch: %s', coalesce(batch::text, 'NULL'));
    END IF;
    current_key_id := aura._current_key_id();
    reencrypted := 0;
    FOR r IN SELECT s.key, s.secret, s.fingerprint FROM aura.system_settings s
              WHERE s.key_id IS DISTINCT FROM current_key_id AND s.secret IS NOT NULL
              ORDER BY s.key LIMIT batch FOR UPDATE SKIP LOCKED LOOP
        plain := aura._unseal(r.secret, r.key);
        fp := aura._fingerprint(plain);
        UPDATE aura.system_settings s SET secret = aura._seal(plain, r.key), key_id = current_key_id,
               fingerprint = fp, updated_at = now(), updated_by = aura._caller_name()
         WHERE s.key = r.key;
        plain := NULL;
        PERFORM aura._log_setting(NULL, 'system', NULL, r.key, 'reencrypt', 'rotation',
                                  jsonb_build_object('fingerprint', r.fingerprint), jsonb_build_object('fingerprint', fp),
                                  'key rotation to ' || current_key_id);
        reencrypted := reencrypted + 1;
    END LOOP;
    IF reencrypted < batch THEN
    FOR r IN SELECT v.restaurant_id, v.scope, v.scope_id, v.key, v.secret, v.fingerprint FROM aura.setting_values v
              WHERE v.key_id IS DISTINCT FROM current_key_id AND v.secret IS NOT NULL
              ORDER BY v.restaurant_id, v.scope, v.scope_id, v.key
              LIMIT batch - reencrypted FOR UPDATE SKIP LOCKED LOOP
        plain := aura._unseal(r.secret, r.key);
        fp := aura._fingerprint(plain);
        UPDATE aura.setting_values v SET secret = aura._seal(plain, r.key), key_id = current_key_id,
               fingerprint = fp, updated_at = now(), updated_by = aura._caller_name()
         WHERE v.restaurant_id = r.restaurant_id AND v.scope = r.scope AND v.scope_id = r.scope_id AND v.key = r.key;
        plain := NULL;
        PERFORM aura._log_setting(r.restaurant_id, r.scope, r.scope_id, r.key, 'reencrypt', 'rotation',
                                  jsonb_build_object('fingerprint', r.fingerprint), jsonb_build_object('fingerprint', fp),
                                  'key rotation to ' || current_key_id);
        reencrypted := reencrypted + 1;
    END LOOP;
    END IF;
    SELECT (SELECT count(*) FROM aura.system_settings s WHERE s.secret IS NOT NULL AND s.key_id IS DISTINCT FROM current_key_id)
         + (SELECT count(*) FROM aura.setting_values v WHERE v.secret IS NOT NULL AND v.key_id IS DISTINCT FROM current_key_id)
      INTO remaining;
END
$$;
COMMENT ON FUNCTION aura.rotate_encryption_key_batch(int) IS 'One batch of key rotation: re-seals up to batch secret values with the current key; returns how many, how many remain and the current key id.';

-- rotate_encryption_key: batches, each committed, with progress notices.
-- Interrupt it any time; calling it again resumes with what is left.
CREATE PROCEDURE aura.rotate_encryption_key(batch int DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    r record;
    total bigint := 0;
    n int;
BEGIN
    LOOP
        r := aura.rotate_encryption_key_batch(batch);
        total := total + r.reencrypted;
        RAISE NOTICE 're-encrypted % value(s) with key %, % remaining', total, r.current_key_id, r.remaining;
        COMMIT;
        EXIT WHEN r.remaining = 0 OR r.reencrypted = 0;
    END LOOP;
    -- the other sealed secrets: notification channels and webhooks
    -- (aura.reseal_notification_secrets, also run by a dispatcher job)
    total := 0;
    LOOP
        n := aura.reseal_notification_secrets(batch);
        total := total + n;
        COMMIT;
        EXIT WHEN n < batch;
    END LOOP;
    IF total > 0 THEN
        RAISE NOTICE 're-sealed % notification secret value(s) with key %', total, r.current_key_id;
    END IF;
    IF r.remaining > 0 THEN
        RAISE WARNING '% value(s) could not be re-encrypted now (locked by other transactions)', r.remaining
            USING HINT = 'Call aura.rotate_encryption_key() again.';
    END IF;
END
$$;
COMMENT ON PROCEDURE aura.rotate_encryption_key(int) IS 'Online key rotation: re-seals every secret value (settings, notification channels, webhooks) with the current key in committed batches; interruptible and resumable.';

CREATE VIEW aura.encryption_key_usage AS
    SELECT key_id, count(*) AS secret_values
      FROM (SELECT key_id FROM aura.system_settings WHERE key_id IS NOT NULL
            UNION ALL SELECT key_id FROM aura.setting_values WHERE key_id IS NOT NULL) k
     GROUP BY key_id;
COMMENT ON VIEW aura.encryption_key_usage IS 'How many secret values each key id seals (rotation progress).';

GRANT EXECUTE ON FUNCTION aura.rotate_encryption_key_batch(int) TO aura_admin;
REVOKE ALL ON PROCEDURE aura.rotate_encryption_key(int) FROM PUBLIC;   -- 99_privileges covers functions only
GRANT EXECUTE ON PROCEDURE aura.rotate_encryption_key(int) TO aura_admin;
GRANT SELECT ON aura.encryption_key_usage TO aura_admin;

-- deployment_check items ------------------------------------------------------
CREATE FUNCTION aura._check_encryption_key(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    st record;
    total bigint;
    stale bigint;
BEGIN
    st := aura.encryption_key_status();
    SELECT coalesce(sum(secret_values), 0),
           coalesce(sum(secret_values) FILTER (WHERE key_id IS DISTINCT FROM st.current_key_id), 0)
      INTO total, stale FROM aura.encryption_key_usage;
    IF NOT st.configured THEN
        ok := false;
        detail := format('no master key loaded (%s): set aura.encryption_key_file or aura.encryption_key_command '
                         'and reload; %s secret value(s) cannot be read', st.error, total);
        RETURN;
    END IF;
    ok := true;
    detail := format('key %s loaded from %s (%s key(s)); %s secret value(s)', st.current_key_id, st.source,
                     st.key_count, total);
    IF stale > 0 THEN
        detail := detail || format(', %s sealed with older keys: CALL aura.rotate_encryption_key()', stale);
    END IF;
END
$$;
UPDATE aura.deployment_items SET check_fn = 'aura._check_encryption_key' WHERE name = 'encryption_key';

CREATE FUNCTION aura._check_settings_imported(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    defs bigint;
    sys bigint;
    configured bigint;
    restaurants bigint;
BEGIN
    SELECT count(*) INTO defs FROM aura.setting_definitions;
    SELECT count(*) INTO sys FROM aura.system_settings;
    SELECT count(DISTINCT restaurant_id) INTO configured FROM aura.setting_values;
    SELECT count(*) INTO restaurants FROM aura.restaurants;
    ok := defs > 0 AND (sys > 0 OR configured > 0);
    detail := format('%s definitions; %s system value(s); %s of %s restaurant(s) with own values', defs, sys,
                     configured, restaurants);
    IF NOT ok THEN
        detail := detail || ': apply a preset (aura.apply_template) or import settings (aura.import_settings)';
    END IF;
END
$$;
UPDATE aura.deployment_items SET check_fn = 'aura._check_settings_imported' WHERE name = 'settings_imported';
GRANT EXECUTE ON FUNCTION aura._check_encryption_key(), aura._check_settings_imported() TO aura_manager;

-- Declared privileges (checked against the catalog by aura.privilege_mismatches)
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._caller_has(text)', 'function', '-', ''),
    ('aura._caller_name()', 'function', '-', ''),
    ('aura._check_encryption_key()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._check_settings_imported()', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._current_key_id()', 'function', '-', ''),
    ('aura._delete_setting(bigint, text, bigint, text, text, text)', 'function', '-', ''),
    ('aura._fingerprint(text)', 'function', '-', ''),
    ('aura._history_value(jsonb, text)', 'function', '-', ''),
    ('aura._log_setting(bigint, text, bigint, text, text, text, jsonb, jsonb, text)', 'function', '-', ''),
    ('aura._put_setting(bigint, text, bigint, text, jsonb, text, text)', 'function', '-', ''),
    ('aura._require_key(text)', 'function', '-', ''),
    ('aura._resolve_setting(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._resolve_setting(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._seal(text, text)', 'function', '-', ''),
    ('aura._sealed_key_id(bytea)', 'function', '-', ''),
    ('aura._set_lock(text, text, bigint, boolean, text)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura._setting_definition_check()', 'function', '-', ''),
    ('aura._setting_target(text, bigint)', 'function', '-', ''),
    ('aura._settings_invalidate()', 'function', '-', ''),
    ('aura._unseal(bytea, text)', 'function', '-', ''),
    ('aura._validate_setting(text, jsonb, text)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._validate_setting(text, jsonb, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.bulk_set_settings(jsonb, text, bigint, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.configured_settings', 'view', 'aura_manager', 'SELECT'),
    ('aura.configured_settings', 'view', 'aura_reporting', 'SELECT'),
    ('aura.effective_settings(bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.effective_settings(bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.encryption_key_status()', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.encryption_key_usage', 'view', 'aura_admin', 'SELECT'),
    ('aura.get_setting(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.get_setting(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.get_setting_bool(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.get_setting_bool(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.get_setting_int(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.get_setting_int(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.get_setting_interval(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.get_setting_interval(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.get_setting_numeric(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.get_setting_numeric(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.get_setting_text(text, bigint, bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.get_setting_text(text, bigint, bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.lock_setting(text, text, bigint, text)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.reset_setting(text, text, bigint, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.reveal_secret(text, text, bigint)', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.rotate_encryption_key_batch(integer)', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.set_setting(text, jsonb, text, bigint, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.setting_definitions', 'table', 'aura_admin', 'DELETE,INSERT,UPDATE'),
    ('aura.setting_definitions', 'table', 'aura_reporting', 'SELECT'),
    ('aura.setting_definitions', 'table', 'aura_staff', 'SELECT'),
    ('aura.setting_groups', 'table', 'aura_admin', 'DELETE,INSERT,UPDATE'),
    ('aura.setting_groups', 'table', 'aura_reporting', 'SELECT'),
    ('aura.setting_groups', 'table', 'aura_staff', 'SELECT'),
    ('aura.setting_history', 'table', 'aura_manager', 'SELECT'),
    ('aura.setting_history(text, text, bigint, timestamp with time zone)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.setting_history_id_seq', 'sequence', '-', ''),
    ('aura.setting_values', 'table', '-', ''),
    ('aura.system_setting_history', 'table', 'aura_manager', 'SELECT'),
    ('aura.system_setting_history_id_seq', 'sequence', '-', ''),
    ('aura.system_settings', 'table', '-', ''),
    ('aura.unlock_setting(text, text, bigint, text)', 'function', 'aura_manager', 'EXECUTE');
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura.rotate_encryption_key(integer)', 'function', 'aura_admin', 'EXECUTE');

-- Declared privileges (checked against the catalog by aura.privilege_mismatches)
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._check_scope_name(text)', 'function', 'aura_manager', 'EXECUTE');
