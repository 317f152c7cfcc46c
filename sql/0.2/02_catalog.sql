-- Catalog corrections to what 0.1 released (issue 10, DESIGN.md section 8).
-- 0.1 is frozen, so they are made here and a fresh install gets them too.

-- A unique index without restaurant_id cannot exist on a table distributed by
-- restaurant_id (Citus), so location ids are indexed for lookup only; they
-- stay unique because they come from one identity sequence.
DROP INDEX aura.locations_id_key;
CREATE INDEX locations_id ON aura.locations (id);

-- pg_upgrade refuses clusters with regproc columns (function OIDs are not
-- preserved), so the check function is stored by name and resolved when run.
-- (a regproc prints schema-qualified only when its schema is not on search_path)
DO $$
DECLARE
    sp text := current_setting('search_path');
BEGIN
    PERFORM set_config('search_path', 'pg_catalog', true);
    ALTER TABLE aura.deployment_items ALTER COLUMN check_fn TYPE text USING check_fn::text;
    PERFORM set_config('search_path', sp, true);
END
$$;
ALTER TABLE aura.deployment_items ADD CONSTRAINT deployment_items_check_fn_name
    CHECK (check_fn ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$');

CREATE OR REPLACE FUNCTION aura.deployment_check()
    RETURNS TABLE (name text, ok boolean, detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    item record;
    fn regproc;
BEGIN
    FOR item IN SELECT * FROM aura.deployment_items ORDER BY sort, deployment_items.name LOOP
        name := item.name;
        fn := to_regproc(item.check_fn);
        IF item.check_fn IS NULL THEN
            ok := false;
            detail := format('not available: the %s module is not part of aura %s yet',
                             item.module, aura.version());
        ELSIF fn IS NULL THEN
            ok := false;
            detail := format('check function %s does not exist (reinstall aura)', item.check_fn);
        ELSE
            BEGIN
                EXECUTE format('SELECT ok, detail FROM %s()', fn) INTO ok, detail;
            EXCEPTION WHEN OTHERS THEN
                ok := false;
                detail := 'check failed: ' || SQLERRM;
            END;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
