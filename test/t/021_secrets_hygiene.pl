# API key secrets hygiene on a real server: the hashing secret from a file and
# from a command, log_statement = all, pg_stat_statements.  Keys are created,
# verified and misused; afterwards no plaintext key is found in the server log,
# pg_stat_statements, any aura table (audit log included) or a pg_dump.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('secrets');
$node->init;
my $dir = $node->basedir;
my $secret_file = "$dir/api_key_secret";
open(my $fh, '>', $secret_file) or die;
print $fh "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
close $fh;
chmod 0600, $secret_file;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'aura, pg_stat_statements'
aura.database = 'postgres'
aura.api_key_secret_file = '$secret_file'
log_statement = 'all'
log_min_error_statement = 'error'
});
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION aura CASCADE;
    CREATE EXTENSION pg_stat_statements;
    INSERT INTO aura.restaurants (id, name) VALUES (1, 'A');
    CREATE ROLE pos_app LOGIN IN ROLE aura_staff;
    -- what docs/security.md asks for the roles that pass keys
    ALTER ROLE pos_app SET log_parameter_max_length = 0;
});
is($node->safe_psql('postgres', 'SELECT aura._api_key_secret_status()'), 'hmac', 'secret loaded from the file');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_settings WHERE name LIKE \'aura.api_key_secret%\''), '0',
    'the secret settings are not listed in pg_settings');
my ($rc, $out, $err) = $node->psql('postgres', 'SHOW aura.api_key_secret_file', extra_params => ['-U', 'pos_app']);
like($err, qr/permission denied|must be superuser/, 'a non-superuser cannot read the secret file setting');

# keys: the plaintext leaves the server once, in the result of create_api_key
my @keys = map {
    $node->safe_psql('postgres', "SELECT aura.create_api_key(1, 'key $_', ARRAY['loyalty:*'])")
} 1 .. 3;
like($keys[0], qr/^aura_live_[0-9A-Za-z]{48}$/, 'a key is returned');
is($node->safe_psql('postgres', 'SELECT bool_and(hmac) FROM aura.api_keys'), 't', 'keys are hashed with HMAC-SHA-256');
my ($ok, $detail) = split /\|/, $node->safe_psql('postgres',
    "SELECT ok, detail FROM aura.deployment_check() WHERE name = 'api_keys'");
is($ok, 't', "deployment_check api_keys: $detail");

# verify as the application does: keys as bind parameters (pgbench, extended protocol)
my $script = "$dir/verify.sql";
open($fh, '>', $script) or die;
print $fh "SELECT key_id FROM aura.verify_api_key(:key, :scope);\nSELECT aura.set_context_from_key(:key, :scope);\n";
close $fh;
for my $k (@keys) {
    $node->command_ok(['pgbench', '-n', '-t', '3', '-M', 'extended', '-U', 'pos_app', '-D', "key=$k", '-D', 'scope=loyalty:read',
        '-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'], 'verification through bind parameters');
}
# misuse: a revoked key and a wrong scope, still as parameters
$node->safe_psql('postgres', 'SELECT aura.revoke_api_key(min(id)) FROM aura.api_keys');
open($fh, '>', "$dir/bad.sql") or die;
print $fh "SELECT key_id FROM aura.verify_api_key(:key, :scope);\n";
close $fh;
$node->command_fails(['pgbench', '-n', '-t', '1', '-M', 'extended', '-U', 'pos_app', '-D', "key=$keys[1]", '-D', 'scope=settings:write',
    '-f', "$dir/bad.sql", '-h', $node->host, '-p', $node->port, 'postgres'], 'a missing scope fails');
$node->command_fails(['pgbench', '-n', '-t', '1', '-M', 'extended', '-U', 'pos_app', '-D', "key=$keys[0]", '-D', 'scope=loyalty:read',
    '-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'], 'a revoked key fails');
$node->safe_psql('postgres', 'SELECT aura.audit_flush()');
like(slurp_file($node->logfile), qr/ERROR:  API key does not grant scope "settings:write"/, 'the scope failure reached the server');
cmp_ok($node->safe_psql('postgres', 'SELECT use_count FROM aura.api_keys WHERE name = \'key 2\''), '>', 0, 'usage recorded');

# a control: a key written as a literal does reach the log (so the search works)
my $control = $node->safe_psql('postgres', "SELECT aura.create_api_key(1, 'control', ARRAY['loyalty:*'])");
$node->safe_psql('postgres', "SELECT key_id FROM aura.verify_api_key('$control')");

# a second control: bind parameters without log_parameter_max_length = 0 are
# logged by log_statement (why docs/security.md asks for the setting)
$node->safe_psql('postgres', 'CREATE ROLE careless_app LOGIN IN ROLE aura_staff');
my $careless = $node->safe_psql('postgres', "SELECT aura.create_api_key(1, 'careless', ARRAY['loyalty:*'])");
$node->command_ok(['pgbench', '-n', '-t', '1', '-M', 'extended', '-U', 'careless_app', '-D', "key=$careless",
    '-D', 'scope=loyalty:read', '-f', $script, '-h', $node->host, '-p', $node->port, 'postgres'],
    'verification by a role without log_parameter_max_length = 0');

