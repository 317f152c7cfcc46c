# TLS and credentials: an HTTPS receiver with a certificate from a private CA
# is refused until aura.ca_file names that CA (verification is always on);
# SMTP with wrong credentials fails and is retried, and delivers once the
# channel's password is fixed; SMTP with STARTTLS and with implicit TLS (SMTPS)
# against sinks with a certificate of the test's own CA, and TLS mismatches.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AuraSinks;

my $dir = PostgreSQL::Test::Utils::tempdir;

# a private CA and a server certificate for 127.0.0.1
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=aura test CA' -keyout $dir/ca.key -out $dir/ca.pem 2>/dev/null") == 0 or die 'CA';
system("openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout $dir/srv.key -out $dir/srv.csr 2>/dev/null") == 0 or die 'CSR';
open my $ext, '>', "$dir/san.ext" or die; print $ext "subjectAltName = IP:127.0.0.1\n"; close $ext;
system("openssl x509 -req -in $dir/srv.csr -CA $dir/ca.pem -CAkey $dir/ca.key -CAcreateserial -days 2 -extfile $dir/san.ext -out $dir/srv.pem 2>/dev/null") == 0 or die 'cert';

my $node = notify_node('notify_tls');
my ($port, $sink, $log) = start_http_sink($dir, undef, "$dir/srv.pem:$dir/srv.key");
sub sql { return $node->safe_psql('postgres', $_[0]); }
my $ctx = 'SELECT aura.set_context(701);';
sql("INSERT INTO aura.restaurants (id, name) VALUES (701, 'TLS')");
sql("$ctx SELECT id FROM aura.create_webhook('tls', 'https://127.0.0.1:$port/tls', '{*}', max_retries => 10)");
sql("$ctx SELECT aura.emit_event(701, 'tls.check', '{}')");
ok(wait_for(sub { sql("SELECT last_error FROM aura.notifications WHERE event_type = 'tls.check'") =~ /certificate|SSL/i }, 10),
    'a certificate from an unknown CA is refused (TLS verification on)');
is(scalar(sink_records($log)), 0, 'nothing reached the receiver');
sql("ALTER SYSTEM SET aura.ca_file = '$dir/ca.pem'; SELECT pg_reload_conf();");
ok(wait_for(sub { sql("SELECT status FROM aura.notifications WHERE event_type = 'tls.check'") eq 'delivered' }, 15),
    'with aura.ca_file naming the CA the retry is delivered over HTTPS');
is(scalar(sink_records($log, '/tls')), 1, 'the receiver got it once');

