# Tenant isolation across every aura table, view and function, found in the
# catalog (so tables and functions that modules add later are covered without
# touching this file).
#
# Two restaurants, A and B, get rows in every tenant table (a table of schema
# aura with a restaurant_id column, plus aura.restaurants itself): through the
# public API where there is one, else generated from the catalog.  B's text
# values carry a marker.  Then, as a login role of each of aura_manager,
# aura_staff and aura_reporting in A's context, the test reads, updates,
# deletes and inserts B's rows in every tenant table and view, and calls every
# function it may execute with B's ids: nothing of B may be seen or changed.
# aura_admin sees every tenant by design (DESIGN.md section 4); the test checks
# that too, so a change of that rule is noticed.
#
# A NULL tenant column marks a global row (flags: docs/flags.md): readable by
# every tenant, so not counted as B's, but a tenant must not update, delete or
# take it over, nor make its own rows global.  Foreign keys ignore row-level
# security, so the test also tries to hang A's rows under B's rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenants');
$node->init;
$node->append_conf('postgresql.conf', join("\n",
    "shared_preload_libraries = 'aura'", "aura.database = 'postgres'",
    # webhook secrets are sealed with the master key; a refused loopback
    # connection is a recorded delivery attempt (aura.delivery_log)
    "aura.encryption_key_command = 'echo tapiso:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'", "aura.http_allow_hosts = '127.0.0.1'",
    "aura.poll_interval = 100", ''));
$node->start;

