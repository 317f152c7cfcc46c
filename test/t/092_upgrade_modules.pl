# Upgrade from the oldest release with every module: aura 0.1 is installed
# and filled (restaurants, locations, tenant context), updated with ALTER
# EXTENSION aura UPDATE, and then the data of 0.1 is intact and every module
# added since works on the updated database (settings with a secret, API
# keys, flags, the ledger with an attached orders table, insights,
# notifications, the deployment checklist).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AuraNode;

my $node = keyed_node('upgrade_modules', master => '00' x 16 . '33' x 16, api_secret => 'cd' x 32, preload => 1);
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION aura VERSION '0.1' CASCADE;
    INSERT INTO aura.restaurants (id, name, timezone) VALUES (1, 'Trattoria', 'Europe/Rome'), (2, 'Harbor', 'UTC');
    INSERT INTO aura.locations (restaurant_id, id, name) VALUES (1, 11, 'Centro'), (1, 12, 'Porto'), (2, 21, 'Pier');
    CREATE ROLE upg_manager LOGIN IN ROLE aura_manager;
});
my $rows_01 = $node->safe_psql('postgres',
	q{SELECT string_agg(format('%s/%s/%s', restaurant_id, id, name), ' ' ORDER BY id) FROM aura.locations});
my $items_01 = $node->safe_psql('postgres', q{SELECT count(*) FROM aura.deployment_items});

$node->safe_psql('postgres', 'ALTER EXTENSION aura UPDATE');
my $newest = $node->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'aura'");
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'aura'"), $newest,
	"updated from 0.1 to $newest");
is($node->safe_psql('postgres',
	q{SELECT string_agg(format('%s/%s/%s', restaurant_id, id, name), ' ' ORDER BY id) FROM aura.locations}),
	$rows_01, 'locations of 0.1 intact');
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM aura.deployment_items}), '>=', $items_01,
	'deployment items kept');
is($node->safe_psql('postgres', q{SELECT ok FROM aura.deployment_check() WHERE name = 'extension_version'}),
	't', 'library and SQL agree after the update');

# row-level security of 0.1 data still applies to a manager after the update
is($node->safe_psql('postgres', q{SET ROLE upg_manager; SET aura.restaurant_id = 1;
    SELECT string_agg(name, ',' ORDER BY id) FROM aura.locations}), 'Centro,Porto',
	'a manager of restaurant 1 sees only its locations');

# settings
$node->safe_psql('postgres', q{
    SELECT aura.set_setting('general.locale', '"it-IT"', 'restaurant', 1);
    SELECT aura.set_setting('notifications.email.password', '"pw-upg"', 'restaurant', 1);
});
is($node->safe_psql('postgres', q{SELECT aura.get_setting_text('general.locale', 1),
    aura.reveal_secret('notifications.email.password', 'restaurant', 1)}), 'it-IT|pw-upg',
	'settings: a value and a secret on the updated database');

# API keys
my $key = $node->safe_psql('postgres', q{SELECT aura.create_api_key(1, 'pos', ARRAY['loyalty:*'])});
is($node->safe_psql('postgres', qq{SELECT restaurant_id FROM aura.verify_api_key('$key', 'loyalty:earn')}), '1',
	'API keys: created and verified');

# flags
$node->safe_psql('postgres', q{SELECT aura.flag_put_simple('menu.beta', enabled => true, restaurant_id => 1, enabled_users => '{u1}')});
is($node->safe_psql('postgres', q{SET aura.restaurant_id = 1;
    SELECT aura.flag_enabled('menu.beta', '{"userId": "u1"}'), aura.flag_enabled('menu.beta', '{"userId": "u2"}')}),
	't|f', 'flags: evaluated on the updated database');

# ledger with an attached orders table
$node->safe_psql('postgres', q{
    CREATE TABLE public.orders (id bigserial PRIMARY KEY, restaurant bigint NOT NULL, customer bigint,
                                total numeric(10,2), state text NOT NULL DEFAULT 'open');
    SELECT aura.attach_orders('public.orders', 'restaurant', 'customer', 'total', 'state', 'id');
    INSERT INTO public.orders (restaurant, customer, total, state)
    SELECT 1, 100 + g % 3, 20, 'completed' FROM generate_series(1, 9) g;
    SELECT aura.earn_points(2, 900, 50, 'welcome', 'upg-earn');
    SELECT aura.spend_points(2, 900, 20, 'coffee', 'upg-spend');
});
is($node->safe_psql('postgres', q{SELECT count(DISTINCT customer_id) FROM aura.points_transactions WHERE restaurant_id = 1 AND source = 'order'}),
	'3', 'ledger: the order trigger posted for each customer');
is($node->safe_psql('postgres', q{SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 2 AND customer_id = 900}),
	'30', 'ledger: earn and spend');
is($node->safe_psql('postgres', q{SELECT count(*) FROM aura.restaurants r, LATERAL aura.verify_ledger(r.id)}),
	'0', 'ledger: verify_ledger finds no problem');

# insights
my $ins = $node->safe_psql('postgres',
	q{SELECT aura.record_insight(1, 'sales', 'anomaly', 'high', 'Sales drop at Centro', '{"location_id": 11}')});
ok($ins > 0, 'insights: recorded on a location created under 0.1');

# notifications
$node->safe_psql('postgres', q{
    SET aura.restaurant_id = 1;
    SELECT aura.create_webhook('orders', 'https://hooks.example.com/aura', '{reward.*}');
    SELECT aura.emit_event(1, 'reward.issued', '{"points": 50}');
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM aura.notifications WHERE restaurant_id = 1 AND event_type = 'reward.issued'}),
	'1', 'notifications: an event queued for the webhook');

# the checklist has a row per item and none errors out
is($node->safe_psql('postgres', q{SELECT count(*) = (SELECT count(*) FROM aura.deployment_items) FROM aura.deployment_check()}),
	't', 'deployment_check answers every item');

done_testing();
