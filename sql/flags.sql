-- Feature flags: hashing, model, evaluation, import/export, tenancy, bad input.
-- Restaurants 300-399 belong to this file.
SET client_min_messages = warning;   -- the NOTICE depends on what ran before
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
INSERT INTO aura.restaurants (id, name) VALUES (301, 'Flags One'), (302, 'Flags Two');
INSERT INTO aura.locations (restaurant_id, id, name) VALUES (301, 3011, 'One A');

-- Unleash's hashing: murmur3 x86 32 of "<group>:<id>"
SELECT aura.flag_bucket('AB12A', '122') AS b122, aura.flag_bucket('AB12A', '155') AS b155;
SELECT aura.flag_bucket('', '') AS empty, aura.flag_bucket('g', 'x', 1) AS norm1,
       aura.flag_bucket('Feature.A', '123', 1000, 86028157) AS variant_seed,
       aura.flag_bucket('ünïcödé', '日本') AS utf8;
SELECT aura.flag_bucket(NULL, '1') IS NULL AS null_group, aura.flag_bucket('g', NULL) IS NULL AS null_id;
SELECT aura.flag_bucket(repeat('x', 1000000), repeat('y', 1000000)) BETWEEN 1 AND 100 AS huge_ok;
SELECT aura.flag_bucket('g', '1', 0);
SELECT aura.flag_bucket('g', '1', -5);
SELECT aura.flag_bucket('g', '1', 100, -1);
SELECT aura.flag_bucket('g', '1', 100, 4294967296);

-- a flag from Unleash JSON; evaluation of every strategy kind
SELECT aura.flag_put('{"name": "f.default", "enabled": true, "strategies": [{"name": "default"}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "f.off", "enabled": false, "strategies": [{"name": "default"}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "f.nostrategy", "enabled": true}') > 0 AS put;
SELECT aura.flag_put('{"name": "f.users", "enabled": true, "strategies": [{"name": "userWithId", "parameters": {"userIds": "7, 8 ,9"}}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "f.ips", "enabled": true, "strategies": [{"name": "remoteAddress", "parameters": {"IPs": "10.0.0.1, 192.168.0.0/24, ::1"}}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "f.unknown", "enabled": true, "strategies": [{"name": "myCustomStrategy"}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "f.roll", "enabled": true, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "30", "stickiness": "userId", "groupId": "g"}}]}') > 0 AS put;
SELECT key, aura.flag_enabled(key, '{"userId": "8", "remoteAddress": "192.168.0.77"}') AS with_ctx,
       aura.flag_enabled(key) AS without_ctx
  FROM (VALUES ('f.default'), ('f.off'), ('f.nostrategy'), ('f.users'), ('f.ips'), ('f.unknown'),
               ('f.roll'), ('no.such.flag')) v(key);
SELECT aura.flag_put('{"name": "f.host", "enabled": true, "strategies": [{"name": "applicationHostname", "parameters": {"hostNames": "no-such-host.example, other"}}]}') > 0 AS put;
SELECT aura.flag_enabled('f.host') AS other_host,
       aura.flag_explain('f.host') -> 'steps' -> 0 ->> 'detail' LIKE 'host name % is not listed' AS explained;
SELECT aura.flag_enabled('f.ips', '{"remoteAddress": "::1"}') AS v6_exact,
       aura.flag_enabled('f.ips', '{"remoteAddress": "192.168.1.1"}') AS outside,
       aura.flag_enabled('f.ips', '{"remoteAddress": "not an ip"}') AS garbage;
-- the rollout matches the bucket: on exactly when bucket <= 30
SELECT count(*) FILTER (WHERE aura.flag_enabled('f.roll', jsonb_build_object('userId', i::text))
                        <> (aura.flag_bucket('g', i::text) <= 30)) AS mismatches,
       count(*) FILTER (WHERE aura.flag_enabled('f.roll', jsonb_build_object('userId', i::text))) BETWEEN 250 AND 350 AS about_30_percent
  FROM generate_series(1, 1000) i;