my ($A, $B) = (1, 2);
$node->safe_psql('postgres', qq{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name) VALUES ($A, 'A restaurant'), ($B, 'LEAKB restaurant');
    -- fixtures through the public API where there is one
    SELECT aura.create_api_key($A, 'A key', ARRAY['loyalty:*']);
    SELECT aura.create_api_key($B, 'LEAKB key', ARRAY['loyalty:*']);
    SELECT aura.audit('test.fixture', '{"marker": "A"}', $A);
    SELECT aura.audit('test.fixture', '{"marker": "LEAKB"}', $B);
    -- a global flag (restaurant_id NULL): readable by every tenant by design
    -- (docs/flags.md), writable only by aura_admin
    SELECT aura.flag_put('{"name": "global-flag", "enabled": true}', NULL);
    -- an application orders table attached to the ledger
    CREATE TABLE public.tap_orders (restaurant_id bigint, customer_id bigint, amount numeric, status text, id bigint);
    SELECT aura.attach_orders('public.tap_orders', 'restaurant_id', 'customer_id', 'amount', 'status', 'id');
    DO \$fx\$
    DECLARE
        r bigint;
        m text;
        iid bigint;
        tpl_id bigint;
        rw aura.rewards;
    BEGIN
        FOR r IN SELECT unnest(ARRAY[$A, $B]) LOOP
            m := CASE WHEN r = $B THEN 'LEAKB' ELSE 'A' END;
            PERFORM aura.set_context(r, NULL, 1);
            -- settings: a value at restaurant scope (and its history), a snapshot
            PERFORM aura.set_setting('display.receipt_footer', to_jsonb(m || ' footer'), 'restaurant', r);
            PERFORM aura.snapshot_settings('restaurant', r, m || ' snapshot');
            -- flags: an Unleash document (strategy, constraints, segment, variants,
            -- dependency, ramp), a kill switch; the history is written by triggers
            PERFORM aura.import_unleash(jsonb_build_object(
                'features', jsonb_build_array(
                    jsonb_build_object('name', m || '-parent', 'enabled', true),
                    jsonb_build_object('name', m || '-flag', 'enabled', true, 'description', m || ' flag',
                        'strategies', jsonb_build_array(jsonb_build_object('name', 'flexibleRollout',
                            'parameters', jsonb_build_object('rollout', '50', 'stickiness', 'default', 'groupId', m),
                            'constraints', jsonb_build_array(jsonb_build_object('contextName', 'userId', 'operator', 'IN',
                                                                                'values', jsonb_build_array(m))),
                            'segments', jsonb_build_array(10 + r),
                            'variants', jsonb_build_array(jsonb_build_object('name', m || '-sv', 'weight', 1000,
                                                                             'weightType', 'variable')))),
                        'variants', jsonb_build_array(jsonb_build_object('name', m || '-v', 'weight', 1000,
                                                                         'weightType', 'variable')),
                        'dependencies', jsonb_build_array(jsonb_build_object('feature', m || '-parent')),
                        'ramps', jsonb_build_array(jsonb_build_object('startsAt', '2030-01-01T00:00:00Z', 'rollout', 10)))),
                'segments', jsonb_build_array(jsonb_build_object('id', 10 + r, 'name', m || ' segment',
                    'constraints', jsonb_build_array(jsonb_build_object('contextName', 'userId', 'operator', 'IN',
                                                                        'values', jsonb_build_array(m)))))),
                r);
            PERFORM aura.flag_kill_type('experiment', true, r, m || ' kill');
            -- ledger: a milestone; earn (enough for a tier change), spend; a completed order
            INSERT INTO aura.loyalty_milestones (restaurant_id, kind, threshold, name)
                VALUES (r, 'nth_order', 1, m || ' first order');
            INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at)
                VALUES (r, m || ' double points', 2, '2030-01-01', '2030-01-02');
            -- (customer id = restaurant id, so the probe's calls with B's id
            -- name B's customer: aura.points_history(2, 2, ...))
            PERFORM aura.earn_points(r, r, 2500, m || '-ref', m || '-earn', m || ' earn');
            PERFORM aura.spend_points(r, r, 100, m || '-ref2', m || '-spend', m || ' spend');
            INSERT INTO public.tap_orders VALUES (r, 20 + r, 100, 'pending', 1);
            UPDATE public.tap_orders SET status = 'completed' WHERE restaurant_id = r;
            -- insights: an insight (thread, event), a rating, an action, detector runs
            iid := aura.record_insight(r, 'sales', 'anomaly', 'high', m || ' insight', '{}');
            PERFORM aura.rate_insight(iid, 'useful', m || ' rating');
            PERFORM aura.record_insight_action(iid, 'viewed', jsonb_build_object('marker', m));
            PERFORM aura.generate_insights(r);
            -- rewards: the default templates, a reward issued and redeemed, a
            -- bulk run (progress row), a campaign run, the analytics rollup
            PERFORM aura.install_default_rewards(r);
            SELECT id INTO tpl_id FROM aura.reward_templates
             WHERE restaurant_id = r AND points_cost = 0 AND active
               AND type IN ('percentage_discount', 'fixed_discount') AND eligible_tiers = '{}'
             ORDER BY id LIMIT 1;
            rw := aura.issue_reward(r, r, tpl_id, 'manual', NULL, m || '-reward');
            PERFORM aura.redeem_reward(rw.code, m || '-order', 100, r, m || '-redeem');
            PERFORM aura.issue_rewards_bulk(tpl_id, ARRAY[r]);
            INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target, status)
                VALUES (r, m || ' campaign', tpl_id, jsonb_build_object('customer_ids', jsonb_build_array(r)), 'active');
            PERFORM aura.run_campaign((SELECT max(id) FROM aura.reward_campaigns WHERE restaurant_id = r));
            PERFORM aura.refresh_reward_analytics();
            -- notifications: an in-app channel and a rule (inbox, rule match), a
            -- webhook to a closed port, no retries (outbox, one delivery attempt)
            PERFORM aura.set_notification_channel(m || '_inapp', 'in_app', '{}');
            PERFORM aura.create_webhook(m || '_hook', 'http://127.0.0.1:1/' || m, '{*}', max_retries => 0);
            PERFORM aura.set_notification_rule(m || '_rule', '{test.*}',
                jsonb_build_array(jsonb_build_object('channel', m || '_inapp', 'recipients', jsonb_build_array('1'))));
            PERFORM aura.emit_event(r, 'test.fixture', jsonb_build_object('marker', m));
        END LOOP;
    END
    \$fx\$;
    CREATE ROLE t_admin LOGIN IN ROLE aura_admin;
    CREATE ROLE t_manager LOGIN IN ROLE aura_manager;
    CREATE ROLE t_staff LOGIN IN ROLE aura_staff;
    CREATE ROLE t_reporting LOGIN IN ROLE aura_reporting;
});

