-- feature flags: Unleash-compatible evaluation in the database
\echo
\echo 'a flag for every restaurant: the new menu, rolled out to 30% of users, on the web and POS apps only'
SELECT aura.flag_put($${"name": "new-menu", "type": "release", "enabled": true,
  "description": "The redesigned menu",
  "strategies": [{"name": "flexibleRollout",
                  "parameters": {"rollout": "30", "stickiness": "userId", "groupId": "new-menu"},
                  "constraints": [{"contextName": "appName", "operator": "IN", "values": ["web", "pos"]}]}],
  "variants": [{"name": "photos", "weight": 50, "payload": {"type": "string", "value": "big photos"}},
               {"name": "compact", "weight": 50, "payload": {"type": "string", "value": "dense list"}}]}$$) AS flag_id;
\echo '1,000 users asking from the web app: about 300 get it, always the same ones (Unleash hashing)'
SELECT aura.flag_enabled('new-menu', jsonb_build_object('userId', u::text, 'appName', 'web')) AS enabled,
       count(*) AS users
  FROM generate_series(1, 1000) u GROUP BY 1 ORDER BY 1;
\echo 'the first twelve users: bucket (1..100), on when bucket <= 30, and their variant'
SELECT u AS user_id, aura.flag_bucket('new-menu', u::text) AS bucket,
       aura.flag_enabled('new-menu', jsonb_build_object('userId', u::text, 'appName', 'web')) AS enabled,
       aura.flag_variant('new-menu', jsonb_build_object('userId', u::text, 'appName', 'web')) ->> 'name' AS variant
  FROM generate_series(1, 12) u;
\echo 'the kiosk app is not in the constraint, so nobody gets it there:'
SELECT count(*) FILTER (WHERE aura.flag_enabled('new-menu', jsonb_build_object('userId', u::text, 'appName', 'kiosk'))) AS kiosk_users_on
  FROM generate_series(1, 1000) u;
\echo 'why is it off for user 1, and on for user 2? aura.flag_explain says:'
SELECT u AS user_id, aura.flag_explain('new-menu', jsonb_build_object('userId', u::text, 'appName', 'web')) ->> 'reason' AS reason
  FROM generate_series(1, 2) u;

\echo
\echo 'Trattoria Aurora overrides the flag for itself: on for everybody, from a date'
SELECT id AS aurora FROM aura.restaurants WHERE name = 'Trattoria Aurora' \gset
SELECT aura.flag_put_simple('new-menu', enabled => true, restaurant_id => :aurora,
                            enabled_from => '2024-01-01') AS flag_id;
SELECT id AS harbor FROM aura.restaurants WHERE name = 'Harbor Grill' \gset
SELECT aura.set_context(:aurora) \g /dev/null
SELECT 'Trattoria Aurora' AS restaurant,
       count(*) FILTER (WHERE aura.flag_enabled('new-menu', jsonb_build_object('userId', u::text, 'appName', 'web'))) AS users_on_of_1000
  FROM generate_series(1, 1000) u;
SELECT aura.set_context(:harbor) \g /dev/null
SELECT 'Harbor Grill' AS restaurant,
       count(*) FILTER (WHERE aura.flag_enabled('new-menu', jsonb_build_object('userId', u::text, 'appName', 'web'))) AS users_on_of_1000
  FROM generate_series(1, 1000) u;
SELECT aura.clear_context() \g /dev/null

\echo
\echo 'a ramp: the rollout rises by itself at given times (no job), here seen at four dates'
SELECT aura.flag_put($${"name": "loyalty-v2", "enabled": true,
  "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "0", "stickiness": "userId", "groupId": "lv2"}}],
  "ramps": [{"startsAt": "2030-01-01T00:00:00Z", "rollout": 10}, {"startsAt": "2030-02-01T00:00:00Z", "rollout": 50},
            {"startsAt": "2030-03-01T00:00:00Z", "rollout": 100}]}$$) AS flag_id;
SELECT d AS "currentTime",
       count(*) FILTER (WHERE aura.flag_enabled('loyalty-v2', jsonb_build_object('userId', u::text, 'currentTime', d))) AS users_on_of_1000
  FROM unnest(ARRAY['2029-12-01', '2030-01-15', '2030-02-15', '2030-03-15']) d, generate_series(1, 1000) u
 GROUP BY d ORDER BY d;

\echo
\echo 'the same flags as an Unleash client-features document, which any Unleash SDK accepts:'
SELECT jsonb_pretty(f -> 'strategies') AS "new-menu strategies"
  FROM jsonb_array_elements(aura.export_unleash() -> 'features') f WHERE f ->> 'name' = 'new-menu';
\echo 'every change is in the history:'
SELECT flag_key, object, action, count(*) FROM aura.flag_history GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT name, ok, detail FROM aura.deployment_check() WHERE name = 'feature_flags';
