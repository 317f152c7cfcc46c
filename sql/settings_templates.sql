-- Settings templates and presets, import/export, versions (snapshot, diff,
-- rollback).  Restaurants 160-169.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never

INSERT INTO aura.restaurants (id, name) VALUES (160, 'Templates A'), (161, 'Templates B');
INSERT INTO aura.locations (restaurant_id, id, name) VALUES (160, 165, 'TA 1');
CREATE ROLE regress_tpl_manager IN ROLE aura_manager;
CREATE ROLE regress_tpl_staff IN ROLE aura_staff;

-- presets ship with the extension
SELECT name, category, scope, tags, builtin, (SELECT count(*) FROM jsonb_object_keys("values")) AS settings
  FROM aura.configuration_templates ORDER BY name;

------------------------------------------------------------------------------
-- apply_template: dry run, apply, keep existing vs override, atomic
------------------------------------------------------------------------------
SET ROLE regress_tpl_manager;
SELECT aura.set_context(160);
SELECT aura.set_setting('operations.max_party_size', '20', 'restaurant');
SELECT * FROM aura.apply_template('fine_dining', 'restaurant', dry_run => true);
SELECT count(*) AS nothing_written_by_dry_run FROM aura.configured_settings WHERE restaurant_id = 160;
SELECT * FROM aura.apply_template('fine_dining', 'restaurant');
SELECT aura.get_setting_int('operations.max_party_size') AS kept_existing,
       aura.get_setting_text('operations.service_style') AS from_template,
       aura.get_setting_numeric('payment.service_charge_rate') AS charge;
SELECT * FROM aura.apply_template('quick_service', 'restaurant', override_existing => true) WHERE action <> 'unchanged';
SELECT aura.get_setting_int('operations.max_party_size') AS overridden;
SELECT source, count(*) FROM aura.setting_history WHERE restaurant_id = 160 GROUP BY 1 ORDER BY 1;
-- errors: unknown template, a scope the template's settings do not allow, other tenant
SELECT * FROM aura.apply_template('no_such_template');
SELECT * FROM aura.apply_template('fine_dining', 'location', 165);
SELECT * FROM aura.apply_template('fine_dining', 'restaurant', 161);
SELECT * FROM aura.apply_template(NULL);
RESET ROLE;
SELECT name, usage_count FROM aura.configuration_templates WHERE usage_count > 0 ORDER BY name;
-- a lock above makes the whole apply fail, nothing half-applied
SELECT aura.set_setting('operations.table_turn_minutes', '45', 'system');
SELECT aura.lock_setting('operations.table_turn_minutes', 'system');
SELECT count(*) AS rows_before FROM aura.setting_values WHERE restaurant_id = 161 \gset
SELECT * FROM aura.apply_template('casual_dining', 'restaurant', 161);
SELECT count(*) = :rows_before AS nothing_applied FROM aura.setting_values WHERE restaurant_id = 161;
SELECT aura.unlock_setting('operations.table_turn_minutes', 'system');
SELECT aura.reset_setting('operations.table_turn_minutes', 'system');
-- custom templates are validated; secrets are refused
INSERT INTO aura.configuration_templates (name, category, description, "values")
VALUES ('bad_values', 'custom', 'x', '{"operations.max_party_size": 0}');
INSERT INTO aura.configuration_templates (name, category, description, "values")
VALUES ('bad_key', 'custom', 'x', '{"no.such": 1}');
INSERT INTO aura.configuration_templates (name, category, description, "values")
VALUES ('with_secret', 'custom', 'x', '{"notifications.email.password": "p"}');
INSERT INTO aura.configuration_templates (name, category, description, "values")
VALUES ('late_kitchen', 'custom', 'x', '{"operations.order_prep_minutes": "35"}') RETURNING "values";

