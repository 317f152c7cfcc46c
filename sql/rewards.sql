-- Rewards: templates and their validation, issuance, validation and
-- redemption (one- and two-phase), cancellation, automatic issuance from the
-- ledger, bulk issuance, campaigns, expiry, analytics, search, privileges and
-- bad input.  Restaurants 500-599.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
-- the dispatcher must not run the rewards jobs (expiry, notices, schedules)
-- in the middle of this file: they are called by hand here
UPDATE aura.jobs SET enabled = false WHERE name LIKE 'reward%';
INSERT INTO aura.restaurants (id, name) VALUES (501, 'Rewards One'), (502, 'Rewards Two'), (503, 'Rewards Three');

-- volatile parts of results masked: codes, ids, timestamps
CREATE FUNCTION pg_temp.m(j jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT j - '{code,reward_id,redemption_id,valid_until,reserved_until,job_id,campaign_id}'::text[]
$$;
CREATE FUNCTION pg_temp.code(r bigint, c bigint, tkey text) RETURNS text LANGUAGE sql AS $$
    SELECT x.code FROM aura.rewards x JOIN aura.reward_templates t ON t.restaurant_id = x.restaurant_id AND t.id = x.template_id
     WHERE x.restaurant_id = r AND x.customer_id = c AND t.key = tkey ORDER BY x.id DESC LIMIT 1
$$;
CREATE FUNCTION pg_temp.rewards(r bigint, c bigint)
RETURNS TABLE (n bigint, key text, type text, status text, source text, value numeric, points_cost bigint, valid_days int)
LANGUAGE sql AS $$
    SELECT row_number() OVER (ORDER BY x.id), t.key, x.type, x.status, x.source, x.value, x.points_cost,
           round(extract(epoch FROM x.valid_until - x.issued_at) / 86400)::int
      FROM aura.rewards x JOIN aura.reward_templates t ON t.restaurant_id = x.restaurant_id AND t.id = x.template_id
     WHERE x.restaurant_id = r AND x.customer_id = c ORDER BY x.id
$$;

------------------------------------------------------------------------------
-- 1. Templates: the default catalog, per-type validation
------------------------------------------------------------------------------
SELECT aura.install_default_rewards(501) AS installed;
SELECT aura.install_default_rewards(501) AS installed_again;
-- reward events go through the notifications outbox: a rule subscribed to reward.* (in-app)
SELECT aura.set_context(501);
SELECT aura.set_notification_rule('rewards', '{reward.*,campaign.*}', '[{"channel": "app", "recipients": ["1"]}]') > 0 AS rule;
SELECT set_config('aura.restaurant_id', '', false) AS no_context;
SELECT key, type, value, percentage, min_order_amount AS min, max_discount_amount AS cap, validity_days AS days,
       eligible_tiers, trigger, trigger_conditions, auto_apply
  FROM aura.reward_templates WHERE restaurant_id = 501 ORDER BY id;

-- type-specific validation: clear errors, nothing inserted
\set VERBOSITY default
INSERT INTO aura.reward_templates (restaurant_id, key, type, title) VALUES (501, 'p1', 'percentage_discount', 'x');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, percentage) VALUES (501, 'p2', 'percentage_discount', 'x', 120);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, percentage) VALUES (501, 'p3', 'percentage_discount', 'x', 0);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title) VALUES (501, 'f1', 'fixed_discount', 'x');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 'f2', 'fixed_discount', 'x', -5);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 'pd', 'points_discount', 'x', 5);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title) VALUES (501, 'fi', 'free_item', 'x');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 'bp', 'bonus_points', 'x', 10.5);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 'cb', 'cashback', 'x', 3);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title) VALUES (501, 'tu', 'tier_upgrade', 'x');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, auto_apply) VALUES (501, 'aa', 'fixed_discount', 'x', 5, true);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, valid_from, valid_to)
VALUES (501, 'w', 'fixed_discount', 'x', 5, '2030-01-02', '2030-01-01');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, validity_days) VALUES (501, 'v', 'fixed_discount', 'x', 5, 0);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 'c1', 'fixed_discount', 'x', 5, 'birthday', '{"nth_order": 3}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 'c2', 'fixed_discount', 'x', 5, 'order_complete', '{"nth_order": 2.5}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 'c3', 'fixed_discount', 'x', 5, 'order_complete', '[1]');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, image_url)
VALUES (501, 'img', 'fixed_discount', 'x', 5, 'javascript:alert(1)');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 'Bad Key!', 'fixed_discount', 'x', 5);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 't', 'fixed_discount', '', 5);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value) VALUES (501, 'u', 'voucher', 'x', 5);
\set VERBOSITY terse
SELECT count(*) AS templates FROM aura.reward_templates WHERE restaurant_id = 501;

-- templates of the tests
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, points_cost, max_uses_per_customer)
VALUES (501, 'coffee', 'points_discount', '3.50 off for 350 points', 3.50, 350, 2);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, max_uses_total)
VALUES (501, 'limited', 'fixed_discount', 'Only two', 2, 2);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, item_ids, category_ids)
VALUES (501, 'free-dessert', 'free_item', 'A free dessert', 6, '{77}', '{9}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, percentage)
VALUES (501, 'cashback', 'cashback', '5% back in points', 5);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, active)
VALUES (501, 'off', 'fixed_discount', 'Inactive', 1, false);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, valid_from)
VALUES (501, 'future', 'fixed_discount', 'Not yet', 1, now() + interval '1 day');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, percentage, max_discount_amount)
VALUES (501, 'half', 'percentage_discount', '50% off, cap 100', 50, 100);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, target_tier)
VALUES (501, 'to-gold', 'tier_upgrade', 'Gold for you', 'Gold');

------------------------------------------------------------------------------
-- 2. Issuance
------------------------------------------------------------------------------
SELECT aura.earn_points(501, 1, 1000) > 0 AS earned;
SELECT status, type, title, source, value, points_cost,
       code ~ '^[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}$' AS code_ok,
       valid_until - issued_at = interval '30 days' AS thirty_days,
       terms ->> 'percentage' AS terms_pct, terms ->> 'min_order_amount' AS terms_min
  FROM aura.issue_reward(501, 1, aura.template_id(501, 'welcome'));
-- validity from the call, points cost through the ledger in the same transaction
SELECT status, points_cost, points_tx IS NOT NULL AS debited, valid_until - issued_at = interval '3 days' AS three_days
  FROM aura.issue_reward(501, 1, aura.template_id(501, 'coffee'), 'api', 3, 'coffee-1');
SELECT kind, points, balance_after, source, reason FROM aura.points_transactions
 WHERE restaurant_id = 501 AND customer_id = 1 ORDER BY id;
-- same idempotency key: the same reward, nothing debited again
SELECT count(*) AS same FROM aura.issue_reward(501, 1, aura.template_id(501, 'coffee'), 'api', 3, 'coffee-1') x
  JOIN aura.rewards y ON y.restaurant_id = 501 AND y.idempotency_key = 'coffee-1' AND y.id = x.id;
SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 1;
-- the key again for another template
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'birthday'), 'api', 3, 'coffee-1');
-- per-customer limit (2 coffees), then the limit
SELECT status FROM aura.issue_reward(501, 1, aura.template_id(501, 'coffee'));
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'coffee'));
-- total limit
SELECT status FROM aura.issue_reward(501, 2, aura.template_id(501, 'limited'));
SELECT status FROM aura.issue_reward(501, 3, aura.template_id(501, 'limited'));
SELECT * FROM aura.issue_reward(501, 4, aura.template_id(501, 'limited'));
-- insufficient points: error, nothing written
SELECT aura.earn_points(501, 5, 100) > 0 AS earned;
SELECT count(*) AS rewards_before FROM aura.rewards WHERE restaurant_id = 501 AND customer_id = 5;
SELECT * FROM aura.issue_reward(501, 5, aura.template_id(501, 'coffee'));
SELECT count(*) AS rewards_after FROM aura.rewards WHERE restaurant_id = 501 AND customer_id = 5;
-- inactive, outside its window, tier not eligible
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'off'));
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'future'));
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'platinum-exclusive'));
-- bad input
SELECT * FROM aura.issue_reward(NULL, 1, 1);
SELECT * FROM aura.issue_reward(501, -1, aura.template_id(501, 'welcome'));
SELECT * FROM aura.issue_reward(501, 1, NULL);
SELECT * FROM aura.issue_reward(501, 1, 999999999);
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'welcome'), 'hacker');
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'welcome'), 'manual', 0);
SELECT * FROM aura.issue_reward(501, 1, aura.template_id(501, 'welcome'), 'manual', NULL, repeat('k', 201));
SELECT aura.template_id(501, 'nope');
SELECT aura.template_id(501, repeat('x', 100000)) IS NULL;
SELECT * FROM pg_temp.rewards(501, 1);
-- the restaurant without templates gets the catalog on first use
SELECT count(*) AS catalog_502_before FROM aura.reward_templates WHERE restaurant_id = 502;
SELECT status FROM aura.issue_reward(502, 1, aura.template_id(502, 'referral'));
SELECT count(*) AS catalog_502_after FROM aura.reward_templates WHERE restaurant_id = 502;

