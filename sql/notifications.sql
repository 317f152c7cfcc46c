-- Notifications: webhook signatures, subscriptions, channels, rules, the
-- outbox written in the caller's transaction, the append-only delivery log.
-- The dispatcher runs in this database too, paused (aura.dispatcher_paused in
-- test/aura.conf): nothing here is delivered and no job fires under the test;
-- the TAP tests test/t/07*.pl prove the dispatcher end to end.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS aura CASCADE;
RESET client_min_messages;
SET aura.notify_secret_key = 'regress-notify-key';

-- Standard Webhooks test vector (svix / standard-webhooks libraries)
SELECT aura.webhook_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek',
                         1614265330, '{"test": 2432232314}') AS signature;
SELECT aura.webhook_sign(NULL, 'm', 1, 'b') IS NULL AS null_in_null_out;
SELECT aura.webhook_sign('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'm', 1, 'b');
SELECT aura.webhook_sign('whsec_!!!!', 'm', 1, 'b');
SELECT aura.webhook_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '', 1, 'b');
SELECT aura.webhook_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'm', -1, 'b');
SELECT aura.webhook_sign('whsec_' || repeat('A', 5000), 'm', 1, 'b');
SELECT length(aura.webhook_sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'm', 1, repeat('x', 1000000))) AS huge_body_ok;
SELECT aura._new_webhook_secret() ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS secret_format,
       aura._new_webhook_secret() <> aura._new_webhook_secret() AS secrets_differ;

INSERT INTO aura.restaurants (id, name, timezone) VALUES
    (701, 'Notify One', 'Europe/Rome'), (702, 'Notify Two', 'UTC');
CREATE ROLE regress_n_manager IN ROLE aura_manager;
CREATE ROLE regress_n_staff IN ROLE aura_staff;

-- webhooks: need a restaurant in context, validate everything
SELECT * FROM aura.create_webhook('x', 'https://example.com/h');
SELECT aura.set_context(701);
SELECT id > 0 AS created, secret ~ '^whsec_' AS has_secret FROM aura.create_webhook('orders', 'https://hooks.example.com/aura', '{reward.*,tier.changed}');
SELECT * FROM aura.create_webhook('orders', 'https://hooks.example.com/aura');
SELECT * FROM aura.create_webhook('bad', 'ftp://example.com/x');
SELECT * FROM aura.create_webhook('bad', 'https://exa mple.com/x');
SELECT * FROM aura.create_webhook('bad', NULL);
SELECT * FROM aura.create_webhook('bad', 'https://example.com/' || repeat('a', 3000));
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{}');
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{"Reward Issued"}');
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{*}', '{"Host": "evil"}');
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{*}', '{"X-A": "a\nb"}');
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{*}', '[1]');
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{*}', '{}', 11);
SELECT * FROM aura.create_webhook('bad', 'https://example.com/x', '{*}', '{}', 3, 50);
SELECT * FROM aura.create_webhook('', 'https://example.com/x');
SELECT id AS hook FROM aura.webhooks WHERE name = 'orders' \gset
-- the secret is sealed with the settings master key, bound to its restaurant
SELECT position('whsec_' in encode(secret, 'escape')) = 0 AS not_plaintext,
       aura._sealed_key_id(secret) AS key_id,
       aura._decrypt_secret(secret, restaurant_id) ~ '^whsec_' AS decrypts,
       aura._decrypt_secret(secret, restaurant_id + 1) IS NULL AS bound_to_restaurant
  FROM aura.webhooks WHERE id = :hook;
SELECT aura.rotate_webhook_secret(:hook) ~ '^whsec_' AS rotated;
SELECT previous_secret IS NOT NULL AS keeps_old, previous_secret_until > now() AS overlap
  FROM aura.webhooks WHERE id = :hook;
SELECT aura.rotate_webhook_secret(999999);
SELECT aura.rotate_webhook_secret(:hook, '-1 day');

