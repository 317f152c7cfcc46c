-- Insights: model, threading, lifecycle, listing, ratings, actions, analytics,
-- export.  Restaurants 600-699.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
-- the dispatcher must not expire or generate insights behind this test's back
UPDATE aura.jobs SET enabled = false WHERE name LIKE 'insight%';
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
\set SHOW_CONTEXT never

INSERT INTO aura.restaurants (id, name) VALUES (601, 'Insights A'), (602, 'Insights B');
INSERT INTO aura.locations (restaurant_id, id, name) VALUES
    (601, 6011, 'A Centro'), (601, 6012, 'A Mare'), (602, 6021, 'B Pier');
CREATE ROLE regress_ins_manager IN ROLE aura_manager;
CREATE ROLE regress_ins_staff IN ROLE aura_staff;
CREATE ROLE regress_ins_reporting IN ROLE aura_reporting;

-- defaults of the settings until the settings module provides them
SELECT * FROM aura.insights_config(601);

------------------------------------------------------------------------------
-- Recording and threading
------------------------------------------------------------------------------
SET ROLE regress_ins_manager;
SELECT aura.set_context(601, NULL, 42);
-- insight events reach notification rules (notifications module)
SELECT aura.set_notification_rule('regress insights', '{insight.*}', '[{"channel": "app"}]') > 0 AS rule;
-- a first insight opens a thread
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'Sales drop at A Centro',
    '{"related_entity_type": "location", "related_entity_id": 6011, "location_id": 6011,
      "estimated_value": 120.50, "impact_score": 60, "confidence": 0.9,
      "recommendations": ["check staffing"], "metrics": {"z": -2.4},
      "observed_at": "2026-01-05 10:00"}') AS first_id \gset
-- the same title 20 minutes later: deduplicated (occurrence count), and a
-- higher severity escalates the existing insight
SELECT aura.record_insight(601, 'sales', 'anomaly', 'critical', 'Sales drop at A Centro',
    '{"related_entity_type": "location", "related_entity_id": 6011, "estimated_value": 999,
      "observed_at": "2026-01-05 10:20"}') = :first_id AS deduplicated;
-- a different title a week later joins the thread; then two more a week apart
SELECT aura.record_insight(601, 'sales', 'anomaly', 'medium', 'Sales drop at A Centro (week 2)',
    '{"related_entity_type": "location", "related_entity_id": "6011", "estimated_value": 80,
      "observed_at": "2026-01-12 10:00"}') IS NOT NULL AS joined;
SELECT aura.record_insight(601, 'sales', 'anomaly', 'low', 'Sales drop at A Centro (week 3)',
    '{"related_entity_type": "location", "related_entity_id": "6011", "estimated_value": 60,
      "observed_at": "2026-01-19 10:00"}') IS NOT NULL AS joined;
SELECT aura.record_insight(601, 'sales', 'anomaly', 'low', 'Sales drop at A Centro (week 4)',
    '{"related_entity_type": "location", "related_entity_id": "6011", "estimated_value": 40,
      "observed_at": "2026-01-26 10:00"}') IS NOT NULL AS joined;
-- another location: another fingerprint, another thread
SELECT aura.record_insight(601, 'sales', 'anomaly', 'medium', 'Sales drop at A Mare',
    '{"related_entity_type": "location", "related_entity_id": 6012, "location_id": 6012,
      "observed_at": "2026-01-12 11:00"}') IS NOT NULL AS other_thread;
-- beyond the thread window (7 days after the last): a new thread
SELECT aura.record_insight(601, 'sales', 'anomaly', 'medium', 'Sales drop at A Centro (later)',
    '{"related_entity_type": "location", "related_entity_id": 6011, "observed_at": "2026-02-20 10:00"}')
    AS later_id \gset
-- irregular gaps: no recurrence
SELECT aura.record_insight(601, 'customer', 'warning', 'info', 'Regulars at risk ' || n,
    format('{"observed_at": "%s"}', t)::jsonb) IS NOT NULL AS recorded
  FROM (VALUES (1, '2026-01-01'), (2, '2026-01-02'), (3, '2026-01-06'), (4, '2026-01-07')) v(n, t);