------------------------------------------------------------------------------
-- 3. Validation and redemption
------------------------------------------------------------------------------
SELECT pg_temp.code(501, 1, 'welcome') AS welcome \gset
-- every failing rule at once
SELECT pg_temp.m(aura.validate_reward(:'welcome', 12.34, 2));
SELECT pg_temp.m(aura.validate_reward(:'welcome', 'NaN', 1));
SELECT pg_temp.m(aura.validate_reward(:'welcome', -1, 1));
SELECT pg_temp.m(aura.validate_reward(:'welcome', NULL, 1));
SELECT pg_temp.m(aura.validate_reward(:'welcome', 1e15, 1));
SELECT pg_temp.m(aura.validate_reward(:'welcome', 50, 1, '{"a": 1}'));
-- valid: 10% of 99.95 = 9.995 -> 10.00 (half-up), cap 10
SELECT pg_temp.m(aura.validate_reward(:'welcome', 99.95, 1));
-- the code as typed: lower case, spaces
SELECT (aura.validate_reward(lower(replace(:'welcome', '-', ' ')), 20, 1)) ->> 'valid' AS typed_ok;
-- 10% of 15.05 = 1.505 -> 1.51; cap: 10% of 500 = 50 -> 10
SELECT aura.validate_reward(:'welcome', 15.05, 1) -> 'discount' AS d1, aura.validate_reward(:'welcome', 500, 1) -> 'discount' AS d2;
-- unknown, malformed and hostile codes
SELECT aura.validate_reward('AAAA-BBBB-CCCC', 10);
SELECT aura.validate_reward('0000-1111-OOOO', 10);
SELECT aura.validate_reward(''' OR 1=1 --', 10);
SELECT aura.validate_reward(repeat('A', 100000), 10);
SELECT aura.validate_reward(NULL, 10);
-- fixed amounts are capped at the order amount
SELECT pg_temp.code(501, 1, 'coffee') AS coffee \gset
SELECT pg_temp.m(aura.validate_reward(:'coffee', 2.00, 1));
-- free item: the dearest eligible item, capped by value
SELECT code AS dessert FROM aura.issue_reward(501, 1, aura.template_id(501, 'free-dessert')) \gset
SELECT pg_temp.m(aura.validate_reward(:'dessert', 30, 1));
SELECT pg_temp.m(aura.validate_reward(:'dessert', 30, 1, '[{"id": 5, "price": 9}]'));
SELECT pg_temp.m(aura.validate_reward(:'dessert', 30, 1, '[{"id": 77, "price": 4.5}, {"category_id": 9, "price": 8}]'));
SELECT pg_temp.m(aura.validate_reward(:'dessert', 30, 1, '[{"id": "x", "price": 4.5}]'));

-- redeem: exact amounts, one append-only row
SELECT pg_temp.m(aura.redeem_reward(:'welcome', 'order-1', 99.95, 1, 'redeem-1', 'pos', 'till-3', 42));
SELECT order_ref, original_amount, discount_amount, final_amount, method, terminal, staff_id, kind
  FROM aura.reward_redemptions WHERE restaurant_id = 501 ORDER BY id;
-- replay with the same key: the first result
SELECT pg_temp.m(aura.redeem_reward(:'welcome', 'order-1', 99.95, 1, 'redeem-1'));
-- the key for another order; already redeemed
SELECT aura.redeem_reward(:'welcome', 'order-2', 99.95, 1, 'redeem-1');
SELECT aura.redeem_reward(:'welcome', 'order-2', 99.95, 1);
SELECT pg_temp.m(aura.validate_reward(:'welcome', 99.95, 1));
-- someone else's code, bad amounts, below the minimum: errors, nothing written
SELECT code AS w2 FROM aura.issue_reward(501, 2, aura.template_id(501, 'welcome')) \gset
SELECT aura.redeem_reward(:'w2', 'order-3', 50, 1);
SELECT aura.redeem_reward(:'w2', 'order-3', 'NaN', 2);
SELECT aura.redeem_reward(:'w2', 'order-3', -5, 2);
SELECT aura.redeem_reward(:'w2', 'order-3', NULL, 2);
SELECT aura.redeem_reward(:'w2', 'order-3', 10, 2);
SELECT aura.redeem_reward(:'w2', NULL, 10, 2);
SELECT aura.redeem_reward(:'w2', '', 10, 2);
SELECT aura.redeem_reward(:'w2', 'order-3', 20, NULL);
SELECT aura.redeem_reward(:'w2', 'order-3', 20, 2, NULL, 'telepathy');
SELECT aura.redeem_reward('AAAA-BBBB-CCCC', 'order-3', 20, 2);
SELECT count(*) AS redemptions FROM aura.reward_redemptions WHERE restaurant_id = 501;
-- append-only
UPDATE aura.reward_redemptions SET discount_amount = 0 WHERE restaurant_id = 501;
DELETE FROM aura.reward_redemptions WHERE restaurant_id = 501;
-- cashback: points at loyalty.point_value (0.01): 5% of 40 = 2.00 = 200 points
SELECT code AS cb FROM aura.issue_reward(501, 1, aura.template_id(501, 'cashback')) \gset
SELECT pg_temp.m(aura.redeem_reward(:'cb', 'order-4', 40, 1));
SELECT kind, points, source FROM aura.points_transactions WHERE restaurant_id = 501 AND customer_id = 1 ORDER BY id DESC LIMIT 1;
-- tier upgrade reward; its tier.changed reaches notification rules like the ledger's
SELECT aura.set_context(501);
SELECT aura.set_notification_rule('tiers', '{tier.*}', '[{"channel": "app", "recipients": ["1"]}]') > 0 AS tier_rule;
SELECT set_config('aura.restaurant_id', '', false) AS no_context;
SELECT code AS tg FROM aura.issue_reward(501, 1, aura.template_id(501, 'to-gold')) \gset
SELECT (aura.redeem_reward(:'tg', 'order-5', 0, 1)) ->> 'discount' AS discount;
SELECT tier FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 1;
SELECT count(*) AS tier_changed_notified FROM aura.notifications
 WHERE restaurant_id = 501 AND event_type = 'tier.changed';

------------------------------------------------------------------------------
-- 4. Two-phase: reserve, redeem or release; holds expire by themselves
------------------------------------------------------------------------------
SELECT code AS h FROM aura.issue_reward(501, 3, aura.template_id(501, 'half')) \gset
SELECT pg_temp.m(aura.reserve_reward(:'h', 'pos-1', '5 minutes'));
SELECT pg_temp.m(aura.validate_reward(:'h', 30, 3));
SELECT aura.reserve_reward(:'h', 'pos-2');
SELECT aura.redeem_reward(:'h', 'pos-2', 30, 3);
SELECT aura.release_reward(:'h', 'pos-2');
-- the same order: extend, then release
SELECT (aura.reserve_reward(:'h', 'pos-1', '10 minutes')) ->> 'reserved' AS extended;
SELECT aura.release_reward(:'h', 'pos-1') AS released, aura.release_reward(:'h', 'pos-1') AS again;
-- reserve, then redeem by the same order: 50% of 30.01 = 15.005 -> 15.01
SELECT (aura.reserve_reward(:'h', 'pos-3', '1 minute', 3)) ->> 'reserved' AS reserved;
SELECT pg_temp.m(aura.redeem_reward(:'h', 'pos-3', 30.01, 3));
-- an expired hold frees the reward by itself
SELECT code AS h2 FROM aura.issue_reward(501, 3, aura.template_id(501, 'half')) \gset
SELECT (aura.reserve_reward(:'h2', 'pos-4', '1 second')) ->> 'reserved' AS reserved;
UPDATE aura.rewards SET reserved_until = now() - interval '1 second' WHERE restaurant_id = 501 AND code = :'h2';
SELECT pg_temp.m(aura.validate_reward(:'h2', 10, 3));
SELECT pg_temp.m(aura.redeem_reward(:'h2', 'pos-5', 10, 3));
-- bad holds and codes
SELECT aura.reserve_reward(:'h2', 'pos-6', '0 seconds');
SELECT aura.reserve_reward(:'h2', 'pos-6', '2 days');
SELECT aura.reserve_reward(:'h2', 'pos-6', NULL);
SELECT aura.reserve_reward(:'h2', 'pos-6');
SELECT aura.reserve_reward('nope', 'pos-6');
SELECT aura.release_reward('nope', 'pos-6');

------------------------------------------------------------------------------
-- 5. Cancelling an order restores its rewards
------------------------------------------------------------------------------
SELECT aura.cancel_reward_redemption(501, 'pos-3', 'customer left') AS restored;
SELECT status FROM aura.rewards WHERE restaurant_id = 501 AND code = :'h';
SELECT kind, original_amount, discount_amount, reason FROM aura.reward_redemptions
 WHERE restaurant_id = 501 AND order_ref = 'pos-3' ORDER BY id;
SELECT aura.cancel_reward_redemption(501, 'pos-3') AS again;
-- a reward past its validity cannot come back: its points cost is returned
SELECT pg_temp.m(aura.redeem_reward(:'coffee', 'order-6', 20, 1));
UPDATE aura.rewards SET valid_until = now() - interval '1 minute', valid_from = now() - interval '1 day'
 WHERE restaurant_id = 501 AND code = :'coffee';
SELECT balance AS before FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 1;
SELECT aura.cancel_reward_redemption(501, 'order-6') AS restored;
SELECT status FROM aura.rewards WHERE restaurant_id = 501 AND code = :'coffee';
SELECT balance AS after FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 1;
SELECT aura.cancel_reward_redemption(NULL, 'x');

------------------------------------------------------------------------------
-- 6. Automatic issuance from the ledger: orders, milestones, tiers, birthdays
------------------------------------------------------------------------------
CREATE TABLE rewards_orders (id text PRIMARY KEY, rid bigint, cid bigint, amount numeric, status text);
SELECT aura.attach_orders('rewards_orders', 'rid', 'cid', 'amount', 'status', 'id');
INSERT INTO aura.loyalty_milestones (restaurant_id, kind, threshold, name) VALUES (501, 'nth_order', 3, 'third order');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 'third', 'fixed_discount', 'Third order: 3 off', 3, 'milestone', '{"kind": "nth_order"}');
-- first order of 60: welcome (nth_order 1) and the order >= 50 bonus (auto-applied)
INSERT INTO rewards_orders VALUES ('a1', 501, 10, 60, 'completed');
SELECT * FROM pg_temp.rewards(501, 10);
SELECT kind, points, source FROM aura.points_transactions WHERE restaurant_id = 501 AND customer_id = 10 ORDER BY id;
-- nine more orders of 50: the 10th order, lifetime 500 and the milestone, once each
INSERT INTO rewards_orders SELECT 'b' || g, 501, 10, 50, 'completed' FROM generate_series(1, 9) g;
SELECT key, count(*) FROM pg_temp.rewards(501, 10) GROUP BY key ORDER BY key;
SELECT count(*) AS problems FROM aura.verify_ledger(501);
-- redeemed on an order that is then cancelled: restored by itself
SELECT code AS w10 FROM aura.rewards WHERE restaurant_id = 501 AND customer_id = 10 AND type = 'percentage_discount'
 ORDER BY id LIMIT 1 \gset
SELECT (aura.redeem_reward(:'w10', 'b9', 50, 10)) ->> 'discount' AS discount;
UPDATE rewards_orders SET status = 'cancelled' WHERE id = 'b9';
SELECT status FROM aura.rewards WHERE restaurant_id = 501 AND code = :'w10';
-- tier upgrade to Platinum: the platinum exclusive
SELECT aura.earn_points(501, 11, 10000) > 0 AS earned;
SELECT tier FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 11;
SELECT * FROM pg_temp.rewards(501, 11);
-- birthdays (once a year) and anniversaries
UPDATE aura.loyalty_accounts SET birthday = '1990-03-15', enrolled_at = '2024-03-15' WHERE restaurant_id = 501 AND customer_id = 11;
SELECT aura.award_birthdays('2026-03-15') AS birthdays;
SELECT aura.award_birthdays('2026-03-15') AS birthdays_again;
SELECT aura.award_anniversaries('2026-03-15') AS anniversaries;
SELECT aura.award_anniversaries('2026-03-15') AS anniversaries_again;
SELECT * FROM pg_temp.rewards(501, 11);
-- referral
SELECT aura.record_referral(501, 11, 12) AS referral, aura.record_referral(501, 11, 12) AS again;
SELECT aura.record_referral(501, 11, 11);
-- a limit reached is skipped, never failing the order
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, max_uses_total)
VALUES (501, 'first-two', 'fixed_discount', 'First two orders of the day', 1, 'order_complete', 1);
INSERT INTO rewards_orders VALUES ('c1', 501, 13, 10, 'completed'), ('c2', 501, 14, 10, 'completed');
SELECT customer_id, t.key FROM aura.rewards x JOIN aura.reward_templates t ON t.restaurant_id = x.restaurant_id
   AND t.id = x.template_id WHERE x.restaurant_id = 501 AND x.customer_id IN (13, 14) ORDER BY 1, 2;
SELECT event_type, data ->> 'template' AS template, data ->> 'reason' AS reason
  FROM aura.rule_matches WHERE restaurant_id = 501 AND event_type = 'reward.auto_issue_skipped' ORDER BY id;
SELECT event_type, count(*) FROM aura.rule_matches WHERE restaurant_id = 501 AND event_type LIKE 'reward.%'
 GROUP BY 1 ORDER BY 1;

------------------------------------------------------------------------------
-- 7. Bulk issuance
------------------------------------------------------------------------------
SELECT aura.set_context(501);
SELECT customer_id, status, code IS NOT NULL AS has_code, error
  FROM aura.issue_rewards_bulk(aura.template_id(501, 'birthday'), ARRAY[20, 21, -3, 20], 2);
SELECT kind, total, processed, issued, failed, status, jsonb_array_length(results) AS results
  FROM aura.reward_jobs WHERE restaurant_id = 501 ORDER BY id DESC LIMIT 1;
SELECT customer_id, status FROM aura.issue_rewards_bulk(aura.template_id(501, 'referral'), '{"tiers": ["Platinum"]}'::jsonb);
SELECT * FROM aura.issue_rewards_bulk(aura.template_id(501, 'birthday'), '{}'::bigint[]);
SELECT * FROM aura.issue_rewards_bulk(aura.template_id(501, 'birthday'), '{"colour": "red"}'::jsonb);
SELECT * FROM aura.issue_rewards_bulk(aura.template_id(501, 'birthday'), '[1]'::jsonb);
SELECT * FROM aura.issue_rewards_bulk(NULL, ARRAY[1]);
SELECT set_config('aura.restaurant_id', '', false) AS no_context;

------------------------------------------------------------------------------
-- 8. Campaigns: targets, schedule, budgets
------------------------------------------------------------------------------
INSERT INTO aura.loyalty_accounts (restaurant_id, customer_id, order_count, lifetime_spend_amount, tier, birthday)
SELECT 503, g, g, g * 100, CASE WHEN g > 3 THEN 'Gold' ELSE 'Bronze' END, make_date(1990, 1 + g % 12, 1)
  FROM generate_series(1, 6) g;
SELECT aura.install_default_rewards(503) AS installed;
-- impossible schedules and bad targets
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, starts_at, ends_at)
VALUES (503, 'backwards', aura.template_id(503, 'referral'), '2030-01-02', '2030-01-01');
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, ends_at, status)
VALUES (503, 'over', aura.template_id(503, 'referral'), '2020-01-01', 'active');
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, automated, run_every)
VALUES (503, 'too often', aura.template_id(503, 'referral'), true, '5 minutes');
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target)
VALUES (503, 'bad', aura.template_id(503, 'referral'), '{"min_orders": 5, "max_orders": 2}');
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target)
VALUES (503, 'bad', aura.template_id(503, 'referral'), '{"birthday_month": 13}');
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target)
VALUES (503, 'bad', aura.template_id(503, 'referral'), '{"segment_function": "pg_catalog.nope"}');
-- a good one: Gold customers with at least 4 orders, 2 rewards max
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target, max_rewards, status)
VALUES (503, 'gold push', aura.template_id(503, 'referral'), '{"tiers": ["Gold"], "min_orders": 4}', 2, 'draft')
RETURNING id AS camp \gset
SELECT aura.reward_audience(503, '{"tiers": ["Gold"], "min_orders": 4}') AS audience;
SELECT aura.reward_audience(503, '{"birthday_month": 3}') AS march;
SELECT aura.reward_audience(503, '{"customer_ids": [2, 5, 99], "max_orders": 4}') AS listed;
SELECT aura.reward_audience(503, '{"min_lifetime_spend": 550}') AS big_spenders;
SELECT aura.reward_audience(503, '{"inactive_days": 30}') AS inactive;
SELECT pg_temp.m(aura.run_campaign(:camp, true));
SELECT aura.run_campaign(:camp);
UPDATE aura.reward_campaigns SET status = 'active' WHERE restaurant_id = 503 AND id = :camp;
SELECT pg_temp.m(aura.run_campaign(:camp));
SELECT status, issued_count, issued_cost FROM aura.reward_campaigns WHERE restaurant_id = 503 AND id = :camp;
SELECT aura.run_campaign(:camp);
UPDATE aura.reward_campaigns SET issued_count = 0 WHERE restaurant_id = 503 AND id = :camp;
-- cost budget: 25 per reward (gift card), 60 allows 2; one per customer
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target, max_cost, status)
VALUES (503, 'gift cards', aura.template_id(503, 'anniversary'), '{"customer_ids": [1, 2, 3]}', 60, 'active')
RETURNING id AS camp2 \gset
SELECT pg_temp.m(aura.run_campaign(:camp2));
-- an automated campaign runs when due
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target, automated, run_every, status)
VALUES (503, 'weekly', aura.template_id(503, 'birthday'), '{"customer_ids": [6]}', true, '7 days', 'active')
RETURNING id AS camp3 \gset
SELECT aura.run_due_campaigns() AS ran;
SELECT aura.run_due_campaigns() AS ran_again;
SELECT name, status, issued_count, next_run_at > now() + interval '6 days' AS next_week
  FROM aura.reward_campaigns WHERE restaurant_id = 503 ORDER BY id;
SELECT aura.run_campaign(NULL);
SELECT aura.run_campaign(987654321);

------------------------------------------------------------------------------
-- 9. Expiry
------------------------------------------------------------------------------
UPDATE aura.rewards SET valid_from = now() - interval '10 days', valid_until = now() - interval '1 day'
 WHERE restaurant_id = 503 AND customer_id IN (1, 2);
UPDATE aura.rewards SET valid_until = now() + interval '2 days' WHERE restaurant_id = 503 AND customer_id = 4;
SELECT customer_id, title FROM aura.rewards_expiring(503, '3 days');
SELECT aura.expire_rewards() AS expired;
SELECT aura.expire_rewards() AS expired_again;
SELECT customer_id, status FROM aura.rewards WHERE restaurant_id = 503 ORDER BY customer_id, id;
SELECT aura.expire_rewards(NULL);
SELECT aura.expire_rewards(now(), 0);
SELECT * FROM aura.rewards_expiring(503, '-1 day');

------------------------------------------------------------------------------
-- 10. Analytics
------------------------------------------------------------------------------
SELECT aura.refresh_reward_analytics() > 0 AS refreshed;
SELECT aura.refresh_reward_analytics() AS nothing_new;
SELECT key, issued, redeemed, expired, cancelled, redemption_rate, discount_value, unique_customers,
       avg_days_to_redeem, revenue
  FROM aura.reward_stats(501, current_date - 1, current_date + 1, 'month') ORDER BY key;
SELECT key, issued, expired FROM aura.reward_stats(503, current_date - 1, current_date + 1, 'year') ORDER BY key;
SELECT points_issued > 0 AS issued, points_redeemed, points_expired, active_members, new_members
  FROM aura.loyalty_program_stats(501, current_date - 1, current_date + 1, 'day');
SELECT restaurant_id, outstanding_points, point_value, liability FROM aura.loyalty_liability
 WHERE restaurant_id IN (501, 503) ORDER BY 1;
SELECT * FROM aura.loyalty_tier_distribution WHERE restaurant_id = 503 ORDER BY tier;
SELECT name, issued, budget_used, redeemed, discount_given, revenue, roi FROM aura.reward_campaign_roi
 WHERE restaurant_id = 503 ORDER BY campaign_id;
SELECT * FROM aura.reward_stats(501, current_date, current_date - 1);
SELECT * FROM aura.reward_stats(501, current_date, current_date, 'fortnight');

------------------------------------------------------------------------------
-- 11. Search with keyset paging
------------------------------------------------------------------------------
SELECT aura.set_context(501);
SELECT customer_id, type, status FROM aura.search_rewards('{"customer_id": 3}', 'id', 10);
SELECT count(*) AS redeemed FROM aura.search_rewards('{"status": "redeemed"}', '-issued_at', 1000);
SELECT title FROM aura.search_rewards('{"text": "birthday"}', 'id', 2);
SELECT count(*) AS by_code FROM aura.search_rewards(jsonb_build_object('text', lower(:'h2')));
SELECT count(*) AS valued FROM aura.search_rewards('{"min_value": 5, "max_value": 10}', 'value', 1000);
SELECT count(*) AS valid_today FROM aura.search_rewards(jsonb_build_object('valid_on', current_date), 'id', 1000);
-- paging: three pages of 4 by value descending cover the first 12 rows exactly once
CREATE TEMP TABLE pages AS SELECT 1 AS page, * FROM aura.search_rewards('{}', '-value', 4);
INSERT INTO pages SELECT 2, * FROM aura.search_rewards('{}', '-value', 4, (SELECT cursor FROM pages WHERE page = 1 ORDER BY coalesce(value, 0), id LIMIT 1));
INSERT INTO pages SELECT 3, * FROM aura.search_rewards('{}', '-value', 4, (SELECT cursor FROM pages WHERE page = 2 ORDER BY coalesce(value, 0), id LIMIT 1));
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows FROM pages;
SELECT (SELECT array_agg(id ORDER BY page, coalesce(value, 0) DESC, id DESC) FROM pages)
     = (SELECT array_agg(id) FROM (SELECT id FROM aura.search_rewards('{}', '-value', 12)) s) AS pages_match;
SELECT * FROM aura.search_rewards('{"colour": 1}');
SELECT * FROM aura.search_rewards('[]');
SELECT * FROM aura.search_rewards('{"customer_id": "abc"}');
SELECT * FROM aura.search_rewards('{}', 'code');
SELECT * FROM aura.search_rewards('{}', 'id', 0);
SELECT * FROM aura.search_rewards('{}', 'id', 10, 'not a cursor');
SELECT * FROM aura.search_rewards('{"text": "%_\\"}');
SELECT set_config('aura.restaurant_id', '', false) AS no_context;

------------------------------------------------------------------------------
-- 12. Roles and tenants
------------------------------------------------------------------------------
CREATE ROLE rewards_staff IN ROLE aura_staff;
CREATE ROLE rewards_manager IN ROLE aura_manager;
CREATE ROLE rewards_reporting IN ROLE aura_reporting;
SET ROLE rewards_staff;
SELECT aura.issue_reward(501, 1, 1);
SELECT aura.set_context(502);
SELECT aura.validate_reward(:'h2', 10);
SELECT count(*) AS visible_rewards_of_501 FROM aura.rewards WHERE restaurant_id = 501;
SELECT aura.set_context(501);
SELECT count(*) > 0 AS sees_own FROM aura.rewards;
SELECT code AS s1 FROM aura.issue_reward(501, 30, aura.template_id(501, 'birthday')) \gset
SELECT pg_temp.m(aura.redeem_reward(:'s1', 'staff-1', 20, 30));
SELECT aura.install_default_rewards(501);
SELECT aura.run_campaign(1);
UPDATE aura.reward_templates SET active = false WHERE restaurant_id = 501;
INSERT INTO aura.reward_redemptions (restaurant_id, reward_id, customer_id, template_id, order_ref, original_amount,
    discount_amount, final_amount) VALUES (501, 1, 1, 1, 'x', 1, 0, 1);
RESET ROLE;
SET ROLE rewards_manager;
SELECT aura.set_context(501);
UPDATE aura.reward_templates SET featured = true WHERE restaurant_id = 501 AND key = 'referral';
SELECT aura.refresh_reward_analytics() >= 0 AS refreshed;
SELECT aura.set_context(503);
UPDATE aura.reward_campaigns SET issued_count = 0;
UPDATE aura.reward_campaigns SET status = 'paused' WHERE name = 'weekly';
RESET ROLE;
SET ROLE rewards_reporting;
SELECT aura.set_context(503);
SELECT count(*) AS campaigns FROM aura.reward_campaign_roi;
SELECT count(*) AS liability_rows FROM aura.loyalty_liability;
SELECT aura.validate_reward(:'h2', 10);
RESET ROLE;
SELECT set_config('aura.restaurant_id', '', false) AS no_context;
DROP TABLE rewards_orders;
DROP ROLE rewards_staff, rewards_manager, rewards_reporting;

-- deployment check item
SELECT name, ok IS NOT NULL AS checked FROM aura.deployment_check() WHERE name = 'reward_templates';

------------------------------------------------------------------------------
-- 13. The point-of-sale path in C gives the PL/pgSQL path's answers
------------------------------------------------------------------------------
-- (validate_reward / redeem_reward run in C with a restaurant in context and
-- no items; aura._validate_reward_plpgsql / _redeem_reward_plpgsql are the
-- reference for every case)
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    res jsonb;
    st text; msg text; det text;
BEGIN
    EXECUTE q INTO res;
    RETURN (res - '{redemption_id,reward_id,code,valid_until}'::text[])::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || ' / ' || coalesce(det, '');
END
$$;
SELECT aura.set_context(501);
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value)
VALUES (501, 'pos-bonus', 'bonus_points', '+25 points', 25);
SELECT aura.earn_points(501, 61, 1000) > 0 AS earned, aura.earn_points(501, 63, 1000) > 0 AS earned_twin;
CREATE TEMP TABLE pos_codes AS
SELECT k, (aura.issue_reward(501, 61, aura.template_id(501, k))).code
  FROM unnest(ARRAY['welcome', 'coffee', 'half', 'referral', 'pos-bonus', 'to-gold', 'birthday', 'anniversary']) k;
-- states: reserved for an order, expired, revoked, redeemed, not yet valid
SELECT code AS p_res FROM aura.issue_reward(501, 61, aura.template_id(501, 'half')) \gset
SELECT (aura.reserve_reward(:'p_res', 'pos-hold', '5 minutes')) ->> 'reserved' AS reserved;
SELECT code AS p_exp FROM aura.issue_reward(501, 61, aura.template_id(501, 'half')) \gset
UPDATE aura.rewards SET valid_from = now() - interval '2 days', valid_until = now() - interval '1 day'
 WHERE restaurant_id = 501 AND code = :'p_exp';
SELECT code AS p_rev FROM aura.issue_reward(501, 61, aura.template_id(501, 'half')) \gset
SELECT status FROM aura.revoke_reward(501, :'p_rev', 'test');
SELECT code AS p_fut FROM aura.issue_reward(501, 61, aura.template_id(501, 'half')) \gset
UPDATE aura.rewards SET valid_from = now() + interval '1 day' WHERE restaurant_id = 501 AND code = :'p_fut';
INSERT INTO pos_codes VALUES ('reserved', :'p_res'), ('expired', :'p_exp'), ('revoked', :'p_rev'),
    ('future', :'p_fut'), ('typed', lower(replace(:'p_fut', '-', ' '))), ('unknown', 'AAAA-BBBB-CCCC'),
    ('hostile', ''' OR 1=1 --');
-- validate: every code x amount x customer, C = PL/pgSQL
SELECT count(*) AS cases,
       count(*) FILTER (WHERE aura.validate_reward(p.code, a, c) IS NOT DISTINCT FROM
                              aura._validate_reward_plpgsql(p.code, a, c, NULL)) AS same
  FROM pos_codes p, unnest(ARRAY[NULL, 'NaN', -1, 0, 9.99, 14.99, 15, 15.05, 99.95, 1000, 1e15]::numeric[]) a,
       unnest(ARRAY[NULL, 61, 62]::bigint[]) c;
SELECT pg_temp.m(aura.validate_reward(code, 15.05, 61)) FROM pos_codes WHERE k = 'welcome';
-- redeem refusals: the same error, code and detail; nothing written
SELECT count(*) AS redemptions_before FROM aura.reward_redemptions WHERE restaurant_id = 501;
SELECT p.k, a, c, pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, %s, %s)', p.code, 'pos-x', a, c)) AS c_path,
       pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, %s, %s)', p.code, 'pos-x', a, c))
       = pg_temp.try(format('SELECT aura._redeem_reward_plpgsql(%L, %L, %s, %s, NULL, ''pos'', NULL, NULL, NULL)',
                            p.code, 'pos-x', a, c)) AS same
  FROM pos_codes p, (VALUES (14.99, 61), (50, 62), (-1, 61)) v (a, c)
 WHERE p.k IN ('welcome', 'reserved', 'expired', 'revoked', 'future', 'unknown')
 ORDER BY 1, 2, 3;