# The dispatcher tries the webhooks once (a delivery_log row each), then
# nothing of A or B changes any more.
ok($node->poll_query_until('postgres', qq{
    SELECT count(DISTINCT restaurant_id) = 2 AND NOT EXISTS (
               SELECT 1 FROM aura.notifications WHERE status IN ('queued', 'sending', 'failed'))
      FROM aura.delivery_log}), 'the dispatcher has settled the fixtures\' outbox');

# Test scaffolding (schema tap, not part of aura): the tenant relations, a
# generic row generator, and the probe run as each role.
$node->safe_psql('postgres', q{
CREATE SCHEMA tap;
GRANT USAGE ON SCHEMA tap TO PUBLIC;

-- every tenant relation of schema aura and its tenant column
CREATE VIEW tap.tenant_relations AS
SELECT c.oid::regclass AS rel, c.relkind::text AS kind,
       CASE WHEN c.relname = 'restaurants' THEN 'id' ELSE 'restaurant_id' END::name AS col
  FROM pg_class c
 WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
   AND (c.relname = 'restaurants' OR EXISTS (
        SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'restaurant_id' AND NOT a.attisdropped));
GRANT SELECT ON tap.tenant_relations TO PUBLIC;

-- a value for a NOT NULL column without default, from the catalog
CREATE FUNCTION tap.sample_value(rel regclass, att pg_attribute, restaurant bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    fk record;
    v text;
    marker text := CASE WHEN restaurant = 2 THEN 'LEAKB' ELSE 'A' END;
BEGIN
    IF att.attname = 'restaurant_id' THEN
        RETURN restaurant::text;
    END IF;
    -- a foreign key: a row of the referenced table of the same restaurant
    SELECT c.confrelid::regclass AS ref, (SELECT attname FROM pg_attribute WHERE attrelid = c.confrelid
                                           AND attnum = c.confkey[array_position(c.conkey, att.attnum)]) AS refcol
      INTO fk FROM pg_constraint c
     WHERE c.conrelid = rel AND c.contype = 'f' AND att.attnum = ANY (c.conkey) LIMIT 1;
    IF FOUND THEN
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = fk.ref AND attname = 'restaurant_id') THEN
            EXECUTE format('SELECT %I::text FROM %s WHERE restaurant_id = $1 LIMIT 1', fk.refcol, fk.ref) INTO v USING restaurant;
        ELSE
            EXECUTE format('SELECT %I::text FROM %s LIMIT 1', fk.refcol, fk.ref) INTO v;
        END IF;
        RETURN v;
    END IF;
    RETURN CASE format_type(att.atttypid, NULL)
        WHEN 'text' THEN marker || ' generated'
        WHEN 'character varying' THEN marker
        WHEN 'bigint' THEN (1000 + restaurant)::text
        WHEN 'integer' THEN '1'
        WHEN 'smallint' THEN '1'
        WHEN 'numeric' THEN '1'
        WHEN 'boolean' THEN 'false'
        WHEN 'timestamp with time zone' THEN now()::text
        WHEN 'date' THEN current_date::text
        WHEN 'interval' THEN '1 day'
        WHEN 'jsonb' THEN format('{"marker": "%s"}', marker)
        WHEN 'json' THEN format('{"marker": "%s"}', marker)
        WHEN 'text[]' THEN format('{%s}', marker)
        WHEN 'bytea' THEN '\x00'
        WHEN 'uuid' THEN gen_random_uuid()::text
        ELSE NULL END;
END $$;

-- one generated row for a tenant table; returns NULL or the error
CREATE FUNCTION tap.fill(rel regclass, restaurant bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    att pg_attribute;
    cols text[] := '{}';
    vals text[] := '{}';
BEGIN
    FOR att IN SELECT * FROM pg_attribute a WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
                 AND (a.attnotnull OR a.attname = 'restaurant_id')
                 AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
               ORDER BY a.attnum LOOP
        cols := cols || quote_ident(att.attname);
        vals := vals || (quote_nullable(tap.sample_value(rel, att, restaurant)) || '::' || format_type(att.atttypid, att.atttypmod));
    END LOOP;
    EXECUTE format('INSERT INTO %s (%s) VALUES (%s)', rel, array_to_string(cols, ', '), array_to_string(vals, ', '));
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLERRM;
END $$;

-- B's rows as JSON, to try inserting copies of them
CREATE TABLE tap.brows AS SELECT NULL::regclass AS rel, NULL::jsonb AS row LIMIT 0;
GRANT SELECT ON tap.brows TO PUBLIC;

-- A's rows as JSON, to try hanging copies of them under B's rows (foreign keys)
CREATE TABLE tap.arows AS SELECT NULL::regclass AS rel, NULL::jsonb AS row LIMIT 0;
GRANT SELECT ON tap.arows TO PUBLIC;

-- an argument of a given type for a function call; B's ids for bigint
CREATE FUNCTION tap.arg(typ oid, bid bigint) RETURNS text LANGUAGE sql AS $$
    SELECT CASE format_type(typ, NULL)
        WHEN 'bigint' THEN bid::text
        WHEN 'bigint[]' THEN format('ARRAY[%s]::bigint[]', bid)
        WHEN 'date' THEN quote_literal(current_date) || '::date'
        WHEN 'integer' THEN '1'
        WHEN 'text' THEN quote_literal('loyalty:read')
        WHEN 'name' THEN quote_literal('restaurant_id') || '::name'
        WHEN 'boolean' THEN 'false'
        WHEN 'interval' THEN quote_literal('1 hour') || '::interval'
        WHEN 'timestamp with time zone' THEN quote_literal(now() + interval '1 day') || '::timestamptz'
        WHEN 'jsonb' THEN quote_literal('{}') || '::jsonb'
        WHEN 'text[]' THEN quote_literal('{loyalty:read}') || '::text[]'
        WHEN 'inet' THEN 'NULL::inet'
        WHEN 'cidr[]' THEN 'NULL::cidr[]'
        WHEN 'numeric' THEN '1'
        WHEN 'regclass' THEN quote_literal('aura.restaurants') || '::regclass'
        ELSE NULL END
$$;

-- The probe, run as the role under test in restaurant a's context.  One row
-- per attempt: what, on which object, the outcome, and whether B leaked.
CREATE FUNCTION tap.probe(a bigint, b bigint, b_ids bigint[]) RETURNS TABLE (attempt text, object text, outcome text, leak boolean)
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    f record;
    n bigint;
    g bigint;
    fk record;
    cols text;
    r jsonb;
    out text;
    args text;
    bid bigint;
BEGIN
    PERFORM aura.set_context(a);
    FOR t IN SELECT * FROM tap.tenant_relations ORDER BY 1 LOOP
        BEGIN
            -- rows of another restaurant; rows with a NULL tenant column are
            -- global (flags: readable by every tenant), counted apart
            EXECUTE format('SELECT count(*) FILTER (WHERE %I <> $1), count(*) FILTER (WHERE %I IS NULL) FROM %s',
                           t.col, t.col, t.rel) INTO n, g USING a;
            RETURN QUERY SELECT 'read', t.rel::text, n || ' foreign rows, ' || g || ' global rows', n > 0;
        EXCEPTION WHEN insufficient_privilege THEN
            RETURN QUERY SELECT 'read', t.rel::text, 'denied', false;
        END;
        CONTINUE WHEN t.kind NOT IN ('r', 'p');
        BEGIN
            EXECUTE format('WITH u AS (UPDATE %s SET %I = %I WHERE %I = $1 RETURNING 1) SELECT count(*) FROM u',
                           t.rel, t.col, t.col, t.col) INTO n USING b;
            RETURN QUERY SELECT 'update', t.rel::text, n || ' rows', n > 0;
        EXCEPTION WHEN OTHERS THEN
            RETURN QUERY SELECT 'update', t.rel::text, 'error ' || SQLSTATE, false;
        END;
        BEGIN
            -- (counted by the tenant column the rows end up with: a trigger
            -- may give a row its parent's restaurant back)
            EXECUTE format('WITH u AS (UPDATE %s SET %I = $2 WHERE %I = $1 RETURNING %I AS tenant) SELECT count(*) FROM u WHERE tenant = $2',
                           t.rel, t.col, t.col, t.col) INTO n USING a, b;
            RETURN QUERY SELECT 'move own rows to B', t.rel::text, n || ' rows', n > 0;
        EXCEPTION WHEN OTHERS THEN
            RETURN QUERY SELECT 'move own rows to B', t.rel::text, 'error ' || SQLSTATE, false;
        END;
        BEGIN
            EXECUTE format('WITH d AS (DELETE FROM %s WHERE %I = $1 RETURNING 1) SELECT count(*) FROM d',
                           t.rel, t.col) INTO n USING b;
            RETURN QUERY SELECT 'delete', t.rel::text, n || ' rows', n > 0;
        EXCEPTION WHEN OTHERS THEN
            RETURN QUERY SELECT 'delete', t.rel::text, 'error ' || SQLSTATE, false;
        END;
        -- global rows are shared by every restaurant: a tenant changing,
        -- taking over or deleting one, or making its own rows global, changes
        -- what B sees
        IF NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = t.rel AND attname = t.col) THEN
            BEGIN
                EXECUTE format('WITH u AS (UPDATE %s SET %I = %I WHERE %I IS NULL RETURNING 1) SELECT count(*) FROM u',
                               t.rel, t.col, t.col, t.col) INTO n;
                RETURN QUERY SELECT 'update global rows', t.rel::text, n || ' rows', n > 0;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'update global rows', t.rel::text, 'error ' || SQLSTATE, false;
            END;
            BEGIN
                EXECUTE format('WITH u AS (UPDATE %s SET %I = $1 WHERE %I IS NULL RETURNING %I AS tenant) SELECT count(*) FROM u WHERE tenant = $1',
                               t.rel, t.col, t.col, t.col) INTO n USING a;
                RETURN QUERY SELECT 'take over global rows', t.rel::text, n || ' rows', n > 0;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'take over global rows', t.rel::text, 'error ' || SQLSTATE, false;
            END;
            BEGIN
                EXECUTE format('WITH d AS (DELETE FROM %s WHERE %I IS NULL RETURNING 1) SELECT count(*) FROM d',
                               t.rel, t.col) INTO n;
                RETURN QUERY SELECT 'delete global rows', t.rel::text, n || ' rows', n > 0;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'delete global rows', t.rel::text, 'error ' || SQLSTATE, false;
            END;
            BEGIN
                EXECUTE format('WITH u AS (UPDATE %s SET %I = NULL WHERE %I = $1 RETURNING %I AS tenant) SELECT count(*) FROM u WHERE tenant IS NULL',
                               t.rel, t.col, t.col, t.col) INTO n USING a;
                RETURN QUERY SELECT 'make own rows global', t.rel::text, n || ' rows', n > 0;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'make own rows global', t.rel::text, 'error ' || SQLSTATE, false;
            END;
        END IF;
        -- foreign keys ignore row-level security: a row of A must not be
        -- hung under (or moved under) a row of B of a tenant table
        FOR fk IN SELECT c.conname, br.row AS bparent, ar.row AS arow,
                         (SELECT jsonb_object_agg(a1.attname, br.row -> a2.attname::text)
                            FROM unnest(c.conkey, c.confkey) AS k(ck, fk2)
                            JOIN pg_attribute a1 ON a1.attrelid = c.conrelid AND a1.attnum = k.ck
                            JOIN pg_attribute a2 ON a2.attrelid = c.confrelid AND a2.attnum = k.fk2) AS newvals
                    FROM pg_constraint c
                    JOIN tap.brows br ON br.rel = c.confrelid
                    JOIN tap.arows ar ON ar.rel = c.conrelid
                   WHERE c.conrelid = t.rel AND c.contype = 'f' AND c.confrelid <> 'aura.restaurants'::regclass LOOP
            SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols FROM pg_attribute
             WHERE attrelid = t.rel AND attnum > 0 AND NOT attisdropped AND attidentity = '' AND attgenerated = '';
            BEGIN
                EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1)',
                               t.rel, cols, cols, t.rel) USING fk.arow || fk.newvals;
                RETURN QUERY SELECT 'insert under B''s parent', t.rel::text || ' ' || fk.conname, 'inserted', true;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'insert under B''s parent', t.rel::text || ' ' || fk.conname, 'error ' || SQLSTATE, false;
            END;
            SELECT string_agg(quote_ident(k), ', ') INTO cols FROM jsonb_object_keys(fk.newvals) k;
            BEGIN
                EXECUTE format('WITH u AS (UPDATE %s SET (%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $2)) WHERE %I = $1 RETURNING %s) SELECT count(*) FROM u WHERE to_jsonb(u) @> $2',
                               t.rel, cols, cols, t.rel, t.col, cols) INTO n USING a, fk.newvals;
                RETURN QUERY SELECT 'move own rows under B''s parent', t.rel::text || ' ' || fk.conname, n || ' rows', n > 0;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'move own rows under B''s parent', t.rel::text || ' ' || fk.conname, 'error ' || SQLSTATE, false;
            END;
        END LOOP;
        FOR r IN SELECT br.row FROM tap.brows br WHERE br.rel = t.rel LIMIT 1 LOOP
            BEGIN
                EXECUTE format('INSERT INTO %s OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::%s, $1)',
                               t.rel, t.rel) USING r;
                RETURN QUERY SELECT 'insert into B', t.rel::text, 'inserted', true;
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'insert into B', t.rel::text, 'error ' || SQLSTATE, false;
            END;
        END LOOP;
    END LOOP;

    -- every function of schema aura this role may execute, with B's ids
    FOR f IN SELECT p.oid::regprocedure AS fn, p.proargtypes, p.pronargs, p.proretset
               FROM pg_proc p
              WHERE p.pronamespace = 'aura'::regnamespace AND p.prokind = 'f'
                AND p.prorettype <> 'trigger'::regtype
                AND has_function_privilege(p.oid, 'EXECUTE')
              ORDER BY 1 LOOP
        FOREACH bid IN ARRAY b_ids LOOP
            SELECT string_agg(coalesce(tap.arg(t2, bid), '<?>'), ', ' ORDER BY o) INTO args
              FROM unnest(f.proargtypes::oid[]) WITH ORDINALITY AS u(t2, o);
            IF args LIKE '%<?>%' THEN
                RETURN QUERY SELECT 'call', f.fn::text, 'skipped: argument type without a generator', false;
                EXIT;
            END IF;
            BEGIN
                EXECUTE format('SELECT string_agg(x::text, %L) FROM %s(%s) x', ';',
                               split_part(f.fn::text, '(', 1), coalesce(args, '')) INTO out;
                RETURN QUERY SELECT 'call', format('%s with %s', f.fn, bid),
                                    left(coalesce(out, 'NULL'), 200), coalesce(out LIKE '%LEAKB%', false);
            EXCEPTION WHEN OTHERS THEN
                RETURN QUERY SELECT 'call', format('%s with %s', f.fn, bid), 'error ' || SQLSTATE, false;
            END;
            -- a call may have changed the context (aura.set_context is not an
            -- authorization: see docs/security.md); go back to A
            PERFORM aura.set_context(a);
            EXIT WHEN f.pronargs = 0 OR NOT (f.proargtypes::oid[] && ARRAY['bigint'::regtype, 'bigint[]'::regtype]::oid[]);
        END LOOP;
    END LOOP;
END $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tap TO PUBLIC;
});

