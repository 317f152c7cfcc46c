-- settings: typed values at four scopes, inheritance, locks, secrets, history, presets, versions
\set QUIET on
SELECT id AS trattoria FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset
SELECT id AS harbor FROM aura.restaurants WHERE name = 'Harbor Grill' \gset
SELECT id AS centro FROM aura.locations WHERE name = 'Centro' \gset
SELECT id AS mare FROM aura.locations WHERE name = 'Mare' \gset
-- a demo master key (production: a 0600 key file or a KMS command)
ALTER SYSTEM SET aura.encryption_key_command = 'echo demo1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
SELECT pg_reload_conf() \gset
SELECT pg_sleep(0.3) \gset

\echo
\echo 'the catalog: every setting has a type, a default, rules and the scopes it may be set at'
SELECT key, type, default_value, allowed_scopes FROM aura.setting_definitions
 WHERE key IN ('loyalty.points_per_unit', 'loyalty.tier_downgrade', 'insights.thread_window',
               'payment.tax_rate', 'notifications.email.password', 'general.locale')
 ORDER BY key;

\echo 'values are validated and stored canonically ("yes" -> true, "ANNIVERSARY" -> anniversary, PT36H -> 36:00:00):'
SELECT aura.set_setting('loyalty.allow_negative_balance', '"yes"', 'restaurant', :trattoria) AS boolean,
       aura.set_setting('loyalty.tier_downgrade', '"ANNIVERSARY"', 'restaurant', :trattoria) AS enum,
       aura.set_setting('insights.thread_window', '"PT36H"', 'restaurant', :trattoria) AS duration;
\echo 'a bad value is refused with the key, the rule and the value:'
\set ON_ERROR_STOP off
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT aura.set_setting('loyalty.points_expiry_days', '5000', 'restaurant', :trattoria);
\set ON_ERROR_STOP on

\echo
\echo 'four scopes: system -> restaurant -> location -> user; the most specific wins'
SELECT aura.set_setting('general.locale', '"en-US"') \gset
SELECT aura.set_setting('general.locale', '"it-IT"', 'restaurant', :trattoria) \gset
SELECT aura.set_setting('general.locale', '"en-GB"', 'location', :mare) \gset
SELECT aura.set_context(:trattoria) \gset
SELECT aura.set_setting('general.locale', '"de-DE"', 'user', 42) \gset
SELECT who, (aura._resolve_setting('general.locale', r, l, u)).*
  FROM (VALUES ('Harbor Grill guest', :harbor, NULL::bigint, NULL::bigint),
               ('Trattoria, Centro', :trattoria, :centro, NULL),
               ('Trattoria, Mare', :trattoria, :mare, NULL),
               ('Trattoria, Mare, user 42', :trattoria, :mare, 42)) t(who, r, l, u);

\echo 'a lock at the restaurant wins over location and user values, and blocks new ones:'
SELECT aura.lock_setting('general.locale', 'restaurant', :trattoria, 'brand language') \gset
SELECT aura.get_setting('general.locale', :trattoria, :mare, 42) AS with_lock;
\set ON_ERROR_STOP off
SELECT aura.set_setting('general.locale', '"fr-FR"', 'location', :centro);
\set ON_ERROR_STOP on
SELECT aura.unlock_setting('general.locale', 'restaurant', :trattoria) \gset

\echo
\echo 'secrets are sealed with AES-256-GCM; every read shows ********, only aura_admin reveals:'
SELECT aura.set_setting('notifications.email.password', '"s3cret-smtp"', 'restaurant', :trattoria) AS stored;
SELECT scope, restaurant_id, key, value, key_id FROM aura.configured_settings WHERE key = 'notifications.email.password';
SELECT aura.reveal_secret('notifications.email.password', 'restaurant', :trattoria) AS revealed_by_admin;

\echo 'history: who, what, when, why, from where (secrets as fingerprints):'
SELECT key, scope, action, source, old_value, new_value, changed_by, reason
  FROM aura.setting_history() WHERE restaurant_id = :trattoria
   AND key IN ('general.locale', 'notifications.email.password') ORDER BY changed_at, id;

\echo
\echo 'presets: a dry run shows the diff, then apply it to Harbor Grill'
SELECT * FROM aura.apply_template('takeout_focused', 'restaurant', :harbor, dry_run => true) LIMIT 5;
SELECT count(*) AS applied FROM aura.apply_template('takeout_focused', 'restaurant', :harbor);

\echo 'versions: snapshot, change, diff, roll back'
SELECT aura.snapshot_settings('restaurant', :harbor, 'launch') AS v1 \gset
SELECT aura.set_setting('operations.order_prep_minutes', '45', 'restaurant', :harbor) \gset
SELECT * FROM aura.diff_settings(:v1);
SELECT key, action, old_value, new_value FROM aura.rollback_settings(:v1);

\echo 'export (versioned JSON, secrets omitted) for another installation:'
SELECT jsonb_pretty(aura.export_settings('restaurant', :harbor) - 'exported_at') AS export;

\echo 'reads come from a per-backend cache, dropped at every committed change:'
\timing on
SELECT sum(aura.get_setting_int('operations.order_prep_minutes', :harbor)) AS sum_of_100k_reads
  FROM generate_series(1, 100000);
\timing off
SELECT aura.clear_context() \gset
SELECT name, ok, detail FROM aura.deployment_check() WHERE name IN ('encryption_key', 'settings_imported');