SELECT count(*) AS redemptions_after FROM aura.reward_redemptions WHERE restaurant_id = 501;
-- redemptions: C on one reward, PL/pgSQL on a twin; the same answer, rows and marks
SELECT k, (aura.issue_reward(501, 63, aura.template_id(501, k))).code AS twin
  INTO TEMP pos_twins FROM pos_codes WHERE k IN ('welcome', 'coffee', 'half', 'referral', 'pos-bonus', 'to-gold');
SELECT p.k,
       pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, 99.95, 61, NULL, ''online'', ''till-9'', 7)', p.code, 'pos-c-' || p.k)) AS c_path,
       pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, 99.95, 61, NULL, ''online'', ''till-9'', 7)', p.code, 'pos-c-' || p.k))
         AS c_again
  FROM pos_codes p WHERE p.k IN ('welcome', 'coffee', 'half', 'referral', 'pos-bonus', 'to-gold') ORDER BY 1;
SELECT t.k,
       replace(pg_temp.try(format('SELECT aura._redeem_reward_plpgsql(%L, %L, 99.95, 63, NULL, ''online'', ''till-9'', 7, NULL)',
                                  t.twin, 'pos-p-' || t.k)), 'pos-p-', 'pos-c-') AS plpgsql_path
  FROM pos_twins t ORDER BY 1;
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE (a.original_amount, a.discount_amount, a.final_amount, a.points_credited, a.method,
                               a.terminal, a.staff_id, a.kind)
                              = (b.original_amount, b.discount_amount, b.final_amount, b.points_credited, b.method,
                                 b.terminal, b.staff_id, b.kind)) AS same_rows
  FROM aura.reward_redemptions a JOIN aura.reward_redemptions b
    ON b.restaurant_id = 501 AND b.order_ref = replace(a.order_ref, 'pos-c-', 'pos-p-')
 WHERE a.restaurant_id = 501 AND a.order_ref LIKE 'pos-c-%';
