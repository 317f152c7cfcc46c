# The dispatcher under failure: the receiver down for a while then up, the
# dispatcher killed with SIGKILL mid-batch, an immediate server stop
# mid-batch, pg_terminate_backend mid-batch (the postmaster starts the dispatcher
# again), kill -9 of an idle dispatcher, and a paused dispatcher.  Nothing is
# lost; a message is received more than once only with its same message id
# (at-least-once delivery).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AuraSinks;

my $dir = PostgreSQL::Test::Utils::tempdir;
my $node = notify_node('notify_crash', join("\n",
    "aura.retry_schedule = '0.5,1,1,2,2,2,2,2,2,2'",
    "aura.batch_size = 20", "aura.max_concurrency = 8"));
my $sink_port = PostgreSQL::Test::Cluster::get_free_port();
my ($port, $sink, $log) = start_http_sink($dir, $sink_port);

sub sql { return $node->safe_psql('postgres', $_[0]); }
my $ctx = 'SELECT aura.set_context(701);';
sql("INSERT INTO aura.restaurants (id, name) VALUES (701, 'Crash')");
my $secret = sql("$ctx SELECT secret FROM aura.create_webhook('w', 'http://127.0.0.1:$port/w', '{*}', max_retries => 10)");
$secret =~ s/.*\n//s;
sink_control($port, { secrets => [$secret] });

sub emit
{
    my ($n, $tag) = @_;
    sql("$ctx SELECT aura.emit_event(701, 'order.completed', jsonb_build_object('tag', '$tag', 'i', i)) FROM generate_series(1, $n) i");
}

sub worker_pid { return sql('SELECT pid FROM aura.worker_status()'); }

# all queued messages delivered, every one received, nothing unknown received
sub check_all_arrived
{
    my ($what) = @_;
    ok(wait_for(sub { sql("SELECT count(*) FILTER (WHERE status <> 'delivered') FROM aura.notifications") eq '0' }, 40),
        "$what: every message ends delivered");
    my %outbox = map { $_ => 1 } split /\n/, sql('SELECT msg_id FROM aura.notifications');
    my %got;
    $got{ $_->{headers}{'webhook-id'} }++ for sink_records($log, '/w');
    is(scalar(grep { !$got{$_} } keys %outbox), 0, "$what: every message id was received");
    is(scalar(grep { !$outbox{$_} } keys %got), 0, "$what: nothing but queued message ids was received");
    is(scalar(grep { !$_->{sig_ok} } sink_records($log, '/w')), 0, "$what: every request is correctly signed");
    my $dups = grep { $got{$_} > 1 } keys %got;
    note("$what: $dups message ids received more than once");
}

# 1. receiver down, then up again: retries deliver everything
stop_sink($sink);
emit(30, 'outage');
ok(wait_for(sub { sql("SELECT count(*) FROM aura.notifications WHERE status = 'failed' AND last_error ~* 'connect'") > 0 }, 10),
    'while the receiver is down, deliveries fail and wait for a retry');
sleep 3;
is(sql("SELECT count(*) FROM aura.notifications WHERE status = 'dead'"), '0', 'nothing is dead-lettered during the outage');
# the secret is given at start: a retry may arrive before any control request
($port, $sink, $log) = start_http_sink($dir, $sink_port, undef, [$secret]);
check_all_arrived('receiver down then up');

# 2. SIGKILL of the dispatcher in the middle of a batch: the server restarts,
#    expired leases are claimed again
sink_control($port, { path => '/w', mode => 'slow' });
my $before = scalar(sink_records($log, '/w'));
emit(40, 'kill9');
ok(wait_for(sub { scalar(sink_records($log, '/w')) > $before }, 10), 'batch in flight');
is(sql("SELECT count(*) > 0 FROM aura.notifications WHERE status = 'sending'"), 't', 'messages are leased (sending)');
# claims commit asynchronously; give the WAL writer time to make this one durable,
# so that the crash below exercises the expired-lease path (the sink holds each
# request 1.5 s, the batch is still in flight)
select(undef, undef, undef, 0.7);
my $pid = worker_pid();
kill 'KILL', $pid;
$node->poll_query_until('postgres', 'SELECT pid IS NOT NULL FROM aura.worker_status()')
    or die 'dispatcher did not come back';
