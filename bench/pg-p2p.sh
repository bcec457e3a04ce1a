#!/usr/bin/env bash
# Durable p2p on the cluster engines: one courier-server node on a private
# PostgreSQL and Redis (loopback), driven by courier-bench. Prints each rate
# step twice: CPU per message summed over the node, every PostgreSQL process
# and Redis, then the node alone (a second ramp on the same server), and
# each component's share of the cores over 5 s of the first step.
#
#   bench/pg-p2p.sh                      (200 pairs, 1000,2000,5000,8000,10000 msg/s, 8 s a step)
#   PAIRS=100 RATES=2000,4000 DURATION=10 SERVER=/path/to/courier-server bench/pg-p2p.sh
#
# Needs: PostgreSQL and Redis installed (scripts/setup.sh --test), release
# builds of courier-server and courier-bench in $CARGO_TARGET_DIR (or target/).
set -uo pipefail
cd "$(dirname "$0")/.."
T="${CARGO_TARGET_DIR:-target}/release"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
SERVER=${SERVER:-$T/courier-server}; BENCH=$T/courier-bench
[[ -x "$SERVER" && -x "$BENCH" ]] || { echo "pg-p2p: build first: cargo build --release -p courier-server -p courier-bench" >&2; exit 2; }
TMP=$(mktemp -d /tmp/pg-p2p.XXXX); chmod 755 $TMP
if [[ $(id -u) == 0 ]]; then chown postgres $TMP; asp() { (cd / && runuser -u postgres -- "$@"); }; else asp() { "$@"; }; fi
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() { kill $SP 2>/dev/null; wait $SP 2>/dev/null; redis-cli -p $RPORT shutdown nosave >/dev/null 2>&1; asp $PGBIN/pg_ctl -D $TMP/pg -m immediate stop >/dev/null 2>&1; rm -rf $TMP; }
trap cleanup EXIT
PGPORT=$(fp)
asp $PGBIN/initdb -D $TMP/pg -A trust -U courier -E UTF8 --no-locale >/dev/null 2>&1 || exit 1
asp $PGBIN/pg_ctl -D $TMP/pg -l $TMP/pg/log -w -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c max_connections=300 ${PGOPTS:-}" start >/dev/null || exit 1
$PGBIN/createdb -h 127.0.0.1 -p $PGPORT -U courier courier || exit 1
RPORT=$(fp)
redis-server --port $RPORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile $TMP/redis.pid --logfile $TMP/redis.log --dir $TMP
sleep 0.5
P=$(fp)
cat > $TMP/s.toml <<TOML
listen = "127.0.0.1:$P"
data_dir = "$TMP/data"
dev_auth = true
max_connections = 19500
max_unauthenticated_per_ip = 1000000
postgres = "postgresql://courier@127.0.0.1:$PGPORT/courier"
redis = "redis://127.0.0.1:$RPORT/"
node_id = "n1"
[limits]
send_per_sec = 1000000
send_burst = 1000000
TOML
RUST_LOG=warn $SERVER --config $TMP/s.toml > $TMP/log 2>&1 & SP=$!
for i in $(seq 100); do curl -sf http://127.0.0.1:$P/healthz >/dev/null && break; sleep 0.2; done
# warm the pool
$BENCH --url ws://127.0.0.1:$P --server-pid $SP p2p --pairs ${PAIRS:-200} --rate 2000 --duration 2 >/dev/null 2>&1
PM=$(head -1 $TMP/pg/postmaster.pid)
PIDS="$SP,$PM,$(pgrep -d, -P $PM),$(cat $TMP/redis.pid)"
echo "pids: $PIDS ($(pgrep -c -P $PM) postgres children)"
( sleep 3; python3 - $SP $PM $(cat $TMP/redis.pid) <<'PY'
import sys,time,subprocess
def ticks(pids):
    t=0
    for p in pids:
        try: f=open(f"/proc/{p}/stat").read().rsplit(")",1)[1].split(); t+=int(f[11])+int(f[12])
        except Exception: pass
    return t
sp,pm,rp=sys.argv[1:4]
kids=subprocess.run(["pgrep","-P",pm],capture_output=True,text=True).stdout.split()
groups={"server":[sp],"postgres":[pm]+kids,"redis":[rp]}
a={k:ticks(v) for k,v in groups.items()}; time.sleep(5); b={k:ticks(v) for k,v in groups.items()}
if all(b[k] >= a[k] for k in groups):  # (a process gone: the step ended first)
    print("CPU share over 5 s (cores):", {k:round((b[k]-a[k])/100/5,3) for k in groups})
PY
) &
$BENCH --url ws://127.0.0.1:$P --server-pid $PIDS --json p2p --pairs ${PAIRS:-200} --rate ${RATES:-1000,2000,5000,8000,10000} --duration ${DURATION:-8} > $TMP/all.json
$BENCH --url ws://127.0.0.1:$P --server-pid $SP --json p2p --pairs ${PAIRS:-200} --rate ${RATES:-1000,2000,5000,8000,10000} --duration ${DURATION:-8} > $TMP/srv.json
python3 - $TMP/all.json $TMP/srv.json <<'PY'
import json,sys
for f,lab in ((sys.argv[1],"server+pg+redis"),(sys.argv[2],"server alone")):
    for l in open(f):
        r=json.loads(l)
        steps=r.get("steps") or [r]
        for s in steps:
            print(lab, {k:s.get(k) for k in ("rate","acked_per_s","deliver_p50_ms","deliver_p99_ms","server_cpu_us_per_msg","kept_up")})
PY
