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

-- aura.privilege_matrix: see 05_privilege_matrix.sql.

