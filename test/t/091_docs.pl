# Docs cannot drift: every function, table and view of schema aura, every aura.*
# GUC and every setting definition must be named in README.md or docs/*.md
# (internal objects, whose names start with "_", excepted); and
# docs/operations.md lists exactly the Citus calls that the catalog gives
# (the plan of test/catalog_plan.sql, also checked by sql/zz_catalog.sql).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = $ENV{AURA_TOP} or die "AURA_TOP not set";

my $node = PostgreSQL::Test::Cluster->new('docs');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'aura'\naura.database = 'postgres'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION aura CASCADE');

# all documentation, as one text
my $docs = '';
for my $f ("$top/README.md", glob("$top/docs/*.md")) {
    $docs .= slurp_file($f) . "\n";
}

my %named;   # kind => [names]
for my $row (split /\n/, $node->safe_psql('postgres', q{
    SELECT 'function', proname FROM pg_proc
     WHERE pronamespace = 'aura'::regnamespace AND proname !~ '^_'
    UNION SELECT CASE relkind WHEN 'v' THEN 'view' ELSE 'table' END, relname FROM pg_class
     WHERE relnamespace = 'aura'::regnamespace AND relkind IN ('r', 'p', 'v', 'm') AND relname !~ '^_'
    UNION SELECT 'GUC', name FROM pg_settings WHERE name LIKE 'aura.%'
    UNION SELECT 'setting', key FROM aura.setting_definitions
    ORDER BY 1, 2}))
{
    my ($kind, $name) = split /\|/, $row, 2;
    push @{ $named{$kind} }, $name;
}
# secret GUCs are hidden from pg_settings (GUC_NO_SHOW_ALL): take every GUC
# the C code defines as well
for my $c (glob("$top/src/*.c")) {
    for my $guc (slurp_file($c) =~ /DefineCustom\w+Variable\(\s*"(aura\.[a-z_.]+)"/g) {
        push @{ $named{GUC} }, $guc unless grep { $_ eq $guc } @{ $named{GUC} };
    }
}

for my $kind (sort keys %named) {
    ok(scalar @{ $named{$kind} } > 0, "catalog has ${kind}s to check");
    # a name counts as documented where it appears as a whole word
    my @missing = grep { $docs !~ /(?<![A-Za-z0-9_])\Q$_\E(?![A-Za-z0-9_])/ } @{ $named{$kind} };
    is(join(', ', @missing), '', "every $kind is documented (" . scalar(@{ $named{$kind} }) . " checked)");
}

# the Citus plan: generated from the catalog with the query of sql/zz_catalog.sql
my $regress = slurp_file("$top/sql/zz_catalog.sql");
my ($plan_sql) = $regress =~ /^(WITH RECURSIVE fk AS .*?;)\s*$/ms or die "no Citus plan query in sql/zz_catalog.sql";
my $view = $regress =~ /^(CREATE TEMP VIEW aura_tables AS.*?;)\s*$/ms ? $1 : die "no aura_tables view";
my $plan_file = slurp_file("$top/test/catalog_plan.sql");
my $calls = $node->safe_psql('postgres', "$plan_file\n$view\n$plan_sql");
my @from_catalog = split /\n/, $calls;
my @in_docs = slurp_file("$top/docs/operations.md") =~ /^(SELECT create_(?:distributed|reference)_table\(.*\);)\s*$/mg;
ok(scalar @from_catalog > 20, 'the catalog gives a Citus call for every table');
is(join("\n", @in_docs), join("\n", @from_catalog),
    'docs/operations.md lists the Citus call of every aura table, in order');

done_testing();
