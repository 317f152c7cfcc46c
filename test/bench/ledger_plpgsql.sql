-- Baselines of test/bench/scenarios/40_ledger.sh, written in PL/pgSQL: the
-- same order-trigger logic as aura's C trigger (same tables, same rows), and
-- a lock-ordered double-entry transfer like pgledger's.

-- order trigger: account lock (created on first use), key lookup,
-- tier multiplier, campaign multipliers, ledger row, lot, account update,
-- tier upgrade
CREATE FUNCTION bench_plpgsql_orders_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k text;
    acc aura.loyalty_accounts;
    mult numeric;
    pts bigint;
    txid bigint;
    ppu numeric := aura.get_setting_numeric('loyalty.points_per_unit', NEW.restaurant_id);
    expiry int := aura.get_setting_int('loyalty.points_expiry_days', NEW.restaurant_id);
    newtier text;
    cm numeric;
    campaigns numeric := 1;
BEGIN
    IF NEW.status <> 'completed' OR NEW.customer_id IS NULL
       OR (TG_OP = 'UPDATE' AND OLD.status = 'completed') THEN
        RETURN NULL;
    END IF;
    k := 'order:' || NEW.id;
    SELECT * INTO acc FROM aura.loyalty_accounts
     WHERE restaurant_id = NEW.restaurant_id AND customer_id = NEW.customer_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO aura.loyalty_accounts (restaurant_id, customer_id, tier, tier_since)
        VALUES (NEW.restaurant_id, NEW.customer_id, 'Bronze', now()) ON CONFLICT DO NOTHING;
        SELECT * INTO acc FROM aura.loyalty_accounts
         WHERE restaurant_id = NEW.restaurant_id AND customer_id = NEW.customer_id FOR UPDATE;
    END IF;
    IF EXISTS (SELECT 1 FROM aura.points_transactions
                WHERE restaurant_id = NEW.restaurant_id AND idempotency_key = k) THEN
        RETURN NULL;
    END IF;
    SELECT coalesce((benefits ->> 'earn_multiplier')::numeric, 1) INTO mult
      FROM aura.loyalty_tiers WHERE restaurant_id = NEW.restaurant_id AND name = acc.tier;
    -- active multiplier campaigns for the account's tier
    FOR cm IN SELECT m.multiplier FROM aura.points_multipliers m
               WHERE m.restaurant_id = NEW.restaurant_id AND m.active AND now() >= m.starts_at
                 AND now() < m.ends_at AND (m.tiers = '{}' OR acc.tier = ANY (m.tiers)) LOOP
        campaigns := campaigns * cm;
    END LOOP;
    pts := greatest(floor(NEW.amount * ppu * coalesce(mult, 1) * campaigns), 0)::bigint;
    INSERT INTO aura.points_transactions (restaurant_id, customer_id, kind, points, balance_before,
        balance_after, source, reference, idempotency_key, expires_at, available_at, actor_role, amount)
    VALUES (NEW.restaurant_id, NEW.customer_id, 'earn', pts, acc.balance, acc.balance + pts, 'order',
        NEW.id::text, k, now() + make_interval(days => expiry), now(), current_user, NEW.amount)
    RETURNING id INTO txid;
    IF pts > 0 THEN
        INSERT INTO aura.points_lots (restaurant_id, customer_id, transaction_id, amount, remaining,
                                      expires_at, available_at)
        VALUES (NEW.restaurant_id, NEW.customer_id, txid, pts, pts, now() + make_interval(days => expiry), now());
    END IF;
    SELECT name INTO newtier FROM aura.loyalty_tiers
     WHERE restaurant_id = NEW.restaurant_id AND min_points <= acc.lifetime_earned + pts
     ORDER BY min_points DESC LIMIT 1;
    UPDATE aura.loyalty_accounts
       SET balance = balance + pts, lifetime_earned = lifetime_earned + pts,
           lifetime_spend_amount = lifetime_spend_amount + NEW.amount, order_count = order_count + 1,
           tier = coalesce(newtier, tier),
           tier_since = CASE WHEN newtier IS DISTINCT FROM tier THEN now() ELSE tier_since END
     WHERE restaurant_id = NEW.restaurant_id AND customer_id = NEW.customer_id;
    IF newtier IS DISTINCT FROM acc.tier THEN
        INSERT INTO aura.tier_history (restaurant_id, customer_id, old_tier, new_tier, reason)
        VALUES (NEW.restaurant_id, NEW.customer_id, acc.tier, newtier, 'upgrade');
    END IF;
    RETURN NULL;
END
$$;

-- double-entry transfer, accounts locked in id order
CREATE TABLE bench_accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
CREATE TABLE bench_entries (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account int NOT NULL,
                            amount bigint NOT NULL, balance_after bigint NOT NULL, transfer_key text,
                            created_at timestamptz NOT NULL DEFAULT now());
CREATE UNIQUE INDEX ON bench_entries (transfer_key) WHERE transfer_key IS NOT NULL;
CREATE INDEX ON bench_entries (account, id);
CREATE FUNCTION bench_plpgsql_transfer(a int, b int, amount bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    ba bigint;
    bb bigint;
    out_id bigint;
BEGIN
    PERFORM 1 FROM bench_accounts WHERE id IN (a, b) ORDER BY id FOR UPDATE;
    UPDATE bench_accounts SET balance = balance - amount WHERE id = a RETURNING balance INTO ba;
    UPDATE bench_accounts SET balance = balance + amount WHERE id = b RETURNING balance INTO bb;
    INSERT INTO bench_entries (account, amount, balance_after) VALUES (a, -amount, ba) RETURNING id INTO out_id;
    INSERT INTO bench_entries (account, amount, balance_after) VALUES (b, amount, bb);
    RETURN out_id;
END
$$;