# Rows for A and B in every tenant table: generated where the API left none.
my @tables = split /\n/, $node->safe_psql('postgres',
    "SELECT rel FROM tap.tenant_relations WHERE kind IN ('r', 'p') ORDER BY 1");
ok(scalar(@tables) >= 4, 'tenant tables found in the catalog: ' . join(' ', @tables));
for my $t (@tables) {
    my $col = $t eq 'aura.restaurants' ? 'id' : 'restaurant_id';
    for my $r ($A, $B) {
        my $have = $node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE $col = $r");
        if ($have == 0) {
            my $err = $node->safe_psql('postgres', "SELECT tap.fill('$t', $r)");
            is($err, '', "generated a row of restaurant $r in $t") or diag("add a fixture for $t");
        }
        cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM $t WHERE $col = $r"), '>', 0,
            "$t has rows of restaurant $r");
    }
}
$node->safe_psql('postgres', qq{
    DO \$\$
    DECLARE t record;
    BEGIN
        FOR t IN SELECT * FROM tap.tenant_relations WHERE kind IN ('r', 'p') LOOP
            EXECUTE format('INSERT INTO tap.brows SELECT %L::regclass, to_jsonb(x) FROM %s x WHERE %I = $B LIMIT 1',
                           t.rel, t.rel, t.col);
            EXECUTE format('INSERT INTO tap.arows SELECT %L::regclass, to_jsonb(x) FROM %s x WHERE %I = $A LIMIT 1',
                           t.rel, t.rel, t.col);
        END LOOP;
    END \$\$;
});