SELECT aura.flag_enabled(NULL) AS null_key, aura.flag_enabled('') AS empty_key,
       aura.flag_enabled(repeat('k', 100000)) AS huge_key, aura.flag_enabled('f.default', NULL) AS null_ctx;

-- constraint operators
SELECT aura.flag_put(jsonb_build_object('name', 'op.' || op, 'enabled', true,
         'strategies', jsonb_build_array(jsonb_build_object('name', 'default', 'constraints', jsonb_build_array(c)))))
       > 0 AS put
  FROM (VALUES
    ('in',        '{"contextName": "environment", "operator": "IN", "values": ["prod", " stage "]}'::jsonb),
    ('not_in',    '{"contextName": "environment", "operator": "NOT_IN", "values": ["prod"]}'),
    ('starts',    '{"contextName": "email", "operator": "STR_STARTS_WITH", "values": ["Chef"], "caseInsensitive": true}'),
    ('ends',      '{"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@aurora.it"]}'),
    ('contains',  '{"contextName": "email", "operator": "STR_CONTAINS", "values": ["@"], "inverted": true}'),
    ('num_gte',   '{"contextName": "orders", "operator": "NUM_GTE", "value": "10"}'),
    ('num_lt',    '{"contextName": "orders", "operator": "NUM_LT", "value": "2.5"}'),
    ('date_after','{"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2030-01-01T00:00:00.000Z"}'),
    ('date_before','{"contextName": "currentTime", "operator": "DATE_BEFORE", "value": "2030-01-01T00:00:00+02:00"}'),
    ('semver_gt', '{"contextName": "appVersion", "operator": "SEMVER_GT", "value": "1.2.3-beta.2"}'),
    ('semver_eq', '{"contextName": "appVersion", "operator": "SEMVER_EQ", "value": "v2.0.0+build.5"}'),
    ('semver_lte','{"contextName": "appVersion", "operator": "SEMVER_LTE", "value": "1.10.0"}'),
    ('cidr',      '{"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["10.1.0.0/16", "2001:db8::/32"]}'),
    ('regex',     '{"contextName": "email", "operator": "REGEX", "value": "^[a-z]+@aurora\\.it$", "caseInsensitive": true}'),
    ('bad_regex', '{"contextName": "email", "operator": "REGEX", "value": "(unclosed"}'),
    ('bad_cidr',  '{"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["10.0.0.0/99"]}'),
    ('bad_semver','{"contextName": "appVersion", "operator": "SEMVER_EQ", "value": "1.2"}'),
    ('bad_date',  '{"contextName": "currentTime", "operator": "DATE_AFTER", "value": "next tuesday", "inverted": true}'),
    ('bad_num',   '{"contextName": "orders", "operator": "NUM_EQ", "value": "ten"}'),
    ('bad_op',    '{"contextName": "orders", "operator": "NUM_ABOUT", "value": "1", "inverted": true}')
  ) v(op, c);
WITH ctx(name, c) AS (VALUES
    ('a', '{"environment": "stage", "properties": {"email": "CHEF@aurora.it", "orders": "12", "appVersion": "1.2.3"}, "remoteAddress": "10.1.2.3", "currentTime": "2031-05-01T10:00:00Z"}'::jsonb),
    ('b', '{"environment": "prod", "properties": {"email": "guest", "orders": 1, "appVersion": "1.2.3-beta.11"}, "remoteAddress": "2001:db8::7", "currentTime": "2029-12-31T23:00:00Z"}'),
    ('c', '{}'))
SELECT f.key, string_agg(ctx.name || '=' || aura.flag_enabled(f.key, ctx.c), ' ' ORDER BY ctx.name) AS results
  FROM aura.flags f CROSS JOIN ctx
 WHERE f.key LIKE 'op.%' AND f.restaurant_id IS NULL
 GROUP BY f.key ORDER BY f.key;
