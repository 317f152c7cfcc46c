-- Loyalty ledger: accounts, append-only ledger, lots, idempotency, transfers,
-- tiers, the order trigger, privileges and bad input.  Restaurants 400-499.
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
INSERT INTO aura.restaurants (id, name) VALUES (401, 'Ledger One'), (402, 'Ledger Two'), (403, 'Ledger Three');

-- a compact view of a customer's ledger (ids and timestamps masked)
CREATE FUNCTION pg_temp.ledger(r bigint, c bigint)
RETURNS TABLE (n bigint, kind text, points bigint, before bigint, after bigint, source text,
               reference text, key text, reason text, counterparty bigint, amount numeric)
LANGUAGE sql AS $$
    SELECT row_number() OVER (ORDER BY id), kind, points, balance_before, balance_after, source,
           reference, idempotency_key, reason, counterparty, amount
      FROM aura.points_transactions WHERE restaurant_id = r AND customer_id = c ORDER BY id
$$;
CREATE FUNCTION pg_temp.account(r bigint, c bigint)
RETURNS TABLE (balance bigint, pending bigint, lifetime_earned bigint, lifetime_spent bigint,
               spend numeric, orders bigint, tier text, status text)
LANGUAGE sql AS $$
    SELECT balance, pending, lifetime_earned, lifetime_spent, lifetime_spend_amount, order_count, tier, status
      FROM aura.loyalty_accounts WHERE restaurant_id = r AND customer_id = c
$$;
CREATE FUNCTION pg_temp.lots(r bigint, c bigint)
RETURNS TABLE (amount bigint, remaining bigint, expires_in_days int)
LANGUAGE sql AS $$
    SELECT amount, remaining, extract(day FROM expires_at - available_at)::int
      FROM aura.points_lots WHERE restaurant_id = r AND customer_id = c ORDER BY id
$$;

-- earn: creates the account with the base tier; a lot expiring in 365 days
SELECT aura.earn_points(401, 1, 100, 'visit-1', 'k-earn-1', 'welcome') > 0 AS earned;
SELECT * FROM pg_temp.account(401, 1);
SELECT * FROM pg_temp.lots(401, 1);
-- the default tiers were created on first use
SELECT name, min_points, benefits FROM aura.loyalty_tiers WHERE restaurant_id = 401 ORDER BY min_points;

-- idempotency: same key and arguments -> the original transaction
SELECT aura.earn_points(401, 1, 100, 'visit-1', 'k-earn-1', 'welcome') AS first_id \gset
SELECT aura.earn_points(401, 1, 100, 'visit-1', 'k-earn-1', 'welcome') = :first_id AS same_transaction;
-- ... different arguments -> a distinct error naming the difference
SELECT aura.earn_points(401, 1, 50, 'visit-1', 'k-earn-1', 'welcome');
SELECT aura.earn_points(401, 2, 100, 'visit-1', 'k-earn-1', 'welcome');
SELECT aura.earn_points(401, 1, 100, 'visit-2', 'k-earn-1', 'welcome');
SELECT aura.earn_points(401, 1, 100, 'visit-1', 'k-earn-1', 'hello');
SELECT aura.spend_points(401, 1, 100, 'visit-1', 'k-earn-1', 'welcome');
SELECT count(*) AS rows_after_retries FROM aura.points_transactions WHERE restaurant_id = 401;

-- FIFO: lots are consumed oldest expiry first
SELECT aura.earn_points(401, 1, 40) > 0 AS earned;
SELECT aura.spend_points(401, 1, 120, 'reward-7') > 0 AS spent;
SELECT * FROM pg_temp.lots(401, 1);
-- insufficient points: clear error with the balance, nothing changes
SELECT aura.spend_points(401, 1, 21);
SELECT * FROM pg_temp.account(401, 1);

-- transfer: both rows, receiver gets the sender's lots with their expiry
SELECT aura.transfer_points(401, 1, 2, 15, 'tr-1') AS tr \gset
SELECT aura.transfer_points(401, 1, 2, 15, 'tr-1') = :tr AS same_transfer;
SELECT aura.transfer_points(401, 1, 3, 15, 'tr-1');
SELECT aura.transfer_points(401, 1, 2, 16, 'tr-1');
SELECT aura.transfer_points(401, 1, 2, 500, 'tr-2');
SELECT aura.transfer_points(401, 1, 1, 1);
SELECT aura.transfer_points(401, 77, 2, 1);
SELECT * FROM pg_temp.ledger(401, 1);
SELECT * FROM pg_temp.ledger(401, 2);
SELECT * FROM pg_temp.lots(401, 2);