-- an insight without related entity and with every detail
SELECT aura.record_insight(601, 'marketing', 'opportunity', 'info', 'Promote the terrace',
    '{"description": "Sunny week ahead", "trend": [1, 2, 3], "comparison": {"last_year": 10},
      "period_start": "2026-01-01", "period_end": "2026-01-07", "generated_by": "regress",
      "expires_at": "2026-03-01", "parent_id": null, "observed_at": "2026-01-03 09:00"}')
    AS promo_id \gset

SELECT i.id = :first_id AS is_first, i.severity, i.occurrence_count, i.created_at, i.last_occurred_at,
       i.estimated_value, i.location_id, i.related_entity_type, i.related_entity_id
  FROM aura.insights i WHERE i.restaurant_id = 601 AND i.domain = 'sales' ORDER BY i.created_at, i.id;
SELECT t.type, t.domain, t.related_entity_id, t.status, t.insight_count, t.first_seen, t.last_seen,
       t.max_severity, t.total_estimated_value, t.is_recurring, t.recurrence_period, t.category
  FROM aura.insight_threads t WHERE t.restaurant_id = 601 ORDER BY t.first_seen, t.id;
RESET ROLE;
SELECT event_type, data - 'insight_id' - 'thread_id' AS data
  FROM aura.rule_matches WHERE restaurant_id = 601 AND data ->> 'domain' = 'sales' ORDER BY id;
SET ROLE regress_ins_manager;

-- the probe is an index scan on the partial index
RESET ROLE;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM aura.insight_threads
 WHERE restaurant_id = 601 AND fingerprint = 1 AND status = 'open' ORDER BY last_seen DESC LIMIT 1;
RESET enable_seqscan;
SELECT aura._recurrence(ARRAY['2026-01-01', '2026-01-08', '2026-01-15', '2026-01-22']::timestamptz[]);
SELECT aura._recurrence(ARRAY['2026-01-01', '2026-01-08 06:00', '2026-01-15', '2026-01-22 03:00']::timestamptz[]);
SELECT aura._recurrence(ARRAY['2026-01-01', '2026-01-02', '2026-01-06', '2026-01-07']::timestamptz[]);
SELECT aura._recurrence(ARRAY['2026-01-01', '2026-01-08', '2026-01-15']::timestamptz[]) AS too_few;
SELECT aura._recurrence(ARRAY['2026-01-01 00:00', '2026-01-01 03:00', '2026-01-01 06:00', '2026-01-01 09:00']::timestamptz[]),
       aura._thread_category('anomaly', true, '3 hours');
SET ROLE regress_ins_manager;

------------------------------------------------------------------------------
-- Bad input: clear errors, nothing written
------------------------------------------------------------------------------
SELECT count(*) AS insights_before FROM aura.insights \gset
SELECT aura.record_insight(601, 'salez', 'anomaly', 'high', 'x');
SELECT aura.record_insight(601, 'sales', 'anomoly', 'high', 'x');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'urgent', 'x');
SELECT aura.record_insight(601, NULL, 'anomaly', 'high', 'x');
SELECT aura.record_insight(NULL, 'sales', 'anomaly', 'high', 'x');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', NULL);
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', '   ');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', repeat('x', 301));
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"impact_score": 101}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"impact_score": -1}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"confidence": 1.5}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"impact_score": "high"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"estimated_value": 1e15}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"recommendations": "call"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"metrics": [1]}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"location_id": 1.5}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"location_id": 6021}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"related_entity_type": "location"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"related_entity_type": "", "related_entity_id": 1}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"observed_at": "yesterday-ish"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"observed_at": "infinity"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"period_start": "2026-02-01", "period_end": "2026-01-01"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"descripton": "typo"}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '[1, 2]');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '"text"');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"description": 5}');
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', jsonb_build_object('description', repeat('d', 10001)));
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'x', '{"parent_id": 999999999}');
-- another restaurant than the one in context
SELECT aura.record_insight(602, 'sales', 'anomaly', 'high', 'not mine');
SELECT aura.record_insight(699, 'sales', 'anomaly', 'high', 'nobody');
SELECT count(*) = :insights_before AS nothing_written FROM aura.insights;
RESET ROLE;
-- direct writes meet the same rules (row checks in C, SQLSTATE 23514)
SELECT thread_id AS some_thread FROM aura.insights WHERE id = :first_id \gset
INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, title, fingerprint)
VALUES (601, :some_thread, 'weather', 'trend', 'low', 'x', 0);
INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, title, fingerprint)
VALUES (601, :some_thread, 'sales', 'trend', 'low', E' \t ', 0);
INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, title, fingerprint, impact_score)
VALUES (601, :some_thread, 'sales', 'trend', 'low', 'x', 0, 101);
INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, title, fingerprint, metrics)
VALUES (601, :some_thread, 'sales', 'trend', 'low', 'x', 0, '[]');
INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, title, fingerprint, related_entity_id)
VALUES (601, :some_thread, 'sales', 'trend', 'low', 'x', 0, '5');
INSERT INTO aura.insights (restaurant_id, thread_id, domain, type, severity, title, fingerprint)
VALUES (699, :some_thread, 'sales', 'trend', 'low', 'x', 0);
UPDATE aura.insight_threads SET status = 'merged' WHERE id = :some_thread;
UPDATE aura.insight_threads SET category = 'misc' WHERE id = :some_thread;
UPDATE aura.insights SET occurrence_count = 0 WHERE id = :first_id;
-- staff and reporting may not record insights
SET ROLE regress_ins_staff;
SELECT aura.record_insight(601, 'sales', 'anomaly', 'high', 'staff');
RESET ROLE;
SELECT aura.record_insight(602, 'staff', 'performance', 'medium', 'Late shifts',
    '{"observed_at": "2026-01-10 08:00", "estimated_value": 15}') AS b_id \gset

