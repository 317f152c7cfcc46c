CREATE EXTENSION IF NOT EXISTS aura CASCADE;
-- ledger_orders: the order trigger on bulk inserts (statement trigger with a
-- transition table) against the same orders completed one by one (row
-- trigger), and the events the ledger records for other modules.
-- Restaurants 421-429.
INSERT INTO aura.restaurants (id, name) VALUES (421, 'Orders Bulk'), (422, 'Orders Rows'), (423, 'Orders Events');

-- 1. The ledger's tables carry no other module's row triggers (writes stay
--    on the direct path): only the append-only guard
SELECT tgrelid::regclass AS table_name, tgname FROM pg_trigger
 WHERE tgrelid IN ('aura.loyalty_accounts'::regclass, 'aura.points_transactions'::regclass,
                   'aura.points_lots'::regclass) AND NOT tgisinternal
 ORDER BY 1, 2;

-- 2. A bulk insert posts exactly what the same orders completed one by one
--    post: low tier thresholds so that customers change tier (and earn
--    multiplier) inside the statement, milestones, amounts with fractions of
--    cents, orders without customer, a frozen account, a status that earns
--    nothing, orders inserted cancelled or refunded, an order id earned before
INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, benefits)
SELECT r, t.name, t.p, jsonb_build_object('earn_multiplier', t.m)
  FROM (VALUES (421), (422)) rr(r),
       (VALUES ('Bronze', 0, 1.0), ('Silver', 100, 1.5), ('Gold', 300, 2.0)) t(name, p, m);
INSERT INTO aura.loyalty_milestones (restaurant_id, kind, threshold, name)
SELECT r, k, t, n FROM (VALUES (421), (422)) rr(r),
       (VALUES ('nth_order', 3, 'third order'), ('lifetime_spend', 200, 'spent 200')) m(k, t, n);
CREATE TABLE lo_bulk (id int PRIMARY KEY, r bigint, c bigint, amount numeric, status text);
CREATE TABLE lo_rows (LIKE lo_bulk INCLUDING ALL);
SELECT aura.attach_orders('lo_bulk', 'r', 'c', 'amount', 'status', 'id');
SELECT aura.attach_orders('lo_rows', 'r', 'c', 'amount', 'status', 'id');
SELECT tgname, tgtype & 1 = 1 AS for_each_row, tgoldtable, tgnewtable FROM pg_trigger
 WHERE tgrelid = 'lo_bulk'::regclass ORDER BY 1;
-- customer 5 is frozen; order 1000 earned before and is inserted again
SELECT aura.earn_points(r, 5, 10) > 0 AS earned FROM (VALUES (421), (422)) rr(r);
UPDATE aura.loyalty_accounts SET status = 'frozen' WHERE restaurant_id IN (421, 422) AND customer_id = 5;
INSERT INTO lo_bulk VALUES (1000, 421, 1, 20, 'completed');
INSERT INTO lo_rows VALUES (1000, 422, 1, 20, 'new');
UPDATE lo_rows SET status = 'completed' WHERE id = 1000;
DELETE FROM lo_bulk WHERE id = 1000;
DELETE FROM lo_rows WHERE id = 1000;
CREATE TEMP VIEW lo_orders AS
SELECT g AS id, CASE WHEN g = 7 THEN NULL WHEN g = 11 THEN 5 ELSE 1 + g % 3 END AS c,
       round(10.555 + g * 3.3333, 4) AS amount,
       CASE g WHEN 9 THEN 'pending' WHEN 15 THEN 'cancelled' WHEN 20 THEN 'refunded' ELSE 'completed' END AS status
  FROM generate_series(1, 30) g
UNION ALL SELECT 1000, 1, 20, 'completed';
-- bulk: one statement
INSERT INTO lo_bulk SELECT id, 421, c, amount, status FROM lo_orders ORDER BY id;
-- one by one: inserted as 'new', then completed (the row trigger) in the same order
INSERT INTO lo_rows SELECT id, 422, c, amount, 'new' FROM lo_orders ORDER BY id;
DO $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT * FROM lo_orders ORDER BY id LOOP
        UPDATE lo_rows SET status = o.status WHERE id = o.id;
    END LOOP;