SELECT count(*) FILTER (WHERE x.order_ref LIKE 'pos-c-%') AS c_redeemed, count(*) FILTER (WHERE x.order_ref LIKE 'pos-p-%') AS p_redeemed
  FROM (SELECT redeemed_order_ref AS order_ref FROM aura.rewards WHERE restaurant_id = 501 AND status = 'redeemed') x;
SELECT kind, points, source FROM aura.points_transactions
 WHERE restaurant_id = 501 AND customer_id IN (61, 63) AND kind = 'bonus' ORDER BY id;
SELECT customer_id, tier FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id IN (61, 63) ORDER BY 1;
-- an idempotency key: the first call runs in C, a retry replays it, the key for another order is refused
SELECT code AS pk FROM aura.issue_reward(501, 61, aura.template_id(501, 'half')) \gset
SELECT pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, 40, 61, %L)', :'pk', 'pos-key', 'key-61')) AS first;
SELECT pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, 40, 61, %L)', :'pk', 'pos-key', 'key-61')) AS retry;
SELECT regexp_replace(pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, 40, 61, %L)', :'pk', 'pos-other', 'key-61')),
                      'reward \d+', 'reward N') AS reused;
SELECT pg_temp.try(format('SELECT aura.redeem_reward(%L, %L, 40, 61, %L)', :'pk', 'pos-key', repeat('k', 201))) AS too_long;
SELECT order_ref, idempotency_key, discount_amount FROM aura.reward_redemptions
 WHERE restaurant_id = 501 AND idempotency_key = 'key-61';
