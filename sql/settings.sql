-- Settings: catalog, validation, four scopes with resolution and locks,
-- secrets, history, privileges and tenant safety.  Restaurants 100-199.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

INSERT INTO aura.restaurants (id, name) VALUES (100, 'Settings A'), (101, 'Settings B');
INSERT INTO aura.locations (restaurant_id, id, name) VALUES
    (100, 110, 'A North'), (100, 111, 'A South'), (101, 120, 'B Only');
CREATE ROLE regress_set_admin IN ROLE aura_admin;
CREATE ROLE regress_set_manager IN ROLE aura_manager;
CREATE ROLE regress_set_staff IN ROLE aura_staff;
CREATE ROLE regress_set_reporter IN ROLE aura_reporting;

-- the catalog ships what aura's modules read
SELECT key, type, default_value, allowed_scopes
  FROM aura.setting_definitions
 WHERE key ~ '^(loyalty|rewards|insights)\.' OR key LIKE 'notifications.%'
 ORDER BY key;
SELECT category, count(*) FROM aura.setting_definitions GROUP BY 1 ORDER BY 1;
SELECT count(*) AS groups, bool_and(d.group_name IS NOT NULL) AS all_grouped
  FROM aura.setting_groups g, aura.setting_definitions d WHERE d.group_name = g.name;
-- every shipped default passes its own rules (the definition trigger checked it)
SELECT d.key FROM aura.setting_definitions d
 WHERE d.default_value IS NOT NULL AND aura._validate_setting(d.key, d.default_value) <> d.default_value;

------------------------------------------------------------------------------
-- validation: canonical values and one error per rule (SQLSTATE 22023)
------------------------------------------------------------------------------
\set VERBOSITY default
SELECT aura._validate_setting('loyalty.points_expiry_days', v) AS integer_ok
  FROM (VALUES ('400'::jsonb), ('"400"'), ('400.000'), ('0')) t(v);
SELECT aura._validate_setting('loyalty.points_expiry_days', '1.5');
SELECT aura._validate_setting('loyalty.points_expiry_days', '"12 days"');
SELECT aura._validate_setting('loyalty.points_expiry_days', '-1');
SELECT aura._validate_setting('loyalty.points_expiry_days', '3651');
SELECT aura._validate_setting('loyalty.points_expiry_days', '1e30');
SELECT aura._validate_setting('loyalty.points_expiry_days', '[1]');
SELECT aura._validate_setting('insights.auto_dismiss_irrelevant_ratio', v) AS numeric_ok
  FROM (VALUES ('0.75'::jsonb), ('"0.5"'), ('1')) t(v);
SELECT aura._validate_setting('insights.auto_dismiss_irrelevant_ratio', '1.01');
SELECT aura._validate_setting('insights.auto_dismiss_irrelevant_ratio', '"NaN"');
SELECT v AS given, aura._validate_setting('loyalty.allow_negative_balance', v) AS boolean_canonical
  FROM (VALUES ('true'::jsonb), ('false'), ('1'), ('0'), ('"yes"'), ('"No"'), ('"TRUE"'), ('"0"')) t(v);
SELECT aura._validate_setting('loyalty.allow_negative_balance', '"maybe"');
SELECT aura._validate_setting('loyalty.allow_negative_balance', '2');
SELECT v AS given, aura._validate_setting('loyalty.tier_downgrade', v) AS enum_canonical
  FROM (VALUES ('"none"'::jsonb), ('"ROLLING_12_MONTHS"'), ('"\"anniversary\""')) t(v);
SELECT aura._validate_setting('loyalty.tier_downgrade', '"weekly"');
SELECT aura._validate_setting('loyalty.tier_downgrade', '3');
SELECT aura._validate_setting('display.currency', '"EUR"') AS string_ok;
SELECT aura._validate_setting('display.currency', '"eur"');
SELECT aura._validate_setting('display.currency', '"EURO"');
SELECT aura._validate_setting('display.currency', '42');
SELECT aura._validate_setting('display.receipt_footer', to_jsonb(repeat('x', 501)));
SELECT aura._validate_setting('general.restaurant_name', '""');
SELECT aura._validate_setting('operations.business_hours', '{"mon": [], "tue": [], "wed": [], "thu": [], "fri": [], "sat": [], "sun": [["12:00","15:00"]]}') AS json_ok;
SELECT aura._validate_setting('operations.business_hours', '{"mon": []}');
SELECT aura._validate_setting('operations.business_hours', '"9 to 5"');
SELECT v AS given, aura._validate_setting('general.go_live_at', v) AS datetime_canonical
  FROM (VALUES ('"2026-03-01 10:00:00+01"'::jsonb), ('"2026-03-01T09:00:00.5Z"')) t(v);