-- what explain says about unparsable constraints
SELECT key, aura.flag_explain(key, '{"properties": {"email": "x", "appVersion": "1.2.3"}}') -> 'steps' -> 0 ->> 'detail' AS why
  FROM (VALUES ('op.bad_regex'), ('op.bad_cidr'), ('op.bad_semver'), ('op.bad_date'), ('op.bad_num'), ('op.bad_op')) v(key);

-- variants: weights, payload, overrides, stickiness; strategy variants win
SELECT aura.flag_put('{"name": "v.colors", "enabled": true, "strategies": [{"name": "default"}],
  "variants": [{"name": "red", "weight": 1, "payload": {"type": "string", "value": "#f00"}, "stickiness": "userId"},
               {"name": "blue", "weight": 2, "overrides": [{"contextName": "userId", "values": ["vip"]}]},
               {"name": "none", "weight": 0}]}') > 0 AS put;
SELECT aura.flag_variant('v.colors', '{"userId": "vip"}') AS override;
SELECT v ->> 'name' AS variant, count(*) FROM generate_series(1, 3000) i,
       aura.flag_variant('v.colors', jsonb_build_object('userId', i::text)) v GROUP BY 1 ORDER BY 1;
SELECT aura.flag_variant('v.colors', '{"userId": "12"}') = aura.flag_variant('v.colors', '{"userId": "12"}') AS sticky;
SELECT aura.flag_variant('f.default') AS no_variants, aura.flag_variant('f.off') AS off,
       aura.flag_variant('no.such.flag') AS unknown;