-- cancelling the order takes back the points its redemption credited
SELECT balance AS before FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 61;
SELECT aura.cancel_reward_redemption(501, 'pos-c-pos-bonus', 'order cancelled') AS restored;
SELECT balance AS after FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 61;
SELECT kind, points, reference LIKE 'reward:%' AS ref_ok FROM aura.points_transactions
 WHERE restaurant_id = 501 AND customer_id = 61 ORDER BY id DESC LIMIT 1;
SELECT kind, points_credited, reason FROM aura.reward_redemptions
 WHERE restaurant_id = 501 AND order_ref = 'pos-c-pos-bonus' ORDER BY id;
SELECT x.status FROM aura.rewards x JOIN pos_codes p ON p.code = x.code WHERE x.restaurant_id = 501 AND p.k = 'pos-bonus';
-- cashback points partly spent: only what the balance still holds is taken back
SELECT code AS cb64 FROM aura.issue_reward(501, 64, aura.template_id(501, 'cashback')) \gset
SELECT (aura.redeem_reward(:'cb64', 'pos-cb-64', 40, 64)) ->> 'points_credited' AS credited;
SELECT aura.spend_points(501, 64, 150) > 0 AS spent;
SELECT aura.cancel_reward_redemption(501, 'pos-cb-64') AS restored;
SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 501 AND customer_id = 64;
SELECT kind, points_credited FROM aura.reward_redemptions WHERE restaurant_id = 501 AND order_ref = 'pos-cb-64' ORDER BY id;
-- a second cancellation finds nothing to do; the ledger stays consistent
SELECT aura.cancel_reward_redemption(501, 'pos-cb-64') AS again;
SELECT count(*) AS ledger_problems FROM aura.verify_ledger(501);
SELECT set_config('aura.restaurant_id', '', false) AS no_context;