SELECT aura._validate_setting('general.go_live_at', '"next tuesday"');
SELECT aura._validate_setting('general.go_live_at', '"infinity"');
SELECT v AS given, aura._validate_setting('insights.thread_window', v) AS duration_canonical
  FROM (VALUES ('"7 days"'::jsonb), ('"PT36H"'), ('"1 week 2 hours"'), ('3600')) t(v);
SELECT aura._validate_setting('insights.thread_window', '"30 seconds"');
SELECT aura._validate_setting('insights.thread_window', '"-1 day"');
SELECT aura._validate_setting('insights.thread_window', '"forever"');
SELECT aura._validate_setting('insights.thread_window', 'true');
-- hard limits: 1 MB strings, deep JSON, NULLs, unknown keys and scopes
SELECT aura._validate_setting('display.receipt_footer', to_jsonb(repeat('x', 1024 * 1024)));
SELECT aura._validate_setting('payment.tip_suggestions', (repeat('[', 40) || repeat(']', 40))::jsonb);
SELECT aura._validate_setting('payment.tip_suggestions', (repeat('[', 5) || '0.1' || repeat(']', 5))::jsonb) AS nested_ok;
SELECT aura._validate_setting('loyalty.pending_days', NULL);
SELECT aura._validate_setting('loyalty.pending_days', 'null');
SELECT aura._validate_setting(NULL, '1');
SELECT aura._validate_setting('no.such_key', '1');
SELECT aura._validate_setting(repeat('k', 5000), '1');
SELECT aura._validate_setting('loyalty.point_value', '0.02', 'location');
SELECT aura._validate_setting('loyalty.point_value', '0.02', 'galaxy');
-- secrets never appear in errors
SELECT aura._validate_setting('notifications.slack.webhook_url', '"http://insecure.example/hook/abcdefgh"');

------------------------------------------------------------------------------
-- four scopes and resolution: user -> location -> restaurant -> system -> default
------------------------------------------------------------------------------
SELECT aura.set_setting('general.locale', '"en-GB"', 'system', reason => 'group default');
SELECT aura.set_setting('general.locale', '"it-IT"', 'restaurant', 100);
SELECT aura.set_setting('general.locale', '"fr-FR"', 'location', 110);
SELECT aura.set_setting('general.locale', '"de-DE"', 'user', 7);   -- needs a restaurant in context
SELECT aura.set_context(100);
SELECT aura.set_setting('general.locale', '"de-DE"', 'user', 7);
SELECT r, l, u, (aura._resolve_setting('general.locale', r, l, u)).*
  FROM (VALUES (100, 110, 7), (100, 110, 8), (100, 111, 7), (100, 111, 8), (100, NULL, NULL),
               (101, 120, 7), (NULL, NULL, NULL)) t(r, l, u)
 ORDER BY 1, 2, 3;
SELECT aura.clear_context();
SELECT aura.get_setting('general.locale') AS no_context_system_value;
SELECT aura.set_context(100, 110, 7);
SELECT aura.get_setting('general.locale') AS from_context_user,
       aura.get_setting('general.locale', location_id => 111, user_id => 8) AS explicit_restaurant_value,
       aura.get_setting_text('general.locale') AS as_text;
-- defaults when nothing is stored, typed readers
SELECT aura.get_setting_int('loyalty.points_expiry_days') AS int_default,
       aura.get_setting_numeric('loyalty.point_value') AS numeric_default,
       aura.get_setting_bool('rewards.restore_points_on_cancel') AS bool_default,
       aura.get_setting_text('loyalty.tier_downgrade') AS enum_unquoted,
       aura.get_setting_interval('insights.thread_window') AS interval_default,
       aura.get_setting_text('notifications.email.smtp_host') IS NULL AS no_default_is_null;
