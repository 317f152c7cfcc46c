-- rewards: catalog, codes, validation with every reason, redemption, two-phase POS, campaigns, analytics
\set SHOW_CONTEXT never
SELECT id AS trattoria FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset
SELECT aura.set_context(:trattoria);

\echo
\echo 'the default catalog, installed on first use:'
SELECT aura.install_default_rewards(:trattoria) AS templates_added;
SELECT key, type, coalesce(value::text, percentage || '%') AS value, min_order_amount AS min,
       max_discount_amount AS cap, trigger, trigger_conditions AS conditions
  FROM aura.reward_templates WHERE restaurant_id = :trattoria ORDER BY id;

\echo 'a template with an impossible shape is refused with a clear error:'
\set ON_ERROR_STOP 0
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, percentage)
VALUES (:trattoria, 'oops', 'percentage_discount', 'Too generous', 150);
\set ON_ERROR_STOP 1

\echo 'issuing: an unguessable code (no 0/O/1/I), a snapshot of the terms; points cost goes through the ledger:'
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, points_cost)
VALUES (:trattoria, 'dessert-for-points', 'points_discount', '6.00 off for 600 points', 6, 600);
SELECT code AS welcome_code, title, valid_until::date
  FROM aura.issue_reward(:trattoria, 502, aura.template_id(:trattoria, 'welcome')) \gset
SELECT :'welcome_code' AS code, :'title' AS title, :'valid_until' AS valid_until;
SELECT code AS dessert_code FROM aura.issue_reward(:trattoria, 502, aura.template_id(:trattoria, 'dessert-for-points'),
                                                   'api', NULL, 'app-order-9') \gset
SELECT kind, points, balance_after, reason FROM aura.points_transactions
 WHERE restaurant_id = :trattoria AND customer_id = 502 ORDER BY id DESC LIMIT 1;

\echo 'validation lists every failing rule (another customer, below the minimum):'
SELECT jsonb_pretty(aura.validate_reward(:'welcome_code', 12.00, 501) - 'valid_until' - 'code');
\echo '... and the exact discount when it applies (10% of 99.95 = 9.995 -> 10.00, cap 10):'
SELECT r ->> 'valid' AS valid, r ->> 'discount' AS discount, r ->> 'final_amount' AS final_amount
  FROM aura.validate_reward(lower(:'welcome_code'), 99.95, 502) r;

\echo 'redeeming: one append-only row; a retry with the same key returns the same result; a second use fails:'
SELECT r ->> 'discount' AS discount, r ->> 'final_amount' AS final, r ->> 'replayed' AS replayed
  FROM aura.redeem_reward(:'welcome_code', 'T-2001', 99.95, 502, 'pos-2001', 'pos', 'till-1') r;
SELECT r ->> 'discount' AS discount, r ->> 'final_amount' AS final, r ->> 'replayed' AS replayed
  FROM aura.redeem_reward(:'welcome_code', 'T-2001', 99.95, 502, 'pos-2001', 'pos', 'till-1') r;
\set ON_ERROR_STOP 0
SELECT aura.redeem_reward(:'welcome_code', 'T-2002', 50, 502);
SELECT aura.redeem_reward(:'dessert_code', 'T-2002', 'NaN', 502);
\set ON_ERROR_STOP 1

\echo 'two-phase at the till: reserve for an order, others are held off, then redeem (or release):'
SELECT r ->> 'reserved' AS reserved, r ->> 'order_ref' AS order_ref
  FROM aura.reserve_reward(:'dessert_code', 'T-2003', '5 minutes') r;
SELECT r ->> 'valid' AS valid_for_another_order, r -> 'reasons' -> 0 ->> 'message' AS why
  FROM aura.validate_reward(:'dessert_code', 30, 502) r;
SELECT r ->> 'discount' AS discount, r ->> 'final_amount' AS final
  FROM aura.redeem_reward(:'dessert_code', 'T-2003', 30, 502) r;
