-- demo/day_channels.sql (included by demo/90_day.sql for each restaurant :r):
-- a Slack channel and an email channel on the local sinks, a rule for insights, a webhook for tier changes
SELECT aura.set_context(:r) \g /dev/null
SELECT aura.set_notification_channel('group-slack', 'slack', '{}', :'sink_url' || '/slack/T000/B000/R' || :r) \g /dev/null
SELECT aura.set_notification_channel('group-email', 'email',
    jsonb_build_object('host', '127.0.0.1', 'port', :smtp_port, 'tls', 'none', 'from', 'aura@' || :'domain')) \g /dev/null
SELECT aura.set_notification_rule('insights to the managers', '{insight.*}',
    jsonb_build_array(jsonb_build_object('channel', 'group-slack'),
                      jsonb_build_object('channel', 'group-email', 'recipients', jsonb_build_array('manager@' || :'domain'))),
    min_severity => 'medium') \g /dev/null
SELECT id AS hook, secret AS hook_secret
  FROM aura.create_webhook('crm-tiers', :'sink_url' || '/hooks/crm/' || :r, '{tier.changed}') \gset
SELECT aura.clear_context() \g /dev/null