------------------------------------------------------------------------------
-- Lifecycle
------------------------------------------------------------------------------
SET ROLE regress_ins_staff;
SELECT aura.set_context(601, NULL, 7);
SELECT id = :first_id AS is_first, status, acknowledged_by, acknowledged_at IS NOT NULL AS ack_time
  FROM aura.update_insight_status(:first_id, 'acknowledged');
SELECT status FROM aura.update_insight_status(:first_id, 'in_progress', 'calling the manager');
SELECT aura.update_insight_status(:first_id, 'acknowledged');
SELECT aura.update_insight_status(:first_id, 'active');
SELECT aura.update_insight_status(:first_id, 'expired');
SELECT aura.update_insight_status(:first_id, 'done');
SELECT aura.update_insight_status(:first_id, NULL);
SELECT aura.update_insight_status(NULL, 'resolved');
SELECT aura.update_insight_status(:b_id, 'acknowledged');   -- another restaurant's insight
SELECT status, resolved_by, resolution_notes FROM aura.update_insight_status(:first_id, 'resolved', 'extra waiter');
SELECT aura.update_insight_status(:first_id, 'dismissed');
-- a direct UPDATE is held to the same rules
UPDATE aura.insights SET status = 'active' WHERE id = :first_id;
-- batches: one result per id, failures change nothing
SELECT i.title, a.ok, a.status, a.error
  FROM aura.acknowledge_insights(ARRAY(SELECT id FROM aura.insights WHERE restaurant_id = 601
                                        AND domain = 'sales' ORDER BY created_at, id)
                                 || ARRAY[:b_id, 987654321]::bigint[]) WITH ORDINALITY a
  LEFT JOIN aura.insights i ON i.id = a.insight_id ORDER BY a.ordinality;
SELECT a.ok, a.status, a.error FROM aura.dismiss_insights(ARRAY[:later_id, :first_id]::bigint[], 'seasonal') a;
SELECT aura.acknowledge_insights(NULL);
SELECT count(*) FROM aura.acknowledge_insights('{}');
-- the first Centro thread closes when all its insights are terminal
SELECT aura.dismiss_insights(ARRAY(SELECT id FROM aura.insights WHERE restaurant_id = 601
                                    AND title LIKE 'Sales drop at A Centro (week%'), 'noise');
SELECT t.insight_count, t.status, t.closed_at IS NOT NULL AS closed
  FROM aura.insight_threads t JOIN aura.insights i ON i.thread_id = t.id AND i.id = :first_id;
-- a new Centro insight now opens a new thread: the closed one takes nothing
RESET ROLE;
SELECT aura.record_insight(601, 'sales', 'anomaly', 'medium', 'Sales drop at A Centro (week 5)',
    '{"related_entity_type": "location", "related_entity_id": 6011, "observed_at": "2026-02-02 10:00"}')
    AS week5_id \gset
SELECT (SELECT thread_id FROM aura.insights WHERE id = :week5_id)
       <> (SELECT thread_id FROM aura.insights WHERE id = :first_id) AS new_thread;

