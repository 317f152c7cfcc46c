-- aura 0.2, part 06: one call registers a tenant table (used by every module part).
-- Every tenant table is registered once with this: the row-level-security
-- pattern (aura._enable_tenancy) plus pg_dump of its rows and of the
-- sequences it owns (identity or serial), so a dump/restore keeps both.
CREATE FUNCTION aura._register_tenant_table(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    seq regclass;
BEGIN
    PERFORM aura._enable_tenancy(tbl);
    PERFORM pg_catalog.pg_extension_config_dump(tbl, '');
    FOR seq IN SELECT d.objid::regclass
                 FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
                WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                  AND d.refobjid = tbl AND d.deptype IN ('a', 'i') AND c.relkind = 'S'
                ORDER BY 1 LOOP
        PERFORM pg_catalog.pg_extension_config_dump(seq, '');
    END LOOP;
END
$$;
COMMENT ON FUNCTION aura._register_tenant_table(regclass) IS 'Registers a tenant table: row-level security (aura._enable_tenancy) and pg_dump of its rows and owned sequences.';
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._register_tenant_table(regclass)', 'function', '-', '');
