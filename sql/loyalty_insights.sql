-- Insights over aura's own loyalty data: the built-in detectors loyalty_points
-- (redemption rate, points liability growth; restaurant 612), unredeemed_rewards
-- and campaign_budget_pace (restaurant 613).
-- A file of its own that runs after the ledger tests, so the ledger's ids
-- there stay as they expect.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
\set SHOW_CONTEXT never
UPDATE aura.jobs SET enabled = false WHERE name LIKE 'insight%';
INSERT INTO aura.restaurants (id, name) VALUES (612, 'Insights Loyalty');

-- 5,000 points earned and 100 redeemed: a redemption rate of 2% (< 5%)
SELECT aura.earn_points(612, 77, 5000, reference => 'regress-ins') > 0 AS earned;
SELECT aura.spend_points(612, 77, 100, reference => 'regress-ins') > 0 AS spent;
SELECT detector, ok, insights, error FROM aura.generate_insights(612, now()) WHERE detector = 'loyalty_points';
SELECT domain, type, severity, title, metrics FROM aura.insights
 WHERE restaurant_id = 612 AND generated_by = 'detector:loyalty_points';
-- liability: a backdated earning (written directly, for the test) makes the
-- outstanding points 5,000 forty days ago and 9,900 now (+98%, beyond 2 x 25%: high)
INSERT INTO aura.points_transactions (restaurant_id, customer_id, kind, points, balance_before, balance_after,
                                      source, reference, created_at)
VALUES (612, 79, 'earn', 5000, 0, 5000, 'import', 'regress-backdated', now() - interval '40 days');
SELECT domain, type, severity, title, details -> 'metrics' AS metrics
  FROM aura.detect_loyalty_points(612, now(), '{"days": 30}') ORDER BY domain;
SELECT * FROM aura.detect_loyalty_points(612, now(), '{"days": 0}');
SELECT * FROM aura.detect_loyalty_points(612, now(), '{"min_redemption_rate": 2}');
-- reward templates never redeemed (restaurant 613): 'dessert' was issued three times
-- and never redeemed; 'coffee' was redeemed once; 'banner' was never even issued;
-- 'fresh' is younger than min_age_days; 'retired' is inactive
INSERT INTO aura.restaurants (id, name) VALUES (613, 'Insights Rewards');
INSERT INTO aura.reward_templates (restaurant_id, key, type, value, title, created_at, active) VALUES
    (613, 'coffee', 'fixed_discount', 3, 'Free coffee', now() - interval '60 days', true),
    (613, 'dessert', 'fixed_discount', 5, 'Dessert on us', now() - interval '60 days', true),
    (613, 'banner', 'fixed_discount', 2, 'Banner deal', now() - interval '60 days', true),
    (613, 'fresh', 'fixed_discount', 4, 'New this week', now() - interval '3 days', true),
    (613, 'retired', 'fixed_discount', 4, 'Old deal', now() - interval '90 days', false);
SELECT count(*) AS issued FROM (
    SELECT aura.issue_reward(613, c, aura.template_id(613, k)) FROM generate_series(1, 3) c,
           unnest(ARRAY['coffee', 'dessert', 'fresh']) k) x;
SELECT aura.redeem_reward(code, 'regress-ins-order-1', 20, customer_id) IS NOT NULL AS redeemed
  FROM aura.rewards WHERE restaurant_id = 613 AND template_id = aura.template_id(613, 'coffee') AND customer_id = 1;
SELECT severity, title, (details -> 'metrics') - 'template_id' AS metrics, details ->> 'related_entity_type' AS entity,
       details ->> 'estimated_value' AS value
  FROM aura.detect_unredeemed_rewards(613, now(), '{}') ORDER BY title;
-- min_issued leaves out templates never issued; medium_issued raises the severity
SELECT severity, title FROM aura.detect_unredeemed_rewards(613, now(), '{"min_issued": 1, "medium_issued": 3}');
-- as of the moment of the redemption (exclusive), 'coffee' had not been redeemed either
SELECT string_agg(title, '; ' ORDER BY title) AS before_redemption
  FROM aura.detect_unredeemed_rewards(613, (SELECT min(created_at) FROM aura.reward_redemptions WHERE restaurant_id = 613),
                                      '{"min_issued": 1}');