------------------------------------------------------------------------------
-- 14. Scheduled templates: issued by the dispatcher once per period
------------------------------------------------------------------------------
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 'weekly-treat', 'fixed_discount', 'Weekly treat', 2, 'scheduled',
        '{"every": "7 days", "starts_at": "2026-01-05 00:00+00", "audience": {"customer_ids": [71, 72]}}');
-- bad schedules: clear errors, nothing inserted
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger)
VALUES (501, 's1', 'fixed_discount', 'x', 1, 'scheduled');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's2', 'fixed_discount', 'x', 1, 'scheduled', '{"every": "10 minutes"}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's3', 'fixed_discount', 'x', 1, 'scheduled', '{"every": "whenever"}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's4', 'fixed_discount', 'x', 1, 'scheduled', '{"every": 7}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's5', 'fixed_discount', 'x', 1, 'scheduled', '{"every": "1 day", "starts_at": "soon"}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's6', 'fixed_discount', 'x', 1, 'scheduled', '{"every": "1 day", "audience": {"tiers": "Gold"}}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's7', 'fixed_discount', 'x', 1, 'scheduled', '{"every": "1 day", "nth_order": 3}');
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 's8', 'fixed_discount', 'x', 1, 'scheduled', '{"every": "2 years"}');
SELECT count(*) AS scheduled_templates FROM aura.reward_templates WHERE restaurant_id = 501 AND trigger = 'scheduled';
-- before the start: nothing; then once per period, whatever the number of runs
SELECT aura.issue_scheduled_rewards('2026-01-04 12:00+00') AS before_start;
SELECT aura.issue_scheduled_rewards('2026-01-06 00:00+00') AS first_week;
SELECT aura.issue_scheduled_rewards('2026-01-06 00:05+00') AS again;
SELECT aura.issue_scheduled_rewards('2026-01-11 23:59+00') AS same_week;
SELECT aura.issue_scheduled_rewards('2026-01-12 00:00+00') AS second_week;
SELECT kind, period_start AT TIME ZONE 'UTC' AS period_utc, total, issued, failed, status
  FROM aura.reward_jobs j WHERE j.restaurant_id = 501 AND j.kind = 'scheduled' ORDER BY j.id;
SELECT customer_id, source, status, count(*) FROM aura.rewards
 WHERE restaurant_id = 501 AND template_id = aura.template_id(501, 'weekly-treat')
 GROUP BY 1, 2, 3 ORDER BY 1;
-- a template whose audience fails is skipped with an event; the others run
CREATE FUNCTION public.rewards_bad_segment(r bigint) RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'segment store unavailable';
END
$$;
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (501, 'broken-treat', 'fixed_discount', 'Broken', 1, 'scheduled',
        '{"every": "7 days", "starts_at": "2026-01-05 00:00+00", "audience": {"segment_function": "public.rewards_bad_segment"}}');
SELECT aura.issue_scheduled_rewards('2026-01-19 00:00+00') AS third_week;
SELECT event_type, data ->> 'template' AS template, data ->> 'error' AS error
  FROM aura.rule_matches WHERE restaurant_id = 501 AND event_type LIKE 'reward.scheduled%' ORDER BY id;
SELECT count(*) AS broken_jobs FROM aura.reward_jobs
 WHERE restaurant_id = 501 AND template_id = aura.template_id(501, 'broken-treat');
UPDATE aura.reward_templates SET active = false WHERE restaurant_id = 501 AND key = 'broken-treat';
DROP FUNCTION public.rewards_bad_segment(bigint);
-- an inactive template is not issued; bad as_of
UPDATE aura.reward_templates SET active = false WHERE restaurant_id = 501 AND key = 'weekly-treat';
SELECT aura.issue_scheduled_rewards('2026-01-20 00:00+00') AS inactive;
SELECT aura.issue_scheduled_rewards(NULL);
SELECT aura.issue_scheduled_rewards('infinity');
-- the dispatcher runs it
SELECT name, fn, every FROM aura.jobs WHERE name = 'reward_scheduled';

