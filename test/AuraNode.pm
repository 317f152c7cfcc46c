# AuraNode.pm — helpers of the TAP tests that need a cluster with aura's key
# material (dump/restore, upgrades): key files written 0600 beside the data
# directory and named in postgresql.conf, as in production.
package AuraNode;
use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(keyed_node aura_tables_snapshot);

# keyed_node(NAME, master => HEX64, api_secret => HEX64, preload => 0|1,
#            conf => EXTRA): an initialised, not started cluster whose
# settings master key (key id k1) and API key secret are files in its base
# directory.  Two nodes given the same keys can read each other's secrets.
sub keyed_node
{
    my ($name, %o) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    my $dir = $node->basedir;
    for (["$dir/aura.key", 'k1:' . ($o{master} // '00' x 16 . '22' x 16) . "\n"],
         ["$dir/api.secret", ($o{api_secret} // 'ab' x 32) . "\n"]) {
        open(my $fh, '>', $_->[0]) or die "cannot write $_->[0]: $!";
        print $fh $_->[1];
        close $fh;
        chmod(0600, $_->[0]);
    }
    $node->append_conf('postgresql.conf', join("\n",
        ($o{preload} ? ("shared_preload_libraries = 'aura'", "aura.database = 'postgres'") : ()),
        "aura.encryption_key_file = '$dir/aura.key'",
        "aura.api_key_secret_file = '$dir/api.secret'",
        $o{conf} // '', ''));
    return $node;
}

# aura_tables_snapshot(NODE, DB): { table => "name rows md5" } of every table
# in schema aura; rows compare by value (regclass columns print names), so
# OIDs do not matter
sub aura_tables_snapshot
{
    my ($node, $db) = @_;
    my $out = $node->safe_psql($db, q{
        SELECT string_agg(format('%s %s %s', c.relname, n.rows, n.hash), E'\n' ORDER BY c.relname)
          FROM pg_class c
         CROSS JOIN LATERAL (SELECT (xpath('/row/n/text()', x))[1]::text AS rows,
                                    (xpath('/row/h/text()', x))[1]::text AS hash
                               FROM query_to_xml(format(
                                    'SELECT count(*) AS n, md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) AS h FROM aura.%I t',
                                    c.relname), false, true, '') x) n
         WHERE c.relnamespace = 'aura'::regnamespace AND c.relkind = 'r'});
    return { map { (split / /)[0] => $_ } split /\n/, $out };
}

1;