END
$$;
-- the same ledger, lots, accounts, tier history and milestones
CREATE TEMP VIEW lo_state AS
SELECT r, (SELECT array_agg(format('%s %s %s %s>%s %s %s %s', customer_id, kind, points, balance_before, balance_after,
                                   source, reference, amount) ORDER BY id)
             FROM aura.points_transactions t WHERE t.restaurant_id = r) AS ledger,
          (SELECT array_agg(format('%s %s %s', customer_id, amount, remaining) ORDER BY id)
             FROM aura.points_lots l WHERE l.restaurant_id = r) AS lots,
          (SELECT array_agg(format('%s %s %s %s %s %s %s %s', customer_id, balance, lifetime_earned, lifetime_spent,
                                   lifetime_spend_amount, order_count, tier, status) ORDER BY customer_id)
             FROM aura.loyalty_accounts a WHERE a.restaurant_id = r) AS accounts,
          (SELECT array_agg(format('%s %s>%s %s', customer_id, old_tier, new_tier, reason) ORDER BY id)
             FROM aura.tier_history h WHERE h.restaurant_id = r) AS tiers,
          (SELECT array_agg(format('%s %s %s', m.name, h.customer_id, h.order_ref) ORDER BY m.name, h.customer_id)
             FROM aura.milestone_hits h JOIN aura.loyalty_milestones m
               ON m.restaurant_id = h.restaurant_id AND m.id = h.milestone_id WHERE h.restaurant_id = r) AS milestones
  FROM (VALUES (421), (422)) rr(r);
SELECT a.ledger = b.ledger AS same_ledger, a.lots = b.lots AS same_lots, a.accounts = b.accounts AS same_accounts,
       a.tiers = b.tiers AS same_tiers, a.milestones = b.milestones AS same_milestones
  FROM lo_state a, lo_state b WHERE a.r = 421 AND b.r = 422;
SELECT unnest(ledger) AS bulk_ledger FROM lo_state WHERE r = 421;
SELECT unnest(accounts) AS bulk_accounts, unnest(tiers) AS bulk_tiers FROM lo_state WHERE r = 421;
SELECT unnest(milestones) AS bulk_milestones FROM lo_state WHERE r = 421;
SELECT count(*) AS problems FROM aura.verify_ledger(421);
-- cancelling and completing again in bulk (UPDATE: the row trigger)
UPDATE lo_bulk SET status = 'cancelled' WHERE id IN (1, 2);
UPDATE lo_bulk SET status = 'completed' WHERE id IN (1, 2);
SELECT kind, reference, points FROM aura.points_transactions
 WHERE restaurant_id = 421 AND reference IN ('1', '2') ORDER BY id;

-- the same order id twice in one statement (a table without key): earns once
CREATE TABLE lo_nokey (id text, r bigint, c bigint, amount numeric, status text);
SELECT aura.attach_orders('lo_nokey', 'r', 'c', 'amount', 'status', 'id');
INSERT INTO lo_nokey VALUES ('dup', 421, 8, 10, 'completed'), ('dup', 421, 8, 99, 'completed'),
                            ('dup', 421, 9, 50, 'completed');
SELECT customer_id, points, reference FROM aura.points_transactions WHERE restaurant_id = 421 AND reference = 'dup';
SELECT aura.detach_orders('lo_nokey');
DROP TABLE lo_nokey;

-- partitioned orders: row triggers (rows inserted through the parent or
-- straight into a partition earn), and a partition attached on its own
CREATE TABLE lo_parts (id int, r bigint, c bigint, amount numeric, status text) PARTITION BY LIST (c);
CREATE TABLE lo_parts_a PARTITION OF lo_parts FOR VALUES IN (20);
CREATE TABLE lo_parts_b PARTITION OF lo_parts FOR VALUES IN (21, 22);
SELECT aura.attach_orders('lo_parts', 'r', 'c', 'amount', 'status', 'id');
INSERT INTO lo_parts VALUES (3001, 421, 20, 10, 'completed'), (3002, 421, 21, 10, 'completed');
INSERT INTO lo_parts_b VALUES (3003, 421, 21, 10, 'completed');
CREATE TABLE lo_solo (id int, r bigint, c bigint, amount numeric, status text) PARTITION BY LIST (c);
CREATE TABLE lo_solo_a PARTITION OF lo_solo FOR VALUES IN (23);
SELECT aura.attach_orders('lo_solo_a', 'r', 'c', 'amount', 'status', 'id');
INSERT INTO lo_solo VALUES (3004, 421, 23, 10, 'completed');
SELECT customer_id, points, reference FROM aura.points_transactions
 WHERE restaurant_id = 421 AND reference IN ('3001', '3002', '3003', '3004') ORDER BY id;
