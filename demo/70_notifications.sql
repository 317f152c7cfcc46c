-- notifications: events become signed webhooks, Slack messages and in-app items, delivered by the dispatcher
\echo 'the demo lets the dispatcher reach the local sink (loopback is blocked by default);'
\echo 'channel and webhook secrets are sealed with the master key that 10_settings configured:'
ALTER SYSTEM SET aura.http_allow_hosts = '127.0.0.1';
SELECT pg_reload_conf() AS reloaded;
SELECT pg_sleep(0.3);
\echo 'the dispatcher, a background worker, runs:'
SELECT pid IS NOT NULL AS running, queue_depth, sent, failed FROM aura.worker_status();

SELECT min(id) AS r FROM aura.restaurants \gset
SELECT aura.set_context(:r);
\echo 'a webhook subscription (its secret is shown once; stored encrypted):'
SELECT id AS hook, secret FROM aura.create_webhook('pos-sync', :'sink_url' || '/hooks/pos', '{reward.*,tier.changed}') \gset
SELECT :hook AS webhook_id, left(:'secret', 12) || '...' AS secret_prefix;
\setenv DEMO_SECRET :secret
\setenv DEMO_SINK :sink_url
\! /usr/bin/python3 -c "import json, os, urllib.request; urllib.request.urlopen(urllib.request.Request(os.environ['DEMO_SINK'] + '/_control', json.dumps({'secrets': [os.environ['DEMO_SECRET']]}).encode()))"
\echo 'a Slack channel and an in-app channel, and a rule sending insights of severity medium or more to both:'
SELECT aura.set_notification_channel('ops-slack', 'slack', '{}', :'sink_url' || '/slack/T000/B000/XXXX') AS slack_channel;
SELECT aura.set_notification_channel('app', 'in_app') AS app_channel;
SELECT aura.set_notification_rule('insights to ops', '{insight.*}',
    '[{"channel": "ops-slack"}, {"channel": "app", "recipients": ["1001"]}]', min_severity => 'medium') AS rule;

\echo 'three events, emitted in the transactions that cause them (and one rolled back: it sends nothing):'
SELECT aura.emit_event(:r, 'reward.issued', '{"customer": 42, "reward": "free espresso"}') AS event;
SELECT aura.emit_event(:r, 'tier.changed', '{"customer": 42, "from": "silver", "to": "gold"}') AS event;
SELECT aura.emit_event(:r, 'insight.created', '{"title": "Lunch sales up 20%", "severity": "high",
    "description": "Lunch revenue is 20% above the last four weeks.", "impact": "high", "value": "1,200 EUR",
    "recommendations": ["Add a lunch special", "Staff one more server at noon"], "url": "https://aura.example/insights/1"}') AS event;
BEGIN;
SELECT aura.emit_event(:r, 'reward.issued', '{"customer": 7, "reward": "never sent"}') AS rolled_back_event;
ROLLBACK;
SELECT aura.test_webhook(:hook) AS ping;
SELECT pg_sleep(1);

\echo 'the outbox: every message delivered, with its stable id, attempts and latency:'
SELECT msg_id, event_type, channel, status, attempts, response_code AS code
  FROM aura.notifications WHERE restaurant_id = :r ORDER BY id;
\echo 'what the local sink received (it checks the Standard Webhooks signature and the Slack shape):'
SELECT r ->> 'path' AS path, r -> 'headers' ->> 'webhook-id' AS webhook_id,
       r ->> 'sig_ok' AS signature_ok, r ->> 'shape' AS shape, r ->> 'shape_ok' AS shape_ok
  FROM (SELECT l::jsonb AS r FROM regexp_split_to_table(pg_read_file(:'sink_log'), E'\n') l WHERE l <> '') s;
\echo 'the in-app inbox of user 1001:'
SELECT severity, title, read_at IS NOT NULL AS read FROM aura.inbox_unread(1001);
\echo 'the deployment checklist now sees the worker, the channels and a verified endpoint:'
SELECT name, ok, detail FROM aura.deployment_check()
 WHERE name IN ('preload_and_worker', 'notification_channels', 'webhook_endpoints');
SELECT aura.clear_context();
