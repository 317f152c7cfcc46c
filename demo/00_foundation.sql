-- the extension, its version, roles, settings (GUCs) and deployment checklist
CREATE EXTENSION aura CASCADE;
\echo
\echo 'aura is installed:'
SELECT e.extname AS extension, e.extversion AS version, aura.version() AS library,
       aura._preloaded() AS preloaded
  FROM pg_extension e WHERE e.extname = 'aura';
\echo 'its roles (grant them to your application and staff logins):'
SELECT r.rolname AS role,
       coalesce(string_agg(m.rolname, ', ' ORDER BY m.rolname), '') AS includes,
       shobj_description(r.oid, 'pg_authid') AS description
  FROM pg_roles r
  LEFT JOIN pg_auth_members a ON a.member = r.oid
  LEFT JOIN pg_roles m ON m.oid = a.roleid
 WHERE r.rolname LIKE 'aura\_%' GROUP BY r.rolname, r.oid ORDER BY 1;
\echo 'its configuration parameters:'
SELECT name, setting, context, short_desc FROM pg_settings WHERE name LIKE 'aura.%' ORDER BY 1;
\echo 'two restaurants, each seeing only itself through row-level security:'
INSERT INTO aura.restaurants (name, timezone, currency) VALUES
    ('Trattoria Aurora', 'Europe/Rome', 'EUR'), ('Harbor Grill', 'America/New_York', 'USD');
INSERT INTO aura.locations (restaurant_id, name)
    SELECT id, n FROM aura.restaurants, unnest(ARRAY['Centro', 'Mare']) n WHERE name = 'Trattoria Aurora'
    UNION ALL
    SELECT id, 'Pier 9' FROM aura.restaurants WHERE name = 'Harbor Grill';
CREATE ROLE demo_manager IN ROLE aura_manager;
SELECT min(id) AS first_restaurant FROM aura.restaurants \gset
SET ROLE demo_manager;
SELECT aura.set_context(:first_restaurant);
SELECT r.name AS restaurant, l.name AS location FROM aura.locations l JOIN aura.restaurants r ON r.id = l.restaurant_id;
RESET ROLE;
\echo 'deployment checklist:'
SELECT * FROM aura.deployment_check();
