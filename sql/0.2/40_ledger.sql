------------------------------------------------------------------------------
-- 40 ledger: loyalty accounts, the append-only points ledger, lots, tiers,
-- events, milestones and the order trigger.  Reference: docs/loyalty.md.
------------------------------------------------------------------------------

-- Accounts: one per (restaurant, customer), created on first use by the
-- posting functions.  balance = sum of the ledger = sum of open lots.
CREATE TABLE aura.loyalty_accounts (
    restaurant_id         bigint NOT NULL REFERENCES aura.restaurants (id),
    customer_id           bigint NOT NULL CHECK (customer_id > 0),
    balance               bigint NOT NULL DEFAULT 0,
    pending               bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
    lifetime_earned       bigint NOT NULL DEFAULT 0 CHECK (lifetime_earned >= 0),
    lifetime_spent        bigint NOT NULL DEFAULT 0 CHECK (lifetime_spent >= 0),
    lifetime_spend_amount numeric(14,2) NOT NULL DEFAULT 0,
    order_count           bigint NOT NULL DEFAULT 0,
    tier                  text,
    tier_since            timestamptz,
    birthday              date,
    last_birthday_year    int,
    enrolled_at           timestamptz NOT NULL DEFAULT now(),
    status                text NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'frozen', 'closed')),
    PRIMARY KEY (restaurant_id, customer_id)
);
COMMENT ON TABLE aura.loyalty_accounts IS 'Loyalty accounts: balance, pending points, lifetime figures, tier and status of one customer of one restaurant. Changed only by aura''s posting functions (and status/birthday by managers).';

-- The ledger: one immutable row per posting.
CREATE TABLE aura.points_transactions (
    restaurant_id   bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    customer_id     bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('earn', 'redeem', 'adjust', 'transfer_out',
                        'transfer_in', 'expire', 'reversal', 'bonus', 'migration')),
    points          bigint NOT NULL,
    balance_before  bigint NOT NULL,
    balance_after   bigint NOT NULL,
    source          text NOT NULL CHECK (source IN ('order', 'manual', 'api', 'import',
                        'campaign', 'reward', 'system')),
    reference       text CHECK (length(reference) <= 200),
    idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    reason          text CHECK (length(reason) <= 1000),
    counterparty    bigint,
    amount          numeric(14,2),
    expires_at      timestamptz,
    available_at    timestamptz,
    actor_role      text NOT NULL DEFAULT current_user,
    actor_user      bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    CHECK (balance_after = balance_before + points)
);
CREATE UNIQUE INDEX points_transactions_idempotency_key
    ON aura.points_transactions (restaurant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX points_transactions_customer
    ON aura.points_transactions (restaurant_id, customer_id, id);
CREATE INDEX points_transactions_reference
    ON aura.points_transactions (restaurant_id, reference) WHERE reference IS NOT NULL;
COMMENT ON TABLE aura.points_transactions IS 'The points ledger, append-only: UPDATE, DELETE and TRUNCATE are rejected; corrections are new rows (aura.adjust_points).';

-- Lots: what is left of each earning (and of points received by transfer or
-- import), consumed oldest expiry first.  remaining is the only mutable figure.
CREATE TABLE aura.points_lots (
    restaurant_id   bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    customer_id     bigint NOT NULL,
    transaction_id  bigint NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    remaining       bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at      timestamptz,
    available_at    timestamptz NOT NULL,
    PRIMARY KEY (restaurant_id, id)
);
CREATE INDEX points_lots_open
    ON aura.points_lots (restaurant_id, customer_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX points_lots_expiring
    ON aura.points_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
COMMENT ON TABLE aura.points_lots IS 'Open amounts of earned points with their expiry and availability (pending until available_at); sum of remaining = balance.';

-- Append-only guard of the ledger (C): rows and TRUNCATE.
CREATE FUNCTION aura._ledger_append_only() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aura_ledger_append_only';
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON aura.points_transactions
    FOR EACH ROW EXECUTE FUNCTION aura._ledger_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON aura.points_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION aura._ledger_append_only();

-- Tiers per restaurant.  A restaurant without tiers gets the defaults the
-- first time a posting needs them (see docs/loyalty.md).
CREATE TABLE aura.loyalty_tiers (
    restaurant_id   bigint NOT NULL REFERENCES aura.restaurants (id),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 60),
    min_points      bigint NOT NULL CHECK (min_points >= 0),
    min_spend       numeric(14,2) CHECK (min_spend >= 0),
    min_orders      bigint CHECK (min_orders >= 0),
    min_months      int CHECK (min_months >= 0),
    benefits        jsonb NOT NULL DEFAULT '{"earn_multiplier": 1.0}'
                    CHECK (jsonb_typeof(benefits) = 'object'
                       AND (NOT benefits ? 'earn_multiplier'
                            OR (jsonb_typeof(benefits -> 'earn_multiplier') = 'number'
                                AND (benefits ->> 'earn_multiplier')::numeric BETWEEN 0 AND 100))),
    PRIMARY KEY (restaurant_id, name),
    UNIQUE (restaurant_id, min_points)
);
COMMENT ON TABLE aura.loyalty_tiers IS 'Tiers of a restaurant, ranked by min_points (lifetime points); optional minimum spend, order count and months enrolled; benefits.earn_multiplier multiplies order earnings.';

CREATE TABLE aura.tier_history (
    restaurant_id   bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    customer_id     bigint NOT NULL,
    old_tier        text,
    new_tier        text NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('upgrade', 'downgrade', 'import')),
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id)
);
CREATE INDEX tier_history_customer ON aura.tier_history (restaurant_id, customer_id, id);
COMMENT ON TABLE aura.tier_history IS 'Every tier change of a loyalty account.';

