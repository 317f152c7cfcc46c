#!/usr/bin/env bash
# 70 notifications: the dispatcher against the loopback HTTP sink (fast mode).
#  1. drain: N queued webhook messages (50,000; QUICK 5,000), committed at
#     once, until every one is delivered -> deliveries/s (target >= 5,000/s,
#     25x pg_net's published ~200 requests/s; pg_net is not installed here, so
#     its figure is the published one, not measured in this run)
#  2. latency: single messages committed one by one -> commit-to-delivery
#     p50 / p99 (target p50 <= 20 ms)
#  3. the worker's CPU time per 1,000 deliveries (the honest figure on a shared
#     machine) and its RSS; the Python sink's CPU per 1,000 (on 2 shared cores
#     the sink competes with the dispatcher and PostgreSQL for the CPU)
set -uo pipefail
N=50000; L=300
[ -n "${QUICK:-}" ] && { N=5000; L=60; }
T=$(mktemp -d)
PY=/usr/bin/python3
"$PY" test/sinks/http_sink.py --fast --log "$T/sink.log" --port-file "$T/port" >"$T/sink.out" 2>&1 &
SINK=$!
trap 'kill $SINK 2>/dev/null; psql -X -q -c "ALTER SYSTEM RESET aura.http_allow_hosts" -c "SELECT pg_reload_conf()" >/dev/null 2>&1; rm -rf "$T"' EXIT
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
PORT=$(cat "$T/port")
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL || exit 1
ALTER SYSTEM SET aura.http_allow_hosts = '127.0.0.1';
-- webhook secrets are sealed with the master key (the same one 10_settings.sh sets)
ALTER SYSTEM SET aura.encryption_key_command = 'echo bench1:$(printf '%064d' 7)';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
INSERT INTO aura.restaurants (id, name) VALUES (7001, 'Bench notifications') ON CONFLICT DO NOTHING;
SELECT aura.set_context(7001);
SELECT id FROM aura.create_webhook('bench', 'http://127.0.0.1:$PORT/bench', '{bench.*}');
SQL
WID=$(psql -X -At -c "SELECT id FROM aura.webhooks WHERE restaurant_id = 7001 AND name = 'bench'")
WPID=$(psql -X -At -c "SELECT pid FROM aura.worker_status()")
[ -n "$WPID" ] || { echo "no dispatcher running" >&2; exit 1; }
cpu() { awk '{print $14 + $15}' "/proc/${1:-$WPID}/stat"; }
pending() { psql -X -At -c "SELECT count(*) FROM aura.notifications WHERE restaurant_id = 7001 AND status <> 'delivered'"; }

# 1. drain: queue N messages in one transaction (the outbox rows emit_event writes)
c0=$(cpu); s0=$(cpu $SINK)
t0=$(psql -X -At <<SQL | tail -1
INSERT INTO aura.notifications (restaurant_id, msg_id, event_type, channel, webhook_id, payload, max_attempts)
SELECT 7001, 'msg_bench_' || i, 'bench.drain', 'webhook', $WID,
       jsonb_build_object('type', 'bench.drain', 'timestamp', now(), 'data', jsonb_build_object('i', i)), 8
  FROM generate_series(1, $N) i;
SELECT extract(epoch FROM clock_timestamp());
SQL
)
while [ "$(pending)" != 0 ]; do sleep 0.05; done
t1=$(date +%s.%N)
c1=$(cpu); s1=$(cpu $SINK)
rate=$("$PY" -c "print(round($N / ($t1 - $t0), 1))")
cpu_per_k=$("$PY" -c "print(round(($c1 - $c0) * 10.0 / ($N / 1000), 1))")   # clock ticks of 10 ms
sink_per_k=$("$PY" -c "print(round(($s1 - $s0) * 10.0 / ($N / 1000), 1))")
echo "{\"scenario\": \"notifications: drain $N queued webhooks\", \"unit\": \"deliveries/s\", \"aura\": $rate, \"baseline\": 200, \"baseline_name\": \"pg_net, published figure\", \"target\": \">= 5000/s\", \"met\": $("$PY" -c "print(str($rate >= 5000).lower())")}"

# 2. latency of single messages: commit, then the sink's arrival time
psql -X -At >"$T/commits" <<SQL
SELECT aura.set_context(7001) \g /dev/null
$(for i in $(seq 1 $L); do
    echo "SELECT aura.emit_event(7001, 'bench.single', '{\"i\": $i}') \\g /dev/null"
    echo "SELECT 'msg_7001_' || currval('aura.events_id_seq') || '_w$WID', extract(epoch FROM clock_timestamp());"
    echo "SELECT pg_sleep(0.01) \\g /dev/null"
  done)
SQL
while [ "$(pending)" != 0 ]; do sleep 0.05; done
read -r p50 p99 <<<"$("$PY" - "$T/commits" "$T/sink.log" <<'PY'
import sys
commits = dict(l.strip().split('|') for l in open(sys.argv[1]) if '|' in l)
arrive = {}
for l in open(sys.argv[2]):
    t, _, mid = l.strip().partition(' ')
    if mid in commits and mid not in arrive:
        arrive[mid] = float(t)
lat = sorted((arrive[m] - float(c)) * 1000 for m, c in commits.items() if m in arrive)
print(round(lat[len(lat) // 2], 2), round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2))
PY
)"
echo "{\"scenario\": \"notifications: commit-to-delivery latency p50 ($L single messages)\", \"unit\": \"ms\", \"aura\": $p50, \"baseline\": null, \"target\": \"<= 20 ms\", \"met\": $("$PY" -c "print(str($p50 <= 20).lower())")}"
echo "{\"scenario\": \"notifications: commit-to-delivery latency p99\", \"unit\": \"ms\", \"aura\": $p99, \"baseline\": null, \"target\": \"-\", \"met\": null}"

# 3. worker resources
# VmRSS counts the shared buffers the worker has touched (shared_buffers is
# 1 GB here); RssAnon is the worker's own memory
rss=$(awk '/VmRSS/ {print $2 / 1024}' "/proc/$WPID/status")
anon=$(awk '/RssAnon/ {print $2 / 1024}' "/proc/$WPID/status")
echo "{\"scenario\": \"notifications: worker CPU per 1,000 deliveries (drain)\", \"unit\": \"ms\", \"aura\": $cpu_per_k, \"baseline\": null, \"target\": \"-\", \"met\": null}"
echo "{\"scenario\": \"notifications: loopback sink (Python) CPU per 1,000 deliveries (drain)\", \"unit\": \"ms\", \"aura\": $sink_per_k, \"baseline\": null, \"target\": \"-\", \"met\": null}"
echo "{\"scenario\": \"notifications: worker RSS (incl. shared buffers it touched)\", \"unit\": \"MB\", \"aura\": $rss, \"baseline\": null, \"target\": \"-\", \"met\": null}"
echo "{\"scenario\": \"notifications: worker private memory (RssAnon)\", \"unit\": \"MB\", \"aura\": $anon, \"baseline\": null, \"target\": \"-\", \"met\": null}"
psql -X -q -c "DELETE FROM aura.notifications WHERE restaurant_id = 7001" >/dev/null
