------------------------------------------------------------------------------
-- Settings, part 2: templates and presets, import/export, versions
-- (docs/settings.md).  Builds on 10_settings.sql.
------------------------------------------------------------------------------

-- _scope_values: the values stored at exactly one scope (system or tenant)
CREATE FUNCTION aura._scope_values(p_restaurant bigint, p_scope text, p_scope_id bigint)
    RETURNS TABLE (key text, value jsonb, secret bytea, key_id text, fingerprint text, locked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
    SELECT s.key, s.value, s.secret, s.key_id, s.fingerprint, s.locked
      FROM aura.system_settings s WHERE p_scope = 'system'
    UNION ALL
    SELECT v.key, v.value, v.secret, v.key_id, v.fingerprint, v.locked
      FROM aura.setting_values v
     WHERE p_scope <> 'system' AND v.restaurant_id = p_restaurant AND v.scope = p_scope AND v.scope_id = p_scope_id
$$;

-- _restore_sealed: put a sealed value back as it was (rollback of a secret)
CREATE FUNCTION aura._restore_sealed(p_restaurant bigint, p_scope text, p_scope_id bigint, p_key text,
                                     p_secret bytea, p_fingerprint text, p_source text, p_reason text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    old_value jsonb;
    old_fp text;
    had_row boolean;
BEGIN
    PERFORM aura._unseal(p_secret, p_key);      -- still readable with the loaded keys?
    SELECT sv.value, sv.fingerprint, true INTO old_value, old_fp, had_row
      FROM aura._scope_values(p_restaurant, p_scope, p_scope_id) sv WHERE sv.key = p_key;
    IF old_fp IS NOT DISTINCT FROM p_fingerprint AND old_value IS NULL AND had_row THEN
        RETURN;
    END IF;
    IF p_scope = 'system' THEN
        INSERT INTO aura.system_settings AS s (key, secret, key_id, fingerprint, updated_by)
        VALUES (p_key, p_secret, aura._sealed_key_id(p_secret), p_fingerprint, aura._caller_name())
        ON CONFLICT (key) DO UPDATE SET value = NULL, secret = EXCLUDED.secret, key_id = EXCLUDED.key_id,
            fingerprint = EXCLUDED.fingerprint, updated_at = now(), updated_by = EXCLUDED.updated_by;
    ELSE
        INSERT INTO aura.setting_values AS s (restaurant_id, scope, scope_id, key, secret, key_id, fingerprint, updated_by)
        VALUES (p_restaurant, p_scope, p_scope_id, p_key, p_secret, aura._sealed_key_id(p_secret), p_fingerprint,
                aura._caller_name())
        ON CONFLICT (restaurant_id, scope, scope_id, key) DO UPDATE SET value = NULL, secret = EXCLUDED.secret,
            key_id = EXCLUDED.key_id, fingerprint = EXCLUDED.fingerprint, updated_at = now(),
            updated_by = EXCLUDED.updated_by;
    END IF;
    PERFORM aura._log_setting(p_restaurant, p_scope, p_scope_id, p_key,
                              CASE WHEN coalesce(had_row, false) THEN 'update' ELSE 'create' END, p_source,
                              aura._history_value(old_value, old_fp), jsonb_build_object('fingerprint', p_fingerprint),
                              p_reason);
END
$$;

-- _set_lock_raw: set the lock flag of an existing value (no permission check)
CREATE FUNCTION aura._set_lock_raw(p_restaurant bigint, p_scope text, p_scope_id bigint, p_key text,
                                   p_locked boolean, p_source text, p_reason text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF p_scope = 'user' THEN
        RETURN;
    ELSIF p_scope = 'system' THEN
        UPDATE aura.system_settings s SET locked = p_locked WHERE s.key = p_key AND s.locked <> p_locked;
    ELSE
        UPDATE aura.setting_values v SET locked = p_locked
         WHERE v.restaurant_id = p_restaurant AND v.scope = p_scope AND v.scope_id = p_scope_id AND v.key = p_key
           AND v.locked <> p_locked;
    END IF;
    IF FOUND THEN
        PERFORM aura._log_setting(p_restaurant, p_scope, p_scope_id, p_key,
                                  CASE WHEN p_locked THEN 'lock' ELSE 'unlock' END, p_source, NULL, NULL, p_reason);
    END IF;
END
$$;

-- _value_for_diff: how a stored value shows in diffs (secrets masked, compared by fingerprint)
CREATE FUNCTION aura._shown(p_value jsonb, p_fingerprint text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN p_fingerprint IS NOT NULL THEN '"********"'::jsonb ELSE p_value END $$;

-- Templates ----------------------------------------------------------------------
CREATE TABLE aura.configuration_templates (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    category    text NOT NULL CHECK (category IN ('preset', 'loyalty', 'notifications', 'operations', 'display',
                                                 'payment', 'insights', 'security', 'custom')),
    description text NOT NULL,
    "values"    jsonb NOT NULL CHECK (jsonb_typeof("values") = 'object'),
    scope       text NOT NULL DEFAULT 'restaurant' CHECK (scope IN ('system', 'restaurant', 'location', 'user')),
    tags        text[] NOT NULL DEFAULT '{}',
    usage_count bigint NOT NULL DEFAULT 0,
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE aura.configuration_templates IS 'Named sets of setting values (presets) that aura.apply_template applies to a scope. Shared by all tenants.';
ALTER TABLE aura.configuration_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.configuration_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY read_all ON aura.configuration_templates FOR SELECT USING (true);
CREATE POLICY admin_write ON aura.configuration_templates USING (aura.is_admin()) WITH CHECK (aura.is_admin());
SELECT pg_catalog.pg_extension_config_dump('aura.configuration_templates', 'WHERE NOT builtin');

-- a template's values must be valid settings for its scope
CREATE FUNCTION aura._template_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    item record;
    canonical jsonb := '{}';
BEGIN
    FOR item IN SELECT e.key, e.value FROM jsonb_each(NEW."values") e LOOP
        IF NOT EXISTS (SELECT 1 FROM aura.setting_definitions d WHERE d.key = item.key) THEN
            RAISE EXCEPTION 'template "%" sets unknown setting "%"', NEW.name, left(item.key, 100)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF EXISTS (SELECT 1 FROM aura.setting_definitions d WHERE d.key = item.key AND d.sensitive) THEN
            RAISE EXCEPTION 'template "%" may not hold secret setting "%"', NEW.name, item.key
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Templates are stored in clear; set secrets directly.';
        END IF;
        canonical := canonical || jsonb_build_object(item.key, aura._validate_setting(item.key, item.value, NEW.scope));
    END LOOP;
    NEW."values" := canonical;
    RETURN NEW;
END
$$;
CREATE TRIGGER configuration_templates_check BEFORE INSERT OR UPDATE OF "values", scope
    ON aura.configuration_templates FOR EACH ROW EXECUTE FUNCTION aura._template_check();

INSERT INTO aura.configuration_templates (name, category, description, scope, tags, builtin, "values") VALUES
('quick_service', 'preset', 'Counter service, fast turns, online ordering', 'restaurant', '{preset,counter,fast}', true,
 '{"operations.service_style": "counter", "operations.table_turn_minutes": 30, "operations.reservations_enabled": false,
   "operations.online_ordering_enabled": true, "operations.order_prep_minutes": 10, "operations.max_party_size": 8,
   "payment.service_charge_rate": 0, "payment.tip_suggestions": [0.10, 0.15, 0.18],
   "loyalty.points_per_unit": 1, "rewards.default_validity_days": 14}'),
('fine_dining', 'preset', 'Table service, long seatings, reservations, service charge', 'restaurant', '{preset,table,premium}', true,
 '{"operations.service_style": "table_service", "operations.table_turn_minutes": 150, "operations.reservations_enabled": true,
   "operations.online_ordering_enabled": false, "operations.max_party_size": 10,
   "payment.service_charge_rate": 0.12, "payment.tip_suggestions": [0.18, 0.20, 0.22],
   "loyalty.points_per_unit": 2, "loyalty.tier_downgrade": "anniversary", "rewards.default_validity_days": 90}'),
('casual_dining', 'preset', 'Table service, moderate turns, reservations and takeout', 'restaurant', '{preset,table}', true,
 '{"operations.service_style": "table_service", "operations.table_turn_minutes": 75, "operations.reservations_enabled": true,
   "operations.online_ordering_enabled": true, "operations.order_prep_minutes": 20, "operations.max_party_size": 12,
   "payment.service_charge_rate": 0, "payment.tip_suggestions": [0.15, 0.18, 0.20],
   "loyalty.points_per_unit": 1, "rewards.default_validity_days": 30}'),
('takeout_focused', 'preset', 'Mostly takeout and delivery, no reservations', 'restaurant', '{preset,takeout,delivery}', true,
 '{"operations.service_style": "counter", "operations.table_turn_minutes": 20, "operations.reservations_enabled": false,
   "operations.online_ordering_enabled": true, "operations.order_prep_minutes": 15, "operations.max_party_size": 6,
   "payment.tip_suggestions": [0.05, 0.10, 0.15], "loyalty.points_per_unit": 1.5, "rewards.default_validity_days": 21}'),
('bar_lounge', 'preset', 'Bar service, late hours, small parties', 'restaurant', '{preset,bar,late}', true,
 '{"operations.service_style": "mixed", "operations.table_turn_minutes": 120, "operations.reservations_enabled": false,
   "operations.online_ordering_enabled": false, "operations.max_party_size": 8,
   "operations.business_hours": {"mon": [], "tue": [["17:00","01:00"]], "wed": [["17:00","01:00"]], "thu": [["17:00","02:00"]],
                                 "fri": [["16:00","02:00"]], "sat": [["16:00","02:00"]], "sun": [["16:00","23:00"]]},
   "payment.tip_suggestions": [0.18, 0.20, 0.25], "loyalty.points_per_unit": 1, "rewards.default_validity_days": 30}');

CREATE FUNCTION aura.apply_template(name text, scope text DEFAULT 'restaurant', scope_id bigint DEFAULT NULL,
                                    override_existing boolean DEFAULT false, dry_run boolean DEFAULT false)
    RETURNS TABLE (key text, action text, old_value jsonb, new_value jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    tpl aura.configuration_templates;
    t record;
    item record;
    cur record;
    canonical jsonb;
BEGIN
    IF apply_template.name IS NULL THEN
        RAISE EXCEPTION 'template name must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO tpl FROM aura.configuration_templates ct WHERE ct.name = apply_template.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'template "%" does not exist', left(apply_template.name, 100)
            USING ERRCODE = 'no_data_found', HINT = 'aura.configuration_templates lists the templates.';
    END IF;
    t := aura._setting_target(apply_template.scope, apply_template.scope_id);
    FOR item IN SELECT e.key, e.value FROM jsonb_each(tpl."values") e ORDER BY e.key LOOP
        key := item.key;
        canonical := aura._validate_setting(item.key, item.value, t.scope);
        SELECT sv.value, sv.fingerprint INTO cur FROM aura._scope_values(t.restaurant_id, t.scope, t.scope_id) sv
         WHERE sv.key = item.key;
        old_value := CASE WHEN FOUND THEN aura._shown(cur.value, cur.fingerprint) END;
        new_value := canonical;
        action := CASE WHEN old_value IS NULL THEN 'set'
                       WHEN old_value = canonical THEN 'unchanged'
                       WHEN override_existing THEN 'override'
                       ELSE 'keep_existing' END;
        IF NOT dry_run AND action IN ('set', 'override') THEN
            PERFORM aura._put_setting(t.restaurant_id, t.scope, t.scope_id, item.key, canonical,
                                      format('template %s', tpl.name), 'template');
        END IF;
        RETURN NEXT;
    END LOOP;
    IF NOT dry_run THEN
        UPDATE aura.configuration_templates ct SET usage_count = ct.usage_count + 1 WHERE ct.name = tpl.name;
        PERFORM aura._check_relations(t.restaurant_id, t.scope, t.scope_id,
                                      ARRAY(SELECT jsonb_object_keys(tpl."values")));
    END IF;
END
$$;
COMMENT ON FUNCTION aura.apply_template(text, text, bigint, boolean, boolean) IS 'Applies a template''s values to a scope, atomically; returns the diff (set, override, keep_existing, unchanged). dry_run only reports.';

-- Export / import ---------------------------------------------------------------
CREATE FUNCTION aura.export_settings(scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                     include_secrets boolean DEFAULT false)
    RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
    sv record;
    vals jsonb := '{}';
    locked text[] := '{}';
    omitted text[] := '{}';
    plain text;
BEGIN
    t := aura._setting_target(export_settings.scope, export_settings.scope_id);
    IF include_secrets AND NOT aura._caller_has('aura_admin') THEN
        RAISE EXCEPTION 'only aura_admin may export secrets' USING ERRCODE = 'insufficient_privilege',
            HINT = 'Export without include_secrets; secrets are then listed under secrets_omitted.';
    END IF;
    FOR sv IN SELECT * FROM aura._scope_values(t.restaurant_id, t.scope, t.scope_id) x ORDER BY x.key LOOP
        IF sv.secret IS NOT NULL THEN
            IF include_secrets THEN
                plain := aura._unseal(sv.secret, sv.key);
                -- sealed text is the string itself for text types, JSON text otherwise
                IF (SELECT d.type FROM aura.setting_definitions d WHERE d.key = sv.key)
                   IN ('string', 'secret', 'enum', 'datetime', 'duration') THEN
                    vals := vals || jsonb_build_object(sv.key, to_jsonb(plain));
                ELSE
                    vals := vals || jsonb_build_object(sv.key, plain::jsonb);
                END IF;
                plain := NULL;
                PERFORM aura._log_setting(t.restaurant_id, t.scope, t.scope_id, sv.key, 'reveal', 'direct',
                                          NULL, NULL, 'export_settings with secrets');
            ELSE
                omitted := omitted || sv.key;
            END IF;
        ELSE
            vals := vals || jsonb_build_object(sv.key, sv.value);
        END IF;
        IF sv.locked THEN
            locked := locked || sv.key;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('format', 'aura.settings', 'version', 1, 'aura_version', aura.version(),
                              'scope', t.scope, 'scope_id', t.scope_id, 'exported_at', now(),
                              'settings', vals, 'locked', to_jsonb(locked), 'secrets_omitted', to_jsonb(omitted));
END
$$;
COMMENT ON FUNCTION aura.export_settings(text, bigint, boolean) IS 'The values stored at one scope as a versioned JSON document (format aura.settings, version 1); secrets omitted unless include_secrets (aura_admin, recorded).';

CREATE FUNCTION aura.import_settings(data jsonb, scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                     mode text DEFAULT 'merge')
    RETURNS TABLE (key text, action text, old_value jsonb, new_value jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
    item record;
    cur record;
    canonical jsonb;
    m text := lower(coalesce(mode, ''));
    lockset text[];
    keep text[];
BEGIN
    IF m NOT IN ('override', 'merge', 'skip_existing') THEN
        RAISE EXCEPTION 'unknown import mode "%"', left(mode, 50) USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Modes: override (the scope becomes exactly the document), merge (document wins), skip_existing (only new keys).';
    END IF;
    IF data IS NULL OR jsonb_typeof(data) <> 'object' OR data->>'format' IS DISTINCT FROM 'aura.settings'
       OR jsonb_typeof(data->'settings') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'not an aura settings document' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'Expected {"format": "aura.settings", "version": 1, "settings": {key: value, ...}}.',
            HINT = 'aura.export_settings(...) writes such documents.';
    END IF;
    IF (data->>'version') IS DISTINCT FROM '1' THEN
        RAISE EXCEPTION 'unsupported settings document version %', coalesce(data->>'version', 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'This aura reads version 1.';
    END IF;
    IF data ? 'locked' AND jsonb_typeof(data->'locked') <> 'array' THEN
        RAISE EXCEPTION '"locked" must be an array of keys' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    t := aura._setting_target(import_settings.scope, import_settings.scope_id);
    lockset := ARRAY(SELECT jsonb_array_elements_text(coalesce(data->'locked', '[]')));
    keep := ARRAY(SELECT jsonb_array_elements_text(coalesce(data->'secrets_omitted', '[]')));

    -- validate everything first: one bad value rejects the whole document
    FOR item IN SELECT e.key, e.value FROM jsonb_each(data->'settings') e LOOP
        PERFORM aura._require_key(item.key);
        PERFORM aura._validate_setting(item.key, item.value, t.scope);
    END LOOP;

    FOR item IN SELECT e.key, e.value FROM jsonb_each(data->'settings') e ORDER BY e.key LOOP
        key := item.key;
        canonical := aura._validate_setting(item.key, item.value, t.scope);
        SELECT sv.value, sv.fingerprint INTO cur FROM aura._scope_values(t.restaurant_id, t.scope, t.scope_id) sv
         WHERE sv.key = item.key;
        old_value := CASE WHEN FOUND THEN aura._shown(cur.value, cur.fingerprint) END;
        new_value := CASE WHEN EXISTS (SELECT 1 FROM aura.setting_definitions d WHERE d.key = item.key AND d.sensitive)
                          THEN '"********"' ELSE canonical END;
        IF old_value IS NOT NULL AND m = 'skip_existing' THEN
            action := 'keep_existing';
        ELSE
            PERFORM aura._put_setting(t.restaurant_id, t.scope, t.scope_id, item.key, canonical,
                                      'import_settings ' || m, 'import');
            action := CASE WHEN old_value IS NULL THEN 'set' WHEN old_value = new_value AND cur.fingerprint IS NULL
                           THEN 'unchanged' ELSE 'override' END;
            PERFORM aura._set_lock_raw(t.restaurant_id, t.scope, t.scope_id, item.key, item.key = ANY (lockset),
                                       'import', 'import_settings ' || m);
        END IF;
        RETURN NEXT;
    END LOOP;

    IF m = 'override' THEN
        FOR cur IN SELECT sv.key, sv.value, sv.fingerprint FROM aura._scope_values(t.restaurant_id, t.scope, t.scope_id) sv
                    WHERE NOT (data->'settings') ? sv.key AND NOT sv.key = ANY (keep) ORDER BY sv.key LOOP
            key := cur.key;
            action := 'remove';
            old_value := aura._shown(cur.value, cur.fingerprint);
            new_value := NULL;
            PERFORM aura._delete_setting(t.restaurant_id, t.scope, t.scope_id, cur.key, 'import_settings override', 'import');
            RETURN NEXT;
        END LOOP;
    END IF;
    PERFORM aura._check_relations(t.restaurant_id, t.scope, t.scope_id,
                                  ARRAY(SELECT jsonb_object_keys(data->'settings')));
END
$$;
COMMENT ON FUNCTION aura.import_settings(jsonb, text, bigint, text) IS 'Imports a settings document into a scope, all or nothing; mode override, merge or skip_existing. Returns what it did per key.';

-- Versions ----------------------------------------------------------------------
CREATE SEQUENCE aura.setting_versions_id_seq;
CREATE TABLE aura.system_setting_versions (
    id          bigint PRIMARY KEY DEFAULT nextval('aura.setting_versions_id_seq'),
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    snapshot    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL
);
COMMENT ON TABLE aura.system_setting_versions IS 'Snapshots of the system-scope settings (secrets kept sealed).';
CREATE TABLE aura.setting_versions (
    restaurant_id bigint NOT NULL REFERENCES aura.restaurants (id) ON DELETE CASCADE,
    id          bigint NOT NULL DEFAULT nextval('aura.setting_versions_id_seq'),
    scope       text NOT NULL CHECK (scope IN ('restaurant', 'location', 'user')),
    scope_id    bigint NOT NULL,
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    snapshot    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.setting_versions IS 'Snapshots of one restaurant, location or user scope (secrets kept sealed).';
-- lookup by version id alone; not unique (Citus: unique keys lead with restaurant_id),
-- ids stay unique because they come from one sequence
CREATE INDEX setting_versions_id ON aura.setting_versions (id);
SELECT aura._register_tenant_table('aura.setting_versions');
ALTER TABLE aura.system_setting_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.system_setting_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_only ON aura.system_setting_versions USING (aura.is_admin()) WITH CHECK (aura.is_admin());
SELECT pg_catalog.pg_extension_config_dump('aura.system_setting_versions', '');

CREATE FUNCTION aura.snapshot_settings(scope text DEFAULT 'system', scope_id bigint DEFAULT NULL,
                                       label text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
    snap jsonb;
    vid bigint;
    lbl text := coalesce(label, 'snapshot ' || to_char(now(), 'YYYY-MM-DD HH24:MI:SS'));
BEGIN
    t := aura._setting_target(snapshot_settings.scope, snapshot_settings.scope_id);
    IF length(lbl) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'label must have 1 to 200 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(jsonb_object_agg(sv.key,
               CASE WHEN sv.secret IS NOT NULL
                    THEN jsonb_build_object('sealed', encode(sv.secret, 'base64'), 'fingerprint', sv.fingerprint,
                                            'locked', sv.locked)
                    ELSE jsonb_build_object('value', sv.value, 'locked', sv.locked) END), '{}')
      INTO snap FROM aura._scope_values(t.restaurant_id, t.scope, t.scope_id) sv;
    IF t.scope = 'system' THEN
        INSERT INTO aura.system_setting_versions (label, snapshot, created_by)
        VALUES (lbl, snap, aura._caller_name()) RETURNING id INTO vid;
    ELSE
        INSERT INTO aura.setting_versions (restaurant_id, scope, scope_id, label, snapshot, created_by)
        VALUES (t.restaurant_id, t.scope, t.scope_id, lbl, snap, aura._caller_name()) RETURNING id INTO vid;
    END IF;
    RETURN vid;
END
$$;
COMMENT ON FUNCTION aura.snapshot_settings(text, bigint, text) IS 'Saves the values stored at one scope as a version; returns its id.';

-- _version: a version the caller may use (permission as for writing its scope)
CREATE FUNCTION aura._version(p_id bigint, OUT restaurant_id bigint, OUT scope text, OUT scope_id bigint,
                              OUT label text, OUT snapshot jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    t record;
BEGIN
    SELECT NULL::bigint, 'system', NULL::bigint, v.label, v.snapshot INTO restaurant_id, scope, scope_id, label, snapshot
      FROM aura.system_setting_versions v WHERE v.id = p_id;
    IF NOT FOUND THEN
        SELECT v.restaurant_id, v.scope, v.scope_id, v.label, v.snapshot INTO restaurant_id, scope, scope_id, label, snapshot
          FROM aura.setting_versions v WHERE v.id = p_id;
    END IF;
    IF scope IS NULL OR (restaurant_id IS DISTINCT FROM aura.current_restaurant() AND scope <> 'system'
                         AND NOT aura._caller_has('aura_admin')) THEN
        RAISE EXCEPTION 'settings version does not exist' USING ERRCODE = 'no_data_found',
            DETAIL = format('version id: %s', coalesce(p_id::text, 'NULL')),
            HINT = 'aura.settings_versions lists the versions you may use.';
    END IF;
    t := aura._setting_target(scope, CASE WHEN scope = 'system' THEN NULL ELSE scope_id END);
END
$$;

CREATE FUNCTION aura.diff_settings(version_a bigint, version_b bigint DEFAULT NULL)
    RETURNS TABLE (key text, change text, value_a jsonb, value_b jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    a record;
    b record;
    snap_b jsonb;
BEGIN
    a := aura._version(version_a);
    IF version_b IS NULL THEN            -- compare with the current values of that scope
        SELECT coalesce(jsonb_object_agg(sv.key,
                   CASE WHEN sv.secret IS NOT NULL THEN jsonb_build_object('fingerprint', sv.fingerprint, 'locked', sv.locked)
                        ELSE jsonb_build_object('value', sv.value, 'locked', sv.locked) END), '{}')
          INTO snap_b FROM aura._scope_values(a.restaurant_id, a.scope, a.scope_id) sv;
    ELSE
        b := aura._version(version_b);
        snap_b := b.snapshot;
    END IF;
    RETURN QUERY
    SELECT k,
           CASE WHEN ea IS NULL THEN 'added' WHEN eb IS NULL THEN 'removed'
                WHEN coalesce(ea->'fingerprint', ea->'value') IS DISTINCT FROM coalesce(eb->'fingerprint', eb->'value') THEN 'changed'
                ELSE 'lock_changed' END,
           CASE WHEN ea ? 'fingerprint' THEN '"********"'::jsonb ELSE ea->'value' END,
           CASE WHEN eb ? 'fingerprint' THEN '"********"'::jsonb ELSE eb->'value' END
      FROM (SELECT coalesce(x.key, y.key) AS k, x.value AS ea, y.value AS eb
              FROM jsonb_each(a.snapshot) x FULL JOIN jsonb_each(snap_b) y ON x.key = y.key) j
     WHERE ea IS DISTINCT FROM eb
       AND (ea IS NULL OR eb IS NULL
            OR coalesce(ea->'fingerprint', ea->'value') IS DISTINCT FROM coalesce(eb->'fingerprint', eb->'value')
            OR (ea->'locked') IS DISTINCT FROM (eb->'locked'))
     ORDER BY k;
END
$$;
COMMENT ON FUNCTION aura.diff_settings(bigint, bigint) IS 'Differences between two versions of a scope (or a version and the current values): added, removed, changed, lock_changed; secrets ********.';

CREATE FUNCTION aura.rollback_settings(version_id bigint, reason text DEFAULT NULL)
    RETURNS TABLE (key text, action text, old_value jsonb, new_value jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    v record;
    item record;
    cur record;
    why text;
BEGIN
    v := aura._version(version_id);
    why := coalesce(reason, format('rollback to version %s (%s)', version_id, v.label));
    -- values the version does not have go away
    FOR cur IN SELECT sv.key, sv.value, sv.fingerprint FROM aura._scope_values(v.restaurant_id, v.scope, v.scope_id) sv
                WHERE NOT v.snapshot ? sv.key ORDER BY sv.key LOOP
        key := cur.key; action := 'remove'; old_value := aura._shown(cur.value, cur.fingerprint); new_value := NULL;
        PERFORM aura._delete_setting(v.restaurant_id, v.scope, v.scope_id, cur.key, why, 'rollback');
        RETURN NEXT;
    END LOOP;
    -- the version's values come back (validated again: definitions may have changed)
    FOR item IN SELECT e.key, e.value FROM jsonb_each(v.snapshot) e ORDER BY e.key LOOP
        SELECT sv.value, sv.fingerprint, sv.locked INTO cur
          FROM aura._scope_values(v.restaurant_id, v.scope, v.scope_id) sv WHERE sv.key = item.key;
        key := item.key;
        old_value := CASE WHEN FOUND THEN aura._shown(cur.value, cur.fingerprint) END;
        IF NOT EXISTS (SELECT 1 FROM aura.setting_definitions d WHERE d.key = item.key) THEN
            RAISE EXCEPTION 'version % holds setting "%", which is no longer defined', version_id, item.key
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        IF item.value ? 'sealed' THEN
            new_value := '"********"';
            action := CASE WHEN old_value IS NULL THEN 'set'
                           WHEN cur.fingerprint IS NOT DISTINCT FROM item.value->>'fingerprint' THEN 'unchanged'
                           ELSE 'restore' END;
            PERFORM aura._restore_sealed(v.restaurant_id, v.scope, v.scope_id, item.key,
                                         decode(item.value->>'sealed', 'base64'), item.value->>'fingerprint',
                                         'rollback', why);
        ELSE
            new_value := item.value->'value';
            action := CASE WHEN old_value IS NULL THEN 'set' WHEN old_value = new_value THEN 'unchanged' ELSE 'restore' END;
            PERFORM aura._put_setting(v.restaurant_id, v.scope, v.scope_id, item.key, item.value->'value', why, 'rollback');
        END IF;
        PERFORM aura._set_lock_raw(v.restaurant_id, v.scope, v.scope_id, item.key,
                                   coalesce((item.value->>'locked')::boolean, false), 'rollback', why);
        IF action = 'unchanged' AND cur.locked IS DISTINCT FROM coalesce((item.value->>'locked')::boolean, false) THEN
            action := 'lock_restored';
        END IF;
        IF action <> 'unchanged' THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION aura.rollback_settings(bigint, text) IS 'Restores a scope to a version, atomically: values the version lacks are removed, its values (and locks) restored; recorded with source rollback.';

CREATE VIEW aura.settings_versions WITH (security_barrier) AS
    SELECT v.id, 'system'::text AS scope, NULL::bigint AS restaurant_id, NULL::bigint AS scope_id, v.label,
           (SELECT count(*) FROM jsonb_object_keys(v.snapshot)) AS settings, v.created_at, v.created_by
      FROM aura.system_setting_versions v
    UNION ALL
    SELECT v.id, v.scope, v.restaurant_id, v.scope_id, v.label,
           (SELECT count(*) FROM jsonb_object_keys(v.snapshot)), v.created_at, v.created_by
      FROM aura.setting_versions v
     WHERE v.restaurant_id = aura.current_restaurant() OR aura.is_admin();
COMMENT ON VIEW aura.settings_versions IS 'Saved versions visible to the caller (system versions: aura_admin; tenant versions: the restaurant in context).';

-- Privileges --------------------------------------------------------------------
GRANT SELECT ON aura.configuration_templates TO aura_staff, aura_reporting;
GRANT INSERT, UPDATE, DELETE ON aura.configuration_templates TO aura_admin;
GRANT SELECT ON aura.setting_versions, aura.settings_versions TO aura_manager;
GRANT SELECT ON aura.system_setting_versions TO aura_manager;   -- rows: aura_admin only (RLS)
GRANT EXECUTE ON FUNCTION
    aura.apply_template(text, text, bigint, boolean, boolean),
    aura.export_settings(text, bigint, boolean),
    aura.import_settings(jsonb, text, bigint, text),
    aura.snapshot_settings(text, bigint, text),
    aura.diff_settings(bigint, bigint),
    aura.rollback_settings(bigint, text)
    TO aura_manager;

-- depends_on / conflicts_with ------------------------------------------------------
-- _truthy: a value that counts as "on" (true for booleans, any value otherwise)
CREATE FUNCTION aura._truthy(v jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN v IS NULL OR jsonb_typeof(v) = 'null' THEN false
                      WHEN jsonb_typeof(v) = 'boolean' THEN v = 'true'::jsonb
                      ELSE true END $$;

-- _check_relations: after writing keys at a scope, each key that is now "on"
-- needs its depends_on keys "on" and its conflicts_with keys "off", resolved
-- at the same scope (55000 otherwise; the whole statement is undone).
CREATE FUNCTION aura._check_relations(p_restaurant bigint, p_scope text, p_scope_id bigint, p_keys text[])
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    d record;
    other text;
    r bigint := coalesce(p_restaurant, 0);     -- 0: no restaurant (system scope)
    l bigint := CASE WHEN p_scope = 'location' THEN p_scope_id ELSE 0 END;
    u bigint := CASE WHEN p_scope = 'user' THEN p_scope_id ELSE 0 END;
BEGIN
    FOR d IN SELECT sd.key, sd.depends_on, sd.conflicts_with FROM aura.setting_definitions sd
              WHERE sd.key = ANY (p_keys) AND (sd.depends_on <> '{}' OR sd.conflicts_with <> '{}')
              ORDER BY sd.key LOOP
        IF NOT aura._truthy(aura.get_setting(d.key, r, l, u)) THEN
            CONTINUE;
        END IF;
        FOREACH other IN ARRAY d.depends_on LOOP
            IF NOT aura._truthy(aura.get_setting(other, r, l, u)) THEN
                RAISE EXCEPTION 'setting "%" requires "%"', d.key, other
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('"%s" is off at %s scope.', other, p_scope),
                          HINT = format('Enable "%s" first (or in the same bulk call).', other);
            END IF;
        END LOOP;
        FOREACH other IN ARRAY d.conflicts_with LOOP
            IF aura._truthy(aura.get_setting(other, r, l, u)) THEN
                RAISE EXCEPTION 'setting "%" conflicts with "%"', d.key, other
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = format('"%s" is on at %s scope.', other, p_scope),
                          HINT = format('Turn "%s" off first (or in the same bulk call).', other);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

UPDATE aura.setting_definitions SET depends_on = '{operations.online_ordering_enabled}'
 WHERE key = 'operations.order_prep_minutes';

-- Declared privileges (checked against the catalog by aura.privilege_mismatches)
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._check_relations(bigint, text, bigint, text[])', 'function', '-', ''),
    ('aura._restore_sealed(bigint, text, bigint, text, bytea, text, text, text)', 'function', '-', ''),
    ('aura._scope_values(bigint, text, bigint)', 'function', '-', ''),
    ('aura._set_lock_raw(bigint, text, bigint, text, boolean, text, text)', 'function', '-', ''),
    ('aura._shown(jsonb, text)', 'function', '-', ''),
    ('aura._template_check()', 'function', '-', ''),
    ('aura._truthy(jsonb)', 'function', '-', ''),
    ('aura._version(bigint)', 'function', '-', ''),
    ('aura.apply_template(text, text, bigint, boolean, boolean)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.configuration_templates', 'table', 'aura_admin', 'DELETE,INSERT,UPDATE'),
    ('aura.configuration_templates', 'table', 'aura_reporting', 'SELECT'),
    ('aura.configuration_templates', 'table', 'aura_staff', 'SELECT'),
    ('aura.diff_settings(bigint, bigint)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.export_settings(text, bigint, boolean)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.import_settings(jsonb, text, bigint, text)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.rollback_settings(bigint, text)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.setting_versions', 'table', 'aura_manager', 'SELECT'),
    ('aura.setting_versions_id_seq', 'sequence', '-', ''),
    ('aura.settings_versions', 'view', 'aura_manager', 'SELECT'),
    ('aura.snapshot_settings(text, bigint, text)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.system_setting_versions', 'table', 'aura_manager', 'SELECT');
