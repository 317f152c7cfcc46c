# Foundation on a real server: aura preloaded, a backend killed with SIGKILL
# (the whole server restarts) and the data and tenant isolation survive; the
# extension installs from the first released version and updates in place.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('foundation');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'aura'\naura.database = 'postgres'\nrestart_after_crash = on\n");
$node->start;

# install the first released version, fill it, update to the newest
$node->safe_psql('postgres', q{
    CREATE EXTENSION aura VERSION '0.1' CASCADE;
    INSERT INTO aura.restaurants (id, name) VALUES (1, 'A'), (2, 'B');
    INSERT INTO aura.locations (restaurant_id, id, name) VALUES (1, 11, 'A1'), (2, 21, 'B1');
});
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'aura'"),
    '0.1', 'first released version installs');
$node->safe_psql('postgres', 'ALTER EXTENSION aura UPDATE');
my $newest = $node->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'aura'");
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'aura'"),
    $newest, "updates to the newest version $newest");
is($node->safe_psql('postgres', 'SELECT count(*) FROM aura.locations'), '2', 'data survives the update');
is($node->safe_psql('postgres', "SELECT ok FROM aura.deployment_check() WHERE name = 'extension_version'"),
    't', 'library and SQL versions agree after the update');

# an updated install and a fresh install of the newest version have the same objects
my $objects = q{SELECT string_agg(format('%s %s', classid::regclass, pg_describe_object(classid, objid, objsubid)), E'\n' ORDER BY 1)
                FROM pg_depend WHERE refclassid = 'pg_extension'::regclass
                 AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'aura')};
my $updated = $node->safe_psql('postgres', $objects);
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION aura CASCADE');
is($node->safe_psql('fresh', $objects), $updated, 'fresh install equals the updated one');

# tenant isolation through a real login role
$node->safe_psql('postgres', 'CREATE ROLE tap_manager LOGIN IN ROLE aura_manager');
is($node->safe_psql('postgres', 'SELECT aura.set_context(1); SELECT string_agg(name, \',\') FROM aura.locations',
    extra_params => ['-U', 'tap_manager']), "\nA1", 'manager in restaurant 1 sees only its location');

# kill -9 a backend: the postmaster restarts everything; aura comes back
my ($out, $err) = ('', '');
my $h = IPC::Run::start(
    ['psql', '-X', '-d', $node->connstr('postgres'), '-c',
     "BEGIN; INSERT INTO aura.locations (restaurant_id, id, name) VALUES (1, 12, 'uncommitted'); SELECT pg_sleep(600)"],
    '>', \$out, '2>', \$err);
$node->poll_query_until('postgres',
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%uncommitted%pg_sleep%' AND pid <> pg_backend_pid()")
    or die 'victim session did not start';
my $pid = $node->safe_psql('postgres',
    "SELECT pid FROM pg_stat_activity WHERE query LIKE '%uncommitted%pg_sleep%' AND pid <> pg_backend_pid()");
kill 'KILL', $pid;
$h->finish;
$node->poll_query_until('postgres', 'SELECT aura._preloaded()')
    or die 'server did not come back';
is($node->safe_psql('postgres', 'SELECT count(*) FROM aura.locations'), '2',
    'after a crash: committed rows kept, the uncommitted one gone');
like($node->safe_psql('postgres', 'SELECT detail FROM aura.deployment_check() WHERE name = \'preload_and_worker\''),
    qr/^preloaded/, 'still preloaded after the crash restart');

# an immediate stop is a crash too; recovery replays the WAL
$node->safe_psql('postgres', "INSERT INTO aura.locations (restaurant_id, id, name) VALUES (2, 22, 'B2')");
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', 'SELECT count(*) FROM aura.locations'), '3', 'committed row survives an immediate stop');

$node->stop;

# without shared_preload_libraries aura still works: the library loads on
# first use (no FATAL for start-time GUCs) and the checklist says what is missing
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->append_conf('postgresql.conf', "aura.database = 'postgres'\n");
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION aura CASCADE');
is($plain->safe_psql('postgres', "INSERT INTO aura.restaurants (id, name) VALUES (5, 'R'); SELECT aura.set_context(5); SELECT aura.current_restaurant()"),
    "\n5", 'functions work without preloading');
is($plain->safe_psql('postgres', "SHOW aura.database"), 'postgres', 'start-time GUCs still readable');
like($plain->safe_psql('postgres', "SELECT ok || ' ' || detail FROM aura.deployment_check() WHERE name = 'preload_and_worker'"),
    qr/^false .*shared_preload_libraries/, 'deployment_check says aura is not preloaded');
$plain->stop;
done_testing();