------------------------------------------------------------------------------
-- export / import
------------------------------------------------------------------------------
SELECT aura.set_setting('notifications.email.password', '"tpl-secret"', 'restaurant', 160);
SELECT aura.lock_setting('loyalty.points_per_unit', 'restaurant', 160);
SET ROLE regress_tpl_manager;
SELECT jsonb_pretty(aura.export_settings('restaurant') - 'exported_at' - 'aura_version');
SELECT aura.export_settings('restaurant', include_secrets => true);
SELECT aura.export_settings('system');
RESET ROLE;
SELECT aura.export_settings('restaurant', 160, include_secrets => true)->'settings'->'notifications.email.password' AS admin_export_secret;
-- round trip into another restaurant: merge
SELECT aura.export_settings('restaurant', 160) AS doc \gset
SELECT aura.set_setting('operations.max_party_size', '99', 'restaurant', 161);
SELECT aura.set_setting('display.receipt_footer', '"B only"', 'restaurant', 161);
SELECT * FROM aura.import_settings(:'doc', 'restaurant', 161, 'skip_existing') WHERE action <> 'set';
SELECT aura.get_setting_int('operations.max_party_size', 161) AS skip_kept_existing;
SELECT * FROM aura.import_settings(:'doc', 'restaurant', 161, 'merge') WHERE action <> 'unchanged';
SELECT aura.get_setting_int('operations.max_party_size', 161) AS merge_took_document,
       aura.get_setting_text('display.receipt_footer', 161) AS merge_kept_others;
SELECT * FROM aura.import_settings(:'doc', 'restaurant', 161, 'override') WHERE action <> 'unchanged';
SELECT aura.get_setting_text('display.receipt_footer', 161) AS override_removed_others;
SELECT key, locked FROM aura.configured_settings WHERE restaurant_id = 161 AND locked;
-- a document with secrets (admin export) imports and re-seals them
SELECT * FROM aura.import_settings(aura.export_settings('restaurant', 160, true), 'restaurant', 161, 'merge')
 WHERE key LIKE 'notifications%';
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 161) AS imported_secret;
-- a sensitive JSON setting (not type secret) round-trips as JSON
INSERT INTO aura.setting_definitions (key, category, type, sensitive, required_keys, allowed_scopes, description)
VALUES ('custom.pos_credentials', 'pos_integration', 'json', true, '{client_id,client_secret}', '{restaurant}', 'test');
SELECT aura.set_setting('custom.pos_credentials', '{"client_id": "c-1", "client_secret": "s-1"}', 'restaurant', 160);
SELECT aura.get_setting('custom.pos_credentials', 160) AS masked_json;
SELECT aura.export_settings('restaurant', 160, true)->'settings'->'custom.pos_credentials' AS exported_as_json;
SELECT key, action FROM aura.import_settings(aura.export_settings('restaurant', 160, true), 'restaurant', 161, 'merge')
 WHERE key = 'custom.pos_credentials';
SELECT aura.reveal_secret('custom.pos_credentials', 'restaurant', 161)::jsonb ->> 'client_secret' AS imported_json_secret;
DELETE FROM aura.setting_definitions WHERE key = 'custom.pos_credentials';
-- all or nothing, and bad documents
SELECT count(*) AS history_before FROM aura.setting_history WHERE restaurant_id = 161 \gset
SELECT * FROM aura.import_settings('{"format": "aura.settings", "version": 1, "settings": {"operations.max_party_size": 5, "loyalty.pending_days": -1}}', 'restaurant', 161);
SELECT * FROM aura.import_settings('{"format": "aura.settings", "version": 1, "settings": {"operations.max_party_size": 5, "x.y": 1}}', 'restaurant', 161);
SELECT (SELECT count(*) FROM aura.setting_history WHERE restaurant_id = 161) = :history_before AS nothing_changed,
       aura.get_setting_int('operations.max_party_size', 161) AS still;
SELECT * FROM aura.import_settings('{"settings": {}}', 'restaurant', 161);
SELECT * FROM aura.import_settings('{"format": "aura.settings", "version": 2, "settings": {}}', 'restaurant', 161);
SELECT * FROM aura.import_settings('{"format": "aura.settings", "version": 1, "settings": []}', 'restaurant', 161);
SELECT * FROM aura.import_settings('{"format": "aura.settings", "version": 1, "settings": {}, "locked": "all"}', 'restaurant', 161);
SELECT * FROM aura.import_settings('{"format": "aura.settings", "version": 1, "settings": {}}', 'restaurant', 161, 'replace');
SELECT * FROM aura.import_settings(NULL, 'restaurant', 161);
SELECT * FROM aura.import_settings('"text"', 'restaurant', 161);

