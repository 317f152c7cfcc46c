#!/usr/bin/env bash
# test/bench/run.sh — `make bench`: build, private install, one throwaway
# cluster tuned for benchmarking, then every scenario in
# test/bench/scenarios/NN_*.sh.  QUICK=1 shrinks the workloads; ONLY=40_ledger
# (a file name without .sh, globs allowed) runs only those scenarios.
#
# A scenario is a bash script run with PGHOST/PGPORT/PGDATABASE set, PG_BIN on
# PATH and QUICK exported.  For each figure it prints one JSON object per line:
#   {"scenario": "...", "unit": "reads/s", "aura": 1234.5, "baseline": 100.0,
#    "baseline_name": "PL/pgSQL", "target": ">= 20x baseline", "met": true}
# Other output goes to the log.  Numbers are reported, never asserted.
set -uo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

aura_build || exit 1
B=$PWD/tmp_check/bench
rm -rf "$B" && mkdir -p "$B"
PORT=$(free_port)
export PGHOST=$B PGPORT=$PORT PGDATABASE=aura_bench PGUSER=postgres QUICK=${QUICK:-}
"$PG_BIN/initdb" -D "$B/data" -A trust -U postgres --no-sync >"$B/initdb.log" 2>&1 || exit 1
cat >>"$B/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$B'
port = $PORT
shared_preload_libraries = 'aura'
aura.database = 'aura_bench'
shared_buffers = '1GB'
work_mem = '64MB'
max_wal_size = '8GB'
checkpoint_timeout = '30min'
# durability as in production; scenarios that measure CPU say when they differ
synchronous_commit = on
CONF
"$PG_BIN/pg_ctl" -D "$B/data" -l "$B/server.log" -w start >/dev/null || exit 1
trap '"$PG_BIN/pg_ctl" -D "$B/data" -m fast -w stop >/dev/null 2>&1' EXIT
"$PG_BIN/createdb" aura_bench || exit 1
psql -X -q -c 'CREATE EXTENSION aura CASCADE' 2>/dev/null

: >"$B/figures.jsonl"
# a scenario that hangs must not hold up the others: QUICK scenarios are meant
# to take < 30 s each, full ones a few minutes (override: BENCH_TIMEOUT=seconds)
limit=${BENCH_TIMEOUT:-$([ -n "$QUICK" ] && echo 90 || echo 900)}
bench_start=$SECONDS
for s in test/bench/scenarios/${ONLY:-[0-9]*}.sh; do
    [ -e "$s" ] || continue
    echo "== $(basename "$s")"
    t0=$SECONDS
    echo "== $(basename "$s")" >>"$B/scenarios.log"
    timeout --kill-after=10 "$limit" bash "$s" 2>>"$B/scenarios.log" | tee -a "$B/figures.jsonl" | sed 's/^/   /'
    rc=${PIPESTATUS[0]}
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "   (scenario stopped after ${limit} s; see tmp_check/bench/scenarios.log)"
    elif [ "$rc" != 0 ]; then
        echo "   (scenario failed with status $rc; see tmp_check/bench/scenarios.log)"
    fi
    echo "   ($(( SECONDS - t0 )) s)"
done
echo "== scenarios took $(( SECONDS - bench_start )) s"

mkdir -p bench
python3 - "$B/figures.jsonl" bench/results <<'PY'
import json, platform, os, sys, datetime, subprocess
rows = []
for l in open(sys.argv[1]):
    if not l.strip().startswith('{'):
        continue
    try:
        rows.append(json.loads(l))
    except ValueError:
        print('not a figure (bad JSON from a scenario):', l.strip()[:200], file=sys.stderr)
def fmt(v):
    return '-' if v is None else (f'{v:,.0f}' if abs(v) >= 100 else f'{v:,.3g}')
lines = ['| scenario | unit | aura | baseline | ratio | target | met |',
         '|---|---|---:|---:|---:|---|---|']
for r in rows:
    a, b = r.get('aura'), r.get('baseline')
    ratio = r.get('ratio') or (a / b if a and b else None)
    r['ratio'] = ratio
    lines.append('| %s | %s | %s | %s%s | %s | %s | %s |' % (
        r.get('scenario', '?'), r.get('unit', ''), fmt(a), fmt(b),
        f" ({r['baseline_name']})" if r.get('baseline_name') else '',
        '-' if ratio is None else f'{ratio:.2f}x', r.get('target', ''),
        {True: 'yes', False: 'NO', None: '-'}[r.get('met')]))
table = '\n'.join(lines)
print(table)
try:
    cpu = [l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')][0]
except Exception:
    cpu = platform.processor()
out = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(),
       'machine': {'cpu': cpu, 'cores': os.cpu_count(), 'kernel': platform.release(),
                   'memory_kb': next((int(l.split()[1]) for l in open('/proc/meminfo') if l.startswith('MemTotal')), None),
                   'postgres': subprocess.run(['postgres', '--version'], capture_output=True, text=True).stdout.strip()},
       'quick': bool(os.environ.get('QUICK')), 'figures': rows}
json.dump(out, open(sys.argv[2] + '.json', 'w'), indent=2)
open(sys.argv[2] + '.md', 'w').write(table + '\n')
PY
echo "(written: bench/results.md, bench/results.json)"