SELECT aura.get_setting_int('loyalty.point_value');
SELECT aura.get_setting_bool('general.locale');
SELECT aura.get_setting_interval('loyalty.pending_days');
SELECT aura.get_setting_int(NULL);
SELECT aura.get_setting('nope.nope');
SELECT aura.get_setting_int('loyalty.points_expiry_days', 100, NULL, NULL) AS same_restaurant_explicitly;
SELECT aura.set_setting('loyalty.points_expiry_days', '"180"', 'restaurant');
SELECT aura.get_setting_int('loyalty.points_expiry_days') AS after_set_in_same_session;
SELECT key, value, source_scope, source_id FROM aura.effective_settings()
 WHERE key IN ('general.locale', 'loyalty.points_expiry_days', 'loyalty.point_value', 'notifications.email.smtp_host')
 ORDER BY key;

-- readers work in parallel workers too (a worker's cold cache loads with the query snapshot)
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SELECT DISTINCT aura.get_setting_int('loyalty.points_expiry_days', r.id) AS in_parallel_worker
  FROM aura.restaurants r WHERE r.id = 100;
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;

-- locks: a higher scope wins and lower scopes cannot override
SELECT aura.lock_setting('general.locale', 'restaurant', reason => 'brand language');
SELECT aura.get_setting('general.locale') AS locked_restaurant_value_wins;
SELECT aura.set_setting('general.locale', '"es-ES"', 'location', 111);
SELECT aura.set_setting('general.locale', '"es-ES"', 'user', 8);
SELECT aura.lock_setting('general.locale', 'restaurant');   -- already locked: false
SELECT aura.unlock_setting('general.locale', 'restaurant');
SELECT aura.get_setting('general.locale') AS unlocked_user_value_again;
SELECT aura.lock_setting('display.date_format', 'restaurant');   -- nothing stored there
SELECT aura.lock_setting('general.locale', 'user', 7);
SELECT aura.set_setting('display.decimal_places', '3', 'system');
SELECT aura.lock_setting('display.decimal_places', 'system');
SELECT aura.set_setting('display.decimal_places', '0', 'restaurant');
SELECT aura.unlock_setting('display.decimal_places', 'system');

-- reset: back to inheriting
SELECT aura.reset_setting('general.locale', 'user', 7);
SELECT aura.reset_setting('general.locale', 'user', 7) AS again_nothing;
SELECT aura.get_setting('general.locale') AS after_reset_location_value;

-- bulk: all or nothing, says which and why
SELECT count(*) AS history_before FROM aura.setting_history WHERE restaurant_id = 100 \gset
SELECT * FROM aura.bulk_set_settings('{"loyalty.pending_days": 3, "loyalty.birthday_points": -5, "loyalty.tier_grace_days": 10}', 'restaurant');
SELECT * FROM aura.bulk_set_settings('{"loyalty.pending_days": 3, "no.such": 1}', 'restaurant');
SELECT * FROM aura.bulk_set_settings('[1, 2]', 'restaurant');
SELECT * FROM aura.bulk_set_settings(NULL, 'restaurant');
SELECT aura.get_setting_int('loyalty.pending_days') AS unchanged_pending_days,
       (SELECT count(*) FROM aura.setting_history WHERE restaurant_id = 100) = :history_before AS no_history_added;
SELECT * FROM aura.bulk_set_settings('{"loyalty.pending_days": "2", "loyalty.allow_negative_balance": "yes", "loyalty.tier_downgrade": "Anniversary"}', 'restaurant', reason => 'bulk test');
SELECT aura.set_setting('loyalty.pending_days', '2', 'restaurant') AS unchanged_value_no_history;

-- bad scopes and ids
SELECT aura.set_setting('loyalty.pending_days', '1', 'galaxy');
SELECT aura.set_setting('loyalty.pending_days', '1', 'system', 5);
SELECT aura.set_setting('loyalty.pending_days', '1', 'location', 110);
SELECT aura.set_setting('loyalty.pending_days', '1', 'restaurant', 999);
SELECT aura.set_setting('display.currency', '"EUR"', 'location', 99999);
SELECT aura.set_setting('display.currency', NULL, 'restaurant');
SELECT aura.set_setting(NULL, '1');
SELECT aura.set_setting('loyalty.pending_days', '1', 'user', -3);
SELECT aura.set_setting('loyalty.pending_days', '1', reason => repeat('r', 1001));

------------------------------------------------------------------------------
-- secrets: sealed at rest, ******** everywhere, revealed only to aura_admin
------------------------------------------------------------------------------
SELECT aura.set_setting('notifications.email.password', '"hunter2-system"');
SELECT aura.set_setting('notifications.email.password', '"hunter2-restaurant"', 'restaurant', 100);
SELECT aura.get_setting('notifications.email.password') AS masked,
       aura.get_setting_text('notifications.email.password') AS masked_text;
SELECT scope, restaurant_id, key, value, key_id FROM aura.configured_settings
 WHERE key = 'notifications.email.password' ORDER BY scope;
SELECT v.value IS NULL AS no_plain_value, position('hunter2' IN encode(v.secret, 'escape')) = 0 AS ciphertext_only,
       v.key_id, v.fingerprint ~ '^hmac-sha256:[0-9a-f]{32}$' AS fingerprint
  FROM aura.setting_values v WHERE v.key = 'notifications.email.password';
SELECT aura.reveal_secret('notifications.email.password') AS system_plain,
       aura.reveal_secret('notifications.email.password', 'restaurant', 100) AS restaurant_plain;
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 101);
SELECT aura.reveal_secret('general.locale');
SELECT aura.reveal_secret('notifications.sms.auth_token');
-- history holds fingerprints only; the reveal is recorded (once per transaction)
SELECT count(*) AS plaintext_in_history FROM aura.setting_history()
 WHERE old_value::text LIKE '%hunter2%' OR new_value::text LIKE '%hunter2%';
