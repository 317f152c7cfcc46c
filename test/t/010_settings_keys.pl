# The settings master key on a real server: loaded from a file at server
# start (preloaded) and from a command after a reload; several keys and an
# online rotation that can be interrupted and resumed; a wrong key, a missing
# key, a key file others can read and a tampered ciphertext each give a clear
# error; the key never reaches SQL or the server log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $k1 = '00' x 16 . '11' x 16;            # hex
my $k2 = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY=';   # base64 of 32 bytes
my $k2_wrong = 'ff' x 32;

my $node = PostgreSQL::Test::Cluster->new('settings_keys');
$node->init;
my $dir = $node->basedir;
my $keyfile = "$dir/aura.key";

sub write_key
{
	my ($text, $mode) = @_;
	open(my $fh, '>', $keyfile) or die "cannot write $keyfile: $!";
	print $fh $text;
	close $fh;
	chmod($mode // 0600, $keyfile);
}

write_key("# aura master keys: first line is current\nk1:$k1\n");
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'aura'
aura.database = 'postgres'
aura.encryption_key_file = '$keyfile'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    INSERT INTO aura.restaurants (id, name) VALUES (1, 'R1'), (2, 'R2');
});

like(slurp_file($node->logfile), qr/aura: master key loaded \(current key id "k1", 1 key\)/,
	'key file read at server start (preloaded)');
is($node->safe_psql('postgres', 'SELECT configured, current_key_id, key_count, source FROM aura.encryption_key_status()'),
	't|k1|1|file', 'status: key k1 from the file');

$node->safe_psql('postgres', q{
    SELECT aura.set_setting('notifications.email.password', '"pw-system"');
    SELECT aura.set_setting('notifications.email.password', '"pw-r1"', 'restaurant', 1);
    SELECT aura.set_setting('notifications.sms.auth_token', '"tok-r2"', 'restaurant', 2);
});
is($node->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 1)}),
	'pw-r1', 'secret round trip with the file key');
is($node->safe_psql('postgres', 'SELECT string_agg(key_id, \',\') FROM aura.encryption_key_usage'), 'k1',
	'values carry their key id');

# the GUC is hidden and superuser-only; the key is nowhere in SQL or the log
my ($ret, $out, $err) = $node->psql('postgres', 'SET ROLE aura_admin; SHOW aura.encryption_key_file');
like($err, qr/must be superuser/, 'key GUC not visible to aura_admin');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_settings WHERE name LIKE 'aura.encryption%'}), '0',
	'key GUCs not in pg_settings');

# several keys: new current k2, k1 still readable; rotate online in batches
write_key("k2:$k2\nk1:$k1\n");
$node->reload;
is($node->poll_query_until('postgres', q{SELECT current_key_id = 'k2' FROM aura.encryption_key_status()}), 1,
	'reload: k2 is current');
is($node->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password')}), 'pw-system',
	'value sealed with the older key k1 still readable');
is($node->safe_psql('postgres', q{SELECT ok FROM aura.deployment_check() WHERE name = 'encryption_key'}), 't',
	'deployment check ok with older values');
like($node->safe_psql('postgres', q{SELECT detail FROM aura.deployment_check() WHERE name = 'encryption_key'}),
	qr/3 sealed with older keys/, 'deployment check says rotation is due');
# interrupt the procedure for real: another session holds an EXCLUSIVE lock
# on aura.setting_values, so the first batch (the system value) commits and
# the second waits; cancel it there
my ($lin, $lout, $lerr) = ('', '', '');
my $locker = IPC::Run::start(['psql', '-X', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres')],
	'<', \$lin, '>', \$lout, '2>', \$lerr);
$lin .= "BEGIN; LOCK TABLE aura.setting_values IN EXCLUSIVE MODE; SELECT 'locked';\n";
my $timer = IPC::Run::timer(60);
$timer->start;
$locker->pump until $lout =~ /locked/ || $timer->is_expired;
my ($rout, $rerr) = ('', '');
my $rot = IPC::Run::start(['psql', '-X', '-d', $node->connstr('postgres'), '-c', 'CALL aura.rotate_encryption_key(1)'],
	'>', \$rout, '2>', \$rerr);
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
    WHERE query LIKE 'CALL aura.rotate_encryption_key%' AND wait_event_type = 'Lock'})
	or die 'rotation did not block on the lock';
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
    WHERE query LIKE 'CALL aura.rotate_encryption_key%' AND pid <> pg_backend_pid()});