# B's rows, fingerprinted, to prove nothing changed afterwards
my $fingerprint_sql = q{
    SELECT string_agg(format('%s:%s', rel, (SELECT md5(string_agg(x::text, '|' ORDER BY x::text))
                                            FROM jsonb_array_elements(rows) x)), ' ' ORDER BY rel)
      FROM (SELECT t.rel::text AS rel, tap.rows_of(t.rel, t.col, } . $B . q{) AS rows
              FROM tap.tenant_relations t WHERE kind IN ('r', 'p')) s};
$node->safe_psql('postgres', q{
    CREATE FUNCTION tap.rows_of(rel regclass, col name, r bigint) RETURNS jsonb LANGUAGE plpgsql AS $$
    DECLARE j jsonb;
    BEGIN
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(x) - ''last_used_at'' - ''use_count''), ''[]'') FROM %s x WHERE %I = $1', rel, col)
           INTO j USING r;
        RETURN j;
    END $$;
});
my $before = $node->safe_psql('postgres', $fingerprint_sql);

my $b_ids = $node->safe_psql('postgres', qq{
    SELECT format('ARRAY[%s]::bigint[]', string_agg(DISTINCT id::text, ','))
      FROM (SELECT $B AS id UNION ALL SELECT id FROM aura.api_keys WHERE restaurant_id = $B
            UNION ALL SELECT id FROM aura.locations WHERE restaurant_id = $B
            -- the id of a row of B in every tenant table (insights, webhooks, flags...)
            UNION ALL SELECT (row ->> 'id')::bigint FROM tap.brows WHERE row ->> 'id' ~ '^[0-9]{1,18}\$') ids});