SELECT key, scope, action, new_value ? 'fingerprint' AS fingerprinted FROM aura.setting_history('notifications.email.password')
 ORDER BY restaurant_id NULLS FIRST, id;
-- the same value again: same fingerprint, nothing written
SELECT aura.set_setting('notifications.email.password', '"hunter2-restaurant"', 'restaurant', 100);
SELECT count(*) AS password_history_rows FROM aura.setting_history('notifications.email.password', 'restaurant');
-- a tampered ciphertext, a swapped one and a malformed one fail to unseal
UPDATE aura.setting_values SET secret = set_byte(secret, length(secret) - 1, get_byte(secret, length(secret) - 1) # 1)
 WHERE key = 'notifications.email.password';
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 100);
UPDATE aura.setting_values v SET secret = s.secret FROM aura.system_settings s
 WHERE s.key = 'notifications.email.password' AND v.key = s.key;
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 100) AS copied_within_key_ok;
SELECT aura.set_setting('notifications.slack.webhook_url', '"https://hooks.slack.example/T000/B000/XXXX"', 'restaurant', 100);
UPDATE aura.setting_values v SET secret = s.secret FROM aura.system_settings s
 WHERE s.key = 'notifications.email.password' AND v.key = 'notifications.slack.webhook_url';
SELECT aura.reveal_secret('notifications.slack.webhook_url', 'restaurant', 100);
UPDATE aura.setting_values SET secret = '\x0102'::bytea WHERE key = 'notifications.slack.webhook_url';
SELECT aura.reveal_secret('notifications.slack.webhook_url', 'restaurant', 100);
SELECT aura._unseal('\x01057a7a7a7a7a000000000000000000000000000000000000000000000000'::bytea, 'x');
SELECT aura.reset_setting('notifications.slack.webhook_url', 'restaurant', 100);
-- the crypto primitives
SELECT aura._unseal(aura._seal('round trip', 'aad'), 'aad') AS round_trip;
SELECT aura._unseal(aura._seal('round trip', 'aad'), 'other aad');
SELECT aura._sealed_key_id(aura._seal('x', 'y')) AS key_id, length(aura._seal('', '')) AS empty_sealed_bytes;
SELECT aura._seal('a', 'b') <> aura._seal('a', 'b') AS fresh_nonce_each_time;
SELECT configured, current_key_id, key_count, source, error FROM aura.encryption_key_status();
-- the key GUCs are invisible to non-superusers and SHOW ALL
SELECT count(*) AS key_gucs_in_show_all FROM pg_settings WHERE name LIKE 'aura.encryption%';