-- events: validation, tenant check, fan-out in the caller's transaction
SELECT aura.emit_event(701, 'Bad Type', '{}');
SELECT aura.emit_event(701, NULL, '{}');
SELECT aura.emit_event(701, 'reward.issued', '[1,2]');
SELECT aura.emit_event(701, 'reward.issued', NULL);
SELECT aura.emit_event(NULL, 'reward.issued', '{}');
SELECT aura.emit_event(702, 'reward.issued', '{}') > 0 AS admin_emits_anywhere;
SELECT aura.emit_event(701, 'reward.issued', jsonb_build_object('blob', repeat('x', 300000)));
BEGIN;
SELECT aura.emit_event(701, 'reward.issued', '{"points": 50}') > 0 AS emitted;
SELECT aura.emit_event(701, 'points.expired', '{"points": 5}') > 0 AS not_subscribed;
SELECT msg_id ~ '^msg_701_[0-9]+_w[0-9]+$' AS stable_id, event_type, channel,
       payload ->> 'type' AS type, payload -> 'data' AS data, payload ? 'timestamp' AS has_ts
  FROM aura.notifications WHERE restaurant_id = 701;
ROLLBACK;
SELECT count(*) AS after_rollback FROM aura.notifications WHERE restaurant_id = 701;

-- channels: config validated, secrets encrypted
SELECT aura.set_notification_channel('mail', 'email', '{"host": "smtp.example.com", "port": 587, "from": "aura@example.com"}', 'pw') > 0 AS mail;
SELECT aura.set_notification_channel('mail2', 'email', '{"host": "smtp.example.com", "port": 99999, "from": "aura@example.com"}');
SELECT aura.set_notification_channel('mail2', 'email', '{"host": "smtp.example.com", "from": "not-an-address"}');
SELECT aura.set_notification_channel('mail2', 'email', '{"host": "smtp.example.com", "from": "a@b.c", "password": "x"}');
SELECT aura.set_notification_channel('mail2', 'email', '{"host": "smtp.example.com", "from": "a@b.c", "tls": "maybe"}');
SELECT aura.set_notification_channel('slack', 'slack', '{}');
SELECT aura.set_notification_channel('slack', 'slack', '{}', 'not a url');
SELECT aura.set_notification_channel('slack', 'slack', '{}', 'https://hooks.slack.example/services/T/B/X') > 0 AS slack;
SELECT aura.set_notification_channel('sms', 'sms', '{"account_sid": "AC1", "from": "+15550001"}');
SELECT aura.set_notification_channel('sms', 'sms', '{"account_sid": "AC1", "from": "+15550001", "base_url": "http://127.0.0.1:9"}', 'tok') > 0 AS sms;
SELECT aura.set_notification_channel('app', 'in_app') > 0 AS in_app;
SELECT aura.set_notification_channel('fax', 'fax');
SELECT aura.set_notification_channel('x', 'webhook', '"str"');
SELECT aura.set_notification_channel(NULL, 'in_app');
SELECT name, channel, config, secret IS NOT NULL AS has_secret, enabled
  FROM aura.notification_channels WHERE restaurant_id = 701 ORDER BY name;
SELECT aura._decrypt_secret(secret, restaurant_id), aura._sealed_key_id(secret) AS key_id
  FROM aura.notification_channels WHERE name = 'slack' AND restaurant_id = 701;

-- a secret sealed by an older build (pgp_sym_encrypt under aura.notify_secret_key)
-- is still read, and reseal_notification_secrets moves it onto the master key
SELECT aura.set_notification_channel('legacy', 'slack', '{}', 'https://hooks.slack.example/services/T/B/L') > 0 AS legacy;
UPDATE aura.notification_channels
   SET secret = pgp_sym_encrypt('https://hooks.slack.example/services/T/B/OLD', 'regress-notify-key')
 WHERE restaurant_id = 701 AND name = 'legacy';
SELECT aura._sealed_key_id(secret) IS NULL AS legacy_format, aura._decrypt_secret(secret, restaurant_id) AS legacy_reads
  FROM aura.notification_channels WHERE restaurant_id = 701 AND name = 'legacy';
SELECT aura.reseal_notification_secrets(0);
SELECT aura.reseal_notification_secrets(NULL);
SELECT aura.reseal_notification_secrets() AS resealed;
SELECT aura._sealed_key_id(secret) AS key_id, aura._decrypt_secret(secret, restaurant_id) AS same_value
  FROM aura.notification_channels WHERE restaurant_id = 701 AND name = 'legacy';
