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

-- birthdays: once per customer and year
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