-- dependencies (one level): child on when the parent is, or gives a listed variant
SELECT aura.flag_put('{"name": "d.child", "enabled": true, "strategies": [{"name": "default"}],
                       "dependencies": [{"feature": "f.users"}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "d.child.variant", "enabled": true,
                       "dependencies": [{"feature": "v.colors", "variants": ["blue"]}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "d.child.notoff", "enabled": true, "dependencies": [{"feature": "f.off", "enabled": false}]}') > 0 AS put;
SELECT aura.flag_enabled('d.child', '{"userId": "7"}') AS parent_on, aura.flag_enabled('d.child', '{"userId": "1"}') AS parent_off,
       aura.flag_enabled('d.child.variant', '{"userId": "vip"}') AS blue, aura.flag_enabled('d.child.notoff') AS parent_disabled;
SELECT jsonb_pretty(aura.flag_explain('d.child', '{"userId": "1"}'));
SELECT jsonb_pretty(aura.flag_explain('f.roll', '{"userId": "5"}'));
SELECT aura.flag_explain('nope') AS unknown_flag;

-- segments are shared lists of constraints; a missing segment turns its strategy off
SELECT aura.segment_put('{"id": 7, "name": "beta testers", "constraints": [{"contextName": "userId", "operator": "IN", "values": ["1", "2"]}]}') > 0 AS seg;
SELECT aura.flag_put('{"name": "s.beta", "enabled": true, "strategies": [{"name": "default", "segments": [7]}]}') > 0 AS put;
SELECT aura.flag_put('{"name": "s.missing", "enabled": true, "strategies": [{"name": "default", "segments": [99]}]}') > 0 AS put;
SELECT aura.flag_enabled('s.beta', '{"userId": "2"}') AS member, aura.flag_enabled('s.beta', '{"userId": "3"}') AS other,
       aura.flag_enabled('s.missing', '{"userId": "2"}') AS missing_segment;
-- a change to a segment is seen at once (cache invalidated)
SELECT aura.segment_put('{"id": 7, "constraints": [{"contextName": "userId", "operator": "IN", "values": ["3"]}]}') > 0 AS seg;
SELECT aura.flag_enabled('s.beta', '{"userId": "2"}') AS member_now, aura.flag_enabled('s.beta', '{"userId": "3"}') AS other_now;

-- the replaced system's fields
SELECT aura.flag_put_simple('legacy.menu', enabled => true, enabled_restaurants => '{301}',
                            enabled_users => '{42}', rollout_percentage => 0,
                            enabled_from => '2020-01-01', enabled_until => '2100-01-01') > 0 AS put;
SELECT aura.flag_enabled('legacy.menu', '{"userId": "42", "properties": {"restaurantId": "301"}}') AS listed_user,
       aura.flag_enabled('legacy.menu', '{"userId": "43", "properties": {"restaurantId": "301"}}') AS other_user,
       aura.flag_enabled('legacy.menu', '{"userId": "42", "properties": {"restaurantId": "302"}}') AS other_restaurant,
       aura.flag_enabled('legacy.menu', '{"userId": "42", "properties": {"restaurantId": "301"}, "currentTime": "2101-01-01T00:00:00Z"}') AS after_window;
-- restaurantId and userId come from the session context when the context has none
SELECT aura.set_context(301, 3011, 42);
SELECT aura.flag_enabled('legacy.menu') AS from_session, aura.flag_enabled('legacy.menu', '{"userId": "43"}') AS context_wins;
SELECT aura.clear_context();
SELECT aura.flag_put_simple('legacy.bad', rollout_percentage => 101);
SELECT aura.flag_put_simple('legacy.bad', enabled_from => '2030-01-01', enabled_until => '2020-01-01');

-- ramps: the rollout rises at the given times (evaluated against currentTime)
SELECT aura.flag_put('{"name": "r.ramp", "enabled": true,
  "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "0", "stickiness": "userId", "groupId": "r"}}],
  "ramps": [{"startsAt": "2030-01-01T00:00:00Z", "rollout": 10}, {"startsAt": "2030-02-01T00:00:00Z", "rollout": 50},
            {"startsAt": "2030-03-01T00:00:00Z", "rollout": 100}]}') > 0 AS put;
SELECT t AS at, count(*) FILTER (WHERE aura.flag_enabled('r.ramp', jsonb_build_object('userId', i::text, 'currentTime', t))) AS on_of_1000
  FROM unnest(ARRAY['2029-12-31T00:00:00Z', '2030-01-15T00:00:00Z', '2030-02-15T00:00:00Z', '2030-03-15T00:00:00Z']) t,
       generate_series(1, 1000) i
 GROUP BY t ORDER BY t;

-- kill switch per flag type
SELECT aura.flag_put('{"name": "k.exp", "type": "experiment", "enabled": true}') > 0 AS put;
SELECT aura.flag_kill_type('experiment', reason => 'incident 17');
SELECT aura.flag_enabled('k.exp') AS killed, aura.flag_enabled('f.default') AS release_untouched,
       aura.flag_explain('k.exp') -> 'steps' -> 0 ->> 'detail' AS why;
SELECT aura.flag_kill_type('experiment', killed => false);
SELECT aura.flag_enabled('k.exp') AS back_on;
SELECT aura.flag_kill_type('nonsense');

-- evaluation counters in shared memory (the test server preloads aura)
SELECT aura.flag_stats_reset();
SELECT count(*) FILTER (WHERE aura.flag_enabled('f.users', jsonb_build_object('userId', i::text))) AS on_of_20
  FROM generate_series(1, 20) i;
SELECT aura.flag_variant('v.colors', '{"userId": "1"}') ->> 'name' IS NOT NULL AS variant_evaluated;
SELECT aura.flag_explain('f.users', '{"userId": "7"}') ->> 'enabled' AS explain_not_counted;
SELECT restaurant_id, key, enabled, disabled FROM aura.flag_stats() WHERE key IN ('f.users', 'v.colors') ORDER BY key;

-- tenancy: a restaurant's flag overrides the global one for that restaurant
SELECT aura.flag_put('{"name": "f.default", "enabled": false}', 301) > 0 AS put_301;
SELECT aura.set_context(301);
SELECT aura.flag_enabled('f.default') AS in_301;
SELECT aura.set_context(302);
SELECT aura.flag_enabled('f.default') AS in_302;
SELECT aura.clear_context();
CREATE ROLE flags_manager IN ROLE aura_manager;
CREATE ROLE flags_staff IN ROLE aura_staff;
SET ROLE flags_manager;
SELECT aura.set_context(302);
SELECT count(*) FILTER (WHERE restaurant_id IS NULL) > 0 AS sees_global, count(*) FILTER (WHERE restaurant_id = 301) AS sees_301
  FROM aura.flags;
SELECT aura.flag_put('{"name": "m.own", "enabled": true}', 302) > 0 AS own_flag;
\set VERBOSITY terse
SELECT aura.flag_put('{"name": "m.global", "enabled": true}');
SELECT aura.flag_put('{"name": "m.other", "enabled": true}', 301);
\set VERBOSITY default
-- global flags are out of a tenant's reach: not changed, taken over or deleted
WITH u AS (UPDATE aura.flags SET enabled = false WHERE restaurant_id IS NULL RETURNING 1)
SELECT count(*) AS global_changed FROM u;
WITH u AS (UPDATE aura.flags SET restaurant_id = 302 WHERE restaurant_id IS NULL RETURNING 1)
SELECT count(*) AS global_taken_over FROM u;
WITH d AS (DELETE FROM aura.flags WHERE restaurant_id IS NULL RETURNING 1)
SELECT count(*) AS global_deleted FROM d;
SELECT aura.flag_enabled('m.own') AS own_on;
RESET ROLE;
SET ROLE flags_staff;
SELECT aura.set_context(302);
SELECT aura.flag_enabled('m.own') AS staff_evaluates, aura.flag_enabled('f.default') AS staff_global;
\set VERBOSITY terse
SELECT aura.flag_put('{"name": "s.try", "enabled": true}', 302);
\set VERBOSITY default
RESET ROLE;
SELECT aura.clear_context();

-- history: every change is recorded; it is append-only
SELECT object, action, count(*) FROM aura.flag_history WHERE flag_key = 'f.users' GROUP BY 1, 2 ORDER BY 1, 2;
SELECT action, new_row ->> 'enabled' AS enabled, db_role FROM aura.flag_history
 WHERE flag_key = 'm.own' AND object = 'flags' ORDER BY id;
UPDATE aura.flag_history SET actor = 1;
DELETE FROM aura.flag_history;

-- import / export
SELECT aura.import_unleash('{"version": 1, "segments": [{"id": 1, "constraints": [{"contextName": "appName", "operator": "IN", "values": ["pos"]}]}],
  "features": [{"name": "i.one", "enabled": true, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "100"}, "segments": [1],
                 "constraints": [{"contextName": "environment", "operator": "IN", "values": ["prod"]}],
                 "variants": [{"name": "sv", "weight": 1, "payload": {"type": "json", "value": "{\"a\":1}"}}]}],
                "variants": [{"name": "fv", "weight": 1}]},
               {"name": "i.two", "enabled": false, "dependencies": [{"feature": "i.one", "variants": ["sv"]}]}]}', 302) AS imported;