# SMTP: bad credentials are a recorded, retried failure
my $smtp_port = PostgreSQL::Test::Cluster::get_free_port();
my ($smtp, $smtp_log) = start_smtp_sink($dir, $smtp_port, 'aura:right-password');
sql("$ctx
   SELECT aura.set_notification_channel('mail', 'email', '{\"host\": \"127.0.0.1\", \"port\": $smtp_port, \"tls\": \"none\",
          \"username\": \"aura\", \"from\": \"aura\@example.com\"}', 'wrong-password');
   SELECT aura.set_notification_rule('mail', '{stock.*}', '[{\"channel\": \"mail\", \"recipients\": [\"chef\@example.com\", \"not an address\"]}]');
   SELECT aura.emit_event(701, 'stock.low', '{\"title\": \"Flour low\", \"severity\": \"medium\"}');");
ok(wait_for(sub { sql("SELECT last_error FROM aura.notifications WHERE recipient = 'chef\@example.com'") =~ /login|auth/i }, 10),
    'wrong SMTP password: the failure is recorded');
is(sql("SELECT status FROM aura.notifications WHERE recipient = 'chef\@example.com'") =~ /^(failed|sending|queued)$/ ? 1 : 0, 1,
    'and the message waits for a retry');
unlike(sql("SELECT string_agg(coalesce(error, ''), ' ') FROM aura.delivery_log"), qr/wrong-password/, 'the password is never recorded');
# the test cluster logs every statement (log_statement = all); everything else must not show secrets
my @lines = grep { !/statement: |^\t/ } split /\n/, slurp_file($node->logfile);
is(scalar(grep { /wrong-password|right-password|tap-notify-key/ } @lines), 0, 'nor logged by the server or the dispatcher');
is(sql("SELECT status || ': ' || last_error FROM aura.notifications WHERE recipient = 'not an address'"),
   'dead: malformed email recipient not an address', 'a malformed recipient is dead-lettered with a clear error');
sql("$ctx SELECT aura.set_notification_channel('mail', 'email', '{\"host\": \"127.0.0.1\", \"port\": $smtp_port, \"tls\": \"none\",
          \"username\": \"aura\", \"from\": \"aura\@example.com\"}', 'right-password')");
ok(wait_for(sub { sql("SELECT status FROM aura.notifications WHERE recipient = 'chef\@example.com'") eq 'delivered' }, 15),
    'after the password is fixed the retry delivers');
my @mails = smtp_records($smtp_log);
is(scalar(@mails), 1, 'one email');
is($mails[0]{subject}, '[MEDIUM] Flour low', 'subject [SEVERITY] title');

# email configured only through the restaurant's settings; the password is a secret setting
sql("$ctx
   SELECT aura.set_setting('notifications.email.smtp_host', '\"127.0.0.1\"', 'restaurant', 701);
   SELECT aura.set_setting('notifications.email.smtp_port', '$smtp_port', 'restaurant', 701);
   SELECT aura.set_setting('notifications.email.smtp_tls', '\"none\"', 'restaurant', 701);
   SELECT aura.set_setting('notifications.email.username', '\"aura\"', 'restaurant', 701);
   SELECT aura.set_setting('notifications.email.from', '\"settings\@example.com\"', 'restaurant', 701);
   SELECT aura.set_setting('notifications.email.password', '\"right-password\"', 'restaurant', 701);
   SELECT aura.set_notification_channel('mail_s', 'email');
   SELECT aura.set_notification_rule('mail_s', '{menu.*}', '[{\"channel\": \"mail_s\", \"recipients\": [\"owner\@example.com\"]}]');
   SELECT aura.emit_event(701, 'menu.changed', '{\"title\": \"New menu\", \"severity\": \"low\"}');");
is(sql("SELECT config::text || ' ' || (secret IS NULL) FROM aura.notification_channels WHERE name = 'mail_s'"), '{} true',
    'the channel stores no configuration or credential of its own');
ok(wait_for(sub { sql("SELECT status FROM aura.notifications WHERE recipient = 'owner\@example.com'") eq 'delivered' }, 15),
    'an email channel configured through settings delivers (SMTP login with the secret setting)');
@mails = smtp_records($smtp_log);
is(scalar(@mails), 2, 'a second email');
my ($m) = grep { $_->{subject} =~ /menu/i } @mails;
is("$m->{subject} $m->{mail_from}", '[LOW] New menu settings@example.com', 'with its subject, from the settings\' sender');

# SMTP over TLS for real, with the test's private CA (aura.ca_file, set above): the
# STARTTLS sink refuses anything before STARTTLS and any login before TLS; the implicit
# one speaks TLS from the first byte (SMTPS)
my $starttls_port = PostgreSQL::Test::Cluster::get_free_port();
my ($smtp_st, $st_log) = start_smtp_sink($dir, $starttls_port, 'aura:tls-password', "$dir/srv.pem:$dir/srv.key");
my $implicit_port = PostgreSQL::Test::Cluster::get_free_port();
my ($smtp_im, $im_log) = start_smtp_sink($dir, $implicit_port, 'aura:tls-password', "$dir/srv.pem:$dir/srv.key", 1);
sql("$ctx
   SELECT aura.set_notification_channel('mail_starttls', 'email', '{\"host\": \"127.0.0.1\", \"port\": $starttls_port,
          \"tls\": \"starttls\", \"username\": \"aura\", \"from\": \"aura\@example.com\"}', 'tls-password');
   SELECT aura.set_notification_channel('mail_implicit', 'email', '{\"host\": \"127.0.0.1\", \"port\": $implicit_port,
          \"tls\": \"implicit\", \"username\": \"aura\", \"from\": \"aura\@example.com\"}', 'tls-password');
   SELECT aura.set_notification_channel('mail_plain_to_tls', 'email', '{\"host\": \"127.0.0.1\", \"port\": $starttls_port,
          \"tls\": \"none\", \"username\": \"aura\", \"from\": \"aura\@example.com\"}', 'tls-password');
   SELECT aura.set_notification_channel('mail_starttls_to_plain', 'email', '{\"host\": \"127.0.0.1\", \"port\": $smtp_port,
          \"tls\": \"starttls\", \"username\": \"aura\", \"from\": \"aura\@example.com\"}', 'right-password');
   SELECT aura.set_notification_rule('tls_mail', '{secure.*}', '[{\"channel\": \"mail_starttls\", \"recipients\": [\"st\@example.com\"]},
          {\"channel\": \"mail_implicit\", \"recipients\": [\"im\@example.com\"]},
          {\"channel\": \"mail_plain_to_tls\", \"recipients\": [\"plain\@example.com\"]},
          {\"channel\": \"mail_starttls_to_plain\", \"recipients\": [\"downgrade\@example.com\"]}]');
   SELECT aura.emit_event(701, 'secure.check', '{\"title\": \"Over TLS\", \"severity\": \"high\"}');");
ok(wait_for(sub { sql("SELECT status FROM aura.notifications WHERE recipient = 'st\@example.com'") eq 'delivered' }, 15),
    'STARTTLS: delivered');
ok(wait_for(sub { sql("SELECT status FROM aura.notifications WHERE recipient = 'im\@example.com'") eq 'delivered' }, 15),
    'implicit TLS (smtps): delivered');
my @st = smtp_records($st_log);
my @im = smtp_records($im_log);
is(scalar(@st) . ' ' . scalar(@im), '1 1', 'each TLS sink got exactly one message');
like($st[0]{tls} // 'none', qr/^TLSv1\.[23]$/, "STARTTLS: the message and the login went over TLS ($st[0]{tls})");
like($im[0]{tls} // 'none', qr/^TLSv1\.[23]$/, "implicit TLS: the message and the login went over TLS ($im[0]{tls})");
ok($st[0]{login} && $im[0]{login}, 'both logged in with the channel password');
is("$st[0]{subject}|$im[0]{subject}|" . join(',', @{ $st[0]{rcpt_tos} }), '[HIGH] Over TLS|[HIGH] Over TLS|st@example.com',
    'subjects and envelope recipient');
# a plain channel to a server that requires STARTTLS, and a channel that requires
# STARTTLS of a server that offers none: recorded failures, never a plain-text send
ok(wait_for(sub { sql("SELECT count(*) FROM aura.notifications WHERE recipient IN ('plain\@example.com', 'downgrade\@example.com')
                        AND attempts >= 1 AND status IN ('failed', 'dead') AND last_error <> ''") eq '2' }, 15),
    'a TLS mismatch either way is a recorded failure');
like(sql("SELECT last_error FROM aura.notifications WHERE recipient = 'downgrade\@example.com'"), qr/SSL|TLS|STARTTLS/i,
    'starttls required: a server without STARTTLS is refused (' .
    sql("SELECT last_error FROM aura.notifications WHERE recipient = 'downgrade\@example.com'") . ')');
is(scalar(grep { grep { $_ eq 'downgrade@example.com' } @{ $_->{rcpt_tos} } } smtp_records($smtp_log)), 0,
    'nothing was sent in plain text to the server without STARTTLS');
is(scalar(@st = smtp_records($st_log)), 1, 'the STARTTLS server accepted nothing from the plain channel');
# the TLS channel's password is sealed like every channel secret
is(sql("SELECT count(*) FROM aura.notification_channels WHERE name LIKE 'mail%' AND secret IS NOT NULL
          AND aura._sealed_key_id(secret) IS NOT NULL AND strpos(encode(secret, 'escape'), 'password') = 0"),
   sql("SELECT count(*) FROM aura.notification_channels WHERE name LIKE 'mail%' AND secret IS NOT NULL"),
   'SMTP passwords are sealed with the master key, never stored in plain text');
stop_sink($smtp_st);
stop_sink($smtp_im);

stop_sink($smtp);
stop_sink($sink);
$node->stop;
done_testing();
