-- Scale-out readiness (DESIGN.md §8), checked against the catalog after every
-- other regression file has run (zz_: last in name order).  The plan and the
-- known exceptions are in test/catalog_plan.sql; anything new that breaks the
-- rules is listed here and fails the test.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
\set ECHO none
\i test/catalog_plan.sql
\set ECHO all

CREATE TEMP VIEW aura_tables AS
SELECT c.oid, c.relname AS tbl,
       a.attnum AS rid,                                   -- restaurant_id column, if any
       EXISTS (SELECT 1 FROM catalog_shared s WHERE s.tbl = c.relname) AS shared
  FROM pg_class c
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'restaurant_id' AND NOT a.attisdropped
 WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'p');

-- 1. every table is either a tenant table (restaurant_id NOT NULL) or listed as shared
SELECT t.tbl AS unplanned_table
  FROM aura_tables t
 WHERE NOT t.shared
   AND (t.rid IS NULL OR NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = t.oid AND attnum = t.rid))
 ORDER BY 1;

-- listed shared tables that no longer exist (keep the plan exact)
SELECT s.tbl AS stale_shared_entry FROM catalog_shared s
 WHERE NOT EXISTS (SELECT 1 FROM aura_tables t WHERE t.tbl = s.tbl) ORDER BY 1;

-- 2. tenant tables: a primary key, and it and every unique index lead with restaurant_id
SELECT t.tbl AS tenant_table_without_pk FROM aura_tables t
 WHERE t.rid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indisprimary)
   AND t.tbl NOT IN (SELECT tbl FROM catalog_shared)
 ORDER BY 1;

SELECT t.tbl, i.indexrelid::regclass AS key_not_led_by_restaurant_id, pg_get_indexdef(i.indexrelid) AS def
  FROM aura_tables t JOIN pg_index i ON i.indrelid = t.oid
 WHERE t.rid IS NOT NULL AND i.indisunique
   AND i.indkey[0] <> t.rid
   AND NOT EXISTS (SELECT 1 FROM catalog_exceptions e
                    WHERE e.name = (SELECT relname FROM pg_class WHERE oid = i.indexrelid))
 ORDER BY 1, 2;

-- 3. foreign keys: between tenant tables they carry restaurant_id on both sides
--    at the same position; a reference table never points at a tenant table
SELECT c.conrelid::regclass AS src, c.confrelid::regclass AS dst, c.conname AS fk_breaking_the_rules,
       pg_get_constraintdef(c.oid) AS def
  FROM pg_constraint c
  JOIN aura_tables s ON s.oid = c.conrelid
  JOIN aura_tables d ON d.oid = c.confrelid
 WHERE c.contype = 'f'
   AND NOT EXISTS (SELECT 1 FROM catalog_exceptions e WHERE e.name = c.conname)
   AND CASE
         WHEN d.shared THEN false                                  -- to a reference table: fine
         WHEN s.shared THEN true                                   -- reference -> distributed
         ELSE NOT EXISTS (SELECT 1 FROM generate_subscripts(c.conkey, 1) k
                           WHERE c.conkey[k] = s.rid AND c.confkey[k] = d.rid)
       END
 ORDER BY 1, 3;

-- 4. tenant tables have row-level security enabled and forced
SELECT t.tbl AS tenant_table_without_forced_rls
  FROM aura_tables t JOIN pg_class c ON c.oid = t.oid
 WHERE t.rid IS NOT NULL AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
 ORDER BY 1;

-- 5. shared tables are few and small
SELECT count(*) AS shared_tables, count(*) <= 25 AS few FROM catalog_shared;
SELECT s.tbl AS shared_table_over_its_bound, n.rows, s.max_rows
  FROM catalog_shared s
  CROSS JOIN LATERAL (SELECT (xpath('/row/n/text()',
        query_to_xml(format('SELECT count(*) AS n FROM aura.%I', s.tbl), false, true, '')))[1]::text::bigint AS rows) n
 WHERE n.rows > s.max_rows
 ORDER BY 1;

-- 6. pg_upgrade compatibility: no columns of the reg* types whose OIDs pg_upgrade
--    does not preserve (it refuses such clusters); regclass, regtype, regrole are fine
SELECT t.tbl || '.' || a.attname AS column_blocking_pg_upgrade, a.atttypid::regtype AS type
  FROM aura_tables t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE a.atttypid IN ('regproc'::regtype, 'regprocedure'::regtype, 'regoper'::regtype,
                      'regoperator'::regtype, 'regconfig'::regtype, 'regdictionary'::regtype,
                      'regnamespace'::regtype, 'regcollation'::regtype)
   AND NOT EXISTS (SELECT 1 FROM catalog_exceptions e WHERE e.name = t.tbl || '.' || a.attname)
 ORDER BY 1;

-- exceptions that no longer match anything (keep the list exact)
SELECT e.name AS stale_exception FROM catalog_exceptions e
 WHERE NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = e.name AND relnamespace = 'aura'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = e.name AND connamespace = 'aura'::regnamespace)
   AND NOT EXISTS (SELECT 1 FROM aura_tables t JOIN pg_attribute a ON a.attrelid = t.oid
                    WHERE t.tbl || '.' || a.attname = e.name AND NOT a.attisdropped)
 ORDER BY 1;

-- the exceptions, visible in the expected output with their reasons
SELECT name, reason FROM catalog_exceptions ORDER BY reason LIKE 'VIOLATION%' DESC, name;

-- 7. the Citus plan (docs/operations.md lists exactly these calls; test/t/091_docs.pl
--    checks it): reference tables first, then distributed tables after the tables
--    their foreign keys point at, all co-located with aura.locations
WITH RECURSIVE fk AS (
    SELECT DISTINCT c.conrelid AS src, c.confrelid AS dst
      FROM pg_constraint c JOIN aura_tables s ON s.oid = c.conrelid JOIN aura_tables d ON d.oid = c.confrelid
     WHERE c.contype = 'f' AND c.conrelid <> c.confrelid AND NOT d.shared AND NOT s.shared
), depth AS (
    SELECT t.oid, 0 AS d FROM aura_tables t
    UNION ALL
    SELECT fk.src, depth.d + 1 FROM depth JOIN fk ON fk.dst = depth.oid WHERE depth.d < 20
), plan AS (
    SELECT t.tbl, t.shared, max(depth.d) AS d
      FROM aura_tables t JOIN depth ON depth.oid = t.oid GROUP BY t.tbl, t.shared
)
SELECT CASE WHEN shared
            THEN format('SELECT create_reference_table(%L);', 'aura.' || tbl)
            WHEN tbl = 'locations'
            THEN format('SELECT create_distributed_table(%L, %L);', 'aura.' || tbl, 'restaurant_id')
            ELSE format('SELECT create_distributed_table(%L, %L, colocate_with => %L);',
                        'aura.' || tbl, 'restaurant_id', 'aura.locations')
       END AS citus_call
  FROM plan
 ORDER BY shared DESC, tbl <> 'restaurants', tbl <> 'locations', d, tbl;
