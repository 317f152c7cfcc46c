# Rewards under crashes: 4 clients issue rewards that cost points, redeem
# rewards that credit points, reserve and release, cancel redemptions and
# validate, while a busy backend is killed with SIGKILL (the server restarts)
# and later the server stops in immediate mode.  A bulk issue of 20,000
# rewards is killed part-way, and a redemption is killed after its writes,
# before its COMMIT.  Afterwards nothing is half-written: every
# reward's points cost is in the ledger, every redeemed reward has its
# redemption row (and the points it credited), redemption and cancellation
# rows pair up with the rewards' states, the killed bulk issue left no reward
# and no job row, and aura.verify_ledger finds nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(sleep);

my $phase = 4;

my $node = PostgreSQL::Test::Cluster->new('rewards_crash');
$node->init;
$node->append_conf('postgresql.conf',
    "shared_preload_libraries = 'aura'\naura.database = 'postgres'\nrestart_after_crash = on\n");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name) VALUES (1, 'Crash');
    INSERT INTO aura.reward_templates (restaurant_id, key, type, title, value, points_cost)
    VALUES (1, 'coffee', 'points_discount', 'Coffee', 3.50, 50),
           (1, 'bonus', 'bonus_points', '+40 points', 40, 0),
           (1, 'bulk', 'fixed_discount', 'Bulk', 1, 0);
    SELECT aura.earn_points(1, c, 100000) FROM generate_series(1, 20) c;
    CREATE FUNCTION crash_op() RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        op int := floor(random() * 10);
        c bigint := 1 + floor(random() * 20);
        cd text;
    BEGIN
        PERFORM set_config('aura.restaurant_id', '1', true);
        IF op < 3 THEN
            PERFORM aura.issue_reward(1, c, aura.template_id(1, CASE WHEN random() < 0.5 THEN 'coffee' ELSE 'bonus' END));
        ELSIF op < 7 THEN
            SELECT code INTO cd FROM aura.rewards WHERE restaurant_id = 1 AND customer_id = c AND status = 'active'
             ORDER BY random() LIMIT 1;
            IF cd IS NOT NULL THEN
                IF op = 6 THEN
                    PERFORM aura.reserve_reward(cd, 'hold-' || c, '1 minute');
                    PERFORM aura.release_reward(cd, 'hold-' || c);
                ELSE
                    PERFORM aura.validate_reward(cd, 20, c);
                    PERFORM aura.redeem_reward(cd, 'order-' || cd, 20, c);
                END IF;
            END IF;
        ELSE
            SELECT redeemed_order_ref INTO cd FROM aura.rewards WHERE restaurant_id = 1 AND status = 'redeemed'
             ORDER BY random() LIMIT 1;
            IF cd IS NOT NULL THEN
                PERFORM aura.cancel_reward_redemption(1, cd, 'chaos');
            END IF;
        END IF;
    EXCEPTION WHEN object_not_in_prerequisite_state OR check_violation OR unique_violation OR deadlock_detected THEN
        NULL;   -- a race lost to another client: already redeemed, reserved, limits
    END
    $$;
});

my $script = "$PostgreSQL::Test::Utils::tmp_check/rewards_crash.sql";
open(my $fh, '>', $script) or die;
print $fh "SELECT crash_op();\n";
close $fh;

sub run_clients
{
    my ($secs) = @_;
    my ($out, $err) = ('', '');
    my $h = IPC::Run::start(
        ['pgbench', '-n', '-c', '4', '-j', '2', '-T', $secs, '-f', $script, '-d', $node->connstr('postgres')],
        '>', \$out, '2>', \$err);
    return ($h, \$out, \$err);
}

sub count_of
{
    return $node->safe_psql('postgres', $_[0]);
}

