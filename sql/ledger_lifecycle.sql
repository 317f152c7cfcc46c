-- Loyalty ledger over time: expiration, customer view, history paging,
-- legacy import, birthdays.  Restaurants 411-419.
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
INSERT INTO aura.restaurants (id, name) VALUES (411, 'Lifecycle One'), (412, 'Lifecycle Two');

-- expiration: each lot expires 365 days after it was earned
SELECT aura.earn_points(411, 1, 100) > 0 AS e1, aura.earn_points(411, 1, 50) > 0 AS e2,
       aura.spend_points(411, 1, 30) > 0 AS s1, aura.earn_points(412, 1, 70) > 0 AS other_restaurant;
SELECT points, expires_at > now() + interval '364 days' AS in_about_a_year
  FROM aura.points_expiring(411, 1, interval '366 days');
SELECT count(*) AS expiring_within_a_week FROM aura.points_expiring(411, 1, interval '7 days');
SELECT aura.expire_points(now() + interval '364 days') AS too_early;
SET aura.restaurant_id = '411';
-- a batch bounds the lots selected; an account in it has all its due lots expired
SELECT aura.expire_points(now() + interval '366 days', 1) AS first_batch;
SELECT aura.expire_points(now() + interval '366 days', 1) AS second_batch;
SELECT aura.expire_points(now() + interval '366 days') AS rerun_changes_nothing;
RESET aura.restaurant_id;
SELECT kind, points, balance_after, source, reference LIKE 'lot:%' AS lot_ref
  FROM aura.points_transactions WHERE restaurant_id = 411 AND customer_id = 1 ORDER BY id;
SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 412 AND customer_id = 1;
SELECT * FROM aura.verify_ledger(411);
SELECT aura.expire_points(now(), 0);
SELECT aura.points_expiring(411, 1, interval '-1 day');
SELECT aura.points_expiring(411, NULL, interval '1 day');

-- customer view
SELECT aura.earn_points(411, 2, 2500, 'order-1') > 0 AS earned;
SELECT aura.customer_loyalty(411, 2) - 'tier_since' - 'enrolled_at' AS loyalty;
SELECT aura.customer_loyalty(411, 99);
SELECT aura.customer_loyalty(NULL, 1);

-- history with keyset paging
SELECT count(aura.earn_points(411, 3, n, 'visit-' || n)) AS earned FROM generate_series(1, 5) n;
SELECT string_agg(reference, ',' ORDER BY id DESC) AS page1, min(id) AS last_id
  FROM aura.points_history(411, 3, 2) \gset
SELECT :'page1' AS page1;
SELECT string_agg(reference, ',' ORDER BY id DESC) AS page2 FROM aura.points_history(411, 3, 2, :last_id);
SELECT count(*) AS everything FROM aura.points_history(411, 3);
SELECT aura.points_history(411, 3, 0);
SELECT aura.points_history(411, 3, 1001);

-- legacy import: idempotent, with provenance
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": 10, "points": 1200, "source_ref": "legacy-10", "birthday": "1990-05-17"},
                                     {"restaurant_id": 412, "customer_id": 11, "points": 300}]') AS imported;
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": 10, "points": 1200, "source_ref": "legacy-10"},
                                     {"restaurant_id": 412, "customer_id": 11, "points": 300}]') AS imported_again;
SELECT customer_id, kind, points, source, reference, idempotency_key, reason
  FROM aura.points_transactions WHERE restaurant_id = 412 AND kind = 'migration' ORDER BY id;
SELECT aura.import_points_balances('{"restaurant_id": 412}');
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": "x", "points": 1}]');
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": 12, "points": 1e30}]');
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": 12, "points": -5}]');
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": 12, "points": 5}, 7]');
\set VERBOSITY terse
SELECT aura.import_points_balances('[{"restaurant_id": 412, "customer_id": 10, "points": 999, "source_ref": "legacy-10"}]');
\set VERBOSITY default
SELECT aura.import_points_balances(NULL);
SELECT count(*) AS customer_12_accounts FROM aura.loyalty_accounts WHERE restaurant_id = 412 AND customer_id = 12;
-- the table form: same rows, same keys (legacy-10 is already imported)
CREATE TABLE legacy_balances (restaurant_id int, customer_id bigint, points numeric, source_ref varchar(40), birthday date);
INSERT INTO legacy_balances VALUES (412, 13, 250, 'legacy-13', '1985-01-02'), (412, 10, 1200, 'legacy-10', NULL),
                                   (412, 14, 0, NULL, NULL), (412, 15, 75, NULL, NULL);
