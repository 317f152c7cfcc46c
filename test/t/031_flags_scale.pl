# Feature flags at scale and across a dump: 10,000 flags compiled and
# evaluated in one backend; 64 KB contexts; a pg_dump / restore round trip
# keeps every flag table and gives the same answers.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('flags_scale');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'aura'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION aura CASCADE');

# 10,000 flags in one Unleash document: a flexibleRollout at 50% with one
# constraint each, imported in one transaction
is($node->safe_psql('postgres', q{
    SELECT aura.import_unleash(jsonb_build_object('version', 1, 'features', (
        SELECT jsonb_agg(jsonb_build_object('name', 'scale.' || i, 'enabled', true,
            'strategies', jsonb_build_array(jsonb_build_object('name', 'flexibleRollout',
                'parameters', jsonb_build_object('rollout', '50', 'stickiness', 'userId', 'groupId', 'scale.' || i),
                'constraints', jsonb_build_array(jsonb_build_object('contextName', 'appName', 'operator', 'IN',
                                                                    'values', jsonb_build_array('web')))))))
          FROM generate_series(1, 10000) i)))}), '10000', 'an Unleash document of 10,000 flags imports');
is($node->safe_psql('postgres', "SELECT count(*) FROM aura.flags WHERE key LIKE 'scale.%'"), '10000', '10,000 flags');

# every flag evaluated: each answer equals its bucket rule; all 10,000 cached
my $check = q{
    SELECT count(*) FILTER (WHERE aura.flag_enabled('scale.' || i, '{"userId": "u7", "appName": "web"}')
                            IS DISTINCT FROM (aura.flag_bucket('scale.' || i, 'u7') <= 50)),
           count(*) FILTER (WHERE aura.flag_enabled('scale.' || i, '{"userId": "u7", "appName": "pos"}'))
      FROM generate_series(1, 10000) i};
is($node->safe_psql('postgres', "$check; SELECT entries >= 10000 FROM aura._flags_cache_stats()"),
    "0|0\nt", 'all 10,000 flags evaluate as their bucket says, and are cached');

# a 64 KB context (and a 1 MB one) works
is($node->safe_psql('postgres', q{
    SELECT aura.flag_enabled('scale.1', jsonb_build_object('userId', 'u7', 'appName', 'web',
               'properties', (SELECT jsonb_object_agg('k' || i, repeat('v', 1000)) FROM generate_series(1, n) g(i))))
           = (aura.flag_bucket('scale.1', 'u7') <= 50)
      FROM (VALUES (64), (1000)) v(n)}), "t\nt", '64 KB and 1 MB contexts');

# dump and restore into a fresh database: flags and their answers survive
$node->safe_psql('postgres', q{
    SELECT aura.flag_put('{"name": "dump.v", "enabled": true, "strategies": [{"name": "default"}],
        "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}');
    SELECT aura.segment_put('{"id": 5, "constraints": [{"contextName": "tier", "operator": "IN", "values": ["gold"]}]}');
    SELECT aura.flag_put('{"name": "dump.seg", "enabled": true, "strategies": [{"name": "default", "segments": [5]}]}');
});
my $answers = q{
    SELECT string_agg(aura.flag_enabled(k, c)::text || '/' || (aura.flag_variant(k, c) ->> 'name'), ',' ORDER BY k, c::text)
      FROM unnest(ARRAY['dump.v', 'dump.seg', 'scale.17', 'scale.9999']) k,
           unnest(ARRAY['{"userId": "1", "appName": "web"}'::jsonb, '{"userId": "2", "properties": {"tier": "gold"}}']) c};
my $before = $node->safe_psql('postgres', $answers);
my $counts = q{SELECT (SELECT count(*) FROM aura.flags) || ' ' || (SELECT count(*) FROM aura.flag_strategies) || ' '
                   || (SELECT count(*) FROM aura.flag_constraints) || ' ' || (SELECT count(*) FROM aura.flag_variants) || ' '
                   || (SELECT count(*) FROM aura.flag_segments) || ' ' || (SELECT count(*) FROM aura.flag_history)};
my $counts_before = $node->safe_psql('postgres', $counts);
my $dump = $node->basedir . '/flags.dump';
$node->command_ok(['pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres')], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(['pg_restore', '-d', $node->connstr('restored'), $dump], 'pg_restore');
is($node->safe_psql('restored', $counts), $counts_before, 'every flag table restored (flags, strategies, constraints, variants, segments, history)');
is($node->safe_psql('restored', $answers), $before, 'the restored flags give the same answers');
# the restored identity sequences continue after the restored rows
ok($node->safe_psql('restored', q{SELECT aura.flag_put('{"name": "after.restore", "enabled": true}') > 0}) eq 't',
   'a new flag can be written after the restore');

$node->stop;
done_testing();