-- expiry (dispatcher job)
SELECT aura.expire_insights('2026-02-15');
SELECT aura.expire_insights('2026-03-02') AS expired;
SELECT status FROM aura.insights WHERE id = :promo_id;
SELECT aura.expire_insights(NULL);

------------------------------------------------------------------------------
-- Listing
------------------------------------------------------------------------------
SET ROLE regress_ins_reporting;
SELECT aura.set_context(601);
SELECT title, severity, status FROM aura.list_insights('{}', 'severity_desc', 5);
SELECT title, severity FROM aura.list_insights('{}', 'severity_asc', 5);
SELECT title, created_at FROM aura.list_insights('{"domain": "sales"}', 'created_asc', 3);
-- keyset paging covers every row once, in both severity directions
DO $$
DECLARE
    s text;
    cur text;
    got bigint[];
    want bigint[];
    r record;
    n integer;
    ordered boolean;
BEGIN
    FOREACH s IN ARRAY ARRAY['severity_desc', 'severity_asc', 'created_desc', 'created_asc',
                             'impact_desc', 'impact_asc'] LOOP
        got := '{}';
        cur := NULL;
        LOOP
            n := 0;
            FOR r IN SELECT * FROM aura.list_insights('{}', s, 3, cur) LOOP
                got := got || r.id;
                cur := r.cursor;
                n := n + 1;
            END LOOP;
            EXIT WHEN n < 3;
        END LOOP;
        SELECT array_agg(l.id) INTO want FROM aura.list_insights('{}', s, 1000) l;
        SELECT bool_and(CASE WHEN s LIKE '%desc' THEN a >= b ELSE a <= b END) INTO ordered
          FROM (SELECT CASE WHEN s LIKE 'severity%' THEN i.severity_rank::numeric
                            WHEN s LIKE 'impact%' THEN coalesce(i.impact_score, -1)
                            ELSE extract(epoch FROM i.created_at) END AS a,
                       lead(CASE WHEN s LIKE 'severity%' THEN i.severity_rank::numeric
                                 WHEN s LIKE 'impact%' THEN coalesce(i.impact_score, -1)
                                 ELSE extract(epoch FROM i.created_at) END) OVER (ORDER BY u.ord) AS b
                  FROM unnest(got) WITH ORDINALITY u(id, ord) JOIN aura.insights i ON i.id = u.id) x
         WHERE b IS NOT NULL;
        RAISE NOTICE '%: % rows in pages of 3, same as one page: %, ordered: %',
            s, cardinality(got), got = want, ordered;
    END LOOP;
END
$$;
SELECT title FROM aura.list_insights('{"severity": ["high", "critical"], "status": "resolved"}');
SELECT title FROM aura.list_insights('{"min_severity": "medium", "from": "2026-01-12", "to": "2026-01-13"}');
SELECT title FROM aura.list_insights('{"text": "terrace"}');
SELECT title FROM aura.list_insights('{"text": "%"}');
SELECT count(*) FROM aura.list_insights(jsonb_build_object('thread_id',
    (SELECT thread_id FROM aura.insights WHERE id = :first_id)));
SELECT count(*) AS other_restaurant FROM aura.list_insights('{"location_id": 6021}');
-- malformed filters and arguments
SELECT * FROM aura.list_insights('[1]');
SELECT * FROM aura.list_insights('{"domain": "salez"}');
SELECT * FROM aura.list_insights('{"domain": 5}');
SELECT * FROM aura.list_insights('{"domain": []}');
SELECT * FROM aura.list_insights('{"severity": ["high", 1]}');
SELECT * FROM aura.list_insights('{"from": "not a date"}');
SELECT * FROM aura.list_insights('{"thread_id": -1}');
SELECT * FROM aura.list_insights('{"thread_id": "1; DROP TABLE aura.insights"}');
SELECT * FROM aura.list_insights('{"colour": "red"}');
SELECT * FROM aura.list_insights('{"text": ""}');
SELECT * FROM aura.list_insights('{"domain": "sales"'::jsonb);
SELECT * FROM aura.list_insights('{}', 'random');
SELECT * FROM aura.list_insights('{}', 'created_desc', 0);
SELECT * FROM aura.list_insights('{}', 'created_desc', 10, 'garbage');
SELECT * FROM aura.list_insights('{}', 'severity_desc', 10, 'abc|12');
SELECT * FROM aura.list_insights('{}', 'created_desc', 10, 'x'' OR 1=1 --|1');
-- no context: nothing visible
SELECT aura.clear_context();
SELECT count(*) AS without_context FROM aura.list_insights();
RESET ROLE;