SELECT c.relname, t.tgname, t.tgtype & 1 = 1 AS for_each_row FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relname IN ('lo_parts', 'lo_solo_a') AND NOT t.tgisinternal ORDER BY 1, 2;
SELECT aura.detach_orders('lo_parts'), aura.detach_orders('lo_solo_a');
DROP TABLE lo_parts, lo_solo;

-- 3. A failing bulk insert posts nothing; the next statement (same
--    transaction, after a rolled-back savepoint) posts normally
BEGIN;
DO $$
BEGIN
    INSERT INTO lo_bulk VALUES (2001, 421, 9, 10, 'completed'), (2002, 999999, 9, 10, 'completed');
EXCEPTION WHEN no_data_found THEN
    RAISE NOTICE 'bulk insert refused: %', SQLERRM;
END
$$;
INSERT INTO lo_bulk VALUES (2003, 421, 9, 10, 'completed'), (2004, 421, 9, 10, 'completed');
COMMIT;
SELECT reference, points, balance_after FROM aura.points_transactions
 WHERE restaurant_id = 421 AND customer_id = 9 ORDER BY id;
INSERT INTO lo_bulk VALUES (2005, 421, 9, 10, 'completed'), (2006, 999999, 9, 10, 'completed');
SELECT count(*) AS after_failed_statement FROM aura.points_transactions WHERE restaurant_id = 421 AND customer_id = 9;
SELECT count(*) AS problems FROM aura.verify_ledger(421);

-- 4. Events for other modules: recorded only when a consumer (here reward
--    templates) of the restaurant wants them
SELECT count(*) AS consumer_events FROM aura.loyalty_events
 WHERE restaurant_id IN (421, 422) AND event_type IN ('order.completed', 'order.reversed', 'points.earned', 'birthday.awarded');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions) VALUES
    (423, 'second', 'fixed_discount', 'Second order: 2 off', 2, 'order_complete', '{"nth_order": 2}'),
    (423, 'fifty', 'fixed_discount', 'Fifty points at once: 5 off', 5, 'points_earned', '{"min_points": 50}'),
    (423, 'cake', 'fixed_discount', 'Happy birthday: 3 off', 3, 'birthday', '{}');
CREATE TABLE lo_events (LIKE lo_bulk INCLUDING ALL);
SELECT aura.attach_orders('lo_events', 'r', 'c', 'amount', 'status', 'id');
INSERT INTO lo_events VALUES (1, 423, 1, 20, 'completed'), (2, 423, 1, 60, 'completed'), (3, 423, 2, 49, 'completed');
-- points.earned also for aura.earn_points; not for bonus postings
SELECT aura.earn_points(423, 3, 70) > 0 AS earned, aura.earn_points(423, 3, 10) > 0 AS earned_less;
SELECT aura._post_points(423, 3, 'bonus', 80, 'campaign', NULL, 'lo-bonus', 'bonus') > 0 AS bonus;
SELECT event_type, data - 'transaction_id' AS data FROM aura.loyalty_events WHERE restaurant_id = 423 ORDER BY id;
SELECT x.customer_id, t.key, x.source FROM aura.rewards x
  JOIN aura.reward_templates t ON t.restaurant_id = x.restaurant_id AND t.id = x.template_id
 WHERE x.restaurant_id = 423 ORDER BY x.id;
-- a reward redeemed on order 2, then order 2 cancelled: the reward comes back
SELECT code AS lo_code FROM aura.rewards x WHERE x.restaurant_id = 423 AND x.customer_id = 1 ORDER BY id LIMIT 1 \gset
SELECT (aura.redeem_reward(:'lo_code', '2', 60, 1)) ->> 'discount' AS discount;
UPDATE lo_events SET status = 'cancelled' WHERE id = 2;
SELECT status FROM aura.rewards WHERE restaurant_id = 423 AND code = :'lo_code';
-- birthdays: the birthday template consumes birthday.awarded
UPDATE aura.loyalty_accounts SET birthday = '1990-11-29' WHERE restaurant_id = 423 AND customer_id = 2;
SET aura.restaurant_id = '423';
SELECT aura.award_birthdays('2026-11-29') AS birthdays, aura.award_birthdays('2026-11-29') AS birthdays_again;
RESET aura.restaurant_id;
SELECT x.customer_id, t.key FROM aura.rewards x
  JOIN aura.reward_templates t ON t.restaurant_id = x.restaurant_id AND t.id = x.template_id
 WHERE x.restaurant_id = 423 AND t.key = 'cake';