isnt(worker_pid(), $pid, 'a new dispatcher runs after the crash restart');
sink_control($port, { path => '/w', mode => 'ok' });
check_all_arrived('dispatcher killed mid-batch');
like(sql("SELECT string_agg(DISTINCT error, ',') FROM aura.delivery_log WHERE error LIKE 'lease expired%'"),
    qr/lease expired/, 'the interrupted attempts are logged as expired leases');

# 3. immediate server stop in the middle of a batch
sink_control($port, { path => '/w', mode => 'slow' });
$before = scalar(sink_records($log, '/w'));
emit(40, 'immediate');
ok(wait_for(sub { scalar(sink_records($log, '/w')) > $before }, 10), 'batch in flight before the stop');
$node->stop('immediate');
$node->start;
sink_control($port, { path => '/w', mode => 'ok' });
check_all_arrived('immediate stop mid-batch');

# 4. pg_terminate_backend (SIGTERM) mid-batch: unfinished messages go back to the
#    queue at once, and the dispatcher exits non-zero so that the postmaster starts
#    it again (bgw_restart_time): the new one delivers them, without a server restart
sink_control($port, { path => '/w', mode => 'slow' });
$before = scalar(sink_records($log, '/w'));
emit(30, 'sigterm');
ok(wait_for(sub { scalar(sink_records($log, '/w')) > $before }, 10), 'batch in flight before SIGTERM');
$pid = worker_pid();
is(sql("SELECT pg_terminate_backend($pid)"), 't', 'pg_terminate_backend signals the dispatcher');
ok(wait_for(sub { my $p = worker_pid(); $p ne '' && $p ne $pid }, 15),
    'the postmaster starts a new dispatcher after pg_terminate_backend');
ok(sql("SELECT count(*) FROM aura.delivery_log WHERE outcome = 'released'") > 0, 'unfinished messages were released');
like(slurp_file($node->logfile), qr/"aura dispatcher" \(PID $pid\) exited with exit code 1/,
    'the terminated dispatcher exited with code 1 (0 would unregister it for good)');
sink_control($port, { path => '/w', mode => 'ok' });
emit(10, 'after-sigterm');
check_all_arrived('SIGTERM mid-batch, dispatcher restarted by the postmaster');

# 5. kill -9 of an idle dispatcher: the crash restart brings it back and it delivers
$pid = worker_pid();
kill 'KILL', $pid;
$node->poll_query_until('postgres', "SELECT pid IS NOT NULL AND pid <> $pid FROM aura.worker_status()")
    or die 'dispatcher did not come back after kill -9';
pass('a new dispatcher runs after kill -9 of an idle one');
emit(10, 'after-kill9');
check_all_arrived('kill -9 of an idle dispatcher');

# 6. aura.dispatcher_paused: the dispatcher stays up but claims nothing and runs no
#    job; unpaused (SIGHUP) it delivers what waited
$node->append_conf('postgresql.conf', "aura.dispatcher_paused = on\n");
$node->reload;
ok(wait_for(sub { sql("SELECT current_setting('aura.dispatcher_paused')") eq 'on' }, 10), 'pause configured');
sleep 1;    # the dispatcher has read its configuration too
sql("UPDATE aura.jobs SET next_run_at = now() WHERE name = 'notification_digests'");
my $runs = sql("SELECT runs FROM aura.jobs WHERE name = 'notification_digests'");
$before = scalar(sink_records($log, '/w'));
emit(15, 'paused');
sleep 3;
is(sql("SELECT count(*) FROM aura.notifications WHERE status = 'queued' AND payload -> 'data' ->> 'tag' = 'paused'"), '15',
    'paused: the messages stay queued');
is(scalar(sink_records($log, '/w')), $before, 'paused: nothing is sent');
is(sql("SELECT runs FROM aura.jobs WHERE name = 'notification_digests'"), $runs, 'paused: a due job does not run');
isnt(worker_pid(), '', 'paused: the dispatcher is still running');
$node->append_conf('postgresql.conf', "aura.dispatcher_paused = off\n");
$node->reload;
check_all_arrived('paused, then resumed');
ok(wait_for(sub { sql("SELECT runs FROM aura.jobs WHERE name = 'notification_digests'") > $runs }, 10),
    'resumed: the due job runs');

stop_sink($sink);
$node->stop;
done_testing();