-- adjust: positive or negative, never below zero (loyalty.allow_negative_balance is off)
SELECT aura.adjust_points(401, 2, -5, NULL, NULL, 'damaged card') > 0 AS adjusted;
SELECT aura.adjust_points(401, 2, -11, NULL, NULL, 'too much');
SELECT aura.adjust_points(401, 2, 0);
SELECT * FROM pg_temp.account(401, 2);

-- the ledger is append-only
UPDATE aura.points_transactions SET points = 0 WHERE restaurant_id = 401;
DELETE FROM aura.points_transactions WHERE restaurant_id = 401;
TRUNCATE aura.points_transactions;

-- bad input: clear errors, nothing changes
SELECT count(*) AS rows_before FROM aura.points_transactions WHERE restaurant_id = 401 \gset
SELECT aura.earn_points(NULL, 1, 1);
SELECT aura.earn_points(401, NULL, 1);
SELECT aura.earn_points(401, 1, NULL);
SELECT aura.earn_points(401, 0, 1);
SELECT aura.earn_points(401, 1, 0);
SELECT aura.earn_points(401, 1, -5);
SELECT aura.spend_points(401, 1, -5);
SELECT aura.earn_points(401, 1, 9223372036854775807);
SELECT aura.earn_points(401, 9, 9223372036854775000) > 0 AS near_the_limit;
SELECT aura.earn_points(401, 9, 1000);
SELECT aura.adjust_points(401, 9, 1000);
SELECT aura.adjust_points(401, 1, -9223372036854775808);
SELECT aura.spend_points(401, 999, 1);
SELECT aura.earn_points(499, 1, 1);
SELECT aura.earn_points(401, 1, 1, NULL, '');
SELECT aura.earn_points(401, 1, 1, NULL, repeat('k', 201));
SELECT aura.earn_points(401, 1, 1, repeat('r', 201));
SELECT aura.earn_points(401, 1, 1, NULL, NULL, repeat('x', 1001));
SELECT aura.earn_points(401, 1, 1, NULL, E'\'; DROP TABLE aura.points_transactions; --') > 0 AS hostile_key_is_just_a_key;
SELECT count(*) - :rows_before AS new_rows_near_limit_and_hostile_key FROM aura.points_transactions WHERE restaurant_id = 401;

-- frozen and closed accounts take no postings
UPDATE aura.loyalty_accounts SET status = 'frozen' WHERE restaurant_id = 401 AND customer_id = 2;
SELECT aura.earn_points(401, 2, 10);
SELECT aura.transfer_points(401, 1, 2, 1);
UPDATE aura.loyalty_accounts SET status = 'closed' WHERE restaurant_id = 401 AND customer_id = 2;
SELECT aura.spend_points(401, 2, 1);
UPDATE aura.loyalty_accounts SET status = 'active' WHERE restaurant_id = 401 AND customer_id = 2;

-- tiers: upgrade at once, with history and a tier.changed event
SELECT aura.earn_points(401, 5, 1999) > 0 AS earned;
SELECT tier FROM pg_temp.account(401, 5);
SELECT aura.earn_points(401, 5, 1) > 0 AS earned;
SELECT aura.earn_points(401, 5, 8000) > 0 AS earned;
SELECT old_tier, new_tier, reason FROM aura.tier_history WHERE restaurant_id = 401 AND customer_id = 5 ORDER BY id;
SELECT event_type, data FROM aura.loyalty_events WHERE restaurant_id = 401 ORDER BY id;
-- optional minimums: Silver also needs 3 orders in restaurant 402
INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, min_orders, benefits) VALUES
    (402, 'Member', 0, NULL, '{"earn_multiplier": 1}'), (402, 'Silver', 100, 3, '{"earn_multiplier": 1.5}');
SELECT aura.earn_points(402, 1, 500) > 0 AS earned;
SELECT tier FROM pg_temp.account(402, 1);
INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, benefits) VALUES (402, 'Bad', 5, '{"earn_multiplier": "x"}');
INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, benefits) VALUES (402, 'Bad', -1, '{}');

-- tier review: nothing to do under tier_downgrade = none (the default)
SELECT aura.review_tiers(now() + interval '3 years') AS downgraded;

-- verify_ledger finds nothing in a sound ledger ...
SELECT * FROM aura.verify_ledger(401);
SELECT * FROM aura.verify_ledger(402);
-- ... and finds a broken one (lots tampered with by a superuser)
BEGIN;
UPDATE aura.points_lots SET remaining = remaining - 1 WHERE restaurant_id = 401 AND customer_id = 5;
SELECT customer_id, problem FROM aura.verify_ledger(401);
ROLLBACK;
SELECT aura.verify_ledger(NULL);

