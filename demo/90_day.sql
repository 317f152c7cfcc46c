-- a restaurant group's day: 5,000 customers, 90 days of orders, points, tiers, insights and notifications
\set QUIET on
\set ON_ERROR_STOP on
\pset footer off
SELECT clock_timestamp() AS t_start \gset
SELECT id AS trattoria FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset
SELECT id AS harbor FROM aura.restaurants WHERE name = 'Harbor Grill' \gset
SELECT id AS centro FROM aura.locations WHERE name = 'Centro' \gset
SELECT id AS mare FROM aura.locations WHERE name = 'Mare' \gset
SELECT id AS pier9 FROM aura.locations WHERE name = 'Pier 9' \gset
-- the 90 days end yesterday; "today" (as_of) is midnight UTC after the last day
SELECT (current_date - 90) AS day0, (current_date::timestamp AT TIME ZONE 'UTC') AS today \gset

\echo
\echo 'The Aurora group: two restaurants, three locations, one database.'
SELECT r.name AS restaurant, string_agg(l.name, ', ' ORDER BY l.name) AS locations, r.timezone, r.currency
  FROM aura.restaurants r JOIN aura.locations l ON l.restaurant_id = r.id
 WHERE r.id IN (:trattoria, :harbor) GROUP BY r.id, r.name, r.timezone, r.currency ORDER BY r.id;

\echo
\echo '[1/7] settings: Trattoria Aurora takes the casual_dining preset; both restaurants earn 10 points per unit'
SELECT count(*) FILTER (WHERE action <> 'unchanged') AS preset_values_applied
  FROM aura.apply_template('casual_dining', 'restaurant', :trattoria);
SELECT aura.set_setting('loyalty.points_per_unit', '10', 'restaurant', r, 'loyalty launch') AS points_per_unit
  FROM unnest(ARRAY[:trattoria, :harbor]::bigint[]) r \g /dev/null
SELECT r.name AS restaurant,
       aura.get_setting('operations.service_style', r.id) #>> '{}' AS service_style,
       aura.get_setting('operations.table_turn_minutes', r.id) AS turn_minutes,
       aura.get_setting('operations.reservations_enabled', r.id) AS reservations,
       aura.get_setting('loyalty.points_per_unit', r.id) AS points_per_unit
  FROM aura.restaurants r WHERE r.id IN (:trattoria, :harbor) ORDER BY r.id;

\echo
\echo '[2/7] feature flags: express checkout in the app, rolled out to 30% of customers'
SELECT aura.flag_put($${"name": "express-checkout", "type": "release", "enabled": true,
  "description": "One-tap reorder and pay in the customer app",
  "strategies": [{"name": "flexibleRollout",
                  "parameters": {"rollout": "30", "stickiness": "userId", "groupId": "express-checkout"},
                  "constraints": [{"contextName": "appName", "operator": "IN", "values": ["app"]}]}]}$$) \g /dev/null
SELECT count(*) FILTER (WHERE aura.flag_enabled('express-checkout', jsonb_build_object('userId', c::text, 'appName', 'app')))
           AS customers_with_express_checkout,
       count(*) FILTER (WHERE aura.flag_enabled('express-checkout', jsonb_build_object('userId', c::text, 'appName', 'web')))
           AS on_the_website,
       count(*) AS customers
  FROM generate_series(100001, 105000) c;

\echo
\echo 'notifications first: insights (medium or more) to Slack and email, tier changes to the CRM webhook,'
\echo 'all on local sinks; events are emitted in the transactions that cause them'
ALTER SYSTEM SET aura.http_allow_hosts = '127.0.0.1';
SELECT pg_reload_conf() \g /dev/null
SELECT pg_sleep(0.3) \g /dev/null
\setenv DEMO_SINK :sink_url
\set r :trattoria
\set domain 'trattoria-aurora.example'
\ir day_channels.sql
\set secret_a :hook_secret
\set r :harbor
\set domain 'harbor-grill.example'
\ir day_channels.sql
\setenv DEMO_SECRETS :secret_a,:hook_secret
\! /usr/bin/python3 -c "import json, os, urllib.request; urllib.request.urlopen(urllib.request.Request(os.environ['DEMO_SINK'] + '/_control', json.dumps({'secrets': os.environ['DEMO_SECRETS'].split(',')}).encode()))"
SELECT coalesce(max(id), 0) AS outbox_before FROM aura.notifications \gset
SELECT set_config('demo.outbox_before', :'outbox_before', false) \g /dev/null
\echo
\echo '[3/7] the application''s orders table, attached to aura''s order trigger; 90 days of orders arrive ...'
CREATE TABLE orders (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_no      text NOT NULL UNIQUE,
    restaurant_id bigint NOT NULL,
    location_id   bigint NOT NULL,
    customer_id   bigint,                        -- NULL: a walk-in without a loyalty card
    channel       text NOT NULL,                 -- dine_in, takeout, app, app_express
    total         numeric(10,2) NOT NULL,
    status        text NOT NULL DEFAULT 'open',  -- open, completed, refunded
    created_at    timestamptz NOT NULL
);
CREATE INDEX orders_created ON orders (restaurant_id, created_at);
SELECT aura.attach_orders('orders', 'restaurant_id', 'customer_id', 'total', 'status', 'order_no',
                          completed_values => '{completed}', reversed_values => '{refunded}') \g /dev/null