SELECT aura.set_context(302);
SELECT aura.flag_enabled('i.one', '{"appName": "pos", "environment": "prod"}') AS on_302,
       aura.flag_variant('i.one', '{"appName": "pos", "environment": "prod"}') ->> 'name' AS strategy_variant;
SELECT aura.clear_context();
SELECT jsonb_pretty(aura.export_unleash(302) #- '{features,0,strategies,0,variants,0,weightType}' -> 'segments') AS segments;
SELECT f ->> 'name' AS name, f -> 'dependencies' AS deps FROM jsonb_array_elements(aura.export_unleash(302) -> 'features') f
 WHERE f ->> 'name' LIKE 'i.%' OR f ->> 'name' LIKE 'm.%' ORDER BY 1;
-- round trip: export of 302 imported into 301 exports the same flags
SELECT aura.import_unleash(aura.export_unleash(302), 301) > 0 AS reimported;
SELECT (SELECT jsonb_agg(f ORDER BY f ->> 'name') FROM jsonb_array_elements(aura.export_unleash(301) -> 'features') f WHERE f ->> 'name' LIKE 'i.%')
     = (SELECT jsonb_agg(f ORDER BY f ->> 'name') FROM jsonb_array_elements(aura.export_unleash(302) -> 'features') f WHERE f ->> 'name' LIKE 'i.%')
       AS round_trip_equal;
SELECT aura.flag_definition('i.one', 301) = aura.flag_definition('i.one', 302) AS same_definition;

-- bad input: clear errors, nothing half-loaded
SELECT count(*) AS flags_before FROM aura.flags;
SELECT aura.import_unleash(NULL);
SELECT aura.import_unleash('[]');
SELECT aura.import_unleash('{"features": {}}');
SELECT aura.import_unleash('{"features": [{"name": "ok.1", "enabled": true}, {"name": ""}]}');
SELECT aura.import_unleash('{"features": [{"name": "ok.1", "enabled": true}, {"name": "w", "enabled": true, "variants": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}]}');
SELECT aura.import_unleash('{"features": [{"name": "ok.1", "enabled": true}, {"name": "r", "enabled": true, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "lots"}}]}]}');
SELECT aura.import_unleash('{"features": [{"name": "c.a", "enabled": true, "dependencies": [{"feature": "c.b"}]}, {"name": "c.b", "enabled": true, "dependencies": [{"feature": "c.a"}]}]}');
SELECT aura.import_unleash('{"features": [{"name": "dup", "enabled": true}, {"name": "dup", "enabled": true}]}');
SELECT aura.import_unleash('{"features": [{"name": "x", "enabled": "yes"}]}');
SELECT aura.import_unleash('{"features": [{"name": "x", "enabled": true, "strategies": [{"name": "default", "constraints": [{"operator": "IN"}]}]}]}');
SELECT aura.import_unleash('{"features": [{"name": "x", "enabled": true, "variants": [{"name": "a", "weight": -1}]}]}');
SELECT aura.import_unleash('{"features": [{"name": "x", "enabled": true, "ramps": [{"startsAt": "soon", "rollout": 5}]}]}');
SELECT aura.import_unleash('{"features": [{"name": "x", "enabled": true, "type": "banana"}]}');
SELECT aura.import_unleash('{"features": []}', NULL, 'maybe');
SELECT aura.flag_put('{"name": "self", "enabled": true, "dependencies": [{"feature": "self"}]}');
SELECT aura.flag_put(jsonb_build_object('name', repeat('n', 201), 'enabled', true));
SELECT count(*) AS flags_after FROM aura.flags;
SELECT aura.flag_enabled('f.default', '[1, 2]');
SELECT aura.flag_enabled('f.default', '"text"');
-- a 64 KB context works
SELECT aura.flag_enabled('op.in', jsonb_build_object('environment', 'prod', 'properties',
           (SELECT jsonb_object_agg('k' || i, repeat('v', 60)) FROM generate_series(1, 1000) i))) AS big_context,
       pg_column_size(jsonb_build_object('properties', (SELECT jsonb_object_agg('k' || i, repeat('v', 60)) FROM generate_series(1, 1000) i))) > 65536 AS is_64kb;
-- 1,000 flags in one import, all evaluated
SELECT aura.import_unleash(jsonb_build_object('features', (SELECT jsonb_agg(jsonb_build_object('name', 'bulk.' || i, 'enabled', true,
         'strategies', jsonb_build_array(jsonb_build_object('name', 'flexibleRollout', 'parameters', jsonb_build_object('rollout', '50')))))
         FROM generate_series(1, 1000) i))) AS bulk;
SELECT count(*) FILTER (WHERE aura.flag_enabled('bulk.' || i, jsonb_build_object('userId', 'u1'))) BETWEEN 400 AND 600 AS about_half
  FROM generate_series(1, 1000) i;

-- deployment check
SELECT name, ok, detail ~ '^\d+ flags' AS counts FROM aura.deployment_check() WHERE name = 'feature_flags';

-- cleanup of what other files could see
DELETE FROM aura.flags;
DELETE FROM aura.flag_segments;
DROP ROLE flags_manager;
DROP ROLE flags_staff;
-- leave the database as this file found it: the foundation file (next in
-- order) expects to create the extension itself
DROP EXTENSION aura CASCADE;
DROP EXTENSION pgcrypto;
