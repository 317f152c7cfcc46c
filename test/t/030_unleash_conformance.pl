# Unleash client specification: every file of the shared conformance folder
# is loaded through aura.import_unleash and every "tests" and "variantTests"
# case is checked against aura.flag_enabled / aura.flag_variant.
#
# The folder is /work/shared/conformance/unleash, or $AURA_SHARED/conformance/unleash,
# or ../shared/conformance/unleash beside the source tree (tests run on a copy
# of the tree under /tmp, so the first two are what usually answers).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my @candidates = ('/work/shared/conformance/unleash');
unshift @candidates, "$ENV{AURA_SHARED}/conformance/unleash", $ENV{AURA_SHARED} if $ENV{AURA_SHARED};
push @candidates, "$ENV{AURA_TOP}/../shared/conformance/unleash" if $ENV{AURA_TOP};
my ($dir) = grep { defined $_ && -d $_ && glob("$_/*.json") } @candidates;
plan skip_all => 'Unleash conformance files not found (looked in ' . join(', ', grep { defined } @candidates)
    . '; set AURA_SHARED to the shared folder)' unless $dir;

my $node = PostgreSQL::Test::Cluster->new('flags_conformance');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'aura'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION aura CASCADE');

my $json = JSON::PP->new->canonical(1)->utf8(1);

sub lit
{
    my ($s) = @_;
    $s =~ s/'/''/g;
    return "'$s'";
}

# a case is random when its flag draws at random (gradualRolloutRandom, or
# random / default stickiness without userId and sessionId): the documented
# semantics are that 0% is never on and 100% always, so it is run 20 times
sub is_random
{
    my ($feature, $ctx) = @_;
    return 0 unless $feature;
    for my $s (@{ $feature->{strategies} || [] }) {
        return 1 if $s->{name} eq 'gradualRolloutRandom';
        my $st = ($s->{parameters} || {})->{stickiness} // '';
        return 1 if $s->{name} eq 'flexibleRollout'
            && ($st eq 'random' || (($st eq 'default' || $st eq '') && !$ctx->{userId} && !$ctx->{sessionId}));
    }
    return 0;
}

my ($files, $cases) = (0, 0);
for my $file (sort glob("$dir/*.json")) {
    my $name = $file =~ s{.*/}{}r;
    open my $fh, '<:raw', $file or die "$file: $!";
    my $spec = $json->decode(do { local $/; <$fh> });
    close $fh;
    my %features = map { $_->{name} => $_ } @{ $spec->{state}{features} || [] };
    my $state = lit($json->encode($spec->{state}));

    # aura refuses dependency cycles unless told to load them as Unleash does
    my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM aura.flags');
    my ($rc, $out, $err) = $node->psql('postgres',
        "BEGIN; DELETE FROM aura.flags; DELETE FROM aura.flag_segments; SELECT aura.import_unleash(${state}::jsonb); COMMIT;");
    my $mode = '';
    if ($rc != 0) {
        like($err, qr/dependency cycle/, "$name: the only import error is a dependency cycle") or diag($err);
        is($node->safe_psql('postgres', 'SELECT count(*) FROM aura.flags'), $before,
            "$name: a refused import loads nothing");
        $mode = ", on_cycle => 'load'";
    }
    my $loaded = $node->safe_psql('postgres',
        "DELETE FROM aura.flags; DELETE FROM aura.flag_segments; SELECT aura.import_unleash(${state}::jsonb, NULL$mode)");
    is($loaded, scalar(keys %features), "$name: all features imported");

    my (@sql, @checks);
    for my $t (@{ $spec->{tests} || [] }) {
        my $n = is_random($features{ $t->{toggleName} }, $t->{context}) ? 20 : 1;
        push @sql, "SELECT 'T|' || aura.flag_enabled(" . lit($t->{toggleName}) . ', '
            . lit($json->encode($t->{context})) . '::jsonb)::text' for 1 .. $n;
        push @checks, ['T', $t] for 1 .. $n;
    }
    for my $t (@{ $spec->{variantTests} || [] }) {
        push @sql, "SELECT 'V|' || aura.flag_variant(" . lit($t->{toggleName}) . ', '
            . lit($json->encode($t->{context})) . '::jsonb)::text';
        push @checks, ['V', $t];
    }
    next unless @sql;
    my @rows = grep { /^[TV]\|/ } split /\n/, $node->safe_psql('postgres', join(";\n", @sql));
    is(scalar @rows, scalar @checks, "$name: one answer per case");
    my %seen;
    for my $i (0 .. $#checks) {
        my ($kind, $t) = @{ $checks[$i] };
        my $got = substr($rows[$i] // '', 2);
        my $label = "$name: $t->{description}";
        next if $seen{$label}++ && $kind eq 'T' && $got eq ($t->{expectedResult} ? 'true' : 'false');
        if ($kind eq 'T') {
            is($got, $t->{expectedResult} ? 'true' : 'false', $label);
        } else {
            my $g = eval { $json->decode($got) } || {};
            my $e = $t->{expectedResult};
            my %want = (name => $e->{name}, enabled => $e->{enabled} ? 1 : 0);
            my %have = (name => $g->{name}, enabled => $g->{enabled} ? 1 : 0);
            if (exists $e->{payload}) {
                $want{payload} = $json->encode($e->{payload});
                $have{payload} = defined $g->{payload} ? $json->encode($g->{payload}) : 'none';
            }
            if (exists $e->{feature_enabled}) {
                $want{feature_enabled} = $e->{feature_enabled} ? 1 : 0;
                $have{feature_enabled} = $g->{feature_enabled} ? 1 : 0;
            }
            is_deeply(\%have, \%want, $label);
        }
        $cases++;
    }
    $files++;
}
note("$files files, $cases cases checked");
ok($files >= 1 && $cases > 0, "conformance cases were run ($files files, $cases cases)");

$node->stop;
done_testing();
