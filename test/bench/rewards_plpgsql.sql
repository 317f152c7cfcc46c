-- Baseline of the rewards bench: validate_reward + redeem_reward for the
-- point-of-sale call (restaurant in context, no items, no idempotency key)
-- written as plain PL/pgSQL against the same tables, doing the same work as
-- aura's path: SECURITY DEFINER with a fixed search_path (the staff role may
-- not write the tables), the restaurant from the session context, the code
-- normalized (case, separators), every failing rule collected with its
-- message, the exact discount (percentage or value, capped, half-up to
-- cents), the row lock, the same redemption row (staff from the context),
-- the reward marked redeemed, the analytics day marks, the check for event
-- subscribers, and the same JSON answers.  What it leaves out are branches
-- the bench never takes (items, cashback, idempotency keys, reservations).
CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.code(p_code text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    s text := upper(translate(p_code, '-. _', ''));
BEGIN
    IF s !~ '^[2-9A-HJ-NP-Z]{12}$' THEN
        RETURN NULL;
    END IF;
    RETURN substr(s, 1, 4) || '-' || substr(s, 5, 4) || '-' || substr(s, 9, 4);
END
$$;

-- every failing rule of a reward for an order, and its discount
CREATE OR REPLACE FUNCTION bench.evaluate(rw aura.rewards, p_amount numeric, p_customer bigint, p_order text,
                                          OUT reasons jsonb, OUT discount numeric, OUT amt numeric)
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    t jsonb := rw.terms;
    min_amt numeric := (t ->> 'min_order_amount')::numeric;
    cap numeric := (t ->> 'max_discount_amount')::numeric;
BEGIN
    reasons := '[]';
    discount := 0;
    IF rw.status = 'redeemed' THEN
        reasons := reasons || jsonb_build_object('rule', 'already_redeemed', 'message', 'reward was already redeemed');
    ELSIF rw.status = 'revoked' THEN
        reasons := reasons || jsonb_build_object('rule', 'revoked', 'message', 'reward was revoked');
    ELSIF rw.status = 'expired' OR rw.valid_until <= now() THEN
        reasons := reasons || jsonb_build_object('rule', 'expired', 'message', 'reward has expired');
    ELSIF rw.status = 'reserved' AND rw.reserved_until > now()
          AND (p_order IS NULL OR rw.reserved_order_ref IS DISTINCT FROM p_order) THEN
        reasons := reasons || jsonb_build_object('rule', 'reserved', 'message', 'reward is reserved for another order');
    END IF;
    IF rw.valid_from > now() THEN
        reasons := reasons || jsonb_build_object('rule', 'not_yet_valid', 'message', 'reward is not valid yet');
    END IF;
    IF p_customer IS NOT NULL AND p_customer <> rw.customer_id THEN
        reasons := reasons || jsonb_build_object('rule', 'wrong_customer', 'message', 'reward belongs to another customer');
    END IF;
    IF p_amount IS NULL OR p_amount = 'NaN' OR p_amount < 0 OR p_amount > 999999999999.99 THEN
        reasons := reasons || jsonb_build_object('rule', 'amount_invalid', 'message', 'order amount is invalid');
        RETURN;
    END IF;
    amt := round(p_amount, 2);
    IF min_amt IS NOT NULL AND amt < min_amt THEN
        reasons := reasons || jsonb_build_object('rule', 'below_minimum',
            'message', format('order amount %s is below the minimum of %s', amt, min_amt));
    END IF;
    IF jsonb_array_length(reasons) > 0 THEN
        RETURN;
    END IF;
    discount := CASE WHEN rw.type = 'percentage_discount' THEN round(amt * (t ->> 'percentage')::numeric / 100, 2)
                     ELSE coalesce((t ->> 'value')::numeric, 0) END;
    IF cap IS NOT NULL AND discount > cap THEN
        discount := cap;
    END IF;
    discount := round(least(discount, amt), 2);
END
$$;

CREATE OR REPLACE FUNCTION bench.validate_plpgsql(p_code text, p_amount numeric, p_customer bigint)
    RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp AS $$
DECLARE
    ctx bigint := nullif(current_setting('aura.restaurant_id', true), '')::bigint;
    rw aura.rewards;
    ev record;
BEGIN
    SELECT * INTO rw FROM aura.rewards x WHERE x.restaurant_id = ctx AND x.code = bench.code(p_code);
    IF NOT FOUND THEN
        RETURN jsonb_build_object('valid', false, 'discount', 0,
            'reasons', jsonb_build_array(jsonb_build_object('rule', 'unknown_code', 'message', 'unknown reward code')));
    END IF;
    ev := bench.evaluate(rw, p_amount, p_customer, NULL);
    RETURN jsonb_build_object(
        'valid', jsonb_array_length(ev.reasons) = 0,
        'code', rw.code, 'reward_id', rw.id, 'customer_id', rw.customer_id, 'type', rw.type, 'title', rw.title,
        'status', rw.status, 'valid_until', rw.valid_until, 'discount', ev.discount, 'points', 0,
        'final_amount', CASE WHEN jsonb_array_length(ev.reasons) = 0 THEN ev.amt - ev.discount END,
        'reasons', ev.reasons);
END
$$;

CREATE OR REPLACE FUNCTION bench.redeem_plpgsql(p_code text, p_order text, p_amount numeric, p_customer bigint)
    RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, aura, pg_temp AS $$
DECLARE
    ctx bigint := nullif(current_setting('aura.restaurant_id', true), '')::bigint;
    rw aura.rewards;
    ev record;
    red aura.reward_redemptions;
BEGIN
    SELECT * INTO rw FROM aura.rewards x WHERE x.restaurant_id = ctx AND x.code = bench.code(p_code) FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown reward code' USING ERRCODE = 'no_data_found';
    END IF;
    ev := bench.evaluate(rw, p_amount, p_customer, p_order);
    IF jsonb_array_length(ev.reasons) > 0 THEN
        RAISE EXCEPTION 'reward cannot be redeemed: %',
            (SELECT string_agg(x ->> 'message', '; ') FROM jsonb_array_elements(ev.reasons) x)
            USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = ev.reasons::text;
    END IF;
    INSERT INTO aura.reward_redemptions (restaurant_id, reward_id, customer_id, template_id, order_ref,
                                         original_amount, discount_amount, final_amount, method, staff_id)
    VALUES (ctx, rw.id, rw.customer_id, rw.template_id, p_order, ev.amt, ev.discount, ev.amt - ev.discount, 'pos',
            nullif(current_setting('aura.user_id', true), '')::bigint)
    RETURNING * INTO red;
    UPDATE aura.rewards x SET status = 'redeemed', redeemed_at = red.created_at, redeemed_order_ref = p_order,
                              reserved_order_ref = NULL, reserved_until = NULL
     WHERE x.restaurant_id = ctx AND x.id = rw.id;
    INSERT INTO aura.reward_analytics_dirty (restaurant_id, template_id, day)
    SELECT DISTINCT ctx, rw.template_id, d
      FROM unnest(ARRAY[(rw.issued_at AT TIME ZONE 'UTC')::date, (red.created_at AT TIME ZONE 'UTC')::date]) d;
    IF EXISTS (SELECT 1 FROM aura.webhooks w WHERE w.restaurant_id = ctx AND w.active)
       OR EXISTS (SELECT 1 FROM aura.notification_rules n WHERE n.restaurant_id = ctx AND n.enabled) THEN
        PERFORM aura.emit_event(ctx, 'reward.redeemed', jsonb_build_object('reward_id', rw.id,
            'customer_id', rw.customer_id, 'order_ref', p_order, 'discount', ev.discount, 'points', 0));
    END IF;
    RETURN jsonb_build_object('redeemed', true, 'replayed', false, 'redemption_id', red.id,
        'reward_id', rw.id, 'code', rw.code, 'order_ref', red.order_ref,
        'original_amount', red.original_amount, 'discount', red.discount_amount,
        'final_amount', red.final_amount, 'points_credited', red.points_credited);
END
$$;

-- n rewards of the bench template for customers 1..n, numbered in bench.codes
-- (set = 'aura' or 'plpgsql': each path redeems its own codes)
CREATE TABLE IF NOT EXISTS bench.codes (path text, i bigint, code text, customer_id bigint, PRIMARY KEY (path, i));
CREATE OR REPLACE FUNCTION bench.make_codes(p_path text, n int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t aura.reward_templates;
    k bigint;
BEGIN
    SELECT * INTO t FROM aura.reward_templates WHERE restaurant_id = 1 AND key = 'bench';
    WITH ins AS (
        INSERT INTO aura.rewards (restaurant_id, customer_id, template_id, code, type, title, value, source,
                                  terms, valid_until)
        SELECT 1, g, t.id, aura._reward_code(), t.type, t.title, t.max_discount_amount, 'bulk',
               jsonb_strip_nulls(to_jsonb(t) - '{issued_count,created_at,updated_at,restaurant_id,active,featured}'::text[]),
               now() + interval '30 days'
          FROM generate_series(1, n) g
        RETURNING code, customer_id
    )
    INSERT INTO bench.codes SELECT p_path, row_number() OVER (ORDER BY customer_id), code, customer_id FROM ins;
    GET DIAGNOSTICS k = ROW_COUNT;
    RETURN k;
END
$$;
CREATE SEQUENCE IF NOT EXISTS bench.next_aura;
CREATE SEQUENCE IF NOT EXISTS bench.next_plpgsql;