for my $role (qw(t_manager t_staff t_reporting)) {
    my ($rc, $out, $err) = $node->psql('postgres',
        "BEGIN; SELECT attempt, object, outcome, leak FROM tap.probe($A, $B, $b_ids); ROLLBACK;",
        extra_params => ['-U', $role, '-q', '-A', '-t', '-F', "\t"]);
    is($rc, 0, "$role: probe ran") or diag($err);
    my @rows = grep { length } split /\n/, $out;
    my @leaks = grep { (split /\t/)[3] eq 't' } @rows;
    my %kinds;
    $kinds{(split /\t/)[0]}++ for @rows;
    ok(@rows > 20, "$role: " . scalar(@rows) . ' attempts (' . join(', ', map { "$_ $kinds{$_}" } sort keys %kinds) . ')');
    is(scalar(@leaks), 0, "$role in restaurant A: nothing of restaurant B read, changed or returned")
        or diag(join("\n", @leaks));
    for my $t (@tables) {
        ok((grep { /^read\t\Q$t\E\t/ } @rows), "$role: read of $t attempted");
    }
    my @calls = grep { /^call\t/ } @rows;
    ok(scalar(@calls) > 5, "$role: " . scalar(@calls) . ' function calls with B\'s ids');
    is($node->safe_psql('postgres', $fingerprint_sql), $before, "$role: B's rows unchanged");

    # without a context: no tenant row at all
    my $visible = $node->safe_psql('postgres', q{
        SELECT coalesce(sum(n), 0) FROM (SELECT (xpath('/row/n/text()', query_to_xml(
            format('SELECT count(*) AS n FROM %s WHERE %I IS NOT NULL', rel, col), false, true, '')))[1]::text::bigint AS n
          FROM tap.tenant_relations WHERE has_table_privilege(rel, 'SELECT')) s},
        extra_params => ['-U', $role]);
    is($visible, '0', "$role without a restaurant in context sees no tenant rows");
}

