-- 71 rewards jobs: the rewards module's periodic work, run by the dispatcher
-- (aura.jobs comes with part 70).  Reference: docs/rewards.md.
INSERT INTO aura.jobs (name, fn, every) VALUES
    ('reward_expiry',        'aura.expire_rewards',           '5 minutes'),
    ('reward_expiring',      'aura.notify_expiring_rewards',  '1 hour'),
    ('reward_campaigns',     'aura.run_due_campaigns',        '5 minutes'),
    ('reward_scheduled',     'aura.issue_scheduled_rewards',  '5 minutes'),
    ('reward_analytics',     'aura.refresh_reward_analytics', '5 minutes'),
    ('reward_anniversaries', 'aura.award_anniversaries',      '1 day');