# where a key could end up
my $log = slurp_file($node->logfile);
my $pgss = $node->safe_psql('postgres', 'SELECT string_agg(query, E\'\n\') FROM pg_stat_statements');
my $tables = $node->safe_psql('postgres', q{
    SELECT string_agg(t, E'\n') FROM (
        SELECT (xpath('/row/t/text()', query_to_xml(format('SELECT string_agg(x::text, '' '') AS t FROM %s x', c.oid::regclass), false, true, '')))[1]::text AS t
          FROM pg_class c WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind IN ('r', 'v')) s});
my $dump = '';
my $dumpfile = "$dir/dump.sql";
$node->command_ok(['pg_dump', '-h', $node->host, '-p', $node->port, '-f', $dumpfile, 'postgres'], 'pg_dump');
$dump = slurp_file($dumpfile);

ok(index($log, $control) >= 0, 'control: a key passed as a literal is in the log (the search works)');
ok(index($log, $careless) >= 0, 'control: bind parameters are logged unless log_parameter_max_length = 0');
ok(length($tables) > 100 && $tables =~ /key 2/, 'aura tables were read');
for my $i (0 .. $#keys) {
    my $k = $keys[$i];
    my $secret_part = substr($k, 20, 32);    # what is never stored: after the lookup prefix
    ok(index($log, $secret_part) < 0, "key $i: not in the server log (log_statement = all)");
    ok(index($pgss, $secret_part) < 0, "key $i: not in pg_stat_statements");
    ok(index($tables, $secret_part) < 0, "key $i: not in any aura table or view (audit log included)");
    ok(index($dump, $secret_part) < 0, "key $i: not in a pg_dump");
}
ok(index($log, '00112233445566778899') < 0, 'the hashing secret is not in the log');

# a dump restores the keys and the audit log: keys verify in the restored database
$node->command_ok(['pg_dump', '-Fc', '-h', $node->host, '-p', $node->port, '-f', "$dir/dump.custom", 'postgres'], 'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '-h', $node->host, '-p', $node->port, '-d', 'restored', "$dir/dump.custom"], 'pg_restore');
is($node->safe_psql('restored', "SELECT restaurant_id FROM aura.verify_api_key('$keys[2]')"), '1',
    'a key verifies in the restored database');
is($node->safe_psql('restored', 'SELECT count(*) FROM aura.audit_log') + 0,
   $node->safe_psql('postgres', 'SELECT count(*) FROM aura.audit_log') + 0, 'the audit log is restored');
is($node->safe_psql('restored', 'SELECT count(*) FROM aura.privilege_mismatches'), '0',
    'the restored database has the declared privileges');
($rc, $out, $err) = $node->psql('restored', "SELECT * FROM aura.verify_api_key('$keys[0]')");
like($err, qr/invalid API key/, 'a revoked key stays revoked after restore');

# the same secret from a command: keys keep verifying
$node->append_conf('postgresql.conf', "aura.api_key_secret_file = ''\naura.api_key_secret_command = 'cat $secret_file'\n");
$node->restart;
is($node->safe_psql('postgres', 'SELECT aura._api_key_secret_status()'), 'hmac', 'secret loaded from a command');
is($node->safe_psql('postgres', "SELECT restaurant_id FROM aura.verify_api_key('$keys[2]')"), '1',
    'keys verify with the secret from the command');

# another secret: keys hashed with the old one no longer verify
open($fh, '>', "$dir/other_secret") or die;
print $fh "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n";
close $fh;
chmod 0600, "$dir/other_secret";
$node->append_conf('postgresql.conf', "aura.api_key_secret_command = 'cat $dir/other_secret'\n");
$node->restart;
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM aura.verify_api_key('$keys[2]')");
like($err, qr/invalid API key/, 'a changed secret invalidates the keys hashed with the old one');

# a broken secret (readable by others): the server says so, keys cannot be made or checked
chmod 0644, "$dir/other_secret";
$node->append_conf('postgresql.conf', "aura.api_key_secret_command = ''\naura.api_key_secret_file = '$dir/other_secret'\n");
$node->restart;
like($node->safe_psql('postgres', 'SELECT aura._api_key_secret_status()'), qr/^broken: .*group or world access/,
    'a world-readable secret file is refused');
($rc, $out, $err) = $node->psql('postgres', "SELECT aura.create_api_key(1, 'x', ARRAY['a'])");
like($err, qr/API key hashing secret could not be loaded/, 'no key is created with a broken secret (no silent fallback)');
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM aura.verify_api_key('$keys[2]')");
like($err, qr/API key hashing secret could not be loaded/, 'no key is verified with a broken secret');
like($node->safe_psql('postgres', "SELECT detail FROM aura.deployment_check() WHERE name = 'api_keys'"),
    qr/hashing secret broken/, 'deployment_check reports the broken secret');
like(slurp_file($node->logfile), qr/WARNING:  aura: the API key hashing secret could not be loaded/,
    'the server log says so at start');

$node->stop;
done_testing();