------------------------------------------------------------------------------
-- Threads: timeline, stats, merge
------------------------------------------------------------------------------
SELECT thread_id AS centro_thread FROM aura.insights WHERE id = :first_id \gset
SELECT thread_id AS mare_thread FROM aura.insights WHERE title = 'Sales drop at A Mare' \gset
SELECT thread_id AS b_thread FROM aura.insights WHERE id = :b_id \gset
SELECT seq, title, occurred_at, gap, severity, estimated_value, value_change, cumulative_value, elapsed
  FROM aura.thread_timeline(:centro_thread);
SELECT status, insight_count, duration, severity_mix, value_trend, is_recurring
  FROM aura.insight_thread_stats WHERE thread_id = :centro_thread;
SET ROLE regress_ins_manager;
SELECT aura.set_context(601);
SELECT * FROM aura.thread_timeline(:b_thread);
SELECT aura.merge_threads(:centro_thread, :b_thread);
SELECT aura.merge_threads(:centro_thread, :centro_thread);
SELECT aura.merge_threads(:centro_thread, NULL);
SELECT status, insight_count, first_seen, last_seen, max_severity, total_estimated_value, is_recurring, category
  FROM aura.merge_threads(:centro_thread, :mare_thread);
SELECT status, merged_into = :centro_thread AS merged_into_centro FROM aura.insight_threads WHERE id = :mare_thread;
SELECT aura.merge_threads(:mare_thread, :centro_thread);
RESET ROLE;
SELECT aura.merge_threads(:centro_thread, :b_thread);

------------------------------------------------------------------------------
-- Ratings and actions
------------------------------------------------------------------------------
SET ROLE regress_ins_staff;
SELECT aura.set_context(601, NULL, 1);
SELECT * FROM aura.rate_insight(:week5_id, 'useful', 'good catch');
SELECT * FROM aura.rate_insight(:week5_id, 'irrelevant');          -- re-rating replaces
SELECT aura.set_context(601, NULL, 2);
SELECT * FROM aura.rate_insight(:week5_id, 'irrelevant', 'holiday');
SELECT aura.set_context(601, NULL, 3);
SELECT * FROM aura.rate_insight(:week5_id, 'needs_followup');      -- 2 of 3 irrelevant: 0.667 > 0.6
SELECT status, resolution_notes FROM aura.insights WHERE id = :week5_id;
SELECT user_id, rating, comment FROM aura.insight_ratings WHERE insight_id = :week5_id ORDER BY user_id;
SELECT * FROM aura.rate_insight(:week5_id, 'meh');
SELECT * FROM aura.rate_insight(NULL, 'useful');
SELECT * FROM aura.rate_insight(:b_id, 'useful');
SELECT * FROM aura.rate_insight(:week5_id, 'useful', repeat('c', 2001));
-- a second rating row by the same user is refused by the table itself
INSERT INTO aura.insight_ratings (restaurant_id, insight_id, user_id, rating) VALUES (601, :week5_id, 3, 'useful');
SELECT aura.set_context(601);
SELECT * FROM aura.rate_insight(:week5_id, 'useful');
SELECT aura.set_context(601, NULL, 9);
SELECT aura.record_insight_action(:promo_id, 'viewed') IS NOT NULL AS viewed;
SELECT aura.record_insight_action(:promo_id, 'implemented', '{"note": "terrace open"}', 250.00) IS NOT NULL AS implemented;
SELECT aura.record_insight_action(:promo_id, 'custom', '{"name": "printed"}') IS NOT NULL AS custom;
SELECT action, details, user_id, realized_value FROM aura.insight_actions WHERE insight_id = :promo_id ORDER BY id;
SELECT aura.record_insight_action(:promo_id, 'viewed', '{}', 10);
SELECT aura.record_insight_action(:promo_id, 'custom');
SELECT aura.record_insight_action(:promo_id, 'liked');
SELECT aura.record_insight_action(:promo_id, 'viewed', '[]');
SELECT aura.record_insight_action(:promo_id, 'implemented', '{}', 1e13);
SELECT aura.record_insight_action(:b_id, 'viewed');
UPDATE aura.insight_actions SET realized_value = 1 WHERE insight_id = :promo_id;
RESET ROLE;
DELETE FROM aura.insight_actions WHERE insight_id = :promo_id;

