-- Insights over aura's own loyalty ledger: the built-in detector
-- loyalty_points (redemption rate, points liability growth).  Restaurant 612.
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
UPDATE aura.jobs SET enabled = true WHERE name LIKE 'insight%';
