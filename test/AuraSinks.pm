# AuraSinks.pm — helpers of the notification TAP tests: a cluster with the
# dispatcher configured for fast retries, the loopback HTTP and SMTP sinks
# (test/sinks/*.py, run with the system python3) and polling helpers.
package AuraSinks;
use strict;
use warnings;
use Exporter 'import';
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use Time::HiRes qw(time sleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(notify_node start_http_sink start_smtp_sink sink_control sink_records
                 smtp_records wait_for stop_sink);

my $top = $ENV{AURA_TOP} || '.';
my $python = '/usr/bin/python3';

# notify_node(NAME, EXTRA_CONF): a started cluster, aura preloaded, fast retries
sub notify_node
{
    my ($name, $extra) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    $node->append_conf('postgresql.conf', join("\n",
        "shared_preload_libraries = 'aura'",
        "aura.database = 'postgres'",
        # the settings master key (a fixed public test key): it seals channel and webhook
        # secrets and secret settings alike
        "aura.encryption_key_command = 'echo tapnotify:0b30557a9fc4e90e33587da2c7ec11365b80a5caef14395e83a8cdf2173c6186'",
        "aura.http_allow_hosts = '127.0.0.1'",
        "aura.retry_schedule = '0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3'",
        "aura.lease_time = 3",
        "aura.poll_interval = 100",
        "restart_after_crash = on",
        $extra // '', ''));
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION aura CASCADE');
    return $node;
}

# start_http_sink(DIR, [PORT], [CERT:KEY], [SECRETS]): (port, handle, log file) of a running
# HTTP(S) sink; SECRETS (array ref of whsec_ secrets) verify signatures from the first request on
sub start_http_sink
{
    my ($dir, $port, $tls, $secrets) = @_;
    my $name = $tls ? 'https_sink' : 'http_sink';
    my $log = "$dir/$name.log";
    my $pf = "$dir/$name.port";
    unlink $pf;
    my @tls = $tls ? ('--tls', $tls) : ();
    push @tls, map { ('--secret', $_) } @{ $secrets // [] };
    my $h = IPC::Run::start([$python, "$top/test/sinks/http_sink.py", '--log', $log,
                             '--port-file', $pf, '--port', $port // 0, @tls],
                            '>', "$dir/$name.out", '2>', "$dir/$name.err");
    wait_for(sub { -s $pf }, 10) or die 'http sink did not start: ' . slurp_file("$dir/$name.err");
    return (0 + slurp_file($pf), $h, $log);
}

# start_smtp_sink(DIR, PORT, [AUTH], [CERT:KEY], [IMPLICIT]): handle and log file of an
# SMTP sink; with CERT:KEY it requires STARTTLS, or with IMPLICIT speaks TLS at once (SMTPS)
sub start_smtp_sink
{
    my ($dir, $port, $auth, $tls, $implicit) = @_;
    my $log = "$dir/smtp_sink_$port.log";
    my @cmd = ($python, "$top/test/sinks/smtp_sink.py", '--port', $port, '--log', $log);
    push @cmd, '--auth', $auth if $auth;
    push @cmd, '--tls', $tls if $tls;
    push @cmd, '--implicit' if $implicit;
    my $out = '';
    my $h = IPC::Run::start(\@cmd, '>', \$out, '2>', "$dir/smtp_sink_$port.err");
    wait_for(sub { $h->pump_nb; $out =~ /\d/ }, 10) or die 'smtp sink did not start';
    return ($h, $log);
}

sub stop_sink
{
    my ($h) = @_;
    $h->kill_kill(grace => 1);
}

# sink_control(PORT, HASHREF): tell the HTTP sink a mode or its secrets
sub sink_control
{
    my ($port, $cmd) = @_;
    my $r = HTTP::Tiny->new(timeout => 5)->post("http://127.0.0.1:$port/_control",
        { content => encode_json($cmd), headers => { 'Content-Type' => 'application/json' } });
    die "sink control failed: $r->{status}" unless $r->{success};
}

sub read_jsonl
{
    my ($file) = @_;
    return () unless -e $file;
    open my $fh, '<', $file or die $!;
    my @rows;
    while (my $l = <$fh>) { push @rows, decode_json($l) if $l =~ /^\{/ && $l =~ /\}\s*$/; }
    close $fh;
    return @rows;
}

# sink_records(LOG, [PATH]): recorded requests, optionally of one path
sub sink_records
{
    my ($log, $path) = @_;
    return grep { !defined $path || $_->{path} eq $path } read_jsonl($log);
}

sub smtp_records { return read_jsonl($_[0]); }

# wait_for(CODE, SECONDS): poll until CODE returns true
sub wait_for
{
    my ($code, $secs) = @_;
    my $end = time + ($secs // 30);
    while (time < $end)
    {
        my $v = $code->();
        return $v if $v;
        sleep 0.1;
    }
    return undef;
}

1;