SELECT aura.import_points_balances_from('legacy_balances') AS imported_from_table;
SELECT aura.import_points_balances_from('legacy_balances') AS imported_from_table_again;
SELECT customer_id, points, reference, idempotency_key FROM aura.points_transactions
 WHERE restaurant_id = 412 AND kind = 'migration' AND customer_id IN (13, 15) ORDER BY id;
SELECT birthday FROM aura.loyalty_accounts WHERE restaurant_id = 412 AND customer_id = 13;
-- a view works too; bad sources change nothing
CREATE VIEW legacy_view AS SELECT 412 AS restaurant_id, 16 AS customer_id, 40 AS points;
SELECT aura.import_points_balances_from('legacy_view') AS imported_from_view;
CREATE TABLE legacy_bad (restaurant_id int, customer_id bigint, points numeric);
INSERT INTO legacy_bad VALUES (412, 17, 10), (412, 18, 2.5);
SELECT aura.import_points_balances_from('legacy_bad');
CREATE TABLE legacy_no_points (restaurant_id int, customer_id bigint);
SELECT aura.import_points_balances_from('legacy_no_points');
CREATE TABLE legacy_text_points (restaurant_id int, customer_id bigint, points text);
SELECT aura.import_points_balances_from('legacy_text_points');
CREATE SEQUENCE legacy_seq;
SELECT aura.import_points_balances_from('legacy_seq');
SELECT aura.import_points_balances_from(NULL);
SELECT count(*) AS customer_17_accounts FROM aura.loyalty_accounts WHERE restaurant_id = 412 AND customer_id = 17;
DROP TABLE legacy_balances, legacy_bad, legacy_no_points, legacy_text_points;
DROP VIEW legacy_view;
DROP SEQUENCE legacy_seq;

-- birthdays: once per customer and year (loyalty.birthday_points, default 0)
SELECT aura.set_setting('loyalty.birthday_points', '100', 'restaurant', 412) AS birthday_points;
SELECT aura.award_birthdays('2027-05-17') AS awarded;
SELECT aura.award_birthdays('2027-05-17') AS awarded_again;
SELECT aura.award_birthdays('2028-05-17') AS next_year;
UPDATE aura.loyalty_accounts SET birthday = '2000-02-29' WHERE restaurant_id = 412 AND customer_id = 11;
SELECT aura.award_birthdays('2027-02-28') AS leap_day_in_common_year;
SELECT aura.award_birthdays('2028-02-28') AS not_on_28th_in_leap_year;
SELECT customer_id, kind, points, source, reference, idempotency_key
  FROM aura.points_transactions WHERE restaurant_id = 412 AND kind = 'bonus' ORDER BY id;
SELECT aura.award_birthdays(NULL);
SELECT * FROM aura.verify_ledger(412);

------------------------------------------------------------------------------
-- settings drive the ledger (read through src/ledger_config.c)
------------------------------------------------------------------------------
INSERT INTO aura.restaurants (id, name) VALUES (413, 'Lifecycle Settings'), (414, 'Lifecycle Pending');
CREATE TABLE lifecycle_orders (id text PRIMARY KEY, restaurant_id bigint, customer_id bigint, total numeric, status text);
SELECT aura.attach_orders('lifecycle_orders', 'restaurant_id', 'customer_id', 'total', 'status', 'id');
INSERT INTO lifecycle_orders VALUES ('A-1', 413, 1, 10.00, 'completed');
-- loyalty.points_per_unit changes what the order trigger earns, at once
SELECT aura.set_setting('loyalty.points_per_unit', '2.5', 'restaurant', 413) AS points_per_unit;
INSERT INTO lifecycle_orders VALUES ('A-2', 413, 1, 10.00, 'completed');
-- ... only for that restaurant
INSERT INTO lifecycle_orders VALUES ('B-1', 414, 1, 10.00, 'completed');
SELECT aura.reset_setting('loyalty.points_per_unit', 'restaurant', 413) IS NOT NULL AS reset;
INSERT INTO lifecycle_orders VALUES ('A-3', 413, 1, 10.00, 'completed');
SELECT restaurant_id, reference, points FROM aura.points_transactions
 WHERE restaurant_id IN (413, 414) AND source = 'order' ORDER BY id;