------------------------------------------------------------------------------
-- roles and tenants
------------------------------------------------------------------------------
SELECT aura.clear_context();
SET ROLE regress_set_manager;
SHOW aura.encryption_key_command;
SELECT aura.set_setting('loyalty.pending_days', '1', 'restaurant', 100);   -- no context
SELECT aura.set_context(100);
SELECT aura.set_setting('loyalty.pending_days', '1', 'restaurant') AS manager_own_restaurant;
SELECT aura.set_setting('loyalty.pending_days', '1', 'restaurant', 101);
SELECT aura.set_setting('display.currency', '"EUR"', 'location', 120);
SELECT aura.set_setting('display.currency', '"EUR"', 'location', 111) AS manager_own_location;
SELECT aura.set_setting('loyalty.pending_days', '1', 'system');
SELECT aura.reset_setting('general.locale', 'system');
SELECT aura.get_setting('general.locale', 101, 120);
SELECT aura.get_setting_int('loyalty.pending_days') AS own_value;
SELECT scope, restaurant_id, scope_id, key FROM aura.configured_settings
 WHERE key IN ('loyalty.pending_days', 'display.currency', 'general.locale') ORDER BY 1, 2, 3, 4;
SELECT count(*) AS other_tenant_history FROM aura.setting_history WHERE restaurant_id <> 100;
SELECT count(*) AS system_history_visible FROM aura.system_setting_history;
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 100);
SELECT count(*) AS direct_table_read FROM aura.setting_values;
UPDATE aura.setting_definitions SET default_value = '5' WHERE key = 'loyalty.pending_days';
INSERT INTO aura.setting_history (restaurant_id, key, scope, scope_id, action, source, changed_by)
VALUES (100, 'loyalty.pending_days', 'restaurant', 100, 'update', 'direct', 'forged');
RESET ROLE;
SET ROLE regress_set_staff;
SELECT aura.set_context(100, NULL, 42);
SELECT aura.set_setting('display.time_format', '"12h"', 'user') AS staff_own_user_setting;
SELECT aura.get_setting_text('display.time_format') AS staff_sees_own;
SELECT aura.set_setting('display.time_format', '"12h"', 'user', 43);
SELECT aura.set_setting('display.time_format', '"12h"', 'restaurant');
RESET ROLE;
SET ROLE regress_set_reporter;
SELECT aura.set_context(100);
SELECT aura.get_setting_int('loyalty.pending_days') AS reporter_reads;
SELECT aura.set_setting('loyalty.pending_days', '4', 'restaurant');
RESET ROLE;
SET ROLE regress_set_admin;
SELECT aura.clear_context();
SELECT aura.set_setting('loyalty.pending_days', '6', 'restaurant', 101) AS admin_any_restaurant;
SELECT aura.get_setting_int('loyalty.pending_days', 101) AS admin_reads_any;
SELECT aura.set_setting('display.currency', '"EUR"', 'location', 120) AS admin_any_location;
RESET ROLE;

------------------------------------------------------------------------------
-- history: who, what, why, source; append-only
------------------------------------------------------------------------------
SELECT restaurant_id, key, scope, scope_id, action, source, old_value, new_value,
       CASE WHEN changed_by LIKE 'regress%' THEN changed_by ELSE '(superuser)' END AS changed_by,
       app_user_id, reason
  FROM aura.setting_history()
 WHERE key IN ('general.locale', 'loyalty.pending_days', 'display.time_format')
 ORDER BY restaurant_id NULLS FIRST, id;
SELECT count(*) AS since_future FROM aura.setting_history(since => now() + interval '1 day');
SELECT count(*) > 0 AS filtered_by_scope FROM aura.setting_history(scope => 'location', scope_id => 111);
UPDATE aura.setting_history SET reason = 'rewritten';
DELETE FROM aura.system_setting_history;
TRUNCATE aura.setting_history;