# phase 1: SIGKILL of a busy backend
my ($h, $out, $err) = run_clients($phase);
sleep($phase / 2);
my $victim = count_of(
    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%crash_op%' AND pid <> pg_backend_pid() LIMIT 1");
ok($victim =~ /^\d+$/, 'a client backend is busy with rewards');
kill 'KILL', $victim if $victim =~ /^\d+$/;
$h->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back after SIGKILL';
my $after_kill = count_of('SELECT count(*) FROM aura.rewards');
ok($after_kill > 0, "rewards survive the SIGKILL restart ($after_kill)");

# phase 2: immediate stop in the middle
($h, $out, $err) = run_clients($phase);
sleep($phase / 2);
$node->stop('immediate');
$h->finish;
$node->start;

# phase 3: load after recovery
($h, $out, $err) = run_clients($phase);
$h->finish;
like($$out, qr/number of transactions actually processed: [1-9]/, 'clients work after recovery');

# a bulk issue killed part-way leaves nothing
my ($bout, $berr) = ('', '');
my $bulk = IPC::Run::start(
    ['psql', '-X', '-d', $node->connstr('postgres'), '-c',
     q{SELECT aura.issue_rewards_bulk(aura.template_id(1, 'bulk'), array_agg(g), 1000)
         FROM generate_series(1000, 20999) g}],
    '>', \$bout, '2>', \$berr);
my $running = $node->poll_query_until('postgres', q{
    SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%issue_rewards_bulk%' AND pid <> pg_backend_pid()});
ok($running, 'the bulk issue is running');
sleep(1);
my $bulk_pid = count_of(
    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%issue_rewards_bulk%' AND pid <> pg_backend_pid() LIMIT 1");
ok($bulk_pid =~ /^\d+$/, 'the bulk issue is still running after a second');
kill 'KILL', $bulk_pid if $bulk_pid =~ /^\d+$/;
$bulk->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back after the bulk kill';
is(count_of(q{SELECT count(*) FROM aura.rewards WHERE restaurant_id = 1 AND template_id = aura.template_id(1, 'bulk')}),
    '0', 'the killed bulk issue left no reward');
is(count_of(q{SELECT count(*) FROM aura.reward_jobs WHERE restaurant_id = 1 AND kind = 'bulk'}),
    '0', 'and no job row');
is(count_of(q{SELECT issued_count FROM aura.reward_templates WHERE restaurant_id = 1 AND key = 'bulk'}),
    '0', 'and did not count any issue');

# a redemption killed between its writes and its commit leaves nothing
my $pending = count_of(q{
    SELECT code FROM aura.issue_reward(1, 7, aura.template_id(1, 'bonus'), 'manual', NULL, 'crash-pending')});
my $balance_before = count_of('SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 1 AND customer_id = 7');
my ($rout, $rerr) = ('', '');
my $redeem = IPC::Run::start(
    ['psql', '-X', '-d', $node->connstr('postgres'), '-c',
     "SET aura.restaurant_id = 1; BEGIN; SELECT aura.redeem_reward('$pending', 'order-pending', 20, 7); "
     . "SELECT pg_sleep(60); COMMIT;"],
    '>', \$rout, '2>', \$rerr);
ok($node->poll_query_until('postgres', q{
    SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%order-pending%' AND wait_event = 'PgSleep'}),
    'a redemption has written its rows and waits before COMMIT');
my $redeem_pid = count_of(
    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%order-pending%' AND pid <> pg_backend_pid() LIMIT 1");
kill 'KILL', $redeem_pid if $redeem_pid =~ /^\d+$/;
$redeem->finish;
$node->poll_query_until('postgres', 'SELECT true') or die 'server did not come back after the redeem kill';
is(count_of(qq{SELECT status FROM aura.rewards WHERE restaurant_id = 1 AND code = '$pending'}), 'active',
    'the killed redemption left the reward active');
is(count_of(q{SELECT count(*) FROM aura.reward_redemptions WHERE restaurant_id = 1 AND order_ref = 'order-pending'}),
    '0', 'and no redemption row');
is(count_of('SELECT balance FROM aura.loyalty_accounts WHERE restaurant_id = 1 AND customer_id = 7'), $balance_before,
    'and credited no points');
like(count_of(qq{SET aura.restaurant_id = 1; SELECT aura.redeem_reward('$pending', 'order-pending', 20, 7) ->> 'points_credited'}),
    qr/^40$/, 'the reward redeems afterwards');

# consistency after all of it
is(count_of('SELECT count(*) FROM aura.verify_ledger(1)'), '0', 'verify_ledger finds nothing');
is(count_of(q{
    SELECT count(*) FROM aura.rewards r
     WHERE r.points_cost > 0 AND NOT EXISTS (
        SELECT 1 FROM aura.points_transactions p WHERE p.restaurant_id = 1 AND p.id = r.points_tx
           AND p.points = -r.points_cost)}),
    '0', 'every reward that cost points has its ledger debit');
is(count_of(q{
    SELECT count(*) FROM aura.reward_templates t
     WHERE t.restaurant_id = 1
       AND t.issued_count <> (SELECT count(*) FROM aura.rewards r WHERE r.restaurant_id = 1 AND r.template_id = t.id)}),
    '0', 'issued counts match the rewards');
is(count_of(q{
    SELECT count(*) FROM aura.rewards r
     WHERE r.restaurant_id = 1
       AND (SELECT count(*) FILTER (WHERE kind = 'redemption') - count(*) FILTER (WHERE kind = 'cancellation')
              FROM aura.reward_redemptions x WHERE x.restaurant_id = 1 AND x.reward_id = r.id)
           <> CASE WHEN r.status = 'redeemed' THEN 1 ELSE 0 END}),
    '0', 'redemption and cancellation rows pair up with every reward state');
is(count_of(q{
    SELECT count(*) FROM aura.rewards r
     WHERE r.restaurant_id = 1 AND r.status = 'redeemed' AND NOT EXISTS (
        SELECT 1 FROM aura.reward_redemptions x WHERE x.restaurant_id = 1 AND x.reward_id = r.id
           AND x.kind = 'redemption' AND x.order_ref = r.redeemed_order_ref)}),
    '0', 'every redeemed reward has the redemption row of its order');
is(count_of(q{
    SELECT count(*) FROM aura.reward_redemptions x
     WHERE x.restaurant_id = 1 AND x.kind = 'redemption' AND x.points_credited > 0 AND NOT EXISTS (
        SELECT 1 FROM aura.points_transactions p
         WHERE p.restaurant_id = 1 AND p.idempotency_key = 'reward-redeem:' || x.id AND p.points = x.points_credited)}),
    '0', 'every redemption that credited points has its ledger row');
is(count_of(q{
    SELECT count(*) FROM aura.reward_redemptions x
     WHERE x.restaurant_id = 1 AND x.kind = 'cancellation' AND x.points_credited < 0 AND NOT EXISTS (
        SELECT 1 FROM aura.points_transactions p
         WHERE p.restaurant_id = 1 AND p.idempotency_key LIKE 'reward-unredeem:%' AND p.points = x.points_credited
           AND p.reference = 'reward:' || (SELECT code FROM aura.rewards r WHERE r.restaurant_id = 1 AND r.id = x.reward_id))}),
    '0', 'every cancellation that took points back has its ledger row');
my $kinds = count_of(q{
    SELECT string_agg(DISTINCT kind || '/' || (points_credited <> 0), ',' ORDER BY kind || '/' || (points_credited <> 0))
      FROM aura.reward_redemptions WHERE restaurant_id = 1});
like($kinds, qr/cancellation\/true.*redemption\/true/, "the run redeemed and cancelled with points ($kinds)");

$node->stop;
done_testing();