------------------------------------------------------------------------------
-- Analytics and export (reporting role, restaurant 601)
------------------------------------------------------------------------------
SET ROLE regress_ins_reporting;
SELECT aura.set_context(601);
SELECT dimension, key, insights FROM aura.insight_counts ORDER BY dimension, key;
SELECT day, insights, previous_day, growth_rate FROM aura.insight_trends ORDER BY day;
SELECT domain, insights, estimated_value, realized_value, implemented, implementation_rate
  FROM aura.insight_impact ORDER BY domain;
SELECT title, impact_score FROM aura.top_insights(5, 50);
SELECT domain, acknowledged, resolved, mean_time_to_acknowledge IS NOT NULL AS has_mtta
  FROM aura.insight_response_times ORDER BY domain;
SELECT domain, ratings, useful, irrelevant, needs_followup, useful_share FROM aura.insight_rating_mix;
SELECT * FROM aura.top_insights(0);
SELECT line FROM aura.export_insights('{"domain": "marketing"}', 'csv') line;
SELECT line::jsonb - 'id' - 'thread_id' AS line FROM aura.export_insights('{"domain": "marketing"}', 'json') line;
SELECT count(*) AS csv_lines FROM aura.export_insights('{}', 'csv');
COPY (SELECT * FROM aura.export_insights('{"text": "terrace"}', 'csv')) TO STDOUT;
SELECT * FROM aura.export_insights('{}', 'xml');
SELECT * FROM aura.export_insights('{"domain": 1}', 'csv');
-- an admin also exports only the restaurant in context
RESET ROLE;
SELECT aura.clear_context();
SELECT * FROM aura.export_insights('{}', 'csv');
SELECT aura.set_context(602);
SELECT count(*) - 1 AS b_rows FROM aura.export_insights('{}', 'csv');
SELECT aura.clear_context();
SELECT aura._csv('plain'), aura._csv('a,b'), aura._csv('say "hi"'), aura._csv(E'two\nlines'), aura._csv(NULL);

RESET ROLE;

------------------------------------------------------------------------------
-- Settings (through the settings module): a restaurant's thread window, dedupe
-- window and export cap change what happens for that restaurant only
------------------------------------------------------------------------------
SELECT aura.set_setting('insights.thread_window', '"1 day"', 'restaurant', 602);
SELECT aura.set_setting('insights.dedupe_window', '"0 seconds"', 'restaurant', 602);
SELECT aura.set_setting('insights.export_row_cap', '2', 'restaurant', 602);
SELECT thread_window, dedupe_window, export_row_cap FROM aura.insights_config(602);
SELECT thread_window, dedupe_window, export_row_cap FROM aura.insights_config(601);
-- two days apart: one thread in 601 (7 days), two threads in 602 (1 day)
CREATE TEMP TABLE regress_ins_stock AS
SELECT r, aura.record_insight(r, 'inventory', 'warning', 'low', 'Low stock ' || t,
                              jsonb_build_object('observed_at', t)) AS id
  FROM (VALUES (601), (602)) rs(r), (VALUES ('2026-01-10'), ('2026-01-12')) ts(t);
SELECT r, count(DISTINCT thread_id) AS threads, count(*) AS insights
  FROM regress_ins_stock x JOIN aura.insights i ON i.id = x.id
 GROUP BY r ORDER BY r;
-- the same title 10 minutes later: deduplicated in 601 (1 hour), not in 602 (0)
SELECT r, count(DISTINCT x.id) AS insights
  FROM (SELECT r, aura.record_insight(r, 'inventory', 'warning', 'low', 'Fridge warm',
                                      jsonb_build_object('observed_at', t)) AS id
          FROM (VALUES (601), (602)) rs(r), (VALUES ('2026-01-20 10:00'), ('2026-01-20 10:10')) ts(t)) x
 GROUP BY r ORDER BY r;
SELECT aura.set_context(602);
SELECT * FROM aura.export_insights('{}', 'csv');
SELECT count(*) FROM aura.export_insights('{"domain": "staff"}', 'csv');
SELECT aura.clear_context();
SELECT aura.reset_setting('insights.thread_window', 'restaurant', 602);
SELECT aura.reset_setting('insights.dedupe_window', 'restaurant', 602);
SELECT aura.reset_setting('insights.export_row_cap', 'restaurant', 602);
SELECT thread_window, dedupe_window, export_row_cap FROM aura.insights_config(602);

