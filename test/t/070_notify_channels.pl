# Notifications end to end against real loopback peers: signed webhooks (with
# secret rotation and a test ping), Slack Block Kit (410 disables the
# channel), Twilio-style SMS, email over SMTP; failures of every kind are
# recorded, retried or dead-lettered, and never block other messages.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MIME::Base64;
use AuraSinks;

my $dir = PostgreSQL::Test::Utils::tempdir;
my $node = notify_node('notify_channels', "aura.webhook_disable_after = 3");
my ($port, $sink, $log) = start_http_sink($dir);
my $base = "http://127.0.0.1:$port";

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub delivered_count { return sql("SELECT count(*) FROM aura.notifications WHERE status = 'delivered' AND $_[0]"); }

ok(wait_for(sub { sql("SELECT ok FROM aura.deployment_check() WHERE name = 'preload_and_worker'") eq 't' }, 10),
    'deployment check sees the dispatcher running');

sql("INSERT INTO aura.restaurants (id, name, timezone) VALUES (701, 'Notify', 'Europe/Rome')");
my $ctx = 'SELECT aura.set_context(701);';

# --- webhooks: signed, stable ids, rotation, ping
my $secret = sql("$ctx SELECT secret FROM aura.create_webhook('main', '$base/hook', '{reward.*,tier.changed}')");
$secret =~ s/.*\n//s;
like($secret, qr/^whsec_[A-Za-z0-9+\/]{43}=$/, 'webhook secret is whsec_ + base64 of 32 bytes');
sink_control($port, { secrets => [$secret] });
sql("$ctx SELECT aura.emit_event(701, 'reward.issued', jsonb_build_object('n', i)) FROM generate_series(1, 3) i;
   SELECT aura.emit_event(701, 'points.expired', '{}')");
ok(wait_for(sub { sink_records($log, '/hook') >= 3 }, 10), 'three webhook messages arrive');
my @hooks = sink_records($log, '/hook');
is(scalar(grep { $_->{sig_ok} } @hooks), 3, 'every signature verifies (Standard Webhooks)');
is(scalar(grep { $_->{doc}{type} eq 'reward.issued' && defined $_->{doc}{timestamp} } @hooks), 3,
    'payload is {type, timestamp, data}');
is(join(',', sort map { $_->{headers}{'webhook-id'} } @hooks),
   sql("SELECT string_agg(msg_id, ',' ORDER BY msg_id) FROM aura.notifications WHERE webhook_id IS NOT NULL"),
   'webhook-id is the outbox message id');
ok(wait_for(sub { delivered_count("webhook_id IS NOT NULL") == 3 }, 5), 'outbox rows are delivered');
is(sql("SELECT count(*) FROM aura.delivery_log WHERE outcome = 'delivered'"), '3', 'delivery log has one row per attempt');
is(sql("SELECT count(*) FROM aura.notifications WHERE event_type = 'points.expired'"), '0', 'unsubscribed events are not queued');

my $new = sql("$ctx SELECT aura.rotate_webhook_secret(1)");
$new =~ s/.*\n//s;
sink_control($port, { secrets => [$new] });
sql("$ctx SELECT aura.emit_event(701, 'tier.changed', '{\"tier\": \"gold\"}')");
ok(wait_for(sub { sink_records($log, '/hook') >= 4 }, 10), 'message after rotation arrives');
my ($rot) = grep { $_->{doc}{type} eq 'tier.changed' } sink_records($log, '/hook');
ok($rot->{sig_ok}, 'signature with the new secret verifies');
is(scalar(() = $rot->{headers}{'webhook-signature'} =~ /v1,/g), 2, 'old and new secret both sign during the overlap');

sql("$ctx SELECT aura.test_webhook(1)");
ok(wait_for(sub { sql("SELECT verified_at IS NOT NULL FROM aura.webhooks WHERE id = 1") eq 't' }, 10),
    'test_webhook pings for real and marks the endpoint verified');
is(sql("SELECT ok FROM aura.deployment_check() WHERE name = 'webhook_endpoints'"), 't', 'webhook_endpoints item is ok');

# --- rolled back: nothing sent
my $before = scalar(sink_records($log));
sql("BEGIN; $ctx SELECT aura.emit_event(701, 'reward.issued', '{\"rolled\": \"back\"}'); ROLLBACK;");
sleep 1;
is(scalar(grep { ($_->{body} // '') =~ /rolled/ } sink_records($log)), 0, 'a rolled-back event sends nothing');
is(scalar(sink_records($log)), $before, 'no request at all after the rollback');

# --- slack, sms, email through rules
my $smtp_port = PostgreSQL::Test::Cluster::get_free_port();
my ($smtp, $smtp_log) = start_smtp_sink($dir, $smtp_port);
sql("$ctx
   SELECT aura.set_notification_channel('slack', 'slack', '{}', '$base/slack');
   SELECT aura.set_notification_channel('sms', 'sms', '{\"account_sid\": \"AC42\", \"from\": \"+15550000\", \"base_url\": \"$base/twilio\"}', 'tw-token');
   SELECT aura.set_notification_channel('mail', 'email', '{\"host\": \"127.0.0.1\", \"port\": $smtp_port, \"tls\": \"none\", \"from\": \"aura\@example.com\"}');
   SELECT aura.set_notification_rule('ops', '{insight.*}', '[{\"channel\": \"slack\"},
       {\"channel\": \"sms\", \"recipients\": [\"+15551234567\"]},
       {\"channel\": \"mail\", \"recipients\": [\"ops\@example.com\", \"chef\@example.com\"]}]', 'medium');");
sql("$ctx SELECT aura.emit_event(701, 'insight.created', '{\"title\": \"Lunch sales up\", \"severity\": \"high\",
     \"description\": \"Lunch revenue +20% vs last week\", \"impact\": \"high\", \"value\": \"1200 EUR\",
     \"recommendations\": [\"Add a lunch special\", \"Staff one more server\"], \"url\": \"https://aura.example/i/1\"}')");
ok(wait_for(sub { sink_records($log, '/slack') >= 1 }, 10), 'slack message arrives');
my ($slack) = sink_records($log, '/slack');
ok($slack->{shape_ok}, 'slack payload is Block Kit with a header');
is($slack->{doc}{blocks}[0]{text}{text}, '[HIGH] Lunch sales up', 'slack header carries severity and title');
ok((grep { $_->{type} eq 'actions' } @{ $slack->{doc}{blocks} }), 'slack message has a link button');

ok(wait_for(sub { sink_records($log, '/twilio/2010-04-01/Accounts/AC42/Messages.json') >= 1 }, 10), 'sms arrives');
my ($sms) = sink_records($log, '/twilio/2010-04-01/Accounts/AC42/Messages.json');
ok($sms->{shape_ok}, 'sms is a Twilio form post with basic auth');
is($sms->{doc}{To}, '+15551234567', 'sms To');
is($sms->{doc}{From}, '+15550000', 'sms From');
like($sms->{doc}{Body}, qr/^\[HIGH\] Lunch sales up/, 'sms Body');
is($sms->{headers}{authorization}, 'Basic ' . encode_base64('AC42:tw-token', ''), 'sms basic auth is account sid and token');

ok(wait_for(sub { smtp_records($smtp_log) >= 2 }, 10), 'two emails arrive over SMTP');
my @mails = sort { $a->{rcpt_tos}[0] cmp $b->{rcpt_tos}[0] } smtp_records($smtp_log);
is_deeply([map { $_->{rcpt_tos}[0] } @mails], ['chef@example.com', 'ops@example.com'], 'one email per recipient');
is($mails[0]{subject}, '[HIGH] Lunch sales up', 'subject is [SEVERITY] title');
is(join(',', map { $_->{type} } @{ $mails[0]{parts} }), 'text/plain,text/html', 'text and HTML parts');
like($mails[0]{parts}[0]{text}, qr/Lunch revenue \+20%/, 'text part has the description');
is($mails[0]{mail_from}, 'aura@example.com', 'envelope sender');

# --- slack 410 disables the channel
sink_control($port, { path => '/slack', mode => '410' });
sql("$ctx SELECT aura.emit_event(701, 'insight.escalated', '{\"title\": \"x\", \"severity\": \"critical\"}')");
ok(wait_for(sub { sql("SELECT NOT enabled FROM aura.notification_channels WHERE name = 'slack'") eq 't' }, 10),
    'slack 410 disables the channel');
is(sql("SELECT status || ' ' || response_code FROM aura.notifications WHERE channel = 'slack' AND event_type = 'insight.escalated'"),
   'dead 410', 'the 410 message is dead-lettered, not retried');

like(sql("SELECT disabled_reason FROM aura.notification_channels WHERE name = 'slack'"), qr/answered 410/, 'with the reason');

# Slack 404 no_service (a revoked webhook) is permanent too and disables the channel
sink_control($port, { path => '/slack2', mode => '404' });
sql("$ctx SELECT aura.set_notification_channel('slack2', 'slack', '{}', '$base/slack2');
     SELECT aura.set_notification_rule('ops2', '{alert.*}', '[{\"channel\": \"slack2\"}]');
     SELECT aura.emit_event(701, 'alert.raised', '{\"title\": \"y\"}')");
ok(wait_for(sub { sql("SELECT status FROM aura.notifications WHERE event_type = 'alert.raised'") eq 'dead' }, 10),
    'slack 404 is dead-lettered without retries');
is(sql("SELECT attempts FROM aura.notifications WHERE event_type = 'alert.raised'"), '1', 'after one attempt');
is(sql("SELECT enabled FROM aura.notification_channels WHERE name = 'slack2'"), 'f', 'and the channel is disabled');

# --- failures: each recorded, none blocks the others
sink_control($port, { path => '/flaky', mode => '500' });
sink_control($port, { path => '/hang', mode => 'hang' });
sink_control($port, { path => '/big', mode => 'big' });
sink_control($port, { path => '/redirect', mode => 'redirect' });
sql("$ctx
   SELECT aura.create_webhook('flaky', '$base/flaky', '{order.*}', max_retries => 0);
   SELECT aura.create_webhook('hang', '$base/hang', '{order.*}', max_retries => 0, timeout_ms => 500);
   SELECT aura.create_webhook('big', '$base/big', '{order.*}', max_retries => 0);
   SELECT aura.create_webhook('redirect', '$base/redirect', '{order.*}', max_retries => 0);
   SELECT aura.create_webhook('refused', 'http://127.0.0.1:1/x', '{order.*}', max_retries => 1);
   SELECT aura.create_webhook('private', 'http://localhost:$port/private', '{order.*}', max_retries => 0);
   SELECT aura.create_webhook('nodns', 'http://no-such-host.invalid/x', '{order.*}', max_retries => 0);
   SELECT aura.create_webhook('good', '$base/good', '{order.*}');
   SELECT aura.emit_event(701, 'order.completed', jsonb_build_object('order', i)) FROM generate_series(1, 3) i;");
ok(wait_for(sub { sink_records($log, '/good') >= 3 }, 5), 'the good endpoint gets its messages despite the bad ones');
ok(wait_for(sub { sql("SELECT count(*) FROM aura.notifications n JOIN aura.webhooks w ON w.id = n.webhook_id
                     WHERE w.name IN ('hang', 'big', 'redirect', 'refused', 'private', 'nodns') AND n.status = 'dead'") == 18 }, 20),
    'hanging, huge, redirecting, refusing, private and unresolvable endpoints dead-letter');
my %err = split /\|/, join('|', split /\n/, sql("SELECT w.name, n.last_error FROM aura.notifications n JOIN aura.webhooks w ON w.id = n.webhook_id
    WHERE w.name IN ('hang', 'big', 'redirect', 'refused', 'private', 'nodns') AND (n.payload #>> '{data,order}') = '1'"));
like($err{hang}, qr/timed out|Timeout/i, 'hang: timeout recorded');
like($err{big}, qr/response larger than/, 'big: response cap recorded');
like($err{redirect}, qr/^HTTP 302/, 'redirect: not followed');
like($err{refused}, qr/connect/i, 'refused: connection error recorded');
like($err{private}, qr/(127\.0\.0\.1|::1) is a loopback, private or link-local address/, 'private: destination guard blocks localhost');
like($err{nodns}, qr/resolve/i, 'nodns: DNS failure recorded');
is(sql("SELECT string_agg(DISTINCT attempts::text, ',') FROM aura.notifications n JOIN aura.webhooks w ON w.id = n.webhook_id WHERE w.name = 'refused'"), '2',
   'max_retries 1 means two attempts, then dead');
ok(wait_for(sub { sql("SELECT NOT active FROM aura.webhooks WHERE name = 'flaky'") eq 't' }, 15),
    'three dead-lettered messages in a row disable the flaky webhook');
like(sql("SELECT disabled_reason FROM aura.webhooks WHERE name = 'flaky'"), qr/3 consecutive messages dead-lettered/, 'reason recorded');
like(sql("SELECT string_agg(DISTINCT last_error, ',') FROM aura.notifications n JOIN aura.webhooks w ON w.id = n.webhook_id WHERE w.name = 'flaky'"),
    qr/HTTP 500/, 'the 500 is recorded');

# a disabled webhook dead-letters what it still had; retry_dead sends it once it works
like(sql("SELECT last_error FROM aura.notifications n JOIN aura.webhooks w ON w.id = n.webhook_id WHERE w.name = 'flaky'"),
    qr/HTTP 500/, 'the failures are recorded');
sink_control($port, { path => '/flaky', mode => 'ok' });
sink_control($port, { path => '/big', mode => 'ok' });
sql("$ctx UPDATE aura.webhooks SET active = true, failure_count = 0, disabled_reason = NULL WHERE name IN ('flaky', 'big')");
my $dead = sql("SELECT string_agg(n.id::text, ',') FROM aura.notifications n JOIN aura.webhooks w ON w.id = n.webhook_id
                WHERE w.name IN ('flaky', 'big') AND n.status = 'dead'");
my $requeued = sql("$ctx SELECT aura.retry_dead(ARRAY[$dead]::bigint[])");
$requeued =~ s/.*\n//s;
is($requeued, '6', 'retry_dead requeues the dead messages');
ok(wait_for(sub { sql("SELECT bool_and(status = 'delivered') FROM aura.notifications WHERE id IN ($dead)") eq 't' }, 10),
    'and they are delivered');

# --- jobs: the periodic functions of ledger and insights run; a failing job is
#     recorded and the jobs after it still run, again and again
sql("CREATE FUNCTION aura.test_job_fail() RETURNS int LANGUAGE plpgsql AS \$\$BEGIN RAISE EXCEPTION 'job exploded'; END\$\$;
     CREATE TABLE public.job_runs (at timestamptz DEFAULT now());
     CREATE FUNCTION aura.test_job_ok() RETURNS int LANGUAGE sql AS \$\$INSERT INTO public.job_runs DEFAULT VALUES RETURNING 1\$\$;
     CREATE FUNCTION aura.test_job_rows() RETURNS SETOF int LANGUAGE sql AS \$\$SELECT generate_series(1, 3)\$\$;
     INSERT INTO aura.jobs (name, fn, every) VALUES ('a_fails', 'aura.test_job_fail', '1 second'),
                                                  ('b_works', 'aura.test_job_ok', '1 second'),
                                                  ('c_rows', 'aura.test_job_rows', '1 second');
     UPDATE aura.jobs SET next_run_at = now()
      WHERE name IN ('award_birthdays', 'expire_points', 'review_tiers', 'insight_expiry', 'insight_detectors')");
ok(wait_for(sub { sql("SELECT count(*) FROM public.job_runs") >= 2 }, 20),
    'a job runs, and runs again, although the job before it fails every time');
is(sql("SELECT last_ok, last_error, failures >= 1 FROM aura.jobs WHERE name = 'a_fails'"), 'f|job exploded|t',
    'the failure is recorded in the job row');
ok(wait_for(sub { sql("SELECT count(*) FROM aura.jobs WHERE runs >= 1 AND name IN ('award_birthdays', 'expire_points',
                       'review_tiers', 'insight_expiry', 'insight_detectors')") eq '5' }, 20),
    'the five periodic functions of ledger and insights ran as jobs');
is(sql("SELECT string_agg(name || ':' || last_ok || ':' || coalesce(last_error, '') || ':' || (next_run_at > now() + every / 2), ' ' ORDER BY name)
          FROM aura.jobs WHERE name IN ('award_birthdays', 'expire_points', 'review_tiers', 'insight_expiry', 'insight_detectors')"),
   'award_birthdays:true::true expire_points:true::true insight_detectors:true::true insight_expiry:true::true review_tiers:true::true',
   'each succeeded and is scheduled one interval later');
like(sql("SELECT last_result FROM aura.jobs WHERE name = 'c_rows'"), qr/^3 rows$/,
    'a set-returning job records its row count');
sql("UPDATE aura.jobs SET enabled = false WHERE name IN ('a_fails', 'b_works', 'c_rows')");

my $st = sql("SELECT pid > 0, sent > 0, failed > 0, loops > 0, in_flight = 0 FROM aura.worker_status()");
is($st, 't|t|t|t|t', 'worker_status reports pid, counters and loop');

# --- secrets at rest: sealed with the master key; no plaintext secret in any table
#     (outbox, delivery log, channels, webhooks, settings history...), a pg_dump or
#     the server log
my @plain = ($secret, $new, "$base/slack", 'tw-token');
is(sql("SELECT count(*) FROM aura.notification_channels WHERE secret IS NOT NULL AND aura._sealed_key_id(secret) = 'tapnotify'")
       . '/' . sql("SELECT count(*) FROM aura.webhooks WHERE aura._sealed_key_id(secret) = 'tapnotify'"),
   sql("SELECT count(*) FROM aura.notification_channels WHERE secret IS NOT NULL") . '/'
       . sql("SELECT count(*) FROM aura.webhooks"),
   'every channel and webhook secret is sealed with the settings master key');
for my $p (@plain)
{
    (my $q = $p) =~ s/'/''/g;
    is(sql(qq{
        CREATE OR REPLACE FUNCTION pg_temp.hits(s text) RETURNS text LANGUAGE plpgsql AS \$\$
        DECLARE t record; n bigint; found text := '';
        BEGIN
            FOR t IN SELECT c.oid::regclass AS rel FROM pg_class c
                      WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'p') LOOP
                EXECUTE format('SELECT count(*) FROM %s x WHERE strpos(x::text, \$1) > 0', t.rel) INTO n USING s;
                IF n > 0 THEN found := found || t.rel || ' '; END IF;
            END LOOP;
            RETURN found;
        END \$\$;
        SELECT pg_temp.hits('$q')}), '', "secret '" . substr($p, 0, 12) . "...' appears in no aura table");
}
$node->command_ok(['pg_dump', '-f', "$dir/notify.sql", '-d', $node->connstr('postgres')], 'pg_dump');
my $dumped = slurp_file("$dir/notify.sql");
# the test cluster logs every statement (log_statement = all): the calls that pass
# a secret are the test's own text; every other entry (dispatcher, errors) must be clean
my $logged = join("\n", grep { !/^\S+ \S+ \S+ \[\d+\] \S*\s*(LOG:  statement|STATEMENT): /s }
                          split(/^(?=\d{4}-\d\d-\d\d \d)/m, slurp_file($node->logfile)));
like($logged, qr/aura dispatcher started/, 'the filtered log still holds the server\'s own entries');
is(scalar(grep { index($dumped, $_) >= 0 } @plain), 0, 'no plaintext secret in the pg_dump');
is(scalar(grep { index($logged, $_) >= 0 } @plain), 0, 'no plaintext secret in the server log (statements aside)');

stop_sink($smtp);
stop_sink($sink);
$node->stop;
done_testing();