------------------------------------------------------------------------------
-- custom definitions (aura_admin): rules must fit the type, defaults pass them
------------------------------------------------------------------------------
INSERT INTO aura.setting_definitions (key, category, type, default_value, min_value, description)
VALUES ('custom.max_guests', 'operations', 'integer', '"25"', 1, 'test') RETURNING key, default_value;
INSERT INTO aura.setting_definitions (key, category, type, default_value, min_value, description)
VALUES ('custom.too_few', 'operations', 'integer', '0', 1, 'test');
INSERT INTO aura.setting_definitions (key, category, type, min_length, description)
VALUES ('custom.len_on_int', 'operations', 'integer', 3, 'test');
INSERT INTO aura.setting_definitions (key, category, type, pattern, description)
VALUES ('custom.bad_regex', 'operations', 'string', '([a-z', 'test');
\set VERBOSITY terse
INSERT INTO aura.setting_definitions (key, category, type, description)
VALUES ('custom.enum_without_values', 'operations', 'enum', 'test');
\set VERBOSITY default
INSERT INTO aura.setting_definitions (key, category, type, sensitive, default_value, description)
VALUES ('custom.secret_default', 'security', 'secret', true, '"x"', 'test');
\set VERBOSITY terse
INSERT INTO aura.setting_definitions (key, category, type, description)
VALUES ('NotDotted', 'operations', 'string', 'test');
\set VERBOSITY default
SELECT aura.get_setting_int('custom.max_guests', 100) AS new_definition_visible_at_once;
UPDATE aura.setting_definitions SET default_value = '30' WHERE key = 'custom.max_guests';
SELECT aura.get_setting_int('custom.max_guests', 100) AS new_default_at_once;
DELETE FROM aura.setting_definitions WHERE key = 'custom.max_guests';
SELECT aura.get_setting_int('custom.max_guests', 100);

-- bad input for the remaining public functions: clear errors, nothing changed
SELECT aura.reveal_secret(NULL);
SELECT aura.reveal_secret('notifications.email.password', 'galaxy');
SELECT aura.reveal_secret('notifications.email.password', 'system', 5);
SELECT aura.reveal_secret('notifications.email.password', 'location');
SELECT aura.reveal_secret(repeat('x', 1000000));
SELECT aura.lock_setting(NULL);
SELECT aura.unlock_setting('no.such');
SELECT aura.reset_setting(NULL);
SELECT aura.reset_setting('loyalty.pending_days', 'location', 110);
SELECT count(*) AS no_rows FROM aura.setting_history('no.such', 'user', -1, 'infinity');
SELECT count(*) FROM aura.setting_history(scope => 'galaxy');
SELECT * FROM aura.rotate_encryption_key_batch(0);
SELECT * FROM aura.rotate_encryption_key_batch(NULL);
SELECT reencrypted, remaining FROM aura.rotate_encryption_key_batch(10) AS nothing_to_rotate;
CALL aura.rotate_encryption_key(10);
SELECT aura._validate_setting('operations.business_hours', (repeat('{"a":', 200) || '1' || repeat('}', 200))::jsonb);
SELECT aura._validate_setting('display.receipt_footer', '"\u0000"');
SELECT aura._validate_setting('general.go_live_at', to_jsonb(repeat('9', 200)));
SELECT aura._validate_setting('insights.thread_window', '1e300');
SELECT aura._validate_setting('loyalty.points_per_unit', '-0.0000001');
SET ROLE regress_set_manager;
SELECT aura.set_context(100);
SELECT * FROM aura.effective_settings(101) LIMIT 1;
SELECT * FROM aura.rotate_encryption_key_batch(1);
SELECT * FROM aura.encryption_key_status();
SELECT aura._seal('x', 'y');
RESET ROLE;
SELECT aura.clear_context();

-- every table is protected by row-level security; nothing for PUBLIC
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
 WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind = 'r' AND c.relname LIKE '%setting%' ORDER BY 1;

SELECT aura.clear_context();
DROP ROLE regress_set_admin, regress_set_manager, regress_set_staff, regress_set_reporter;
