# pg_upgrade of a populated cluster with aura preloaded (docs/operations.md,
# "Upgrades"): pg_upgrade --check accepts it (no reg* columns it refuses),
# the upgrade carries every aura table over unchanged, the ledger verifies,
# secrets decrypt with the same key files, API keys verify, the order trigger
# and the dispatcher work on the new cluster.
#
# Old and new clusters use the same binaries (this machine has one major
# version); pg_upgrade's checks and its catalog transfer are the same.
use strict;
use warnings;
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AuraNode;

# both clusters: aura preloaded, the same key files
my %keys = (master => '00' x 16 . '33' x 16, api_secret => 'cd' x 32, preload => 1,
            conf => "aura.poll_interval = 200");
my $old = keyed_node('upgrade_old', %keys);
$old->start;
$old->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name, timezone) VALUES (1, 'Trattoria', 'Europe/Rome'), (2, 'Harbor', 'UTC');
    INSERT INTO aura.locations (restaurant_id, id, name) VALUES (1, 11, 'Centro'), (2, 21, 'Pier');
    SELECT aura.set_setting('general.locale', '"it-IT"', 'restaurant', 1);
    SELECT aura.set_setting('notifications.email.password', '"pw-upgrade"', 'restaurant', 1);
    SELECT aura.snapshot_settings('restaurant', 1, 'before upgrade');
    SELECT aura.flag_put_simple('menu.beta', enabled => true, restaurant_id => 1, enabled_users => '{u1}');
    CREATE TABLE public.orders (id bigserial PRIMARY KEY, restaurant bigint NOT NULL, customer bigint,
                                total numeric(10,2), state text NOT NULL DEFAULT 'open');
    SELECT aura.attach_orders('public.orders', 'restaurant', 'customer', 'total', 'state', 'id');
    INSERT INTO public.orders (restaurant, customer, total, state)
    SELECT 1 + g % 2, 100 + g % 7, 10 + g, 'completed' FROM generate_series(1, 40) g;
    UPDATE public.orders SET state = 'refunded' WHERE id % 10 = 0;
    SELECT aura.earn_points(1, 500, 120, 'welcome', 'upgrade-earn-1');
    SELECT aura.transfer_points(1, 500, 501, 30, 'upgrade-transfer-1');
    SELECT aura.record_insight(1, 'sales', 'anomaly', 'high', 'Sales drop at Centro', '{"location_id": 11}');
});
my $key1 = $old->safe_psql('postgres', q{SELECT aura.create_api_key(1, 'pos', ARRAY['loyalty:*'])});

# the dispatcher must not change rows between the snapshot and the upgrade
$old->safe_psql('postgres', q{UPDATE aura.jobs SET enabled = false});
$old->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'aura dispatcher'
                                     AND state = 'active'})
	or die 'dispatcher stays busy';

my $before = aura_tables_snapshot($old, 'postgres');
$old->stop;

my $new = keyed_node('upgrade_new', %keys);
my $bindir = $old->config_data('--bindir');
my $work = $new->basedir . '/pg_upgrade_work';
make_path($work);
my @upgrade = ("$bindir/pg_upgrade", '-b', $bindir, '-B', $bindir,
	'-d', $old->data_dir, '-D', $new->data_dir,
	'-p', PostgreSQL::Test::Cluster::get_free_port(), '-P', PostgreSQL::Test::Cluster::get_free_port(),
	'-s', $new->host);
{
	# pg_upgrade writes its logs into the current directory (PG 14) or the new data directory
	chdir $work or die "cannot chdir to $work: $!";
	command_ok([@upgrade, '--check'], 'pg_upgrade --check accepts a cluster with aura');
	command_ok(\@upgrade, 'pg_upgrade of a populated aura cluster');
}
$new->start;

my $after = aura_tables_snapshot($new, 'postgres');
my @differ = grep { ($after->{$_} // '') ne $before->{$_} } sort keys %$before;
is(join(', ', @differ), '', 'every aura table has the same rows (' . scalar(keys %$before) . ' tables compared)');

is($new->safe_psql('postgres', q{SELECT count(*) FROM aura.restaurants r, LATERAL aura.verify_ledger(r.id)}),
	'0', 'verify_ledger finds no problem');
is($new->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 1)}),
	'pw-upgrade', 'the secret setting decrypts with the same key file');
is($new->safe_psql('postgres', qq{SELECT restaurant_id FROM aura.verify_api_key('$key1')}),
	'1', 'the API key verifies');
is($new->safe_psql('postgres', q{SET aura.restaurant_id = 1; SELECT aura.flag_enabled('menu.beta', '{"userId": "u1"}')}),
	't', 'flags evaluate');
is($new->safe_psql('postgres', q{
    INSERT INTO public.orders (restaurant, customer, total, state) VALUES (1, 100, 50, 'completed');
    SELECT count(*) FROM aura.restaurants r, LATERAL aura.verify_ledger(r.id)}),
	'0', 'the order trigger posts on the new cluster');
is($new->safe_psql('postgres', q{SELECT string_agg(name, ',') FROM aura.deployment_check() WHERE detail LIKE 'check function%'}),
	'', 'deployment_check resolves every check function by name');

# the dispatcher runs jobs again, resolved by name
$new->safe_psql('postgres', q{UPDATE aura.jobs SET enabled = true, next_run_at = now() WHERE name = 'expire_points'});
ok($new->poll_query_until('postgres', q{SELECT last_ok FROM aura.jobs WHERE name = 'expire_points' AND runs > 0}),
	'the dispatcher runs a job on the upgraded cluster');

done_testing();