SELECT clock_timestamp() AS t0 \gset
\ir gen_orders.sql
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers,
       (SELECT count(*) FROM aura.points_transactions t
         WHERE t.restaurant_id IN (:trattoria, :harbor) AND t.customer_id > 100000) AS ledger_rows_by_trigger,
       round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 1) AS seconds
  FROM orders;
\echo 'one order in 70 is refunded: the trigger reverses its points'
UPDATE orders SET status = 'refunded' WHERE id % 70 = 0 AND customer_id IS NOT NULL;
SELECT count(*) AS refunds, sum(-t.points) AS points_reversed
  FROM aura.points_transactions t WHERE t.kind = 'reversal' AND t.customer_id > 100000;

\echo
\echo '[4/7] loyalty: tiers follow lifetime points (Silver 2,000, Gold 5,000, Platinum 10,000)'
SELECT r.name AS restaurant, count(*) AS upgrades,
       count(*) FILTER (WHERE h.new_tier = 'Silver') AS to_silver,
       count(*) FILTER (WHERE h.new_tier = 'Gold') AS to_gold,
       count(*) FILTER (WHERE h.new_tier = 'Platinum') AS to_platinum
  FROM aura.tier_history h JOIN aura.restaurants r ON r.id = h.restaurant_id
 WHERE h.customer_id > 100000 AND h.reason = 'upgrade' GROUP BY r.id, r.name ORDER BY r.id;

\echo
\echo '[5/7] rewards: the default catalog and a thank-you campaign for Gold and Platinum members'
\ir day_rewards.sql

\echo
\echo '[6/7] insights: the detectors read the orders table every morning (here: the last four mornings)'
SELECT aura.register_orders_source('orders', 'restaurant_id', 'location_id', 'total', 'created_at', 'customer_id') \g /dev/null
-- the group compares each day with the same weekday of the last 4 weeks (default 8)
UPDATE aura.insight_detectors SET settings = settings || '{"weeks": 4}' WHERE name = 'sales_anomalies';
SELECT d.detector, sum(d.insights) AS insights, bool_and(d.ok) AS all_ok
  FROM generate_series(:'today'::timestamptz - interval '3 days', :'today'::timestamptz, interval '1 day') AS a(as_of),
       LATERAL aura.generate_insights(NULL, a.as_of + interval '7 hours') d
 WHERE d.restaurant_id IN (:trattoria, :harbor)
 GROUP BY d.detector ORDER BY d.detector;
\echo 'threads: repeats of the same finding join one thread instead of piling up'
SELECT r.name AS restaurant, t.max_severity AS severity, t.insight_count AS insights,
       to_char(t.first_seen, 'Mon DD') || ' .. ' || to_char(t.last_seen, 'Mon DD') AS seen,
       (SELECT left(i.title, 50) FROM aura.insights i WHERE i.thread_id = t.id AND i.restaurant_id = t.restaurant_id
         ORDER BY i.created_at DESC, i.id DESC LIMIT 1) AS latest
  FROM aura.insight_threads t JOIN aura.restaurants r ON r.id = t.restaurant_id
 WHERE EXISTS (SELECT 1 FROM aura.insights i WHERE i.thread_id = t.id AND i.restaurant_id = t.restaurant_id
                  AND i.generated_by LIKE 'detector:%')
   AND t.restaurant_id IN (:trattoria, :harbor) AND t.last_seen >= :'today'::timestamptz - interval '4 days'
 ORDER BY r.id, t.first_seen, t.id;

\echo
\echo '[7/7] notifications: what the day''s events sent'
\echo 'waiting for the dispatcher to deliver everything (at most 20 s) ...'
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '20 seconds';
BEGIN
    LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM aura.notifications
                               WHERE id > current_setting('demo.outbox_before')::bigint
                                 AND status IN ('queued', 'sending', 'failed'))
               OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.2);
    END LOOP;
END $$;
\echo 'the outbox of the day (with the module demos'' rules and webhooks, if they ran):'
SELECT event_type, channel, status, count(*) AS messages, max(attempts) AS max_attempts
  FROM aura.notifications WHERE id > :outbox_before GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
\echo 'what the local sinks received:'
SELECT 'http' AS sink, split_part(r ->> 'path', '/', 2) AS kind, count(*) AS received,
       CASE WHEN split_part(r ->> 'path', '/', 2) = 'hooks' THEN count(*) FILTER (WHERE (r ->> 'sig_ok')::boolean) END AS signature_ok,
       count(*) FILTER (WHERE (r ->> 'shape_ok')::boolean) AS shape_ok
  FROM (SELECT l::jsonb AS r FROM regexp_split_to_table(pg_read_file(:'sink_log'), E'\n') l WHERE l <> '') s
 WHERE r ->> 'path' ~ '^/(slack/T000/B000/R|hooks/crm/)'
 GROUP BY 1, 2
