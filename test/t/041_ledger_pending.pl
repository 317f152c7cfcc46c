# loyalty.pending_days: earned points stay pending, cannot be spent until
# their availability date, then become spendable.  (A TAP test because the
# settings regress test lists this key's history across restaurants.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ledger_pending');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'aura'\naura.database = 'postgres'\n");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name) VALUES (1, 'Pending'), (2, 'Immediate');
    SELECT aura.set_setting('loyalty.pending_days', '14', 'restaurant', 1);
    SELECT aura.earn_points(1, 7, 300);
    SELECT aura.earn_points(2, 7, 300);
});
is($node->safe_psql('postgres', 'SELECT balance || \'/\' || pending FROM aura.loyalty_accounts WHERE restaurant_id = 1'),
    '300/300', 'earned points are pending for 14 days');
is($node->safe_psql('postgres',
    "SELECT round(extract(epoch FROM l.available_at - t.created_at) / 86400) FROM aura.points_lots l JOIN aura.points_transactions t ON t.restaurant_id = l.restaurant_id AND t.id = l.transaction_id WHERE l.restaurant_id = 1"),
    '14', 'the lot becomes available in 14 days');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT aura.spend_points(1, 7, 1)');
like($err, qr/insufficient points.*\n.*0 points available \(balance 300, 300 pending\)/,
    'pending points cannot be spent, and the error says why');
is($node->safe_psql('postgres', "SELECT aura.customer_loyalty(1, 7) ->> 'available'"), '0',
    'customer_loyalty shows nothing available yet');
is($node->safe_psql('postgres', 'SELECT aura.spend_points(2, 7, 1) > 0'), 't',
    'another restaurant (pending_days 0) spends at once');

# a negative adjustment may take pending points
$node->safe_psql('postgres', 'SELECT aura.adjust_points(1, 7, -100)');
is($node->safe_psql('postgres', 'SELECT balance || \'/\' || pending FROM aura.loyalty_accounts WHERE restaurant_id = 1'),
    '200/200', 'an adjustment takes pending points');

# time passes: the lot's availability date is reached (moved back by hand)
$node->safe_psql('postgres', "UPDATE aura.points_lots SET available_at = now() - interval '1 day' WHERE restaurant_id = 1");
is($node->safe_psql('postgres', 'SELECT aura.spend_points(1, 7, 150) > 0'), 't', 'matured points can be spent');
is($node->safe_psql('postgres', 'SELECT balance || \'/\' || pending FROM aura.loyalty_accounts WHERE restaurant_id = 1'),
    '50/0', 'the pending figure follows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM aura.verify_ledger(1)'), '0', 'the ledger is sound');

# a bulk insert of orders (the statement trigger): every earning pending, the
# account's pending figure follows each posting of the statement
$node->safe_psql('postgres', q{
    CREATE TABLE orders (id int PRIMARY KEY, r int, c int, amount numeric, status text);
    SELECT aura.attach_orders('orders', 'r', 'c', 'amount', 'status', 'id');
    INSERT INTO orders VALUES (1, 1, 7, 10, 'completed'), (2, 1, 8, 20, 'completed'), (3, 1, 7, 30, 'completed');
});
is($node->safe_psql('postgres',
    "SELECT string_agg(customer_id || ':' || balance || '/' || pending, ' ' ORDER BY customer_id) FROM aura.loyalty_accounts WHERE restaurant_id = 1"),
    '7:90/40 8:20/20', 'bulk order earnings are pending');
($rc, $out, $err) = $node->psql('postgres', 'SELECT aura.spend_points(1, 7, 51)');
like($err, qr/50 points available \(balance 90, 40 pending\)/, 'only the matured points can be spent');
is($node->safe_psql('postgres', 'SELECT count(*) FROM aura.verify_ledger(1)'), '0', 'the ledger is still sound');
$node->stop;
done_testing();