$rot->finish;
like($rerr, qr/re-encrypted 1 value\(s\) with key k2, 2 remaining.*canceling statement/s,
	'rotation interrupted after a committed batch');
$lin .= "COMMIT;\n\\q\n";
$locker->finish;
is($node->safe_psql('postgres', 'SELECT string_agg(key_id || \'=\' || secret_values, \',\' ORDER BY key_id) FROM aura.encryption_key_usage'),
	'k1=2,k2=1', 'the committed batch is kept after the interruption');
# resume: one batch by hand, then the procedure finishes the rest
is($node->safe_psql('postgres', 'SELECT reencrypted, remaining, current_key_id FROM aura.rotate_encryption_key_batch(1)'),
	'1|1|k2', 'a batch re-encrypts one value, one remains');
($ret, $out, $err) = $node->psql('postgres', 'CALL aura.rotate_encryption_key(1)');
is($ret, 0, 'rotation procedure resumes and succeeds');
like($err, qr/re-encrypted 1 value\(s\) with key k2, 0 remaining/, 'rotation reports progress');
is($node->safe_psql('postgres', 'SELECT string_agg(key_id || \'=\' || secret_values, \',\') FROM aura.encryption_key_usage'),
	'k2=3', 'every value now sealed with k2');
is($node->safe_psql('postgres', q{SELECT count(*) FROM aura.setting_history() WHERE action = 'reencrypt' AND source = 'rotation'}),
	'3', 'history records each re-encryption');
is($node->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.sms.auth_token', 'restaurant', 2)}),
	'tok-r2', 'rotated value readable');