-- Event log of the loyalty module: tier.changed, milestone.reached (each
-- also emitted through aura.emit_event for notifications by ledger.c), and
-- the events recorded only for aura's own consumers when one asks for them
-- (order.completed, order.reversed, points.earned, birthday.awarded; see
-- src/ledger_events.c).
CREATE TABLE aura.loyalty_events (
    restaurant_id   bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    event_type      text NOT NULL,
    data            jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id)
);
COMMENT ON TABLE aura.loyalty_events IS 'Log of loyalty events: tier.changed and milestone.reached (also emitted through aura.emit_event); order.completed, order.reversed, points.earned and birthday.awarded when a consumer (reward templates) needs them.';

-- Milestone rules (consumed by the rewards module) and the customers who
-- reached them.
CREATE TABLE aura.loyalty_milestones (
    restaurant_id   bigint NOT NULL REFERENCES aura.restaurants (id),
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    kind            text NOT NULL CHECK (kind IN ('nth_order', 'lifetime_spend')),
    threshold       numeric(14,2) NOT NULL CHECK (threshold > 0),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, kind, threshold)
);
COMMENT ON TABLE aura.loyalty_milestones IS 'Milestone rules: the nth completed order, a lifetime spend threshold. Reaching one records aura.milestone_hits and a milestone.reached event.';

CREATE TABLE aura.milestone_hits (
    restaurant_id   bigint NOT NULL,
    milestone_id    bigint NOT NULL,
    customer_id     bigint NOT NULL,
    order_ref       text,
    reached_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, milestone_id, customer_id)
);
COMMENT ON TABLE aura.milestone_hits IS 'Milestones reached by customers, once per customer and rule.';

-- Points multiplier campaigns: order earnings are multiplied by every active
-- one (window [starts_at, ends_at), optional tiers) of the restaurant.
CREATE TABLE aura.points_multipliers (
    restaurant_id   bigint NOT NULL REFERENCES aura.restaurants (id),
    id              bigint GENERATED BY DEFAULT AS IDENTITY,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    multiplier      numeric(6,3) NOT NULL CHECK (multiplier > 0 AND multiplier <= 100),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    tiers           text[] NOT NULL DEFAULT '{}'
                    CHECK (array_position(tiers, NULL) IS NULL AND cardinality(tiers) <= 20),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    CHECK (ends_at > starts_at)
);
COMMENT ON TABLE aura.points_multipliers IS 'Points multiplier campaigns: attached orders earn floor(amount x points_per_unit x tier multiplier x every active multiplier) while now is in [starts_at, ends_at) and the account''s tier is in tiers (empty: every tier).';

-- Cache invalidation: tiers and milestones are cached per backend; any change
-- sends a relcache invalidation of the table at commit (C).
CREATE FUNCTION aura._loyalty_cache_invalidate() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aura_loyalty_cache_invalidate';
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aura.loyalty_tiers
    FOR EACH STATEMENT EXECUTE FUNCTION aura._loyalty_cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aura.loyalty_milestones
    FOR EACH STATEMENT EXECUTE FUNCTION aura._loyalty_cache_invalidate();
CREATE TRIGGER cache_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON aura.points_multipliers
    FOR EACH STATEMENT EXECUTE FUNCTION aura._loyalty_cache_invalidate();

