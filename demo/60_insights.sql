-- insights: threading of repeats, detectors over the orders table, lifecycle, ratings, analytics, export
SET timezone = 'UTC';
\set SHOW_CONTEXT never
SELECT id AS trattoria FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset
SELECT id AS centro FROM aura.locations WHERE restaurant_id = :trattoria AND name = 'Centro' \gset
SELECT id AS mare FROM aura.locations WHERE restaurant_id = :trattoria AND name = 'Mare' \gset
SELECT aura.set_context(:trattoria, NULL, 1);
-- the settings demo shortened Trattoria's thread window to 36 hours; weekly
-- repeats thread under the default window of 7 days
SELECT aura.reset_setting('insights.thread_window', 'restaurant', :trattoria, 'insights demo: default window') IS NOT NULL AS thread_window_reset \gset
\echo 'Insight events (insight.created, insight.escalated) go to notification rules; high and critical ones to the in-app inbox:'
SELECT aura.set_notification_rule('insight alerts', '{insight.*}', '[{"channel": "app"}]', 'high') AS rule_id;

\echo
\echo 'The same finding recorded every Monday for four weeks joins one thread, which detects the weekly recurrence;'
\echo 'a repeat ten minutes later only bumps the occurrence count:'
SELECT aura.record_insight(:trattoria, 'staff', 'warning', 'medium', 'Kitchen understaffed on ' || d::date,
       jsonb_build_object('related_entity_type', 'location', 'related_entity_id', :centro, 'location_id', :centro,
                          'estimated_value', 150 + 25 * n, 'observed_at', d)) AS insight_id
  FROM (VALUES (1, timestamptz '2026-02-02 11:00'), (2, '2026-02-09 11:00'), (3, '2026-02-16 11:00'),
               (4, '2026-02-23 11:00'), (4, '2026-02-23 11:10')) v(n, d);
SELECT t.id AS thread, t.insight_count AS insights, t.max_severity, t.total_estimated_value AS value,
       t.is_recurring, t.recurrence_period AS period, t.category
  FROM aura.insight_threads t WHERE t.domain = 'staff';
SELECT seq, title, gap, estimated_value, cumulative_value
  FROM aura.thread_timeline((SELECT id FROM aura.insight_threads WHERE domain = 'staff'));

\echo 'An application orders table (eight weeks of history) registered for the built-in detectors:'
CREATE TABLE demo_orders (id bigserial PRIMARY KEY, restaurant_id bigint, location_id bigint,
                          total numeric(10,2), created_at timestamptz, customer text);
INSERT INTO demo_orders (restaurant_id, location_id, total, created_at, customer)
SELECT :trattoria, loc, 18 + (n % 7) + (k % 3),
       date '2026-01-01' + k + time '12:00' + make_interval(mins => 7 * n), 'guest-' || (n % 40)
  FROM generate_series(0, 58) k, generate_series(1, 12) n, (VALUES (:centro), (:mare)) l(loc)
 WHERE NOT (loc = :mare AND k = 58 AND n > 3);      -- Mare's last Saturday (2026-02-28): 3 orders
INSERT INTO demo_orders (restaurant_id, location_id, total, created_at, customer)
SELECT :trattoria, :centro, 42, d, 'Signora Rossi' FROM generate_series(timestamptz '2025-12-01', '2026-01-25', '4 days') d;
SELECT aura.register_orders_source('demo_orders', 'restaurant_id', 'location_id', 'total', 'created_at', 'customer');
SELECT detector, ok, insights FROM aura.generate_insights(:trattoria, '2026-03-01 06:00');

\echo 'The insights of Trattoria Aurora, most severe first (keyset paging: pass the cursor for the next page):'
SELECT id, domain, severity, status, title, impact_score AS impact, estimated_value AS value, occurrence_count AS n
  FROM aura.list_insights('{}', 'severity_desc', 10);

\echo 'Staff acknowledge in a batch (an unknown id gets its own error, the others go through), rate and act:'
SELECT * FROM aura.acknowledge_insights(ARRAY(SELECT id FROM aura.insights WHERE domain = 'sales' ORDER BY id)
                                        || (SELECT coalesce(max(id), 0) + 1000 FROM aura.insights));
SELECT ratings, useful, auto_dismissed
  FROM aura.rate_insight((SELECT min(id) FROM aura.insights WHERE domain = 'sales'), 'useful', 'called the manager');
SELECT aura.record_insight_action((SELECT min(id) FROM aura.insights WHERE domain = 'staff'), 'implemented',
                                  '{"note": "extra cook on Mondays"}', 300) AS action_id;
SELECT status FROM aura.update_insight_status((SELECT min(id) FROM aura.insights WHERE domain = 'staff'), 'resolved',
                                              'extra cook on Mondays');
\echo 'An invalid transition is refused:'
\set ON_ERROR_STOP 0
SELECT aura.update_insight_status((SELECT min(id) FROM aura.insights WHERE domain = 'staff'), 'active');
\set ON_ERROR_STOP 1

\echo 'Analytics (views for reporting tools):'
SELECT dimension, key, insights FROM aura.insight_counts WHERE dimension IN ('severity', 'status') ORDER BY 1, 2;
SELECT domain, insights, estimated_value, realized_value, implementation_rate FROM aura.insight_impact ORDER BY domain;

\echo 'Export, streamed through COPY (CSV; JSON lines with format json):'
COPY (SELECT * FROM aura.export_insights('{"domain": "sales"}', 'csv')) TO STDOUT;

\echo 'deployment checklist item:'
SELECT * FROM aura.deployment_check() WHERE name = 'insight_rules';
SELECT aura.clear_context();