\echo 'the order is cancelled: the reward comes back:'
SELECT aura.cancel_reward_redemption(:trattoria, 'T-2003', 'customer changed their mind') AS restored;
SELECT status FROM aura.rewards WHERE restaurant_id = :trattoria AND code = :'dessert_code';

\echo 'orders issue rewards by themselves (first order: welcome; 50 or more: +100 points, applied at once):'
INSERT INTO shop_orders VALUES ('T-2010', :trattoria, 510, 64.00, 'completed');
SELECT t.key, x.status, x.source FROM aura.rewards x
  JOIN aura.reward_templates t ON t.restaurant_id = x.restaurant_id AND t.id = x.template_id
 WHERE x.restaurant_id = :trattoria AND x.customer_id = 510 ORDER BY x.id;

\echo 'a campaign for big spenders, budget of 2 rewards: dry run, run, run again:'
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target, max_rewards, status)
VALUES (:trattoria, 'thank you, regulars', aura.template_id(:trattoria, 'referral'),
        '{"min_lifetime_spend": 50}', 2, 'active') RETURNING id AS campaign \gset
SELECT r ->> 'audience' AS audience, r ->> 'would_issue' AS would_issue FROM aura.run_campaign(:campaign, true) r;
SELECT r ->> 'audience' AS audience, r ->> 'issued' AS issued FROM aura.run_campaign(:campaign) r;
\set ON_ERROR_STOP 0
SELECT aura.run_campaign(:campaign);
\set ON_ERROR_STOP 1

\echo 'a scheduled template: the dispatcher issues it once per period (here weekly) to its audience:'
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, trigger, trigger_conditions)
VALUES (:trattoria, 'monday-treat', 'fixed_discount', 'Monday treat: 2.00 off', 2, 'scheduled',
        '{"every": "7 days", "audience": {"customer_ids": [501, 502]}}');
SELECT aura.issue_scheduled_rewards() AS issued_this_week;
SELECT aura.issue_scheduled_rewards() AS issued_again_this_week;

\echo 'a bonus-points reward redeemed, then its order cancelled: the points are taken back:'
INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value)
VALUES (:trattoria, 'plus-50', 'bonus_points', '+50 points', 50);
SELECT code AS plus_code FROM aura.issue_reward(:trattoria, 502, aura.template_id(:trattoria, 'plus-50')) \gset
SELECT r ->> 'points_credited' AS points_credited FROM aura.redeem_reward(:'plus_code', 'T-2020', 25, 502) r;
SELECT aura.cancel_reward_redemption(:trattoria, 'T-2020', 'order cancelled') AS restored;
SELECT kind, points, reason FROM aura.points_transactions
 WHERE restaurant_id = :trattoria AND customer_id = 502 ORDER BY id DESC LIMIT 2;

\echo 'expiry (a job of the dispatcher) and what expires soon:'
SELECT aura.expire_rewards() AS expired_now;
SELECT customer_id, title, valid_until::date FROM aura.rewards_expiring(:trattoria, '40 days') LIMIT 5;

\echo 'analytics from the data: per template, program level, liability, campaign ROI:'
SELECT aura.refresh_reward_analytics() AS rollup_rows;
SELECT key, issued, redeemed, cancelled, redemption_rate, discount_value, revenue
  FROM aura.reward_stats(:trattoria, current_date - 30, current_date, 'month') ORDER BY key;
SELECT points_issued, points_redeemed, active_members
  FROM aura.loyalty_program_stats(:trattoria, current_date - 30, current_date, 'month');
SELECT outstanding_points, point_value, liability FROM aura.loyalty_liability WHERE restaurant_id = :trattoria;
SELECT name, issued, budget_used, redeemed, roi FROM aura.reward_campaign_roi WHERE restaurant_id = :trattoria;

\echo 'search with keyset paging:'
SELECT customer_id, type, status, value FROM aura.search_rewards('{"status": "active"}', '-value', 3);
SELECT aura.clear_context();