------------------------------------------------------------------------------
-- order trigger
------------------------------------------------------------------------------
CREATE TABLE ledger_orders (
    id          bigserial PRIMARY KEY,
    restaurant  integer NOT NULL,
    customer    bigint,
    total       numeric(10,2),
    state       text NOT NULL DEFAULT 'open',
    note        jsonb
);
SELECT aura.attach_orders('ledger_orders', 'restaurant', 'customer', 'total', 'state', 'id');
-- attach twice, missing columns, wrong types, bad values
SELECT aura.attach_orders('ledger_orders', 'restaurant', 'customer', 'total', 'state', 'id');
CREATE TABLE ledger_orders_bad (id int, r int, c text, amount text, state int, note jsonb);
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'nope', 'amount', 'state', 'id');
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'c', 'amount', 'state', 'id');
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'r', 'amount', 'state', 'id');
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'r', 'r', 'state', 'id');
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'r', 'r', 'c', 'id', '{}');
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'r', 'r', 'c', 'id', '{done,cancelled}');
SELECT aura.attach_orders('ledger_orders_bad', 'r', 'r', 'r', 'c', 'id', '{done,NULL}');
SELECT aura.attach_orders(NULL, 'r', 'r', 'r', 'c', 'id');
CREATE VIEW ledger_orders_view AS SELECT * FROM ledger_orders_bad;
SELECT aura.attach_orders('ledger_orders_view', 'r', 'r', 'r', 'c', 'id');
SELECT aura.detach_orders('ledger_orders_bad');
SELECT orders_table, completed_values, reversed_values FROM aura.order_attachments;

INSERT INTO aura.loyalty_milestones (restaurant_id, kind, threshold, name) VALUES
    (403, 'nth_order', 2, 'second visit'), (403, 'lifetime_spend', 100, 'hundred club');
-- completed on insert earns floor(amount x 1 x tier multiplier); no customer: ignored
INSERT INTO ledger_orders (restaurant, customer, total, state) VALUES
    (403, 1, 25.90, 'completed'), (403, 1, 80, 'open'), (403, NULL, 10, 'completed'), (403, 2, 2500, 'completed');
-- completing later earns; repeating the update or re-firing never posts twice
UPDATE ledger_orders SET state = 'completed' WHERE id = 2;
UPDATE ledger_orders SET state = 'completed' WHERE id = 2;
UPDATE ledger_orders SET state = 'open' WHERE id = 2;
UPDATE ledger_orders SET state = 'completed' WHERE id = 2;
-- Silver earns 1.2x
INSERT INTO ledger_orders (restaurant, customer, total, state) VALUES (403, 2, 100, 'completed');
SELECT * FROM pg_temp.ledger(403, 1);
SELECT * FROM pg_temp.ledger(403, 2);
SELECT * FROM pg_temp.account(403, 1);
SELECT * FROM pg_temp.account(403, 2);
SELECT m.name, h.customer_id, h.order_ref FROM aura.milestone_hits h JOIN aura.loyalty_milestones m ON m.restaurant_id = h.restaurant_id AND m.id = h.milestone_id
 WHERE h.restaurant_id = 403 ORDER BY h.customer_id, m.name;
SELECT event_type, data - 'milestone_id' AS data FROM aura.loyalty_events WHERE restaurant_id = 403 ORDER BY id;

-- cancel reverses what the order earned; partial refunds reverse proportionally
UPDATE ledger_orders SET state = 'cancelled' WHERE id = 1;
UPDATE ledger_orders SET state = 'cancelled' WHERE id = 1;
SELECT aura.refund_order_points(403, '2', 30, 80, 'refund-2a') AS r2a \gset
SELECT aura.refund_order_points(403, '2', 30, 80, 'refund-2a') = :r2a AS same_refund;
SELECT aura.refund_order_points(403, '2', 60, 80);
SELECT aura.refund_order_points(403, '2', 0, 80);
SELECT aura.refund_order_points(403, '2', 10, NULL);
SELECT aura.refund_order_points(403, 'nope', 10, 80);
UPDATE ledger_orders SET state = 'refunded' WHERE id = 2;
SELECT aura.refund_order_points(403, '2', 1, 80);
SELECT * FROM pg_temp.ledger(403, 1);
SELECT * FROM pg_temp.account(403, 1);
-- a reversal after the points were spent takes what is left (never negative)
SELECT aura.spend_points(403, 2, 2600) > 0 AS spent;
UPDATE ledger_orders SET state = 'refunded' WHERE id = 4;
SELECT * FROM pg_temp.ledger(403, 2);
SELECT * FROM aura.verify_ledger(403);
-- detach stops earning
INSERT INTO ledger_orders (restaurant, customer, total, state) VALUES (403, 3, 10, 'completed');
SELECT aura.detach_orders('ledger_orders');
INSERT INTO ledger_orders (restaurant, customer, total, state) VALUES (403, 3, 50, 'completed');
SELECT * FROM pg_temp.account(403, 3);