UNION ALL
SELECT 'smtp', 'email', count(*), NULL, count(*) FILTER (WHERE r ->> 'content_type' = 'multipart/alternative')
  FROM (SELECT l::jsonb AS r FROM regexp_split_to_table(pg_read_file(:'smtp_log'), E'\n') l WHERE l <> '') s
 ORDER BY 1, 2;
SELECT left(r ->> 'subject', 60) AS a_mail_subject, r ->> 'to' AS "to"
  FROM (SELECT l::jsonb AS r FROM regexp_split_to_table(pg_read_file(:'smtp_log'), E'\n') l WHERE l <> '') s
 ORDER BY r ->> 'subject' LIMIT 3;

\echo
\echo '================ the report ================'
\echo 'the quarter per restaurant:'
SELECT r.name AS restaurant, count(*) AS orders, to_char(sum(o.total), 'FM999,999,990') AS revenue,
       round(avg(o.total), 2) AS avg_ticket, count(DISTINCT o.customer_id) AS members,
       to_char((SELECT sum(t.points) FILTER (WHERE t.kind = 'earn') FROM aura.points_transactions t
                 WHERE t.restaurant_id = r.id AND t.customer_id > 100000), 'FM99,999,999') AS points_earned
  FROM orders o JOIN aura.restaurants r ON r.id = o.restaurant_id
 WHERE o.status = 'completed' GROUP BY r.id, r.name ORDER BY r.id;
\echo 'the express-checkout flag (30% rollout) and how its customers order in the app:'
SELECT c.express AS flag_on, count(DISTINCT c.customer_id) AS customers,
       count(o.id) AS orders, round(count(o.id)::numeric / count(DISTINCT c.customer_id), 1) AS orders_each,
       round(100.0 * count(o.id) FILTER (WHERE o.channel LIKE 'app%') / nullif(count(o.id), 0), 1) AS app_share_pct
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id
 GROUP BY c.express ORDER BY c.express;

\echo
\echo 'tier distribution of the 5,000 members:'
WITH d AS (
    SELECT t.name AS tier, t.min_points, count(a.customer_id) AS members
      FROM (SELECT DISTINCT name, min_points FROM aura.loyalty_tiers WHERE restaurant_id IN (:trattoria, :harbor)) t
      LEFT JOIN aura.loyalty_accounts a ON a.tier = t.name AND a.restaurant_id IN (:trattoria, :harbor)
                                       AND a.customer_id > 100000
     GROUP BY t.name, t.min_points)
SELECT tier, members, rpad(repeat('█', (50.0 * members / max(members) OVER ())::int), 50) || ' '
           || round(100.0 * members / sum(members) OVER (), 1) || '%' AS chart
  FROM d ORDER BY min_points;

\echo 'points earned per day, all 90 days (one column a day):'
WITH p AS (
    SELECT o.created_at::date AS day, sum(t.points) AS pts
      FROM aura.points_transactions t
      JOIN orders o ON o.order_no = t.reference AND o.restaurant_id = t.restaurant_id
     WHERE t.kind = 'earn' AND t.customer_id > 100000 GROUP BY 1),
s AS (SELECT day, pts, (7 * (pts - min(pts) OVER ()) / nullif(max(pts) OVER () - min(pts) OVER (), 0))::int AS lvl FROM p)
SELECT to_char(min(day), 'Mon DD') || ' ' || string_agg(substr('▁▂▃▄▅▆▇█', lvl + 1, 1), '' ORDER BY day)
       || ' ' || to_char(max(day), 'Mon DD') AS sparkline,
       to_char(min(pts), 'FM999,999') || ' .. ' || to_char(max(pts), 'FM999,999') AS range
  FROM s;
\echo 'points earned per day, the last 14 days (Mare''s roadworks show in the last four):'
WITH p AS (
    SELECT o.created_at::date AS day, sum(t.points) AS pts
      FROM aura.points_transactions t
      JOIN orders o ON o.order_no = t.reference AND o.restaurant_id = t.restaurant_id
     WHERE t.kind = 'earn' AND t.customer_id > 100000 AND o.created_at >= :'today'::timestamptz - interval '14 days'
     GROUP BY 1)
SELECT to_char(day, 'Dy Mon DD') AS day, to_char(pts, 'FM999,999') AS points,
       repeat('█', (50.0 * pts / max(pts) OVER ())::int) AS chart
  FROM p ORDER BY p.day;

\echo 'the ledger invariants hold for both restaurants:'
SELECT r.name AS restaurant, (SELECT count(*) FROM aura.verify_ledger(r.id)) AS ledger_problems
  FROM aura.restaurants r WHERE r.id IN (:trattoria, :harbor) ORDER BY r.id;
SELECT round(extract(epoch FROM clock_timestamp() - :'t_start'::timestamptz)::numeric, 1) AS day_seconds;