# C readers of the settings cache (which serves every tenant) return numbers,
# not B's marker: a restaurant's settings must still be its own.
$node->safe_psql('postgres', "SELECT aura.set_setting('insights.export_row_cap', '4242', 'restaurant', $B)");
for my $role (qw(t_manager t_staff t_reporting)) {
    my ($rc, $out, $err) = $node->psql('postgres', "SELECT aura.set_context($A); SELECT export_row_cap FROM aura.insights_config($B)",
        extra_params => ['-U', $role]);
    like($err, qr/restaurant $B is not the restaurant in context/, "$role: aura.insights_config of restaurant B is refused")
        or diag($out);
}

# The probe finds leaks: a leaky SECURITY DEFINER function and a table with
# row-level security switched off are both reported.
$node->safe_psql('postgres', q{
    CREATE FUNCTION aura.tap_leaky(r bigint) RETURNS text LANGUAGE sql SECURITY DEFINER
        AS 'SELECT name FROM aura.restaurants WHERE id = r';
    GRANT EXECUTE ON FUNCTION aura.tap_leaky(bigint) TO aura_staff;
    ALTER TABLE aura.locations DISABLE ROW LEVEL SECURITY;
});
my ($rc2, $out2) = $node->psql('postgres', "BEGIN; SELECT attempt, object FROM tap.probe($A, $B, $b_ids) WHERE leak; ROLLBACK;",
    extra_params => ['-U', 't_staff', '-q', '-A', '-t', '-F', "\t"]);
