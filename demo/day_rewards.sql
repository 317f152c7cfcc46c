-- demo/day_rewards.sql (included by demo/90_day.sql when the rewards module is installed):
-- the default reward catalog, a thank-you campaign for Gold and Platinum members, and redemptions at the till
SELECT sum(aura.install_default_rewards(r)) AS reward_templates_installed
  FROM unnest(ARRAY[:trattoria, :harbor]::bigint[]) r \g /dev/null
INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target, max_rewards, status)
SELECT r, 'thank you, Gold and Platinum', aura.template_id(r, 'welcome'), '{"tiers": ["Gold", "Platinum"]}', 300, 'active'
  FROM unnest(ARRAY[:trattoria, :harbor]::bigint[]) r;
SELECT r.name AS restaurant, x.res ->> 'audience' AS audience, x.res ->> 'issued' AS rewards_issued
  FROM aura.reward_campaigns c JOIN aura.restaurants r ON r.id = c.restaurant_id,
       LATERAL (SELECT aura.run_campaign(c.id) AS res) x
 WHERE c.name = 'thank you, Gold and Platinum' AND c.restaurant_id IN (:trattoria, :harbor) ORDER BY r.id;
\echo 'a third of them redeem their code at the till (10% off, up to 10.00):'
SELECT r.name AS restaurant, count(*) AS redeemed, sum((x.res ->> 'discount')::numeric) AS discount_given
  FROM (SELECT w.*, row_number() OVER (PARTITION BY w.restaurant_id ORDER BY w.id) AS n
          FROM aura.rewards w JOIN aura.reward_campaigns c ON c.restaurant_id = w.restaurant_id AND c.id = w.campaign_id
         WHERE c.name = 'thank you, Gold and Platinum') w
  JOIN aura.restaurants r ON r.id = w.restaurant_id,
       LATERAL (SELECT aura.redeem_reward(w.code, 'WB-' || w.id, 42.00, w.customer_id, 'wb-' || w.id) AS res) x
 WHERE w.n % 3 = 0
 GROUP BY r.id, r.name ORDER BY r.id;