-- other column types: smallint and numeric ids, money and integer amounts, an
-- enum status, a uuid order id
INSERT INTO aura.restaurants (id, name) VALUES (405, 'Ledger Typed');
CREATE TYPE ledger_order_state AS ENUM ('new', 'paid', 'void');
CREATE TABLE ledger_typed_orders (ref uuid PRIMARY KEY, shop smallint, guest numeric, price money,
                                  state ledger_order_state, cents integer);
SELECT aura.attach_orders('ledger_typed_orders', 'shop', 'guest', 'price', 'state', 'ref', '{paid}', '{void}');
INSERT INTO ledger_typed_orders (ref, shop, guest, price, state) VALUES ('00000000-0000-0000-0000-000000000001', 405, 9, '12.34', 'paid');
UPDATE ledger_typed_orders SET state = 'void';
INSERT INTO ledger_typed_orders (ref, shop, guest, price, state) VALUES ('00000000-0000-0000-0000-000000000002', 405, 9.5, '1', 'paid');
INSERT INTO ledger_typed_orders (ref, shop, guest, price, state) VALUES ('00000000-0000-0000-0000-000000000003', 405, 99999999999999999999999, '1', 'paid');
INSERT INTO ledger_typed_orders (ref, shop, guest, price, state) VALUES ('00000000-0000-0000-0000-000000000004', 405, 9, '-5', 'paid');
SELECT aura.detach_orders('ledger_typed_orders');
SELECT aura.attach_orders('ledger_typed_orders', 'shop', 'guest', 'cents', 'state', 'ref', '{paid}', '{void}');
INSERT INTO ledger_typed_orders (ref, shop, guest, cents, state) VALUES ('00000000-0000-0000-0000-000000000005', 405, 9, 2147483647, 'paid');
SELECT kind, points, reference, amount FROM aura.points_transactions WHERE restaurant_id = 405 ORDER BY id;
SELECT * FROM pg_temp.account(405, 9);
SELECT * FROM aura.verify_ledger(405);
SELECT aura.detach_orders('ledger_typed_orders');
DROP TABLE ledger_typed_orders;
DROP TYPE ledger_order_state;

------------------------------------------------------------------------------
-- privileges and tenants
------------------------------------------------------------------------------
CREATE ROLE ledger_staff IN ROLE aura_staff;
CREATE ROLE ledger_manager IN ROLE aura_manager;
SET ROLE ledger_staff;
SELECT aura.earn_points(401, 1, 10);
SELECT aura.set_context(401);
SELECT aura.earn_points(401, 1, 10) > 0 AS staff_earns;
SELECT aura.spend_points(401, 1, 10) > 0 AS staff_spends;
SELECT aura.earn_points(402, 1, 10);
SELECT aura.adjust_points(401, 1, 10);
INSERT INTO aura.points_transactions (restaurant_id, customer_id, kind, points, balance_before, balance_after, source)
    VALUES (401, 1, 'earn', 1000, 0, 1000, 'api');
UPDATE aura.loyalty_accounts SET balance = 1000000;
SELECT count(DISTINCT restaurant_id) AS visible_restaurants FROM aura.points_transactions;
SELECT aura.verify_ledger(401);
RESET ROLE;
SET ROLE ledger_manager;
SELECT aura.set_context(401);
SELECT aura.adjust_points(401, 1, 10) > 0 AS manager_adjusts;
SELECT count(*) FROM aura.verify_ledger(401);
SELECT aura.verify_ledger(402);
SELECT aura.attach_orders('ledger_orders', 'restaurant', 'customer', 'total', 'state', 'id');
SELECT actor_role FROM aura.points_transactions WHERE restaurant_id = 401 ORDER BY id DESC LIMIT 1;
RESET ROLE;
SELECT aura.clear_context();
DROP ROLE ledger_staff;
DROP ROLE ledger_manager;
DROP VIEW ledger_orders_view;
DROP TABLE ledger_orders, ledger_orders_bad;