like($out2, qr/^call\taura\.tap_leaky\(bigint\) with $B$/m, 'self-test: a function returning B\'s data is reported');
like($out2, qr/^read\taura\.locations$/m, 'self-test: a table without row-level security is reported');
$node->safe_psql('postgres', q{
    DROP FUNCTION aura.tap_leaky(bigint);
    ALTER TABLE aura.locations ENABLE ROW LEVEL SECURITY;
});

# ... and so are a policy letting tenants write global rows, and a child
# table whose foreign key lets A's rows hang under B's
$node->safe_psql('postgres', q{
    CREATE POLICY tap_global_write ON aura.flags USING (restaurant_id IS NULL);
    ALTER TABLE aura.flag_ramps DISABLE TRIGGER flag_child_scope;
});
my ($rc3, $out3) = $node->psql('postgres', "BEGIN; SELECT attempt, object FROM tap.probe($A, $B, $b_ids) WHERE leak; ROLLBACK;",
    extra_params => ['-U', 't_manager', '-q', '-A', '-t', '-F', "\t"]);
like($out3, qr/^(?:update|take over|delete) global rows\taura\.flags$/m, 'self-test: a tenant writing global rows is reported');
like($out3, qr/^insert under B's parent\taura\.flag_ramps flag_ramps_flag_id_fkey$/m,
     'self-test: a row of A hung under a row of B is reported');
$node->safe_psql('postgres', q{
    DROP POLICY tap_global_write ON aura.flags;
    ALTER TABLE aura.flag_ramps ENABLE TRIGGER flag_child_scope;
});

# aura_admin sees every tenant (the documented rule), and in A's context too
is($node->safe_psql('postgres', "SELECT aura.set_context($A); SELECT count(DISTINCT restaurant_id) FROM aura.api_keys_view",
        extra_params => ['-U', 't_admin']), "\n2", 'aura_admin sees every restaurant, as documented');

$node->stop;
done_testing();