-- Orders tables attached with aura.attach_orders.
CREATE TABLE aura.order_attachments (
    orders_table      regclass PRIMARY KEY,
    restaurant_column name NOT NULL,
    customer_column   name NOT NULL,
    amount_column     name NOT NULL,
    status_column     name NOT NULL,
    order_id_column   name NOT NULL,
    completed_values  text[] NOT NULL,
    reversed_values   text[] NOT NULL,
    attached_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE aura.order_attachments IS 'Application orders tables whose rows earn points through aura''s order trigger.';

-- Tenancy, dump.
SELECT aura._register_tenant_table('aura.loyalty_accounts');
SELECT aura._register_tenant_table('aura.points_transactions');
SELECT aura._register_tenant_table('aura.points_lots');
SELECT aura._register_tenant_table('aura.loyalty_tiers');
SELECT aura._register_tenant_table('aura.tier_history');
SELECT aura._register_tenant_table('aura.loyalty_events');
SELECT aura._register_tenant_table('aura.loyalty_milestones');
SELECT aura._register_tenant_table('aura.milestone_hits');
SELECT aura._register_tenant_table('aura.points_multipliers');
SELECT pg_catalog.pg_extension_config_dump('aura.order_attachments', '');
-- not a tenant table: only administrators (who attach tables) see it
ALTER TABLE aura.order_attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE aura.order_attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY admin_only ON aura.order_attachments USING (aura.is_admin()) WITH CHECK (aura.is_admin());

------------------------------------------------------------------------------
-- Posting functions (C).  SECURITY DEFINER: the C code checks that the
-- calling role is in the restaurant's context or is aura_admin.
------------------------------------------------------------------------------
CREATE FUNCTION aura._ledger_check_tenant(restaurant_id bigint) RETURNS void
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aura_ledger_check_tenant';
COMMENT ON FUNCTION aura._ledger_check_tenant(bigint) IS 'Raises 42501 unless the calling role (outside SECURITY DEFINER) is in the restaurant''s context or is aura_admin.';

CREATE FUNCTION aura.earn_points(restaurant_id bigint, customer_id bigint, points bigint,
                                 reference text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                 reason text DEFAULT NULL)
    RETURNS bigint LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_earn_points';
COMMENT ON FUNCTION aura.earn_points(bigint, bigint, bigint, text, text, text) IS 'Posts an earning (a new lot with expiry) and returns the transaction id.';

CREATE FUNCTION aura.spend_points(restaurant_id bigint, customer_id bigint, points bigint,
                                  reference text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                  reason text DEFAULT NULL)
    RETURNS bigint LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_spend_points';
COMMENT ON FUNCTION aura.spend_points(bigint, bigint, bigint, text, text, text) IS 'Redeems available points, oldest expiry first, and returns the transaction id.';

CREATE FUNCTION aura.adjust_points(restaurant_id bigint, customer_id bigint, points bigint,
                                   reference text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                   reason text DEFAULT NULL)
    RETURNS bigint LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_adjust_points';
COMMENT ON FUNCTION aura.adjust_points(bigint, bigint, bigint, text, text, text) IS 'Manual correction (positive or negative, not zero); returns the transaction id.';

CREATE FUNCTION aura.transfer_points(restaurant_id bigint, from_customer bigint, to_customer bigint,
                                     points bigint, idempotency_key text DEFAULT NULL)
    RETURNS bigint LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_transfer_points';
COMMENT ON FUNCTION aura.transfer_points(bigint, bigint, bigint, bigint, text) IS 'Moves available points between two customers of one restaurant, atomically; returns the transfer_out transaction id.';

CREATE FUNCTION aura.verify_ledger(restaurant_id bigint)
    RETURNS TABLE (customer_id bigint, problem text, balance bigint, ledger_sum numeric, lots_sum numeric)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := restaurant_id;
BEGIN
    IF r IS NULL THEN
        RAISE EXCEPTION 'restaurant_id must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM aura._ledger_check_tenant(r);
    RETURN QUERY
    WITH l AS (
        SELECT t.customer_id, sum(t.points) AS s, count(*) AS n
          FROM aura.points_transactions t WHERE t.restaurant_id = r GROUP BY t.customer_id
    ), o AS (
        SELECT p.customer_id, sum(p.remaining) AS s
          FROM aura.points_lots p WHERE p.restaurant_id = r AND p.remaining > 0 GROUP BY p.customer_id
    ), a AS (
        SELECT x.customer_id, x.balance FROM aura.loyalty_accounts x WHERE x.restaurant_id = r
    ), j AS (
        SELECT coalesce(a.customer_id, l.customer_id, o.customer_id) AS cid, a.balance AS bal,
               coalesce(l.s, 0) AS ls, coalesce(o.s, 0) AS os, a.customer_id IS NULL AS orphan
          FROM a FULL JOIN l ON l.customer_id = a.customer_id
                 FULL JOIN o ON o.customer_id = coalesce(a.customer_id, l.customer_id)
    )
    SELECT j.cid, v.problem, j.bal, j.ls, j.os
      FROM j, LATERAL (VALUES
            (CASE WHEN j.orphan THEN 'ledger or lots without an account' END),
            (CASE WHEN NOT j.orphan AND j.bal <> j.ls THEN 'balance differs from the sum of the ledger' END),
            (CASE WHEN NOT j.orphan AND greatest(j.bal, 0) <> j.os THEN 'balance differs from the sum of open lots' END),
            (CASE WHEN NOT j.orphan AND j.bal < 0
                       AND NOT aura._ledger_allow_negative(r) THEN 'negative balance' END)) v(problem)
     WHERE v.problem IS NOT NULL
    UNION ALL
    -- every row chains: balance_after of a row is balance_before of the next
    SELECT c.customer_id, 'ledger row ' || c.id || ' does not follow the previous balance',
           c.balance_before, NULL::numeric, NULL::numeric
      FROM (SELECT t.customer_id, t.id, t.balance_before,
                   lag(t.balance_after) OVER (PARTITION BY t.customer_id ORDER BY t.id) AS prev
              FROM aura.points_transactions t WHERE t.restaurant_id = r) c
     WHERE c.prev IS NOT NULL AND c.prev <> c.balance_before
    ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION aura.verify_ledger(bigint) IS 'Rows that violate the ledger invariants of a restaurant: balance = sum of the ledger = sum of open lots, chained balances, no negative balance unless allowed. Empty when the ledger is sound.';

CREATE FUNCTION aura._ledger_allow_negative(restaurant_id bigint) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aura_ledger_allow_negative';

CREATE FUNCTION aura.review_tiers(as_of timestamptz DEFAULT now()) RETURNS bigint
    LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_review_tiers';
COMMENT ON FUNCTION aura.review_tiers(timestamptz) IS 'Downgrades tiers under loyalty.tier_downgrade (with loyalty.tier_grace_days); returns the number of accounts downgraded.';

------------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------------
GRANT SELECT ON aura.loyalty_accounts, aura.points_transactions, aura.points_lots,
    aura.loyalty_tiers, aura.tier_history, aura.loyalty_events, aura.loyalty_milestones,
    aura.milestone_hits TO aura_staff, aura_reporting;
GRANT UPDATE (status, birthday) ON aura.loyalty_accounts TO aura_manager;
GRANT INSERT, UPDATE, DELETE ON aura.loyalty_tiers, aura.loyalty_milestones, aura.points_multipliers TO aura_manager;
GRANT USAGE ON SEQUENCE aura.loyalty_milestones_id_seq, aura.points_multipliers_id_seq TO aura_manager;
GRANT SELECT ON aura.points_multipliers TO aura_staff, aura_reporting;
GRANT SELECT ON aura.order_attachments TO aura_admin;
GRANT EXECUTE ON FUNCTION aura._ledger_check_tenant(bigint), aura._ledger_allow_negative(bigint)
    TO aura_staff, aura_reporting;
GRANT EXECUTE ON FUNCTION aura.earn_points(bigint, bigint, bigint, text, text, text),
    aura.spend_points(bigint, bigint, bigint, text, text, text),
    aura.transfer_points(bigint, bigint, bigint, bigint, text)
    TO aura_staff;
GRANT EXECUTE ON FUNCTION aura.adjust_points(bigint, bigint, bigint, text, text, text) TO aura_manager;
GRANT EXECUTE ON FUNCTION aura.verify_ledger(bigint) TO aura_manager, aura_reporting;
GRANT EXECUTE ON FUNCTION aura.review_tiers(timestamptz) TO aura_manager;

------------------------------------------------------------------------------
-- Order trigger
------------------------------------------------------------------------------
CREATE FUNCTION aura._orders_trigger() RETURNS trigger
    LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_orders_trigger';
COMMENT ON FUNCTION aura._orders_trigger() IS 'Row trigger (AFTER UPDATE OF status) installed by aura.attach_orders: completed orders earn, reversed orders give back.';

CREATE FUNCTION aura._orders_insert_trigger() RETURNS trigger
    LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_orders_insert_trigger';
COMMENT ON FUNCTION aura._orders_insert_trigger() IS 'Statement trigger (AFTER INSERT, with the new rows as transition table) installed by aura.attach_orders: the inserted orders earn or give back in insertion order, each customer''s account locked once and written once per statement.';

CREATE FUNCTION aura.attach_orders(orders regclass, restaurant_column name, customer_column name,
                                   amount_column name, status_column name, order_id_column name,
                                   completed_values text[] DEFAULT '{completed}',
                                   reversed_values text[] DEFAULT '{cancelled,refunded}')
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    col name;
    role text;
    typ regtype;
    cat "char";
    kind "char";
BEGIN
    IF orders IS NULL OR restaurant_column IS NULL OR customer_column IS NULL OR amount_column IS NULL
       OR status_column IS NULL OR order_id_column IS NULL THEN
        RAISE EXCEPTION 'the orders table and its five column names must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = orders;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', orders
            USING ERRCODE = 'wrong_object_type', DETAIL = format('relkind is %s', kind);
    END IF;
    IF EXISTS (SELECT 1 FROM aura.order_attachments a WHERE a.orders_table = orders) THEN
        RAISE EXCEPTION 'orders table % is already attached', orders
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Call aura.detach_orders first to attach it with other columns.';
    END IF;
    IF completed_values IS NULL OR cardinality(completed_values) = 0 OR array_position(completed_values, NULL) IS NOT NULL
       OR reversed_values IS NULL OR array_position(reversed_values, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'completed_values must be a non-empty array and reversed_values an array, both without NULLs'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF completed_values && reversed_values THEN
        RAISE EXCEPTION 'a status cannot be both completed and reversed'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('completed %s, reversed %s', completed_values, reversed_values);
    END IF;
    FOR col, role IN VALUES (restaurant_column, 'restaurant'), (customer_column, 'customer'),
                            (amount_column, 'amount'), (status_column, 'status'), (order_id_column, 'order id') LOOP
        SELECT a.atttypid::regtype, t.typcategory INTO typ, cat
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = orders AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of % does not exist', col, orders
                USING ERRCODE = 'undefined_column', DETAIL = format('It was given as the %s column.', role);
        END IF;
        IF (role IN ('restaurant', 'customer') AND typ NOT IN ('smallint', 'integer', 'bigint', 'numeric'))
           OR (role = 'amount' AND typ NOT IN ('smallint', 'integer', 'bigint', 'numeric', 'real',
                                               'double precision', 'money'))
           OR (role = 'status' AND cat NOT IN ('S', 'E')) THEN
            RAISE EXCEPTION '% column "%" of % has type %, which aura cannot use', role, col, orders, typ
                USING ERRCODE = 'datatype_mismatch',
                      HINT = CASE WHEN role IN ('restaurant', 'customer') THEN 'Ids must be smallint, integer, bigint or numeric.'
                                  WHEN role = 'amount' THEN 'Amounts must be numeric, integer, floating point or money.'
                                  ELSE 'Statuses must be text, varchar, char or an enum.' END;
        END IF;
    END LOOP;
    -- a plain table: inserts per statement, updates per row.  A partitioned
    -- table or a partition: row triggers only (a statement trigger fires only
    -- for the table a statement names, while rows reach partitions through
    -- their parent and partitions can be written directly).
    IF kind = 'r' AND NOT (SELECT c.relispartition FROM pg_class c WHERE c.oid = orders) THEN
        EXECUTE format('CREATE TRIGGER aura_loyalty_orders AFTER UPDATE OF %I ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION aura._orders_trigger(%L, %L, %L, %L, %L, %L, %L)',
                       status_column, orders, restaurant_column, customer_column, amount_column,
                       status_column, order_id_column, completed_values::text, reversed_values::text);
        EXECUTE format('CREATE TRIGGER aura_loyalty_orders_insert AFTER INSERT ON %s '
                       'REFERENCING NEW TABLE AS aura_new_orders '
                       'FOR EACH STATEMENT EXECUTE FUNCTION aura._orders_insert_trigger(%L, %L, %L, %L, %L, %L, %L)',
                       orders, restaurant_column, customer_column, amount_column,
                       status_column, order_id_column, completed_values::text, reversed_values::text);
    ELSE
        EXECUTE format('CREATE TRIGGER aura_loyalty_orders AFTER INSERT OR UPDATE OF %I ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION aura._orders_trigger(%L, %L, %L, %L, %L, %L, %L)',
                       status_column, orders, restaurant_column, customer_column, amount_column,
                       status_column, order_id_column, completed_values::text, reversed_values::text);
    END IF;
    INSERT INTO aura.order_attachments (orders_table, restaurant_column, customer_column, amount_column,
                                        status_column, order_id_column, completed_values, reversed_values)
    VALUES (orders, restaurant_column, customer_column, amount_column, status_column, order_id_column,
            completed_values, reversed_values);
END
$$;
COMMENT ON FUNCTION aura.attach_orders(regclass, name, name, name, name, name, text[], text[]) IS 'Installs aura''s order trigger on an application orders table: completed orders earn points, reversed ones give them back.';

CREATE FUNCTION aura.detach_orders(orders regclass) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
BEGIN
    IF orders IS NULL THEN
        RAISE EXCEPTION 'orders must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM aura.order_attachments a WHERE a.orders_table = orders) THEN
        RAISE EXCEPTION 'orders table % is not attached', orders USING ERRCODE = 'no_data_found';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS aura_loyalty_orders ON %s', orders);
    IF EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = orders AND t.tgname = 'aura_loyalty_orders_insert') THEN
        EXECUTE format('DROP TRIGGER aura_loyalty_orders_insert ON %s', orders);
    END IF;
    DELETE FROM aura.order_attachments a WHERE a.orders_table = orders;
END
$$;
COMMENT ON FUNCTION aura.detach_orders(regclass) IS 'Removes aura''s order trigger from an orders table; the ledger keeps what was posted.';

CREATE FUNCTION aura.refund_order_points(restaurant_id bigint, order_ref text, refunded_amount numeric,
                                         original_amount numeric, idempotency_key text DEFAULT NULL)
    RETURNS bigint LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_refund_order_points';
COMMENT ON FUNCTION aura.refund_order_points(bigint, text, numeric, numeric, text) IS 'Partial refund of an order: reverses floor(earned x refunded / original) points, cumulative over the order''s refunds.';

GRANT EXECUTE ON FUNCTION aura.attach_orders(regclass, name, name, name, name, name, text[], text[]),
    aura.detach_orders(regclass) TO aura_admin;
GRANT EXECUTE ON FUNCTION aura.refund_order_points(bigint, text, numeric, numeric, text) TO aura_staff;

------------------------------------------------------------------------------
-- Expiration, customer view, history, migration, birthdays
------------------------------------------------------------------------------
CREATE FUNCTION aura.expire_points(as_of timestamptz DEFAULT now(), batch int DEFAULT 10000)
    RETURNS bigint LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS 'MODULE_PATHNAME', 'aura_expire_points';
COMMENT ON FUNCTION aura.expire_points(timestamptz, int) IS 'Posts an expire row for each lot due by as_of (at most batch lots per call); returns how many were expired. Re-running changes nothing.';

CREATE FUNCTION aura._post_points(restaurant_id bigint, customer_id bigint, kind text, points bigint,
                                  source text, reference text, idempotency_key text, reason text)
    RETURNS bigint LANGUAGE c
    AS 'MODULE_PATHNAME', 'aura_post_points';
COMMENT ON FUNCTION aura._post_points(bigint, bigint, text, bigint, text, text, text, text) IS 'Internal: migration, bonus and reversal postings for aura''s own SQL functions (points positive; a reversal removes them).';

CREATE FUNCTION aura._ledger_consumer_event(restaurant_id bigint, event_type text, data jsonb)
    RETURNS boolean LANGUAGE c
    AS 'MODULE_PATHNAME', 'aura_ledger_consumer_event';
COMMENT ON FUNCTION aura._ledger_consumer_event(bigint, text, jsonb) IS 'Internal: records a ledger event for aura''s own consumers (order.completed, order.reversed, points.earned, birthday.awarded) when the restaurant has one that wants it; true when recorded.';

CREATE FUNCTION aura._ledger_birthday_points(restaurant_id bigint) RETURNS bigint
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aura_ledger_birthday_points';

CREATE FUNCTION aura.points_expiring(restaurant_id bigint, customer_id bigint,
                                     within interval DEFAULT '30 days')
    RETURNS TABLE (expires_at timestamptz, points bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := restaurant_id;
    c bigint := customer_id;
BEGIN
    IF r IS NULL OR c IS NULL OR within IS NULL THEN
        RAISE EXCEPTION 'restaurant_id, customer_id and within must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF within < interval '0' THEN
        RAISE EXCEPTION 'within must not be negative' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('within is %s.', within);
    END IF;
    PERFORM aura._ledger_check_tenant(r);
    RETURN QUERY
    SELECT l.expires_at, sum(l.remaining)::bigint
      FROM aura.points_lots l
     WHERE l.restaurant_id = r AND l.customer_id = c AND l.remaining > 0
       AND l.expires_at IS NOT NULL AND l.expires_at <= now() + within
     GROUP BY l.expires_at ORDER BY l.expires_at;
END
$$;
COMMENT ON FUNCTION aura.points_expiring(bigint, bigint, interval) IS 'Points of a customer that expire within the interval, per expiry time.';

CREATE FUNCTION aura.customer_loyalty(restaurant_id bigint, customer_id bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := restaurant_id;
    c bigint := customer_id;
    a aura.loyalty_accounts;
    pend bigint;
    expiring bigint;
    nxt aura.loyalty_tiers;
    mult numeric;
BEGIN
    IF r IS NULL OR c IS NULL THEN
        RAISE EXCEPTION 'restaurant_id and customer_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM aura._ledger_check_tenant(r);
    SELECT * INTO a FROM aura.loyalty_accounts x WHERE x.restaurant_id = r AND x.customer_id = c;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % has no loyalty account in restaurant %', c, r USING ERRCODE = 'no_data_found';
    END IF;
    SELECT coalesce(sum(remaining), 0) INTO pend FROM aura.points_lots l
     WHERE l.restaurant_id = r AND l.customer_id = c AND l.remaining > 0 AND l.available_at > now();
    SELECT coalesce(sum(remaining), 0) INTO expiring FROM aura.points_lots l
     WHERE l.restaurant_id = r AND l.customer_id = c AND l.remaining > 0
       AND l.expires_at <= now() + interval '30 days';
    SELECT * INTO nxt FROM aura.loyalty_tiers t
     WHERE t.restaurant_id = r AND t.min_points > a.lifetime_earned ORDER BY t.min_points LIMIT 1;
    SELECT coalesce((t.benefits ->> 'earn_multiplier')::numeric, 1) INTO mult
      FROM aura.loyalty_tiers t WHERE t.restaurant_id = r AND t.name = a.tier;
    RETURN jsonb_build_object(
        'restaurant_id', r, 'customer_id', c, 'status', a.status,
        'balance', a.balance, 'pending', pend, 'available', a.balance - pend,
        'tier', a.tier, 'tier_since', a.tier_since, 'earn_multiplier', coalesce(mult, 1),
        'next_tier', CASE WHEN nxt.name IS NULL THEN NULL ELSE jsonb_build_object(
            'name', nxt.name, 'min_points', nxt.min_points,
            'points_needed', nxt.min_points - a.lifetime_earned,
            'progress', round(a.lifetime_earned::numeric / nullif(nxt.min_points, 0), 4)) END,
        'expiring_30_days', expiring,
        'lifetime', jsonb_build_object('earned', a.lifetime_earned, 'spent', a.lifetime_spent,
                                       'spend_amount', a.lifetime_spend_amount, 'orders', a.order_count),
        'enrolled_at', a.enrolled_at, 'birthday', a.birthday);
END
$$;
COMMENT ON FUNCTION aura.customer_loyalty(bigint, bigint) IS 'A customer''s loyalty at a glance: balance, pending, tier and progress to the next, points expiring in 30 days, lifetime figures.';

CREATE FUNCTION aura.points_history(restaurant_id bigint, customer_id bigint, "limit" int DEFAULT 50,
                                    before_id bigint DEFAULT NULL)
    RETURNS TABLE (id bigint, created_at timestamptz, kind text, points bigint, balance_after bigint,
                   source text, reference text, reason text, expires_at timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    r bigint := restaurant_id;
    c bigint := customer_id;
    n int := "limit";
BEGIN
    IF r IS NULL OR c IS NULL THEN
        RAISE EXCEPTION 'restaurant_id and customer_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF n IS NULL OR n < 1 OR n > 1000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('limit is %s.', coalesce(n::text, 'NULL'));
    END IF;
    PERFORM aura._ledger_check_tenant(r);
    RETURN QUERY
    SELECT t.id, t.created_at, t.kind, t.points, t.balance_after, t.source, t.reference, t.reason, t.expires_at
      FROM aura.points_transactions t
     WHERE t.restaurant_id = r AND t.customer_id = c AND (before_id IS NULL OR t.id < before_id)
     ORDER BY t.id DESC LIMIT n;
END
$$;
COMMENT ON FUNCTION aura.points_history(bigint, bigint, int, bigint) IS 'A customer''s ledger, newest first; pass the last id seen as before_id for the next page (keyset paging).';

CREATE FUNCTION aura.import_points_balances(balances jsonb) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    e jsonb;
    i int := 0;
    n bigint := 0;
    r bigint;
    c bigint;
    p bigint;
    ref text;
    before_count bigint;
BEGIN
    IF balances IS NULL OR jsonb_typeof(balances) <> 'array' THEN
        RAISE EXCEPTION 'balances must be a JSON array of objects'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '[{"restaurant_id": 1, "customer_id": 42, "points": 1200, "source_ref": "legacy-42"}]';
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(balances) LOOP
        i := i + 1;
        IF jsonb_typeof(e) <> 'object' OR jsonb_typeof(e -> 'restaurant_id') IS DISTINCT FROM 'number'
           OR jsonb_typeof(e -> 'customer_id') IS DISTINCT FROM 'number'
           OR jsonb_typeof(e -> 'points') IS DISTINCT FROM 'number'
           OR (e ? 'source_ref' AND jsonb_typeof(e -> 'source_ref') <> 'string')
           OR (e ? 'birthday' AND jsonb_typeof(e -> 'birthday') <> 'string') THEN
            RAISE EXCEPTION 'element % of balances is not a valid balance', i
                USING ERRCODE = 'invalid_parameter_value', DETAIL = left(e::text, 200),
                      HINT = 'Each element needs numbers restaurant_id, customer_id, points; optional strings source_ref, birthday.';
        END IF;
        BEGIN
            r := (e ->> 'restaurant_id')::bigint;
            c := (e ->> 'customer_id')::bigint;
            p := (e ->> 'points')::bigint;
        EXCEPTION WHEN numeric_value_out_of_range OR invalid_text_representation THEN
            RAISE EXCEPTION 'element % of balances has ids or points that are not bigint integers', i
                USING ERRCODE = 'invalid_parameter_value', DETAIL = left(e::text, 200);
        END;
        ref := coalesce(e ->> 'source_ref', format('customer-%s', c));
        IF p > 0 THEN
            SELECT count(*) INTO before_count FROM aura.points_transactions t
             WHERE t.restaurant_id = r AND t.idempotency_key = 'import:' || ref;
            PERFORM aura._post_points(r, c, 'migration', p, 'import', ref, 'import:' || ref,
                                      'opening balance from the legacy system');
            n := n + CASE WHEN before_count = 0 THEN 1 ELSE 0 END;
        ELSIF p < 0 THEN
            RAISE EXCEPTION 'element % of balances has negative points', i
                USING ERRCODE = 'invalid_parameter_value', DETAIL = left(e::text, 200);
        END IF;
        IF e ? 'birthday' THEN
            UPDATE aura.loyalty_accounts x SET birthday = (e ->> 'birthday')::date
             WHERE x.restaurant_id = r AND x.customer_id = c;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION aura.import_points_balances(jsonb) IS 'Opening balances from a legacy system as migration rows (idempotency key import:<source_ref>); re-importing the same rows posts nothing. Returns the number of rows posted.';

-- The table form of the import.  Its own name: an overload
-- import_points_balances(regclass) would make every call with an untyped
-- literal ('[...]' or NULL) ambiguous.  SECURITY INVOKER: the source is read
-- with the caller's privileges; the rows are then posted by the jsonb form.
CREATE FUNCTION aura.import_points_balances_from(source regclass) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    col text;
    need text;
    typ regtype;
    cat "char";
    kind "char";
    has_ref boolean := false;
    has_birthday boolean := false;
    rows jsonb;
BEGIN
    IF source IS NULL THEN
        RAISE EXCEPTION 'source must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = source;
    IF kind IS NULL OR kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
        RAISE EXCEPTION '% is not a table or view', source
            USING ERRCODE = 'wrong_object_type', DETAIL = format('relkind is %s', coalesce(kind::text, 'unknown'));
    END IF;
    FOR col, need IN VALUES ('restaurant_id', 'id'), ('customer_id', 'id'), ('points', 'id'),
                            ('source_ref', 'text'), ('birthday', 'date') LOOP
        SELECT a.atttypid::regtype, t.typcategory INTO typ, cat
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = source AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            CONTINUE WHEN need IN ('text', 'date');
            RAISE EXCEPTION 'column "%" of % does not exist', col, source
                USING ERRCODE = 'undefined_column',
                      HINT = 'The source needs restaurant_id, customer_id and points (integers); source_ref (text) and birthday (date) are optional.';
        END IF;
        IF (need = 'id' AND typ NOT IN ('smallint', 'integer', 'bigint', 'numeric'))
           OR (need = 'text' AND cat <> 'S') OR (need = 'date' AND typ <> 'date'::regtype) THEN
            RAISE EXCEPTION 'column "%" of % has type %, which the import cannot use', col, source, typ
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'restaurant_id, customer_id, points: smallint, integer, bigint or numeric; source_ref: a string type; birthday: date.';
        END IF;
        has_ref := has_ref OR col = 'source_ref';
        has_birthday := has_birthday OR col = 'birthday';
    END LOOP;
    -- the rows in (restaurant, customer) order: accounts are locked in that order
    EXECUTE format('SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object('
                   '''restaurant_id'', s.restaurant_id, ''customer_id'', s.customer_id, ''points'', s.points%s%s))'
                   ' ORDER BY s.restaurant_id, s.customer_id%s), ''[]'') FROM %s s',
                   CASE WHEN has_ref THEN ', ''source_ref'', s.source_ref::text' ELSE '' END,
                   CASE WHEN has_birthday THEN ', ''birthday'', s.birthday::text' ELSE '' END,
                   CASE WHEN has_ref THEN ', s.source_ref::text' ELSE '' END,
                   source)
      INTO rows;
    RETURN aura.import_points_balances(rows);
END
$$;
COMMENT ON FUNCTION aura.import_points_balances_from(regclass) IS 'Opening balances from a table or view (columns restaurant_id, customer_id, points; optional source_ref, birthday), read with the caller''s privileges and posted like aura.import_points_balances(jsonb): idempotent, all or nothing. Returns the number of rows posted.';

CREATE FUNCTION aura.award_birthdays(as_of date DEFAULT current_date) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    a record;
    n bigint := 0;
    pts bigint;
    y int;
    ctx bigint := aura.current_restaurant();
BEGIN
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM aura._ledger_check_tenant(coalesce(ctx, 0));
    y := extract(year FROM as_of)::int;
    FOR a IN
        SELECT x.restaurant_id, x.customer_id FROM aura.loyalty_accounts x
         WHERE (ctx IS NULL OR x.restaurant_id = ctx) AND x.status = 'active' AND x.birthday IS NOT NULL
           AND (x.last_birthday_year IS NULL OR x.last_birthday_year < y)
           AND (to_char(x.birthday, 'MM-DD') = to_char(as_of, 'MM-DD')
                -- 29 February birthdays are celebrated on 28 February in other years
                OR (to_char(x.birthday, 'MM-DD') = '02-29' AND to_char(as_of, 'MM-DD') = '02-28'
                    AND NOT (y % 4 = 0 AND (y % 100 <> 0 OR y % 400 = 0))))
         ORDER BY x.restaurant_id, x.customer_id
    LOOP
        pts := aura._ledger_birthday_points(a.restaurant_id);
        IF pts > 0 THEN
            PERFORM aura._post_points(a.restaurant_id, a.customer_id, 'bonus', pts, 'campaign',
                                      format('birthday-%s', y), format('birthday:%s:%s', a.customer_id, y),
                                      'birthday');
        END IF;
        UPDATE aura.loyalty_accounts x SET last_birthday_year = y
         WHERE x.restaurant_id = a.restaurant_id AND x.customer_id = a.customer_id;
        -- birthday reward templates (rewards module) consume this event
        PERFORM aura._ledger_consumer_event(a.restaurant_id, 'birthday.awarded',
            jsonb_build_object('customer_id', a.customer_id, 'year', y, 'points', greatest(pts, 0)));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION aura.award_birthdays(date) IS 'Birthday bonus (loyalty.birthday_points) for customers whose birthday is as_of, once per customer and year; returns how many were awarded.';

GRANT EXECUTE ON FUNCTION aura.expire_points(timestamptz, int), aura.review_tiers(timestamptz),
    aura.award_birthdays(date) TO aura_manager;
GRANT EXECUTE ON FUNCTION aura.points_expiring(bigint, bigint, interval),
    aura.customer_loyalty(bigint, bigint), aura.points_history(bigint, bigint, int, bigint)
    TO aura_staff, aura_reporting;
GRANT EXECUTE ON FUNCTION aura.import_points_balances(jsonb), aura.import_points_balances_from(regclass) TO aura_admin;

------------------------------------------------------------------------------
-- Deployment checklist: loyalty_tiers
------------------------------------------------------------------------------
CREATE FUNCTION aura._check_loyalty_tiers(OUT ok boolean, OUT detail text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, aura, pg_temp
    AS $$
DECLARE
    with_tiers bigint;
    no_base text;
    total bigint;
BEGIN
    SELECT count(*) INTO total FROM aura.restaurants;
    SELECT count(DISTINCT restaurant_id) INTO with_tiers FROM aura.loyalty_tiers;
    SELECT string_agg(r::text, ', ' ORDER BY r) INTO no_base FROM (
        SELECT restaurant_id AS r FROM aura.loyalty_tiers GROUP BY 1 HAVING min(min_points) > 0) d;
    ok := no_base IS NULL;
    IF NOT ok THEN
        detail := format('restaurants %s have no tier starting at 0 points: new members get no tier '
                         '(add one with min_points 0)', no_base);
    ELSE
        detail := format('%s of %s restaurants have tiers; the others get the defaults '
                         '(Bronze 0, Silver 2000, Gold 5000, Platinum 10000) on their first posting',
                         with_tiers, total);
    END IF;
END
$$;
UPDATE aura.deployment_items SET check_fn = 'aura._check_loyalty_tiers' WHERE name = 'loyalty_tiers';
GRANT EXECUTE ON FUNCTION aura._check_loyalty_tiers() TO aura_manager;

-- Declared privileges (checked against the catalog by aura.privilege_mismatches)
INSERT INTO aura.privilege_matrix (object, kind, role, privileges) VALUES
    ('aura._ledger_allow_negative(bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._ledger_allow_negative(bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._ledger_append_only()', 'function', '-', ''),
    ('aura._ledger_birthday_points(bigint)', 'function', '-', ''),
    ('aura._ledger_check_tenant(bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._ledger_check_tenant(bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura._loyalty_cache_invalidate()', 'function', '-', ''),
    ('aura._orders_trigger()', 'function', '-', ''),
    ('aura._orders_insert_trigger()', 'function', '-', ''),
    ('aura._ledger_consumer_event(bigint, text, jsonb)', 'function', '-', ''),
    ('aura._post_points(bigint, bigint, text, bigint, text, text, text, text)', 'function', '-', ''),
    ('aura.adjust_points(bigint, bigint, bigint, text, text, text)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.attach_orders(regclass, name, name, name, name, name, text[], text[])', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.award_birthdays(date)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.customer_loyalty(bigint, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.customer_loyalty(bigint, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.detach_orders(regclass)', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.earn_points(bigint, bigint, bigint, text, text, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.expire_points(timestamp with time zone, integer)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.import_points_balances(jsonb)', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.import_points_balances_from(regclass)', 'function', 'aura_admin', 'EXECUTE'),
    ('aura.loyalty_accounts', 'table', 'aura_manager', 'UPDATE(birthday,status)'),
    ('aura.loyalty_accounts', 'table', 'aura_reporting', 'SELECT'),
    ('aura.loyalty_accounts', 'table', 'aura_staff', 'SELECT'),
    ('aura.loyalty_events', 'table', 'aura_reporting', 'SELECT'),
    ('aura.loyalty_events', 'table', 'aura_staff', 'SELECT'),
    ('aura.loyalty_events_id_seq', 'sequence', '-', ''),
    ('aura.loyalty_milestones', 'table', 'aura_manager', 'DELETE,INSERT,UPDATE'),
    ('aura.loyalty_milestones', 'table', 'aura_reporting', 'SELECT'),
    ('aura.loyalty_milestones', 'table', 'aura_staff', 'SELECT'),
    ('aura.loyalty_milestones_id_seq', 'sequence', 'aura_manager', 'USAGE'),
    ('aura.loyalty_tiers', 'table', 'aura_manager', 'DELETE,INSERT,UPDATE'),
    ('aura.loyalty_tiers', 'table', 'aura_reporting', 'SELECT'),
    ('aura.loyalty_tiers', 'table', 'aura_staff', 'SELECT'),
    ('aura.milestone_hits', 'table', 'aura_reporting', 'SELECT'),
    ('aura.milestone_hits', 'table', 'aura_staff', 'SELECT'),
    ('aura.order_attachments', 'table', 'aura_admin', 'SELECT'),
    ('aura.points_expiring(bigint, bigint, interval)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.points_expiring(bigint, bigint, interval)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.points_history(bigint, bigint, integer, bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura.points_history(bigint, bigint, integer, bigint)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.points_multipliers', 'table', 'aura_manager', 'DELETE,INSERT,UPDATE'),
    ('aura.points_multipliers', 'table', 'aura_reporting', 'SELECT'),
    ('aura.points_multipliers', 'table', 'aura_staff', 'SELECT'),
    ('aura.points_multipliers_id_seq', 'sequence', 'aura_manager', 'USAGE'),
    ('aura.points_lots', 'table', 'aura_reporting', 'SELECT'),
    ('aura.points_lots', 'table', 'aura_staff', 'SELECT'),
    ('aura.points_lots_id_seq', 'sequence', '-', ''),
    ('aura.points_transactions', 'table', 'aura_reporting', 'SELECT'),
    ('aura.points_transactions', 'table', 'aura_staff', 'SELECT'),
    ('aura.points_transactions_id_seq', 'sequence', '-', ''),
    ('aura.refund_order_points(bigint, text, numeric, numeric, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.review_tiers(timestamp with time zone)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.spend_points(bigint, bigint, bigint, text, text, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.tier_history', 'table', 'aura_reporting', 'SELECT'),
    ('aura.tier_history', 'table', 'aura_staff', 'SELECT'),
    ('aura.tier_history_id_seq', 'sequence', '-', ''),
    ('aura.transfer_points(bigint, bigint, bigint, bigint, text)', 'function', 'aura_staff', 'EXECUTE'),
    ('aura.verify_ledger(bigint)', 'function', 'aura_manager', 'EXECUTE'),
    ('aura.verify_ledger(bigint)', 'function', 'aura_reporting', 'EXECUTE'),
    ('aura._check_loyalty_tiers()', 'function', 'aura_manager', 'EXECUTE');
