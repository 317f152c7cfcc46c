-- loyalty: the application's orders table earns points by trigger; ledger and tiers
\echo
\echo 'the application''s own orders table, attached to aura''s C trigger:'
SELECT id AS trattoria FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset
CREATE TABLE shop_orders (
    order_no    text PRIMARY KEY,
    restaurant  bigint NOT NULL,
    customer    bigint,
    total       numeric(10,2) NOT NULL,
    status      text NOT NULL DEFAULT 'open'
);
SELECT aura.attach_orders('shop_orders', 'restaurant', 'customer', 'total', 'status', 'order_no');
SELECT aura.set_setting('loyalty.points_per_unit', '10', 'restaurant', :trattoria) AS "loyalty.points_per_unit";

\echo 'orders come in; completed ones earn floor(total x 10 x tier multiplier) in the same transaction:'
INSERT INTO shop_orders (order_no, restaurant, customer, total, status) VALUES
    ('T-1001', :trattoria, 501, 42.50, 'completed'),
    ('T-1002', :trattoria, 502, 210.00, 'completed'),
    ('T-1003', :trattoria, NULL, 12.00, 'completed'),     -- walk-in: no customer, ignored
    ('T-1004', :trattoria, 501, 95.00, 'open');
UPDATE shop_orders SET status = 'completed' WHERE order_no = 'T-1004';
UPDATE shop_orders SET status = 'completed' WHERE order_no = 'T-1004';   -- again: never double-posts
INSERT INTO shop_orders VALUES ('T-1005', :trattoria, 502, 60.00, 'completed');   -- Silver now: 1.2x
UPDATE shop_orders SET status = 'cancelled' WHERE order_no = 'T-1001';            -- reversal
\echo 'a "double points" campaign for Silver members: order T-1006 earns 2x on top of the tier multiplier:'
INSERT INTO aura.points_multipliers (restaurant_id, name, multiplier, starts_at, ends_at, tiers)
VALUES (:trattoria, 'Silver double points', 2, now() - interval '1 hour', now() + interval '1 day', '{Silver}');
INSERT INTO shop_orders VALUES ('T-1006', :trattoria, 502, 20.00, 'completed');
UPDATE aura.points_multipliers SET active = false WHERE restaurant_id = :trattoria;   -- campaign over
SELECT order_no, customer, total, status FROM shop_orders ORDER BY order_no;

\echo 'the ledger (append-only):'
SELECT customer_id AS customer, kind, points, balance_after, reference AS order_no, source, reason
  FROM aura.points_transactions WHERE restaurant_id = :trattoria ORDER BY id;

\echo 'a redemption and a transfer, exact under concurrency; a retry with the same key returns the same transaction:'
SELECT aura.spend_points(:trattoria, 502, 500, 'free dessert', 'pos-77-redeem') AS redeem_id,
       aura.spend_points(:trattoria, 502, 500, 'free dessert', 'pos-77-redeem') AS retried_id;
SELECT aura.transfer_points(:trattoria, 502, 501, 100, 'gift-1') AS transfer_id;
\echo 'asking for too much is a clear error:'
\set ON_ERROR_STOP 0
SELECT aura.spend_points(:trattoria, 501, 999999);
\set ON_ERROR_STOP 1

\echo 'accounts and tiers:'
SELECT customer_id AS customer, balance, lifetime_earned, order_count AS orders, lifetime_spend_amount AS spend, tier
  FROM aura.loyalty_accounts WHERE restaurant_id = :trattoria ORDER BY customer_id;
SELECT name, min_points, benefits ->> 'earn_multiplier' AS earn_multiplier
  FROM aura.loyalty_tiers WHERE restaurant_id = :trattoria ORDER BY min_points;
SELECT old_tier, new_tier, customer_id AS customer FROM aura.tier_history WHERE restaurant_id = :trattoria ORDER BY id;
\echo 'what the customer app shows:'
SELECT jsonb_pretty(aura.customer_loyalty(:trattoria, 502) - 'tier_since' - 'enrolled_at') AS customer_502;
\echo 'the invariant check finds nothing:'
SELECT count(*) AS ledger_problems FROM aura.verify_ledger(:trattoria);