SELECT * FROM aura.detect_unredeemed_rewards(613, now(), '{"min_age_days": 0}');
SELECT * FROM aura.detect_unredeemed_rewards(613, now(), '{"max_templates": 5000}');
SELECT * FROM aura.detect_unredeemed_rewards(613, now(), '{"min_issued": "many"}');
-- through generate_insights: recorded, threaded per template; a second run only
-- bumps the occurrence count (same fingerprint and title)
SELECT detector, ok, insights, error FROM aura.generate_insights(613, now()) WHERE detector = 'unredeemed_rewards';
SELECT detector, ok, insights, error FROM aura.generate_insights(613, now()) WHERE detector = 'unredeemed_rewards';
SELECT domain, type, severity, title, related_entity_type, occurrence_count FROM aura.insights
 WHERE restaurant_id = 613 AND generated_by = 'detector:unredeemed_rewards' ORDER BY title;

-- campaigns over budget pace (restaurant 613, as of t0, the current hour; each campaign
-- runs from 10 days before to 30 days after: 25% of its time has elapsed; dates masked)
SELECT date_trunc('hour', now()) AS t0 \gset
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, starts_at, ends_at, max_cost, max_rewards,
                                   status, issued_cost, issued_count)
SELECT v.* FROM (SELECT :'t0'::timestamptz AS t0) x, LATERAL (VALUES
    (613, 'Fast spender', aura.template_id(613, 'coffee'), t0 - interval '240 hours', t0 + interval '720 hours', 1000, NULL, 'active', 600, 200),
    (613, 'On pace', aura.template_id(613, 'coffee'), t0 - interval '240 hours', t0 + interval '720 hours', 1000, NULL, 'active', 300, 100),
    (613, 'Slightly fast', aura.template_id(613, 'coffee'), t0 - interval '240 hours', t0 + interval '720 hours', 1000, NULL, 'active', 400, 130),
    (613, 'All gone', aura.template_id(613, 'dessert'), t0 - interval '240 hours', t0 + interval '720 hours', NULL, 50, 'active', 250, 50),
    (613, 'Paused', aura.template_id(613, 'coffee'), t0 - interval '240 hours', t0 + interval '720 hours', 1000, NULL, 'paused', 900, 300),
    (613, 'No end', aura.template_id(613, 'coffee'), t0 - interval '240 hours', NULL, 1000, NULL, 'active', 900, 300),
    (613, 'No budget', aura.template_id(613, 'coffee'), t0 - interval '240 hours', t0 + interval '720 hours', NULL, NULL, 'active', 900, 300)) v;
SELECT domain, type, severity, title,
       regexp_replace(details ->> 'description', '\d{4}-\d\d-\d\d', 'YYYY-MM-DD', 'g') AS description,
       (details -> 'metrics' ->> 'budget_exhausted_at')::timestamptz - :'t0'::timestamptz AS exhausted_in,
       (details -> 'metrics') - 'campaign_id' - 'budget_exhausted_at' AS metrics,
       details ->> 'estimated_value' AS value, details ->> 'impact_score' AS impact
  FROM aura.detect_campaign_budget_pace(613, :'t0', '{}') ORDER BY title;
-- a wider tolerance accepts 'Slightly fast'; too early in the campaign nothing is judged
SELECT title FROM aura.detect_campaign_budget_pace(613, :'t0', '{"tolerance": 0.7}') ORDER BY title;
SELECT count(*) AS too_early FROM aura.detect_campaign_budget_pace(613, :'t0'::timestamptz - interval '239 hours', '{}');
SELECT count(*) AS after_the_end FROM aura.detect_campaign_budget_pace(613, :'t0'::timestamptz + interval '744 hours', '{}');
SELECT * FROM aura.detect_campaign_budget_pace(613, :'t0', '{"tolerance": -1}');
SELECT * FROM aura.detect_campaign_budget_pace(613, :'t0', '{"min_spent": 2}');
SELECT * FROM aura.detect_campaign_budget_pace(613, :'t0', '{"min_elapsed": "x"}');
SELECT detector, ok, insights, error FROM aura.generate_insights(613, :'t0') WHERE detector = 'campaign_budget_pace';
SELECT domain, type, severity, title, related_entity_type FROM aura.insights
 WHERE restaurant_id = 613 AND generated_by = 'detector:campaign_budget_pace' ORDER BY title;
-- another tenant's manager sees none of it
CREATE ROLE regress_li_manager IN ROLE aura_manager;
SET ROLE regress_li_manager;
SELECT aura.set_context(612);
SELECT count(*) AS other_tenant FROM aura.detect_unredeemed_rewards(613, now(), '{}');
SELECT count(*) AS other_tenant FROM aura.detect_campaign_budget_pace(613, :'t0', '{}');
SELECT aura.clear_context();
RESET ROLE;
DROP ROLE regress_li_manager;
UPDATE aura.jobs SET enabled = true WHERE name LIKE 'insight%';
