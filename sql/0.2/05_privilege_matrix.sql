-- aura 0.2, part 05: the privilege matrix table, created before the modules'
-- parts so that each part declares the privileges of its own objects:
--   INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES (...);
-- The views comparing it with the catalog are in part 20 (security); the
-- security regression test fails on any object missing or differing.
-- Reference: docs/security.md.
CREATE TABLE aura.privilege_matrix (
    object      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('table', 'view', 'sequence', 'function')),
    role        text NOT NULL CHECK (role IN ('aura_admin', 'aura_manager', 'aura_staff', 'aura_reporting', '-')),
    privileges  text NOT NULL,
    PRIMARY KEY (object, role)
);
COMMENT ON TABLE aura.privilege_matrix IS 'Declared privileges: object (aura.name, functions with argument types), role (''-'': no role has any), comma-separated privileges as aura.privileges_granted shows them. Checked by aura.privilege_mismatches.';

REVOKE ALL ON aura.privilege_matrix FROM PUBLIC;
GRANT SELECT ON aura.privilege_matrix TO aura_admin;
