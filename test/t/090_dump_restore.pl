# Dump and restore across all modules: a database filled through the public
# functions of every module (settings with a secret, API keys, flags, the
# ledger with an attached orders table, insights, notifications) is dumped
# with pg_dump and restored into a fresh cluster with the same key material;
# every aura table has the same rows, the ledger verifies, secrets still
# decrypt and API keys still verify.
#
# Neither cluster preloads aura: no dispatcher or job runner changes rows
# between the two snapshots being compared (keys are then read on first use,
# as documented).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AuraNode;

# both clusters: the same key files (aura not preloaded, see above)
sub new_node
{
	my $node = keyed_node($_[0], master => '00' x 16 . '22' x 16, api_secret => 'ab' x 32);
	$node->start;
	return $node;
}

my $src = new_node('dump_src');
$src->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name, timezone) VALUES (1, 'Trattoria', 'Europe/Rome'), (2, 'Harbor', 'UTC');
    INSERT INTO aura.locations (restaurant_id, id, name) VALUES (1, 11, 'Centro'), (2, 21, 'Pier');
    -- settings: values at several scopes, a secret, a custom definition, a version
    INSERT INTO aura.setting_definitions (key, category, type, default_value, description)
    VALUES ('custom.dump_test', 'operations', 'integer', '7', 'kept by pg_dump');
    SELECT aura.set_setting('custom.dump_test', '8', 'restaurant', 1);
    SELECT aura.set_setting('general.locale', '"it-IT"', 'restaurant', 1);
    SELECT aura.set_setting('notifications.email.password', '"pw-r1"', 'restaurant', 1);
    SELECT aura.snapshot_settings('restaurant', 1, 'before dump');
    -- flags: a global one and a restaurant's own
    SELECT aura.flag_put_simple('menu.new', enabled => true, rollout_percentage => 30);
    SELECT aura.flag_put_simple('menu.beta', enabled => true, restaurant_id => 1, enabled_users => '{u1}');
    -- ledger: an application orders table attached; direct postings and a transfer
    CREATE TABLE public.orders (id bigserial PRIMARY KEY, restaurant bigint NOT NULL, customer bigint,
                                total numeric(10,2), state text NOT NULL DEFAULT 'open');
    SELECT aura.attach_orders('public.orders', 'restaurant', 'customer', 'total', 'state', 'id');
    INSERT INTO public.orders (restaurant, customer, total, state)
    SELECT 1 + g % 2, 100 + g % 7, 10 + g, 'completed' FROM generate_series(1, 40) g;
    UPDATE public.orders SET state = 'refunded' WHERE id % 10 = 0;
    SELECT aura.earn_points(1, 500, 120, 'welcome', 'dump-earn-1');
    SELECT aura.spend_points(1, 500, 20, 'coffee', 'dump-spend-1');
    SELECT aura.transfer_points(1, 500, 501, 30, 'dump-transfer-1');
    -- insights
    SELECT aura.record_insight(1, 'sales', 'anomaly', 'high', 'Sales drop at Centro', '{"location_id": 11}');
    SELECT aura.record_insight(2, 'loyalty', 'warning', 'medium', 'Regulars missing', '{}');
    -- rewards: the catalog, issued (one costing points), redeemed, cancelled, a campaign, analytics
    SELECT aura.install_default_rewards(1);
    INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, points_cost)
    VALUES (1, 'dump-coffee', 'points_discount', 'Coffee', 3.50, 10);
    SELECT aura.issue_reward(1, 500, aura.template_id(1, 'dump-coffee'), 'manual', NULL, 'dump-reward-1');
    SELECT aura.redeem_reward(code, 'dump-order-1', 40, 500) FROM aura.issue_reward(1, 500, aura.template_id(1, 'birthday'));
    SELECT aura.redeem_reward(code, 'dump-order-2', 40, 501) FROM aura.issue_reward(1, 501, aura.template_id(1, 'referral'));
    SELECT aura.cancel_reward_redemption(1, 'dump-order-2', 'dump test');
    INSERT INTO aura.reward_campaigns (restaurant_id, name, template_id, target)
    VALUES (1, 'dump campaign', aura.template_id(1, 'referral'), '{"customer_ids": [500, 501]}');
    SELECT aura.refresh_reward_analytics();
});
# API keys and notifications need a restaurant in context
my $key1 = $src->safe_psql('postgres', q{SELECT aura.create_api_key(1, 'pos', ARRAY['loyalty:*'])});
my $key2 = $src->safe_psql('postgres', q{SELECT aura.create_api_key(2, 'office', ARRAY['settings:read'])});
$src->safe_psql('postgres', q{
    SELECT aura.set_context(1);
    SELECT aura.set_notification_channel('mail', 'email',
        '{"host": "smtp.example.com", "port": 587, "from": "aura@example.com"}', 'smtp-pw');
    SELECT aura.create_webhook('orders', 'https://hooks.example.com/aura', '{reward.*}');
    SELECT aura.emit_event(1, 'reward.issued', '{"points": 50}');
});