-- the points_earned template switched off: no more points.earned (the
-- ledger's cached demand is dropped when templates change)
UPDATE aura.reward_templates SET active = false WHERE restaurant_id = 423 AND key = 'fifty';
SELECT aura.earn_points(423, 3, 70) > 0 AS earned;
SELECT event_type, count(*) FROM aura.loyalty_events WHERE restaurant_id = 423 GROUP BY 1 ORDER BY 1;
-- the templates' conditions: min_points must be a positive integer
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (423, 'bad', 'fixed_discount', 'x', 1, 'points_earned', '{"min_points": 0}');
SELECT count(*) AS problems FROM aura.verify_ledger(423);

-- 5. Points multiplier campaigns: order earnings (not aura.earn_points) are
--    multiplied by every campaign active now for the account's tier
INSERT INTO aura.restaurants (id, name) VALUES (424, 'Orders Multipliers');
INSERT INTO aura.loyalty_tiers (restaurant_id, name, min_points, benefits) VALUES
    (424, 'Bronze', 0, '{"earn_multiplier": 1.0}'), (424, 'Gold', 1000, '{"earn_multiplier": 1.5}');
INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at, tiers, active) VALUES
    (424, 'Double points week', 2, now() - interval '1 day', now() + interval '6 days', '{}', true),
    (424, 'Gold bonus', 1.25, now() - interval '1 day', now() + interval '1 day', '{Gold}', true),
    (424, 'Next month', 3, now() + interval '30 days', now() + interval '31 days', '{}', true),
    (424, 'Last month', 3, now() - interval '31 days', now() - interval '30 days', '{}', true),
    (424, 'Switched off', 3, now() - interval '1 day', now() + interval '1 day', '{}', false);
CREATE TABLE lo_mult (LIKE lo_bulk INCLUDING ALL);
SELECT aura.attach_orders('lo_mult', 'r', 'c', 'amount', 'status', 'id');
-- Bronze: 10.50 x 1 x 2 = 21; customer 2 reaches Gold (1000) with the second order:
-- 600 x 2 = 1200, then 10 x 1.5 (Gold) x 2 x 1.25 (Gold bonus) = 37
INSERT INTO lo_mult VALUES (1, 424, 1, 10.50, 'completed'), (2, 424, 2, 600, 'completed'), (3, 424, 2, 10, 'completed');
SELECT aura.earn_points(424, 3, 100) > 0 AS api_earning_not_multiplied;
SELECT customer_id, points, reference, reason FROM aura.points_transactions WHERE restaurant_id = 424 ORDER BY id;
-- the campaign ends (deleted): the next order earns the plain way
DELETE FROM aura.points_multipliers WHERE restaurant_id = 424 AND name = 'Double points week';
INSERT INTO lo_mult VALUES (4, 424, 1, 10.50, 'completed');
SELECT points, reason FROM aura.points_transactions WHERE restaurant_id = 424 AND reference = '4';
-- bad campaigns: 23514 (terse: the failing row has timestamps)
\set VERBOSITY terse
INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at)
VALUES (424, 'zero', 0, now(), now() + interval '1 day');
INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at)
VALUES (424, 'backwards', 2, now(), now() - interval '1 day');
INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at, tiers)
VALUES (424, 'null tier', 2, now(), now() + interval '1 day', '{Gold,NULL}');
INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at)
VALUES (424, ' ', 2, now(), now() + interval '1 day');
\set VERBOSITY default
SELECT count(*) AS problems FROM aura.verify_ledger(424);

-- 6. Bad input of the internal event door
SELECT aura._ledger_consumer_event(423, 'order.shipped', '{}');
SELECT aura._ledger_consumer_event(NULL, 'order.completed', '{}');

SELECT aura.detach_orders(t) FROM unnest(ARRAY['lo_bulk', 'lo_rows', 'lo_events', 'lo_mult']::regclass[]) t;
DROP TABLE lo_bulk, lo_rows, lo_events, lo_mult;