------------------------------------------------------------------------------
-- versions: snapshot, diff, rollback
------------------------------------------------------------------------------
SET ROLE regress_tpl_manager;
SELECT aura.set_context(160);
SELECT aura.snapshot_settings('restaurant', label => 'before tuning') AS v1 \gset
SELECT aura.set_setting('operations.max_party_size', '6', 'restaurant');
SELECT aura.reset_setting('payment.tip_suggestions', 'restaurant');
SELECT aura.set_setting('display.receipt_footer', '"Grazie!"', 'restaurant');
SELECT aura.set_setting('notifications.email.password', '"rotated-pw"', 'restaurant');
SELECT aura.unlock_setting('loyalty.points_per_unit', 'restaurant');
SELECT aura.snapshot_settings('restaurant', label => 'after tuning') AS v2 \gset
SELECT * FROM aura.diff_settings(:v1, :v2);
SELECT * FROM aura.diff_settings(:v2) AS no_changes_since_v2;
SELECT * FROM aura.rollback_settings(:v1);
SELECT * FROM aura.diff_settings(:v1) AS nothing_left_after_rollback;
SELECT aura.get_setting_int('operations.max_party_size') AS restored,
       aura.get_setting_text('display.receipt_footer') AS footer_default_again;
SELECT scope, label, settings FROM aura.settings_versions WHERE restaurant_id = 160 ORDER BY id;
SELECT * FROM aura.rollback_settings(-1);
SELECT * FROM aura.diff_settings(NULL);
SELECT aura.snapshot_settings('system');
SELECT aura.snapshot_settings('restaurant', label => '');
RESET ROLE;
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 160) AS secret_rolled_back;
SELECT source, action, count(*) FROM aura.setting_history WHERE restaurant_id = 160 AND source = 'rollback'
 GROUP BY 1, 2 ORDER BY 1, 2;
-- another tenant's version is invisible to a manager
SELECT aura.snapshot_settings('restaurant', 161, 'B version') AS vb \gset
SET ROLE regress_tpl_manager;
SELECT aura.set_context(160);
\set VERBOSITY terse
SELECT * FROM aura.rollback_settings(:vb);
SELECT * FROM aura.diff_settings(:vb);
\set VERBOSITY default
RESET ROLE;
SET ROLE regress_tpl_staff;
SELECT aura.set_context(160);
SELECT * FROM aura.rollback_settings(:v1);
RESET ROLE;
-- system versions
SELECT aura.set_setting('loyalty.birthday_points', '50');
SELECT aura.snapshot_settings('system', label => 'system v1') AS sv1 \gset
SELECT aura.set_setting('loyalty.birthday_points', '75');
SELECT * FROM aura.diff_settings(:sv1) WHERE key = 'loyalty.birthday_points';
SELECT key, action FROM aura.rollback_settings(:sv1) WHERE key = 'loyalty.birthday_points';
SELECT aura.get_setting_int('loyalty.birthday_points') AS system_rolled_back;

SELECT aura.clear_context();
DROP ROLE regress_tpl_manager, regress_tpl_staff;

------------------------------------------------------------------------------
-- depends_on / conflicts_with (checked after each write, bulk and import as a whole)
------------------------------------------------------------------------------
SELECT key, depends_on, conflicts_with FROM aura.setting_definitions
 WHERE depends_on <> '{}' OR conflicts_with <> '{}' ORDER BY key;
SELECT aura.set_setting('operations.online_ordering_enabled', 'false', 'restaurant', 161);
SELECT aura.set_setting('operations.order_prep_minutes', '25', 'restaurant', 161);
SELECT * FROM aura.bulk_set_settings('{"operations.order_prep_minutes": 25, "operations.online_ordering_enabled": true}', 'restaurant', 161);
INSERT INTO aura.setting_definitions (key, category, type, default_value, conflicts_with, description)
VALUES ('custom.counter_only', 'operations', 'boolean', 'false', '{operations.reservations_enabled}', 'test');
SELECT aura.set_setting('operations.reservations_enabled', 'true', 'restaurant', 161);
SELECT aura.set_setting('custom.counter_only', 'true', 'restaurant', 161);
SELECT * FROM aura.bulk_set_settings('{"custom.counter_only": true, "operations.reservations_enabled": false}', 'restaurant', 161);
SELECT aura.set_setting('custom.counter_only', 'false', 'restaurant', 161) AS off_is_always_fine;
DELETE FROM aura.setting_definitions WHERE key = 'custom.counter_only';