------------------------------------------------------------------------------
-- 15. Batched bulk issue: commits per batch, progress row readable meanwhile
------------------------------------------------------------------------------
-- (the visibility to other sessions: isolation spec rewards_bulk_progress)
CALL aura.issue_rewards_bulk_batched(aura.template_id(501, 'referral'), ARRAY[81, 82, 83, 81, 84, 85], 2);
SELECT total, processed, issued, failed, status, jsonb_array_length(results) AS results
  FROM aura.reward_jobs WHERE restaurant_id = 501 AND kind = 'bulk' ORDER BY id DESC LIMIT 1;
SELECT count(*) AS issued FROM aura.rewards WHERE restaurant_id = 501 AND customer_id BETWEEN 81 AND 85;
-- bad input: clear errors, no job row
SELECT count(*) AS jobs_before FROM aura.reward_jobs WHERE restaurant_id = 501;
CALL aura.issue_rewards_bulk_batched(aura.template_id(501, 'referral'), ARRAY[86], 0);
CALL aura.issue_rewards_bulk_batched(aura.template_id(501, 'referral'), NULL);
CALL aura.issue_rewards_bulk_batched(aura.template_id(501, 'referral'), '{}');
CALL aura.issue_rewards_bulk_batched(NULL, ARRAY[86]);
CALL aura.issue_rewards_bulk_batched(999999999, ARRAY[86]);
-- inside a transaction block it cannot commit: error, nothing written
BEGIN;
CALL aura.issue_rewards_bulk_batched(aura.template_id(501, 'referral'), ARRAY[86, 87], 1);
ROLLBACK;
SELECT count(*) AS jobs_after FROM aura.reward_jobs WHERE restaurant_id = 501;
SELECT count(*) AS not_issued FROM aura.rewards WHERE restaurant_id = 501 AND customer_id IN (86, 87);
-- an unknown job
SELECT aura._issue_rewards_batch(-1, ARRAY[1], true);

------------------------------------------------------------------------------
-- 16. The incremental analytics rollup equals a full recomputation
------------------------------------------------------------------------------
-- after everything above (C and PL/pgSQL redemptions, cancellations with
-- points, scheduled and batched issues, expiry), refresh incrementally, then
-- mark every day of every template and recompute: the same rows
SELECT aura.refresh_reward_analytics() >= 0 AS refreshed;
CREATE TEMP TABLE analytics_incremental AS
SELECT template_id, day, issued, redeemed, expired, cancelled, discount_value, revenue, redeemers,
       round(days_to_redeem_sum, 6) AS days, points_cost
  FROM aura.reward_analytics
 WHERE restaurant_id = 501 AND (issued, redeemed, expired, cancelled) <> (0, 0, 0, 0);
INSERT INTO aura.reward_analytics_dirty (restaurant_id, template_id, day)
SELECT DISTINCT 501, template_id, (t AT TIME ZONE 'UTC')::date
  FROM (SELECT template_id, issued_at AS t FROM aura.rewards WHERE restaurant_id = 501
        UNION ALL SELECT template_id, expired_at FROM aura.rewards WHERE restaurant_id = 501 AND expired_at IS NOT NULL
        UNION ALL SELECT template_id, created_at FROM aura.reward_redemptions WHERE restaurant_id = 501) s;
SELECT aura.refresh_reward_analytics() > 0 AS recomputed;
SELECT count(*) AS rows_compared,
       (SELECT count(*) FROM (
            (SELECT * FROM analytics_incremental
             EXCEPT SELECT template_id, day, issued, redeemed, expired, cancelled, discount_value, revenue, redeemers,
                           round(days_to_redeem_sum, 6), points_cost
                      FROM aura.reward_analytics
                     WHERE restaurant_id = 501 AND (issued, redeemed, expired, cancelled) <> (0, 0, 0, 0))
            UNION ALL
            (SELECT template_id, day, issued, redeemed, expired, cancelled, discount_value, revenue, redeemers,
                    round(days_to_redeem_sum, 6), points_cost
               FROM aura.reward_analytics
              WHERE restaurant_id = 501 AND (issued, redeemed, expired, cancelled) <> (0, 0, 0, 0)
             EXCEPT SELECT * FROM analytics_incremental)) d) AS differences
  FROM analytics_incremental;

------------------------------------------------------------------------------
-- 17. Deployment check: templates loaded
------------------------------------------------------------------------------
SELECT aura.set_context(501);
SELECT ok, detail FROM aura._check_reward_templates();
INSERT INTO aura.restaurants (id, name) VALUES (509, 'Rewards Nine');
SELECT aura.set_context(509);
SELECT ok, detail FROM aura._check_reward_templates();
SELECT aura.install_default_rewards(509) AS installed;
SELECT ok, detail FROM aura._check_reward_templates();
SELECT key, type, value, percentage, min_order_amount, max_discount_amount, validity_days, eligible_tiers, trigger,
       trigger_conditions, auto_apply
  FROM aura.reward_templates WHERE restaurant_id = 509 ORDER BY key;
SELECT set_config('aura.restaurant_id', '', false) AS no_context;

------------------------------------------------------------------------------
-- 18. "Reward expiring" notices: reward.expiring once per reward
------------------------------------------------------------------------------
SELECT aura.set_context(501);
SELECT code AS soon FROM aura.issue_reward(501, 91, aura.template_id(501, 'referral')) \gset
UPDATE aura.rewards SET valid_until = now() + interval '12 hours' WHERE restaurant_id = 501 AND code = :'soon';
SELECT count(*) AS open_within_a_day FROM aura.rewards_expiring(501, '1 day');
SELECT aura.notify_expiring_rewards('1 day') AS noticed;
SELECT aura.notify_expiring_rewards('1 day') AS noticed_again;
SELECT customer_id, expiry_notice_at IS NOT NULL AS noticed FROM aura.rewards WHERE restaurant_id = 501 AND code = :'soon';
SELECT event_type, (data ->> 'customer_id')::bigint AS customer_id, data ->> 'code' = :'soon' AS code_ok
  FROM aura.rule_matches WHERE restaurant_id = 501 AND event_type = 'reward.expiring' ORDER BY id;
SELECT aura.notify_expiring_rewards('0 seconds');
SELECT aura.notify_expiring_rewards(NULL);
SELECT aura.notify_expiring_rewards('1 day', 0);
SELECT name, fn, every FROM aura.jobs WHERE name = 'reward_expiring';
SELECT set_config('aura.restaurant_id', '', false) AS no_context;
UPDATE aura.jobs SET enabled = true WHERE name LIKE 'reward%';
