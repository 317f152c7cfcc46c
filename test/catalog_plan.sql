-- test/catalog_plan.sql — how every aura table scales out (DESIGN.md §8), and the
-- known exceptions to the tenant-key rules.  Read by the pg_regress test
-- sql/zz_catalog.sql (\i) and by test/t/091_docs.pl (which checks that
-- docs/operations.md lists the Citus call of every table).
--
-- Rule: a table with a restaurant_id column is a TENANT table, distributed by
-- restaurant_id.  Every other table must be listed in catalog_shared as a
-- reference table with the reason it is shared and an upper bound of its rows.
-- Tenant tables that cannot follow the key rules are listed in catalog_shared
-- too (placement 'reference') and each of their offending keys in
-- catalog_exceptions with the reason.  Anything not listed fails the test.

CREATE TEMP TABLE catalog_shared (
    tbl      text PRIMARY KEY,       -- table name in schema aura
    max_rows bigint NOT NULL,        -- "small": the test fails above this
    reason   text NOT NULL
);
INSERT INTO catalog_shared VALUES
  ('restaurants',             100000, 'the tenants themselves, keyed by id (= every other table''s restaurant_id); one row per restaurant'),
  ('setting_groups',            1000, 'setting catalog: groups shared by every restaurant'),
  ('setting_definitions',      10000, 'setting catalog: definitions shared by every restaurant'),
  ('configuration_templates',  10000, 'setting templates shared by every restaurant (built-in and admin-made)'),
  ('system_settings',          10000, 'system-scope setting values (one per definition at most)'),
  ('system_setting_history',  100000, 'history of system-scope setting changes (administrators only)'),
  ('system_setting_versions',  10000, 'snapshots of system-scope settings (administrators only)'),
  ('deployment_items',          1000, 'deployment checklist definitions'),
  ('privilege_matrix',         10000, 'declared grants: one row per object and role'),
  ('jobs',                      1000, 'background worker job registry'),
  ('insight_detectors',         1000, 'insight detector registry'),
  ('order_attachments',         1000, 'one row per application orders table attached with aura.attach_orders'),
  ('orders_sources',            1000, 'one row per application orders table registered for insights'),
  -- flags: documented exception (docs/flags.md "Keys"): global flags have
  -- restaurant_id NULL, so these tables use surrogate ids; flag definitions are
  -- configuration (small, read-mostly), so they are reference tables.
  ('flags',                   100000, 'flags exception: global rows have restaurant_id NULL (docs/flags.md)'),
  ('flag_strategies',         100000, 'flags exception: child of flags, surrogate id'),
  ('flag_segments',           100000, 'flags exception: global rows have restaurant_id NULL'),
  ('flag_constraints',        100000, 'flags exception: child of flag_strategies, surrogate id'),
  ('flag_variants',           100000, 'flags exception: child of flags, surrogate id'),
  ('flag_dependencies',       100000, 'flags exception: child of flags, surrogate id'),
  ('flag_ramps',              100000, 'flags exception: child of flags, surrogate id'),
  ('flag_kill_switches',      100000, 'flags exception: global rows have restaurant_id NULL'),
  ('flag_history',           1000000, 'flags exception: history of flag changes, surrogate id');

-- Keys (primary/unique indexes and foreign keys, by name) that break the
-- tenant-key rules on purpose or are known violations still to be fixed.
CREATE TEMP TABLE catalog_exceptions (
    name   text PRIMARY KEY,         -- index or constraint name, or table.column
    reason text NOT NULL
);
INSERT INTO catalog_exceptions VALUES
  ('flags_pkey',                        'flags exception (docs/flags.md): surrogate id'),
  ('flags_scope_key',                   'flags exception: unique on (coalesce(restaurant_id, 0), key)'),
  ('flag_strategies_pkey',              'flags exception: surrogate id'),
  ('flag_segments_pkey',                'flags exception: surrogate id'),
  ('flag_segments_scope_id',            'flags exception: unique on (coalesce(restaurant_id, 0), segment_id)'),
  ('flag_constraints_pkey',             'flags exception: surrogate id'),
  ('flag_variants_pkey',                'flags exception: surrogate id'),
  ('flag_dependencies_pkey',            'flags exception: surrogate id'),
  ('flag_ramps_pkey',                   'flags exception: surrogate id'),
  ('flag_ramps_flag_id_starts_at_key',  'flags exception: unique per flag id'),
  ('flag_kill_switches_pkey',           'flags exception: surrogate id'),
  ('flag_kill_switches_scope_type',     'flags exception: unique on (coalesce(restaurant_id, 0), flag_type)'),
  ('flag_history_pkey',                 'flags exception: surrogate id'),
  ('flag_strategies_flag_id_fkey',      'flags exception: reference table to reference table'),
  ('flag_constraints_strategy_id_fkey', 'flags exception: reference table to reference table'),
  ('flag_constraints_segment_id_fkey',  'flags exception: reference table to reference table'),
  ('flag_variants_flag_id_fkey',        'flags exception: reference table to reference table'),
  ('flag_variants_strategy_id_fkey',    'flags exception: reference table to reference table'),
  ('flag_dependencies_flag_id_fkey',    'flags exception: reference table to reference table'),
  ('flag_ramps_flag_id_fkey',           'flags exception: reference table to reference table');
