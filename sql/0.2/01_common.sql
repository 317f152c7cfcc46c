-- Shared building blocks every module uses (one way of doing each thing).

-- Append-only tables (ledger, histories, logs) attach this trigger function
-- for UPDATE and DELETE (row or statement level) and TRUNCATE (statement).
CREATE FUNCTION aura._append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = format('%s is not allowed on this table.', TG_OP),
              HINT = 'Record a correction as a new row.';
END
$$;
COMMENT ON FUNCTION aura._append_only() IS 'Trigger function: rejects UPDATE, DELETE and TRUNCATE on append-only tables.';

-- Declared privileges of every aura object.  Each module's part adds the
-- rows of the objects it creates; aura.privilege_mismatches (security part)
-- and the security regression test compare them with the catalog, so an
-- object nobody declared, or one granted to PUBLIC, fails the tests.
CREATE TABLE aura.privilege_matrix (
    object      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('table', 'view', 'sequence', 'function')),
    role        text NOT NULL CHECK (role IN ('aura_admin', 'aura_manager', 'aura_staff', 'aura_reporting', '-')),
    privileges  text NOT NULL,
    PRIMARY KEY (object, role)
);
COMMENT ON TABLE aura.privilege_matrix IS 'Declared privileges: object (aura.name, functions with argument types), role (''-'': no role has any), comma-separated privileges as aura.privileges_granted shows them. Checked by aura.privilege_mismatches.';
