-- Foundation: extension, roles, GUCs, tenant context, row-level security,
-- deployment checklist.
CREATE EXTENSION IF NOT EXISTS aura CASCADE;

SELECT extversion = aura.version() AS versions_match, aura._preloaded() AS preloaded
  FROM pg_extension WHERE extname = 'aura';
SELECT extrelocatable, extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'aura';

-- roles exist, cannot log in, and form the documented hierarchy
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'aura\_%' ORDER BY 1;
SELECT r.rolname AS role, m.rolname AS member_of
  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.member JOIN pg_roles m ON m.oid = a.roleid
 WHERE r.rolname LIKE 'aura\_%' ORDER BY 1, 2;

-- GUCs
SELECT name, setting, context FROM pg_settings
 WHERE name IN ('aura.database', 'aura.restaurant_id', 'aura.location_id', 'aura.user_id') ORDER BY 1;
-- secret GUCs are hidden from SHOW ALL / pg_settings for non-superusers (each module tests its own)
SET aura.no_such_setting = 1;

-- nothing is reachable by PUBLIC: functions, tables, sequences, schema
SELECT p.oid::regprocedure AS public_function
  FROM pg_proc p
 WHERE p.pronamespace = 'aura'::regnamespace
   AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) WHERE grantee = 0));
SELECT c.oid::regclass AS public_relation
  FROM pg_class c
 WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
   AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) WHERE grantee = 0);
SELECT has_schema_privilege('public', 'aura', 'USAGE') AS public_schema_usage;

-- every table of the schema is protected by row-level security, but the
-- shared catalogs that hold no tenant data
SELECT c.relname AS table_without_forced_rls
  FROM pg_class c
 WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
 ORDER BY 1;

-- tenants
INSERT INTO aura.restaurants (id, name, timezone, currency) VALUES
    (1, 'Trattoria A', 'Europe/Rome', 'EUR'),
    (2, 'Bistro B', 'America/New_York', 'USD');
INSERT INTO aura.locations (restaurant_id, id, name) VALUES
    (1, 11, 'A Centro'), (1, 12, 'A Mare'), (2, 21, 'B Downtown');
-- bad tenant rows are refused (terse: the failing row holds a timestamp)
\set VERBOSITY terse
INSERT INTO aura.restaurants (name, timezone) VALUES ('Bad TZ', 'Mars/Olympus');
INSERT INTO aura.restaurants (name, currency) VALUES ('Bad currency', 'euro');
INSERT INTO aura.restaurants (name) VALUES ('   ');
INSERT INTO aura.restaurants (name) VALUES (NULL);
INSERT INTO aura.locations (restaurant_id, name) VALUES (99, 'Nowhere');
\set VERBOSITY default

-- tenant context
SELECT aura.current_restaurant(), aura.current_location(), aura.current_user_id();
SELECT aura.set_context(1, 11, 7);
SELECT aura.current_restaurant(), aura.current_location(), aura.current_user_id();
SHOW aura.restaurant_id;
SELECT aura.set_context(NULL);
SELECT aura.set_context(3);
SELECT aura.set_context(1, 21);
SELECT aura.set_context(1, NULL, -4);
SELECT aura.current_restaurant() AS unchanged_after_errors;
SET aura.restaurant_id = 'abc';
SET aura.restaurant_id = '-1';
SET aura.restaurant_id = '0';
SET aura.restaurant_id = '99999999999999999999';
SET aura.restaurant_id = '1; DROP TABLE aura.restaurants';
SET aura.restaurant_id = '2';
SELECT aura.current_restaurant();
-- local context ends with the transaction
BEGIN;
SELECT aura.set_context(1, is_local => true);
SELECT aura.current_restaurant() AS inside;
COMMIT;
SELECT aura.current_restaurant() AS after_commit;
SELECT aura.clear_context();
SELECT aura.current_restaurant() IS NULL AS cleared;

-- row-level security: a manager of restaurant 1 cannot see or change restaurant 2
CREATE ROLE regress_manager_a LOGIN IN ROLE aura_manager;
CREATE ROLE regress_reporter LOGIN IN ROLE aura_reporting;
CREATE ROLE regress_admin LOGIN IN ROLE aura_admin;
CREATE ROLE regress_nobody LOGIN;
SET ROLE regress_manager_a;
SELECT count(*) AS rows_without_context FROM aura.locations;
SELECT aura.set_context(1);
SELECT restaurant_id, id, name FROM aura.locations ORDER BY id;
SELECT id, name FROM aura.restaurants;
UPDATE aura.locations SET name = 'hijacked' WHERE restaurant_id = 2;
DELETE FROM aura.locations WHERE id = 21;
UPDATE aura.restaurants SET name = 'hijacked' WHERE id = 2;
INSERT INTO aura.locations (restaurant_id, id, name) VALUES (2, 22, 'planted');
UPDATE aura.locations SET restaurant_id = 2 WHERE id = 12;
INSERT INTO aura.locations (restaurant_id, id, name) VALUES (1, 13, 'A Lago');
UPDATE aura.locations SET name = 'A Centro Storico' WHERE id = 11;
INSERT INTO aura.restaurants (name) VALUES ('not allowed for managers');
SELECT * FROM aura.deployment_check() WHERE name = 'extension_version';
RESET ROLE;
SET ROLE regress_reporter;
SELECT aura.set_context(2);
SELECT restaurant_id, id, name FROM aura.locations ORDER BY id;
UPDATE aura.locations SET name = 'x';
SELECT * FROM aura.deployment_check();
RESET ROLE;
SET ROLE regress_nobody;
SELECT aura.current_restaurant();
SELECT * FROM aura.locations;
RESET ROLE;
SET ROLE regress_admin;
SELECT aura.clear_context();
SELECT restaurant_id, id, name FROM aura.locations ORDER BY id;
RESET ROLE;

-- deployment checklist: one row per registered item (each module's own test
-- shows its items; here the foundation's and that every item answers)
SELECT count(*) = (SELECT count(*) FROM aura.deployment_items) AS every_item_answers,
       count(*) FILTER (WHERE detail IS NULL OR ok IS NULL) AS items_without_answer
  FROM aura.deployment_check();
SELECT name, ok, regexp_replace(detail, '\d+\.\d+', 'X.Y', 'g') AS detail
  FROM aura.deployment_check() WHERE name IN ('extension_version', 'preload_and_worker');

DROP ROLE regress_manager_a, regress_reporter, regress_admin, regress_nobody;
