-- Baseline of the rewards bench: validation and redemption of a reward code
-- written as plain PL/pgSQL against the same tables, with the same core
-- rules (status, validity, owner, amount, minimum, percentage/fixed discount
-- with caps, half-up to cents) and the same row lock, but without aura's
-- extras (every failing rule with messages, reservations, items, idempotency
-- keys, events, analytics marks, tenant checks).
CREATE SCHEMA IF NOT EXISTS bench;

CREATE OR REPLACE FUNCTION bench.validate_plpgsql(p_code text, p_amount numeric, p_customer bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    rw aura.rewards;
    d numeric := 0;
    ok boolean;
BEGIN
    SELECT * INTO rw FROM aura.rewards WHERE restaurant_id = 1 AND code = upper(p_code);
    IF NOT FOUND THEN
        RETURN jsonb_build_object('valid', false, 'reason', 'unknown code');
    END IF;
    ok := rw.status = 'active' AND rw.valid_until > now() AND rw.customer_id = p_customer
          AND p_amount >= 0 AND p_amount >= coalesce((rw.terms ->> 'min_order_amount')::numeric, 0);
    IF ok THEN
        d := CASE WHEN rw.type = 'percentage_discount' THEN round(p_amount * (rw.terms ->> 'percentage')::numeric / 100, 2)
                  ELSE (rw.terms ->> 'value')::numeric END;
        d := least(d, coalesce((rw.terms ->> 'max_discount_amount')::numeric, d), p_amount);
    END IF;
    RETURN jsonb_build_object('valid', ok, 'discount', d);
END
$$;

CREATE OR REPLACE FUNCTION bench.redeem_plpgsql(p_code text, p_order text, p_amount numeric, p_customer bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    rw aura.rewards;
    d numeric;
BEGIN
    SELECT * INTO rw FROM aura.rewards WHERE restaurant_id = 1 AND code = upper(p_code) FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown reward code';
    END IF;
    IF rw.status <> 'active' OR rw.valid_until <= now() OR rw.customer_id <> p_customer OR p_amount < 0
       OR p_amount < coalesce((rw.terms ->> 'min_order_amount')::numeric, 0) THEN
        RAISE EXCEPTION 'reward cannot be redeemed';
    END IF;
    d := CASE WHEN rw.type = 'percentage_discount' THEN round(p_amount * (rw.terms ->> 'percentage')::numeric / 100, 2)
              ELSE (rw.terms ->> 'value')::numeric END;
    d := least(d, coalesce((rw.terms ->> 'max_discount_amount')::numeric, d), p_amount);
    INSERT INTO aura.reward_redemptions (restaurant_id, reward_id, customer_id, template_id, order_ref,
                                         original_amount, discount_amount, final_amount)
    VALUES (1, rw.id, rw.customer_id, rw.template_id, p_order, p_amount, d, p_amount - d);
    UPDATE aura.rewards SET status = 'redeemed', redeemed_at = now(), redeemed_order_ref = p_order
     WHERE restaurant_id = 1 AND id = rw.id;
    RETURN jsonb_build_object('redeemed', true, 'discount', d, 'final_amount', p_amount - d);
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