------------------------------------------------------------------------------
-- Generation: built-in detectors over a registered orders table, custom
-- detectors, failures and time limits
------------------------------------------------------------------------------
INSERT INTO aura.restaurants (id, name) VALUES (611, 'Insights Gen');
INSERT INTO aura.locations (restaurant_id, id, name) VALUES (611, 6111, 'North'), (611, 6112, 'South');
CREATE TABLE regress_ins_orders (id bigserial PRIMARY KEY, restaurant_id bigint, location_id bigint,
                                 total numeric(10,2), created_at timestamptz, customer_id bigint);
-- eight weeks of ten orders a day per location; the weekly level varies a little
INSERT INTO regress_ins_orders (restaurant_id, location_id, total, created_at, customer_id)
SELECT 611, loc, 20 + (('2026-03-01'::date - day::date) / 7) % 3,
       day + interval '12 hours' + make_interval(mins => n), 1000 + n
  FROM generate_series(1, 10) n, (VALUES (6111), (6112)) l(loc),
       generate_series('2026-01-01'::date, '2026-02-28'::date, '1 day') day;
-- the last day (Saturday 2026-02-28) North sold only two orders
DELETE FROM regress_ins_orders WHERE location_id = 6111 AND created_at::date = '2026-02-28' AND customer_id > 1002;
-- a regular who came every three days stopped on 2026-01-20
INSERT INTO regress_ins_orders (restaurant_id, location_id, total, created_at, customer_id)
SELECT 611, 6112, 35, d, 7 FROM generate_series('2025-12-01'::timestamptz, '2026-01-20', '3 days') d;
-- the last week's orders are 40% bigger at South
UPDATE regress_ins_orders SET total = total * 1.4 WHERE created_at >= '2026-02-22' AND location_id = 6112;

SELECT aura.register_orders_source('regress_ins_orders', 'restaurant_id', 'location_id', 'total', 'created_at', 'customer_id');
SELECT aura.register_orders_source('regress_ins_orders', 'restaurant_id', 'location_id', 'nope', 'created_at', NULL);
SELECT aura.register_orders_source('regress_ins_orders', 'restaurant_id', 'location_id', 'created_at', 'total', NULL);
SELECT aura.register_orders_source('regress_ins_orders', NULL, NULL, 'total', 'created_at', NULL);
SELECT aura.register_orders_source('pg_class_oid_index', 'a', NULL, 'b', 'c', NULL);
SELECT relation, restaurant_column, location_column, amount_column, created_at_column, customer_column
  FROM aura.orders_sources;

SELECT * FROM aura.generate_insights(611, '2026-03-01 06:00+00');
SELECT title, severity, impact_score, estimated_value, generated_by, created_at,
       metrics - 'customers' AS metrics, related_entity_type, related_entity_id
  FROM aura.insights WHERE restaurant_id = 611 ORDER BY title;
-- running again the same day: the repeats are deduplicated
SELECT detector, ok, insights FROM aura.generate_insights(611, '2026-03-01 06:30+00');
SELECT count(*) AS insights, sum(occurrence_count) AS occurrences FROM aura.insights WHERE restaurant_id = 611;

-- custom detectors: one that raises, one that loops past its time limit,
-- one that returns a malformed insight; the others go on
CREATE FUNCTION regress_ins_bad(r bigint, a timestamptz, s jsonb)
    RETURNS TABLE (domain text, type text, severity text, title text, details jsonb)
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$;
CREATE FUNCTION regress_ins_slow(r bigint, a timestamptz, s jsonb)
    RETURNS TABLE (domain text, type text, severity text, title text, details jsonb)
    LANGUAGE plpgsql AS $$
BEGIN
    domain := 'sales'; type := 'trend'; severity := 'low'; title := 'slow one'; details := '{}';
    RETURN NEXT;
    LOOP PERFORM pg_sleep(0.05); END LOOP;
END $$;
CREATE FUNCTION regress_ins_malformed(r bigint, a timestamptz, s jsonb)
    RETURNS TABLE (domain text, type text, severity text, title text, details jsonb)
    LANGUAGE sql AS $$ VALUES ('sales', 'trend', 'low', 'fine', '{}'::jsonb),
                              ('sales', 'trend', 'low', 'not fine', '{"impact_score": 500}'::jsonb) $$;
