# Docs cannot drift: every function, table and view of schema aura, every aura.*
# GUC, every setting definition and every event type aura emits must be named
# in README.md or docs/*.md (internal objects, whose names start with "_",
# excepted); docs/operations.md lists exactly the SQLSTATEs the code raises; and
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

# event types: every type aura's own code emits (C: EmitEvent/LedgerEmitEvent
# calls; SQL: emit_event/_emit_event/_reward_event calls, rows written into
# aura.loyalty_events, queued messages' 'type')
my %events;
for my $f (glob("$top/src/*.c"), glob("$top/sql/0.2/*.sql")) {
    my $src = slurp_file($f);
    $events{$_} = 1 for $src =~ /Emit\w*\(\s*[^,()]+,\s*"([a-z_]+\.[a-z_.]+)"/g;
    $events{$_} = 1 for $src =~ /(?:emit_event|_emit_event|_reward_event)\(\s*[^,()]+,\s*'([a-z_]+\.[a-z_.]+)'/g;
    $events{$_} = 1 for $src =~ /loyalty_events\s*\([^)]*\)\s*VALUES\s*\([^,]+,\s*'([a-z_]+\.[a-z_.]+)'/g;
    $events{$_} = 1 for $src =~ /'type',\s*'([a-z_]+\.[a-z_.]+)'/g;
}
cmp_ok(scalar(keys %events), '>=', 15, 'the sources name event types (' . join(' ', sort keys %events) . ')');
my @undocumented = grep { $docs !~ /(?<![A-Za-z0-9_.])\Q$_\E(?![A-Za-z0-9_])/ } sort keys %events;
is(join(', ', @undocumented), '', 'every event type is documented');

# SQLSTATEs: what the code raises (C errcode(ERRCODE_*), SQL ERRCODE = '...'),
# by code, against the table of docs/operations.md "Errors"
my (%by_macro, %by_name);
for (split /\n/, slurp_file($node->config_data('--sharedir') . '/errcodes.txt')) {
    next unless /^([0-9A-Z]{5})\s+[EWS]\s+(ERRCODE_\w+)\s*(\w*)/;
    $by_macro{$2} = $1;
    $by_name{$3} //= $1 if $3;   # PL/pgSQL takes the first code of a name
}
my %raised;
for my $f (glob("$top/src/*.c")) {
    for my $m (slurp_file($f) =~ /errcode\((ERRCODE_\w+)\)/g) {
        $raised{ $by_macro{$m} // "unknown macro $m" } = 1;
    }
}
for my $f ("$top/sql/aura--0.1.sql", glob("$top/sql/0.2/*.sql")) {
    for my $n (slurp_file($f) =~ /ERRCODE\s*=\s*'(\w+)'/gi) {
        $raised{ $n =~ /^[0-9A-Z]{5}$/ ? $n : ($by_name{$n} // "unknown condition $n") } = 1;
    }
}
my $ops = slurp_file("$top/docs/operations.md");
my ($errors) = $ops =~ /^## Errors(.*?)^## /ms or die 'docs/operations.md has no "## Errors" section';
my %listed = map { $_ => 1 } $errors =~ /^\| ([0-9A-Z]{5}) \|/mg;
cmp_ok(scalar(keys %raised), '>=', 10, 'the sources raise SQLSTATEs (' . scalar(keys %raised) . ')');
is(join(', ', grep { !$listed{$_} } sort keys %raised), '', 'every SQLSTATE raised is in docs/operations.md "Errors"');
is(join(', ', grep { !$raised{$_} } sort keys %listed), '', 'every SQLSTATE listed is raised somewhere');

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