# rows the extension ships itself come back from CREATE EXTENSION with new
# timestamps: compare those tables without their timestamp columns
my $shipped_sql = q{
    SELECT string_agg(format('%s %s', c.relname, n.hash), E'\n' ORDER BY c.relname)
      FROM pg_class c
     CROSS JOIN LATERAL (SELECT (xpath('/row/h/text()', query_to_xml(format(
            'SELECT md5(coalesce(string_agg(r, E''\n'' ORDER BY r), '''')) AS h FROM (SELECT ROW(%s)::text AS r FROM aura.%I) s',
            (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
              WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND atttypid <> 'timestamptz'::regtype),
            c.relname), false, true, '')))[1]::text AS hash) n
     WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind = 'r'};

my %b = %{ aura_tables_snapshot($src, 'postgres') };
my $before_shipped = $src->safe_psql('postgres', $shipped_sql);
my $ledger_before = $src->safe_psql('postgres',
	q{SELECT count(*) FROM aura.points_transactions});
ok($ledger_before > 40, "source: the order trigger and postings wrote $ledger_before ledger rows");

my $dump = $src->basedir . '/all.dump';
$src->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $src->connstr('postgres')], 'pg_dump');

my $dst = new_node('dump_dst');
$dst->safe_psql('postgres', 'CREATE DATABASE restored');
$dst->command_ok(['pg_restore', '--exit-on-error', '-d', $dst->connstr('restored'), $dump], 'pg_restore into a fresh cluster');

my %a = %{ aura_tables_snapshot($dst, 'restored') };
my $after_shipped = $dst->safe_psql('restored', $shipped_sql);
my %bs = map { (split / /)[0] => $_ } split /\n/, $before_shipped;
my %as = map { (split / /)[0] => $_ } split /\n/, $after_shipped;
is(join(' ', sort keys %a), join(' ', sort keys %b), 'the same aura tables');
my @differ;
for my $t (sort keys %b) {
	next if defined $a{$t} && $a{$t} eq $b{$t};
	# shipped rows: equal apart from their timestamps
	next if defined $as{$t} && $as{$t} eq $bs{$t}
		&& $t =~ /^(configuration_templates|insight_detectors|jobs|setting_definitions|setting_groups|deployment_items)$/;
	push @differ, "$t (before: $b{$t}; after: " . ($a{$t} // 'missing') . ')';
}
is(join("\n", @differ), '', 'every aura table has the same rows and content ('
	. scalar(keys %b) . ' tables compared)');
my @filled = grep { (split / /, $b{$_})[1] > 0 } keys %b;
ok(scalar(@filled) >= 20, scalar(@filled) . ' of the compared tables hold rows');

is($dst->safe_psql('restored', q{
    SELECT count(*) FROM aura.restaurants r, LATERAL aura.verify_ledger(r.id)}),
	'0', 'verify_ledger finds no problem in any restaurant');
is($dst->safe_psql('restored', q{SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 1)}),
	'pw-r1', 'the secret setting still decrypts with the same master key');
is($dst->safe_psql('restored', qq{SELECT restaurant_id || ' ' || array_to_string(scopes, ',') FROM aura.verify_api_key('$key1')}),
	'1 loyalty:*', 'API key of restaurant 1 still verifies');
is($dst->safe_psql('restored', qq{SELECT restaurant_id FROM aura.verify_api_key('$key2', 'settings:read')}),
	'2', 'API key of restaurant 2 still verifies with its scope');
is($dst->safe_psql('restored', q{
    SELECT aura._decrypt_secret(secret, restaurant_id)
      FROM aura.notification_channels WHERE restaurant_id = 1 AND name = 'mail'}),
	'smtp-pw', 'the notification channel secret (sealed) still decrypts with the same master key');
is($dst->safe_psql('restored', q{SELECT aura.get_setting_int('custom.dump_test', 1)}), '8',
	'custom setting definition and value restored');
is($dst->safe_psql('restored', q{SET aura.restaurant_id = 1; SELECT aura.flag_enabled('menu.beta', '{"userId": "u1"}')}),
	't', 'flags evaluate after the restore');
is($dst->safe_psql('restored', q{
    SET aura.restaurant_id = 1;
    SELECT string_agg(aura.validate_reward(code, 40, customer_id) ->> 'valid', ',' ORDER BY id)
      FROM aura.rewards WHERE restaurant_id = 1}),
	'true,false,true', 'rewards still validate after the restore (the redeemed one is refused)');
# writes go on where they stopped: identity sequences were dumped too
is($dst->safe_psql('restored', q{
    INSERT INTO public.orders (restaurant, customer, total, state) VALUES (1, 100, 50, 'completed');
    SELECT count(*) FROM aura.restaurants r, LATERAL aura.verify_ledger(r.id)}),
	'0', 'the order trigger still posts after the restore and the ledger still verifies');
cmp_ok($dst->safe_psql('restored', q{SELECT count(*) FROM aura.points_transactions}), '>', $ledger_before,
	'a new ledger row was posted');

done_testing();