SELECT aura.reseal_notification_secrets() AS nothing_left;
-- a tampered sealed value does not decrypt (the message would fail with a clear error)
SELECT aura._decrypt_secret(set_byte(secret, 40, get_byte(secret, 40) # 1), restaurant_id) IS NULL AS tampered_rejected
  FROM aura.notification_channels WHERE restaurant_id = 701 AND name = 'legacy';
DELETE FROM aura.notification_channels WHERE restaurant_id = 701 AND name = 'legacy';

-- channels configured through the restaurant's notifications.* settings, credentials as
-- secret settings (settings master key); the channel's own config and secret override them
SELECT aura.set_notification_channel('mail_s', 'email');
SELECT aura.set_notification_channel('slack_s', 'slack');
-- in a transaction rolled back at the end: the settings test that follows counts restaurant values
BEGIN;
SELECT aura.set_setting('notifications.email.smtp_host', '"smtp.settings.example"', 'restaurant', 701) IS NOT NULL AS host;
SELECT aura.set_setting('notifications.email.smtp_tls', '"tls"', 'restaurant', 701) IS NOT NULL AS tls;
SELECT aura.set_setting('notifications.email.username', '"aura-mailer"', 'restaurant', 701) IS NOT NULL AS username;
SELECT aura.set_setting('notifications.email.from', '"alerts@settings.example"', 'restaurant', 701) IS NOT NULL AS from_address;
SELECT aura.set_setting('notifications.email.password', '"smtp-secret-from-settings"', 'restaurant', 701) IS NOT NULL AS password;
SELECT aura.set_setting('notifications.slack.webhook_url', '"https://hooks.slack.example/services/T/B/settings"', 'restaurant', 701) IS NOT NULL AS slack_url;
SELECT aura.set_notification_channel('mail_s', 'email') > 0 AS mail_s;
SELECT aura.set_notification_channel('mail_o', 'email', '{"port": 2525, "tls": "none"}', 'own-password') > 0 AS mail_o;
SELECT aura.set_notification_channel('slack_s', 'slack') > 0 AS slack_s;
SELECT name, config, secret IS NULL AS no_own_secret FROM aura.notification_channels
 WHERE restaurant_id = 701 AND name IN ('mail_s', 'mail_o', 'slack_s') ORDER BY name;
SELECT c.name, o.kind, o.url, o.tls, o.username, o.password, o.mail_from, o.error
  FROM aura.notification_channels c,
       LATERAL aura._render(701, 0, 1, 'msg_t', 'x.y', c.id, 'ops@example.com', '{"data": {"title": "t"}}') o
 WHERE c.restaurant_id = 701 AND c.name IN ('mail_s', 'mail_o', 'slack_s') ORDER BY c.name;
SELECT aura.reset_setting('notifications.slack.webhook_url', 'restaurant', 701) IS NOT NULL AS reset;
SELECT o.kind, o.error FROM aura.notification_channels c,
       LATERAL aura._render(701, 0, 1, 'msg_t', 'x.y', c.id, NULL, '{"data": {}}') o
 WHERE c.restaurant_id = 701 AND c.name = 'slack_s';
ROLLBACK;
SELECT aura._channel_setting_secret('security.api_pepper', 701);

-- rules: immediate with rate limits, dedupe, in_app inbox, a missing channel
SELECT aura.set_notification_rule('r_bad', '{x.*}', '{}');
SELECT aura.set_notification_rule('r_bad', '{x.*}', '[{"channel": 1}]');
SELECT aura.set_notification_rule('r_bad', '{x.*}', '[{"channel": "app"}]', 'urgent');
SELECT aura.set_notification_rule('r_bad', '{x.*}', '[{"channel": "app"}]', 'info', '{24}');
SELECT aura.set_notification_rule('r_bad', '{x.*}', '[{"channel": "app"}]', max_per_hour => 0);
SELECT aura.set_notification_rule('r_bad', '{x.*}', '[{"channel": "app"}]', quiet_start => '22:00');
SELECT aura.set_notification_rule('limited', '{insight.*}', '[{"channel": "app", "recipients": ["42"]}]',
                                  min_severity => 'medium', max_per_hour => 2) > 0 AS rule;
SELECT aura.set_notification_rule('dedupe', '{stock.low}', '[{"channel": "app", "recipients": ["42"]}]',
                                  dedupe_window => '1 hour') > 0 AS rule;
SELECT aura.set_notification_rule('missing', '{stock.low}', '[{"channel": "nope", "recipients": ["x"]}]') > 0 AS rule;
SELECT aura.emit_event(701, 'insight.created', '{"title": "Low sales", "severity": "low"}') > 0 AS below_min_severity;
SELECT aura.emit_event(701, 'insight.created', jsonb_build_object('title', 'Spike ' || i, 'severity', 'high')) > 0
  FROM generate_series(1, 5) i;
SELECT mode, reason, count(*) FROM aura.rule_matches m JOIN aura.notification_rules r ON r.restaurant_id = m.restaurant_id AND r.id = m.rule_id
 WHERE r.name = 'limited' GROUP BY 1, 2 ORDER BY 1;
SELECT aura.emit_event(701, 'stock.low', '{"item": "flour"}') > 0 FROM generate_series(1, 3);
SELECT r.name, m.mode, count(*) FROM aura.rule_matches m JOIN aura.notification_rules r ON r.restaurant_id = m.restaurant_id AND r.id = m.rule_id
 WHERE r.name IN ('dedupe', 'missing') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT status, last_error FROM aura.notifications WHERE restaurant_id = 701 AND rule_id = (SELECT id FROM aura.notification_rules WHERE name = 'missing');
SELECT user_id, severity, title FROM aura.inbox WHERE restaurant_id = 701 ORDER BY id;
SELECT count(*) AS unread FROM aura.inbox_unread(42);
SELECT aura.mark_read(42, ARRAY[(SELECT min(id) FROM aura.inbox WHERE restaurant_id = 701)]) AS marked;
SELECT aura.mark_read(42) AS marked_rest;
SELECT aura.mark_read(-1);
-- overflow goes to the next full hour's digest, nothing is lost
BEGIN;
UPDATE aura.rule_matches SET at = at - interval '2 hours' WHERE restaurant_id = 701 AND mode = 'digest';
SELECT aura.run_digests() AS digests;
COMMIT;
SELECT event_type, payload -> 'data' ->> 'count' AS items, payload -> 'data' ->> 'severity' AS severity
  FROM aura.notifications WHERE restaurant_id = 701 AND event_type = 'digest';
SELECT title FROM aura.inbox WHERE restaurant_id = 701 AND event_type = 'digest';

-- quiet hours in the restaurant's time zone: held until the quiet period ends
SELECT aura.set_notification_rule('quiet now', '{quiet.test}', '[{"channel": "mail", "recipients": ["q@example.com"]}]',
    quiet_start => ((now() AT TIME ZONE 'Europe/Rome') - interval '1 hour')::time,
    quiet_end => ((now() AT TIME ZONE 'Europe/Rome') + interval '1 hour')::time) > 0 AS rule;
SELECT aura.set_notification_rule('quiet later', '{quiet.test}', '[{"channel": "mail", "recipients": ["l@example.com"]}]',
    quiet_start => ((now() AT TIME ZONE 'Europe/Rome') + interval '2 hours')::time,
    quiet_end => ((now() AT TIME ZONE 'Europe/Rome') + interval '3 hours')::time) > 0 AS rule;
BEGIN;
SELECT aura.emit_event(701, 'quiet.test', '{}') > 0 AS emitted;
SELECT recipient, next_attempt_at - now() BETWEEN interval '59 minutes' AND interval '61 minutes' AS held_one_hour,
       next_attempt_at <= now() AS now
  FROM aura.notifications WHERE event_type = 'quiet.test' ORDER BY recipient;
ROLLBACK;

-- filters: insight domains and types, minimum impact and value (an event without them never passes)
SELECT aura.set_notification_rule('r_bad', '{insight.*}', '[{"channel": "app"}]', insight_domains => '{Sales}');
SELECT aura.set_notification_rule('r_bad', '{insight.*}', '[{"channel": "app"}]', insight_types => ARRAY[NULL]::text[]);
SELECT aura.set_notification_rule('r_bad', '{insight.*}', '[{"channel": "app"}]', insight_domains => NULL);
SELECT aura.set_notification_rule('r_bad', '{insight.*}', '[{"channel": "app"}]', min_impact => -1);
SELECT aura.set_notification_rule('r_bad', '{insight.*}', '[{"channel": "app"}]', min_value => 1e13);
SELECT aura.set_notification_rule('big sales', '{insight.*}', '[{"channel": "app", "recipients": ["77"]}]',
    insight_domains => '{sales}', insight_types => '{anomaly,trend}', min_impact => 50, min_value => 100) > 0 AS rule;
SELECT insight_domains, insight_types, min_impact, min_value FROM aura.notification_rules WHERE name = 'big sales';
SELECT aura.emit_event(701, 'insight.created', jsonb_build_object('title', t, 'domain', d, 'type', ty) || x) > 0 AS emitted
  FROM (VALUES ('match', 'sales', 'anomaly', '{"impact": 60, "value": 150}'::jsonb),
               ('other domain', 'labor', 'anomaly', '{"impact": 60, "value": 150}'),
               ('other type', 'sales', 'forecast', '{"impact": 60, "value": 150}'),
               ('low impact', 'sales', 'anomaly', '{"impact": 49.99, "value": 150}'),
               ('low value', 'sales', 'trend', '{"impact": 60, "value": 99.99}'),
               ('no impact', 'sales', 'trend', '{"value": 150}'),
               ('impact as text', 'sales', 'trend', '{"impact": "60", "value": 150}'),
               ('insight field names', 'sales', 'trend', '{"impact_score": 80, "estimated_value": 500}')) v(t, d, ty, x);
SELECT title FROM aura.inbox WHERE restaurant_id = 701 AND user_id = 77 ORDER BY id;
-- events of the other modules reach emit_event in their own transaction (the
-- ledger and insights call aura.emit_event; a rollback sends nothing)
SELECT aura.set_notification_rule('tiers', '{tier.changed}', '[{"channel": "app", "recipients": ["78"]}]') > 0 AS rule;
BEGIN;
SELECT aura.emit_event(701, 'insight.created', '{"insight_id": -1, "title": "From insights", "domain": "sales", "type": "trend", "impact": 70, "value": 300}') > 0 AS insight_event;
SELECT aura.emit_event(701, 'tier.changed', '{"title": "Gold reached"}') > 0 AS loyalty_event;
SELECT user_id, title FROM aura.inbox WHERE restaurant_id = 701 AND user_id IN (77, 78) AND title NOT IN ('match', 'insight field names') ORDER BY id;
SELECT count(*) AS webhook_messages FROM aura.notifications WHERE restaurant_id = 701 AND event_type = 'tier.changed' AND channel = 'webhook';
ROLLBACK;
SELECT count(*) AS after_rollback FROM aura.inbox WHERE restaurant_id = 701 AND user_id = 78;

-- rendering of the channels (what the dispatcher sends)
SELECT jsonb_pretty(aura._slack_blocks('insight.created', '{"title": "Sales up", "severity": "high", "description": "Lunch +20%",
        "impact": "high", "value": "1200 EUR", "recommendations": ["a", "b", "c", "d", "e", "f"], "url": "https://aura.example/i/1"}'));
SELECT aura._form_encode('+1 555/ü&=') AS form;
SELECT split_part(aura._email_message('aura@example.com', 'ops@example.com', 'msg_1', 'insight.created',
        '{"title": "Sales <up>", "severity": "critical"}'), E'\r\n', 3) AS subject_header;
SELECT convert_from(decode(substring(split_part(aura._email_message('a@b.c', 'o@b.c', 'm', 'x.y', '{"title": "Grüße", "severity": "high"}'),
        E'\r\n', 3) from '=\?UTF-8\?B\?(.*)\?='), 'base64'), 'UTF8') AS decoded_subject;

-- the delivery log is append-only
INSERT INTO aura.delivery_log (restaurant_id, notification_id, msg_id, attempt, outcome) VALUES (701, 1, 'msg_x', 1, 'failed');
UPDATE aura.delivery_log SET error = 'x' WHERE msg_id = 'msg_x';
DELETE FROM aura.delivery_log WHERE msg_id = 'msg_x';

-- retention: old delivered/dead messages and old log rows go; recent ones stay
BEGIN;
INSERT INTO aura.notifications (restaurant_id, msg_id, event_type, channel, payload, status, created_at)
VALUES (701, 'msg_old_1', 'old.event', 'webhook', '{}', 'delivered', now() - interval '40 days'),
       (701, 'msg_old_2', 'old.event', 'webhook', '{}', 'dead', now() - interval '40 days'),
       (701, 'msg_old_3', 'old.event', 'webhook', '{}', 'failed', now() - interval '40 days');
INSERT INTO aura.delivery_log (restaurant_id, notification_id, msg_id, attempt, outcome, at)
VALUES (701, 1, 'msg_old_1', 1, 'delivered', now() - interval '40 days');
SELECT aura.cleanup_notifications() AS removed;
SELECT msg_id, status FROM aura.notifications WHERE event_type = 'old.event';
SELECT count(*) AS recent_log_kept FROM aura.delivery_log WHERE msg_id = 'msg_x';
COMMIT;
DELETE FROM aura.notifications WHERE event_type = 'old.event';

-- retry_dead and test_webhook
SELECT aura.retry_dead(NULL);
SELECT aura.retry_dead(ARRAY(SELECT id FROM aura.notifications WHERE restaurant_id = 701 AND status = 'dead'
                                AND last_error LIKE 'rule "missing"%')) AS requeued;
SELECT aura.test_webhook(999999);
SELECT aura.test_webhook(:hook) > 0 AS ping_queued;

-- roles: managers see no secret column, staff no channels; other tenants nothing
SET ROLE regress_n_manager;
SELECT aura.set_context(702);
SELECT count(*) AS other_tenant_hooks FROM aura.webhooks;
SELECT secret FROM aura.webhooks;
SELECT aura.emit_event(701, 'reward.issued', '{}');
SELECT aura.retry_dead(ARRAY(SELECT generate_series(1, 100)::bigint)) AS nothing_of_others;
SELECT id > 0 AS own_hook FROM aura.create_webhook('mine', 'https://example.net/h');
RESET ROLE;
SET ROLE regress_n_staff;
SELECT aura.set_context(702);
SELECT count(*) FROM aura.notification_channels;
SELECT * FROM aura.create_webhook('staff', 'https://example.net/h');
SELECT aura.emit_event(702, 'reward.issued', '{}') > 0 AS staff_can_emit;
RESET ROLE;
SET ROLE regress_n_manager;
SELECT aura.reseal_notification_secrets();
RESET ROLE;
SELECT aura.clear_context();

-- jobs: admins reschedule, but cannot make the (superuser) dispatcher call other functions
CREATE ROLE regress_n_admin IN ROLE aura_admin;
SET ROLE regress_n_admin;
INSERT INTO aura.jobs (name, fn, every) VALUES ('evil', 'pg_catalog.pg_reload_conf', '1 second');
UPDATE aura.jobs SET fn = 'pg_catalog.pg_reload_conf' WHERE name = 'notification_digests';
UPDATE aura.jobs SET every = '2 minutes' WHERE name = 'notification_digests';
UPDATE aura.jobs SET every = '1 minute' WHERE name = 'notification_digests';
RESET ROLE;
DROP ROLE regress_n_admin;

-- dispatcher interface
SELECT count(*) = 1 AS one_row FROM aura.worker_status();
-- worker_status: a tenant sees the figures of its own messages only, admins the server's
INSERT INTO aura.delivery_log (restaurant_id, notification_id, msg_id, attempt, outcome)
VALUES (701, 1, 'msg_ws_1', 1, 'delivered'), (701, 2, 'msg_ws_2', 1, 'failed'),
       (702, 3, 'msg_ws_3', 1, 'delivered'), (702, 4, 'msg_ws_4', 1, 'delivered'), (702, 5, 'msg_ws_5', 1, 'dead');
INSERT INTO aura.notifications (restaurant_id, msg_id, event_type, channel, payload, status, next_attempt_at)
VALUES (701, 'msg_ws_q1', 'ws.event', 'webhook', '{}', 'queued', 'infinity'),
       (702, 'msg_ws_q2', 'ws.event', 'webhook', '{}', 'queued', 'infinity'),
       (702, 'msg_ws_q3', 'ws.event', 'webhook', '{}', 'dead', 'infinity');
SET ROLE regress_n_manager;
SELECT aura.set_context(701);
SELECT queue_depth, in_flight, sent, failed, dead, loops, last_error FROM aura.worker_status();
SELECT aura.set_context(702);
SELECT queue_depth, in_flight, sent, failed, dead, loops, last_error FROM aura.worker_status();
SELECT aura.clear_context();
SELECT queue_depth, sent, failed, dead FROM aura.worker_status();
RESET ROLE;
-- an admin: server-wide counters (the paused dispatcher has sent nothing)
SELECT queue_depth >= 7 AS all_tenants, sent, failed FROM aura.worker_status();
DELETE FROM aura.notifications WHERE event_type = 'ws.event';
SELECT name, fn, every FROM aura.jobs ORDER BY name;
SELECT name, ok FROM aura.deployment_check() WHERE name IN ('notification_channels', 'webhook_endpoints');

DELETE FROM aura.notifications WHERE restaurant_id IN (701, 702);
DROP ROLE regress_n_manager, regress_n_staff;