CREATE FUNCTION regress_ins_custom(r bigint, a timestamptz, s jsonb)
    RETURNS TABLE (domain text, type text, severity text, title text, details jsonb)
    LANGUAGE sql AS $$ SELECT 'operations', 'optimization', 'info', s ->> 'title',
                              jsonb_build_object('impact_score', 10) $$;
CREATE FUNCTION regress_ins_wrong(r bigint) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION regress_ins_wrong_cols(r bigint, a timestamptz, s jsonb)
    RETURNS TABLE (domain text, kind text) LANGUAGE sql AS $$ SELECT 'a', 'b' $$;
SELECT aura.register_detector('bad', 'regress_ins_bad(bigint, timestamptz, jsonb)');
SELECT aura.register_detector('slow', 'regress_ins_slow(bigint, timestamptz, jsonb)', '1 hour', '{"timeout_ms": 300}');
SELECT aura.register_detector('malformed', 'regress_ins_malformed(bigint, timestamptz, jsonb)');
SELECT aura.register_detector('custom', 'regress_ins_custom(bigint, timestamptz, jsonb)', '1 hour', '{"title": "Open a window"}');
SELECT aura.register_detector('wrong', 'regress_ins_wrong(bigint)');
SELECT aura.register_detector('wrong', 'regress_ins_wrong_cols(bigint, timestamptz, jsonb)');
SELECT aura.register_detector('Bad Name', 'regress_ins_bad(bigint, timestamptz, jsonb)');
SELECT aura.register_detector('fast', 'regress_ins_bad(bigint, timestamptz, jsonb)', '1 second');
SELECT aura.register_detector('fast', 'regress_ins_bad(bigint, timestamptz, jsonb)', '1 hour', '{"timeout_ms": "soon"}');
SELECT aura.register_detector('fast', 'regress_ins_bad(bigint, timestamptz, jsonb)', '1 hour', '[]');
SELECT aura.register_detector('fast', NULL);
SELECT * FROM aura.generate_insights(611, '2026-03-01 07:00+00');
SELECT title FROM aura.insights WHERE restaurant_id = 611 AND generated_by IN ('detector:slow', 'detector:malformed', 'detector:custom');
SELECT detector, ok, insights, error, sqlstate FROM aura.detector_runs
 WHERE restaurant_id = 611 AND NOT ok ORDER BY id;
SELECT name, last_ok, failures, last_error FROM aura.insight_detectors ORDER BY name;
SELECT * FROM aura.deployment_check() WHERE name = 'insight_rules';
-- the caller's own statement_timeout still ends the statement
UPDATE aura.insight_detectors SET settings = '{"timeout_ms": 60000}' WHERE name = 'slow';
SET statement_timeout = '1s';
SELECT * FROM aura.generate_insights(611, '2026-03-01 08:00+00');
RESET statement_timeout;
SELECT count(*) AS runs_at_8 FROM aura.detector_runs WHERE as_of = '2026-03-01 08:00+00';
-- the dispatcher's job runs what is due: the hourly ones an hour later
DELETE FROM aura.insight_detectors WHERE name IN ('bad', 'slow', 'malformed');
SELECT detector, ok, insights FROM aura.run_detectors('2026-03-01 07:30+00') WHERE restaurant_id = 611;
SELECT detector, ok, insights FROM aura.run_detectors('2026-03-01 08:00+00') WHERE restaurant_id = 611;
SELECT * FROM aura.generate_insights(611, NULL);
SELECT * FROM aura.generate_insights(611, 'infinity');
-- tenants: a manager generates for its own restaurant only and cannot register detectors
SET ROLE regress_ins_manager;
SELECT aura.set_context(601);
SELECT * FROM aura.generate_insights(611, '2026-03-01 09:00+00');
SELECT aura.register_detector('mine', 'regress_ins_custom(bigint, timestamptz, jsonb)');
SELECT detector, restaurant_id, ok, insights, error FROM aura.generate_insights(NULL, '2026-03-01 09:00+00');
RESET ROLE;
SELECT aura.clear_context();
DELETE FROM aura.insight_detectors WHERE NOT builtin;
DELETE FROM aura.orders_sources;
-- the dispatcher's jobs
SELECT name, fn, every FROM aura.jobs WHERE name LIKE 'insight%' ORDER BY name;
SELECT aura._job_run_detectors() ~ '^\d+ detector runs, \d+ failed, \d+ insights$' AS job_runs;
UPDATE aura.jobs SET enabled = true WHERE name LIKE 'insight%';
