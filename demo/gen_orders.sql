-- demo/gen_orders.sql (included by demo/90_day.sql): 5,000 customers and 90 days of orders
-- of a restaurant group, inserted into the application's table "orders", generated with a
-- fixed seed so the output is stable.
-- Needs psql variables trattoria, harbor, centro, mare, pier9, day0 (the first day, a date).
-- 5,000 customers: 3,000 of Trattoria Aurora (Centro and Mare), 2,000 of Harbor Grill;
-- ids 100001.. so they never meet the module demos' customers.
CREATE TEMP TABLE customers AS
SELECT 100000 + n AS customer_id,
       CASE WHEN n <= 3000 THEN :trattoria ELSE :harbor END AS restaurant_id,
       CASE WHEN n <= 3000 THEN n ELSE n - 3000 END AS rank_in_restaurant
  FROM generate_series(1, 5000) n;
-- the app's express checkout is a feature flag at a 30% rollout (see 90_day.sql)
ALTER TABLE customers ADD COLUMN express boolean;
UPDATE customers SET express = aura.flag_enabled('express-checkout',
    jsonb_build_object('userId', customer_id::text, 'appName', 'app'));
CREATE UNIQUE INDEX ON customers (restaurant_id, rank_in_restaurant);
ANALYZE customers;

SELECT setseed(0.4242) \g /dev/null
-- per location and day: a base volume, busier Fridays and Saturdays, quiet Mondays;
-- the last four days Mare loses half its guests (roadworks), and for the last week
-- Harbor Grill's orders grow larger (a new seafood platter).
CREATE TEMP TABLE gen AS
WITH loc(location_id, restaurant_id, per_day, pool) AS (
    VALUES (:centro::bigint, :trattoria::bigint, 75, 3000), (:mare, :trattoria, 55, 3000), (:pier9, :harbor, 75, 2000)),
days AS (SELECT d, (:'day0'::date + d) AS day FROM generate_series(0, 89) d),
slots AS (
    SELECT l.*, days.d, days.day, s
      FROM loc l, days,
           generate_series(1, (l.per_day
                * CASE extract(isodow FROM days.day) WHEN 5 THEN 1.3 WHEN 6 THEN 1.4 WHEN 1 THEN 0.8 ELSE 1 END
                * CASE WHEN l.location_id = :mare AND days.d >= 86 THEN 0.45 ELSE 1 END
                * (0.9 + 0.2 * random()))::int) s)
SELECT location_id, restaurant_id, d, day,
       CASE WHEN random() < 0.15 THEN NULL ELSE 1 + floor(pool * random() ^ 2.2)::int END AS rank,
       round(((8 + 50 * random() ^ 1.5)
              * CASE WHEN restaurant_id = :harbor AND d >= 83 THEN 1.35 ELSE 1 END)::numeric, 2) AS total,
       (day + make_interval(hours => 11 + floor(random() * 11)::int, mins => floor(random() * 60)::int)) AS created_at,
       random() AS r_channel, random() AS r_refund
  FROM slots;

-- the orders in time order, numbered; then they arrive day by day, one transaction a day,
-- and each completed one fires aura's C trigger (points, tiers) in its transaction
CREATE TEMP TABLE incoming AS
SELECT g.d, row_number() OVER (ORDER BY g.created_at, g.location_id, g.total) AS seq,
       CASE WHEN g.restaurant_id = :trattoria THEN 'TA' ELSE 'HG' END AS prefix,
       g.restaurant_id, g.location_id, c.customer_id,
       CASE WHEN c.express AND g.r_channel < 0.5 THEN 'app_express'
            WHEN g.r_channel < 0.25 THEN 'app' WHEN g.r_channel < 0.55 THEN 'takeout' ELSE 'dine_in' END AS channel,
       g.total, g.created_at
  FROM gen g
  LEFT JOIN customers c ON c.restaurant_id = g.restaurant_id AND c.rank_in_restaurant = g.rank;
CREATE INDEX ON incoming (d, seq);
ANALYZE incoming;
DO $$
DECLARE
    n bigint := 0;
BEGIN
    FOR day IN 0..89 LOOP
        INSERT INTO orders (order_no, restaurant_id, location_id, customer_id, channel, total, status, created_at)
        SELECT i.prefix || '-' || to_char(i.created_at, 'YYMMDD')
                   || '-' || lpad(i.seq::text, 6, '0'),
               i.restaurant_id, i.location_id, i.customer_id, i.channel, i.total, 'completed', i.created_at
          FROM incoming i WHERE i.d = day ORDER BY i.seq;
        n := n + (SELECT count(*) FROM incoming i WHERE i.d = day);
        COMMIT;
        IF day % 30 = 29 THEN
            RAISE NOTICE 'day % of 90: % orders', day + 1, to_char(n, 'FM999,999');
        END IF;
    END LOOP;
END $$;
