# Loyalty events reach the notifications module: a tier upgrade made by the
# order trigger (a session without tenant context) is emitted through
# aura.emit_event and queues a message for the restaurant's webhook, while
# the loyalty event log keeps it too.  (A TAP test: webhook ids in the shared
# regression database belong to the notifications test.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ledger_events');
$node->init;
$node->append_conf('postgresql.conf',
    "shared_preload_libraries = 'aura'\naura.database = 'postgres'\naura.encryption_key_command = 'echo tapledger:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'\n");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name) VALUES (1, 'Events'), (2, 'Quiet');
    SELECT aura.set_context(1);
    SELECT id FROM aura.create_webhook('loyalty', 'https://hooks.example.com/loyalty', '{tier.changed}');
    SELECT aura.clear_context();
    CREATE TABLE orders (id int PRIMARY KEY, restaurant_id int, customer_id int, total numeric, status text);
    SELECT aura.attach_orders('orders', 'restaurant_id', 'customer_id', 'total', 'status', 'id');
    CREATE ROLE app LOGIN;
    GRANT INSERT, UPDATE, SELECT ON orders TO app;
});
# the application role has no aura role and no context at all
$node->safe_psql('postgres', q{
    INSERT INTO orders VALUES (1, 1, 7, 2500, 'completed'), (2, 2, 7, 2500, 'completed');
}, extra_params => ['-U', 'app']);

is($node->safe_psql('postgres', "SELECT tier FROM aura.loyalty_accounts WHERE restaurant_id = 1 AND customer_id = 7"),
    'Silver', 'the order made the customer Silver');
is($node->safe_psql('postgres',
    "SELECT event_type || ' ' || channel || ' ' || (payload -> 'data' ->> 'new_tier') FROM aura.notifications WHERE restaurant_id = 1"),
    'tier.changed webhook Silver', 'tier.changed went to the webhook through aura.emit_event');
is($node->safe_psql('postgres', "SELECT count(*) FROM aura.notifications WHERE restaurant_id = 2"),
    '0', 'a restaurant without subscription gets no message');
is($node->safe_psql('postgres', "SELECT count(*) FROM aura.loyalty_events WHERE event_type = 'tier.changed'"),
    '2', 'the loyalty event log has both upgrades');
# in the same session: an upgrade to Gold emits again, and the context set
# for that call is gone afterwards
is($node->safe_psql('postgres', q{
    BEGIN;
    INSERT INTO orders VALUES (3, 1, 7, 3000, 'completed');
    SELECT coalesce(current_setting('aura.restaurant_id', true), '') || '|';
    COMMIT;}, extra_params => ['-U', 'app']),
    '|', 'the context set for emit_event does not leak into the session');
is($node->safe_psql('postgres', "SELECT count(*) FROM aura.notifications WHERE restaurant_id = 1"),
    '2', 'the Gold upgrade was emitted too');
$node->stop;
done_testing();