# k1 gone: everything still readable (all k2 now)
write_key("k2:$k2\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT key_count = 1 FROM aura.encryption_key_status()});
is($node->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password', 'restaurant', 1)}),
	'pw-r1', 'old key removed after rotation: values still readable');

# key from a command (no file)
$node->append_conf('postgresql.conf', qq{
aura.encryption_key_file = ''
aura.encryption_key_command = 'cat $keyfile'
});
$node->reload;
is($node->poll_query_until('postgres', q{SELECT source = 'command' FROM aura.encryption_key_status()}), 1,
	'reload: key now from the command');
is($node->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password')}), 'pw-system',
	'secret readable with the command key');
# the same in a brand new backend after a restart (lazy load in each process)
$node->restart;
like(slurp_file($node->logfile), qr/aura: master key loaded \(current key id "k2"/, 'command run at server start');
is($node->safe_psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password')}), 'pw-system',
	'secret readable after a restart with the command key');

# pg_dump / restore: values, history and sealed secrets survive (same key)
$node->safe_psql('postgres', q{
    INSERT INTO aura.setting_definitions (key, category, type, default_value, description)
    VALUES ('custom.dump_test', 'operations', 'integer', '7', 'kept by pg_dump');
    SELECT aura.set_setting('custom.dump_test', '8', 'restaurant', 1);
    SELECT aura.snapshot_settings('restaurant', 1, 'before dump');
});
my $dump = "$dir/aura.dump";
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres')], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump], 'pg_restore');
is($node->safe_psql('restored', q{SELECT aura.get_setting_int('custom.dump_test', 1),
    aura.reveal_secret('notifications.email.password', 'restaurant', 1),
    (SELECT count(*) FROM aura.settings_versions), (SELECT count(*) > 0 FROM aura.setting_history())}),
	'8|pw-r1|1|t', 'restored: custom definition, values, secret, versions, history');
is($node->safe_psql('restored', 'SELECT count(*) FROM aura.setting_definitions') ,
	$node->safe_psql('postgres', 'SELECT count(*) FROM aura.setting_definitions'), 'restored: same definitions');

# a wrong key under the same id: authentication fails, no garbage
write_key("k2:$k2_wrong\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT true FROM aura.encryption_key_status()});
sleep 1;
($ret, $out, $err) = $node->psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password')});
like($err, qr/sealed secret failed authentication/, 'wrong key: authentication error');
is($out, '', 'wrong key: no plaintext');

# a key id that is not loaded
write_key("k3:$k1\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_key_id = 'k3' FROM aura.encryption_key_status()});
($ret, $out, $err) = $node->psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password')});
like($err, qr/sealed with key "k2", which is not loaded/, 'missing key id: clear error');

# back to the right key; tamper with a ciphertext as superuser
write_key("k2:$k2\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_key_id = 'k2' FROM aura.encryption_key_status()});
$node->safe_psql('postgres', q{UPDATE aura.system_settings SET secret = set_byte(secret, 19, get_byte(secret, 19) # 1)
                               WHERE key = 'notifications.email.password'});
($ret, $out, $err) = $node->psql('postgres', q{SELECT aura.reveal_secret('notifications.email.password')});
like($err, qr/sealed secret failed authentication/, 'tampered ciphertext: authentication error');

# a command that fails, and a key file others can read: no key, clear reason
$node->append_conf('postgresql.conf', qq{aura.encryption_key_command = 'exit 3'\n});
$node->reload;
is($node->poll_query_until('postgres', q{SELECT NOT configured FROM aura.encryption_key_status()}), 1,
	'failing key command: no key');
like($node->safe_psql('postgres', 'SELECT error FROM aura.encryption_key_status()'), qr/key command failed \(exit status/,
	'failing key command: reason given');
($ret, $out, $err) = $node->psql('postgres', q{SELECT aura.set_setting('notifications.sms.auth_token', '"new"', 'restaurant', 1)});
like($err, qr/no encryption key is available for secret values/, 'no key: writing a secret fails');
like($err, qr/HINT:.*aura\.encryption_key_file/, 'no key: the hint says how to configure it');
is($node->safe_psql('postgres', q{SELECT count(*) FROM aura.setting_values WHERE key = 'notifications.sms.auth_token' AND restaurant_id = 1}),
	'0', 'no key: nothing written');
is($node->safe_psql('postgres', q{SELECT ok FROM aura.deployment_check() WHERE name = 'encryption_key'}), 'f',
	'deployment check fails without a key');
is($node->safe_psql('postgres', q{SELECT aura.set_setting('loyalty.pending_days', '2')}), '2',
	'non-secret settings still work without a key');

write_key("k2:$k2\n", 0644);
$node->append_conf('postgresql.conf', qq{aura.encryption_key_command = ''\naura.encryption_key_file = '$keyfile'\n});
$node->reload;
$node->poll_query_until('postgres', q{SELECT error LIKE '%group or world access%' FROM aura.encryption_key_status()});
like($node->safe_psql('postgres', 'SELECT error FROM aura.encryption_key_status()'), qr/group or world access/,
	'key file readable by others is refused');

# the key material never reached the server log; neither did plaintext
# secrets, except where the test's own statements are logged (log_statement)
my $log = slurp_file($node->logfile);
unlike($log, qr/$k1|$k2|$k2_wrong/, 'no key material in the server log');
my @leaks = grep { /pw-system|pw-r1|tok-r2/ && !/LOG:  statement: |STATEMENT: / } split /\n/, $log;
is(scalar(@leaks), 0, 'no plaintext secret logged by aura');

$node->stop;
done_testing();