-- loyalty.points_expiry_days: 0 means never
SELECT aura.set_setting('loyalty.points_expiry_days', '0', 'restaurant', 413) IS NOT NULL AS no_expiry;
SELECT aura.earn_points(413, 2, 10) > 0 AS earned;
SELECT expires_at IS NULL AS never_expires FROM aura.points_lots WHERE restaurant_id = 413 AND customer_id = 2;
-- (loyalty.pending_days is tested in test/t/041_ledger_pending.pl: the settings
-- test lists that key's history across restaurants)
-- loyalty.allow_negative_balance: reversals and adjustments may go below zero;
-- later earnings pay the deficit back before they open a lot
SELECT aura.set_setting('loyalty.allow_negative_balance', 'true', 'restaurant', 413) IS NOT NULL AS allow_negative;
SELECT aura.earn_points(413, 3, 50) > 0 AS earned;
SELECT aura.adjust_points(413, 3, -80, NULL, NULL, 'chargeback') > 0 AS adjusted;
SELECT aura.spend_points(413, 3, 1);
SELECT aura.earn_points(413, 3, 100) > 0 AS earned;
SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 413 AND customer_id = 3;
SELECT amount, remaining FROM aura.points_lots WHERE restaurant_id = 413 AND customer_id = 3 ORDER BY id;
SELECT * FROM aura.verify_ledger(413);
SELECT * FROM aura.verify_ledger(414);
-- the same negative balance is a violation once negative balances are not allowed
SELECT aura.adjust_points(413, 4, 1) > 0 AS earned, aura.adjust_points(413, 4, -5) > 0 AS negative;
SELECT aura.reset_setting('loyalty.allow_negative_balance', 'restaurant', 413) IS NOT NULL AS reset;
SELECT customer_id, problem FROM aura.verify_ledger(413);
-- loyalty.tier_downgrade: review_tiers downgrades after the grace period
SELECT aura.earn_points(413, 5, 2500) > 0 AS silver;
SELECT aura.review_tiers(now() + interval '2 years') AS downgraded_under_none;
SELECT aura.set_setting('loyalty.tier_downgrade', '"rolling_12_months"', 'restaurant', 413) IS NOT NULL AS rolling;
SELECT aura.review_tiers(now() + interval '10 days') AS within_grace_and_window;
SELECT aura.review_tiers(now() + interval '13 months') AS downgraded;
SELECT aura.review_tiers(now() + interval '13 months') AS again;
SELECT tier FROM aura.loyalty_accounts WHERE restaurant_id = 413 AND customer_id = 5;
SELECT old_tier, new_tier, reason FROM aura.tier_history WHERE restaurant_id = 413 AND customer_id = 5 ORDER BY id;
SELECT aura.set_setting('loyalty.tier_downgrade', '"anniversary"', 'restaurant', 413) IS NOT NULL AS anniversary;
SELECT aura.earn_points(413, 6, 2500) > 0 AS silver;
SELECT aura.review_tiers(now() + interval '11 months') AS before_first_anniversary;
SELECT aura.review_tiers(now() + interval '25 months') AS after_a_year_without_points;
SELECT tier FROM aura.loyalty_accounts WHERE restaurant_id = 413 AND customer_id = 6;
DROP TABLE lifecycle_orders;

-- managers without context cannot act on every restaurant
CREATE ROLE lifecycle_manager IN ROLE aura_manager;
SET ROLE lifecycle_manager;
SELECT aura.expire_points();
SELECT aura.award_birthdays('2027-05-17');
SELECT aura.import_points_balances('[]');
SELECT aura.set_context(412);
SELECT aura.award_birthdays('2029-05-17') AS in_context;
SELECT aura.customer_loyalty(411, 2);
RESET ROLE;
SELECT aura.clear_context();
DROP ROLE lifecycle_manager;

-- deployment checklist
SELECT name, ok, detail ~ 'restaurants have tiers' AS says_how_many FROM aura.deployment_check() WHERE name = 'loyalty_tiers';
BEGIN;
DELETE FROM aura.loyalty_tiers WHERE restaurant_id = 412 AND min_points = 0;
SELECT name, ok, detail FROM aura.deployment_check() WHERE name = 'loyalty_tiers';
ROLLBACK;
