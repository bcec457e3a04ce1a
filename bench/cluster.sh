#!/usr/bin/env bash
# 50,000 idle sessions on a Courier cluster on this machine
# (`npm run bench:cluster`).
#
# One server process may hold at most 20,000 open files here, so the
# sessions are spread over several nodes (PostgreSQL + Redis, as in
# docs/deploy.md §2) and opened by several load-generator processes at once.
# The script starts a private PostgreSQL and Redis on loopback, the nodes,
# then the generators (`courier-bench connect`, each holding its share), and
# measures the whole cluster itself while every session is open: the nodes'
# resident memory (sum of VmRSS) and Redis's `used_memory`, before the first
# session and with all of them held. Writes docs/benchmarks-cluster.md.
#
# Environment:
#   BENCH_SESSIONS     sessions in all                    [50000]
#   BENCH_NODES        courier-server processes           [4]
#   BENCH_GENERATORS   courier-bench processes            [3]
#   BENCH_CLUSTER_OUT  report to write                    [docs/benchmarks-cluster.md]
#   BENCH_PROFILE      release, or debug for a smoke run  [release]
#   BENCH_FANOUT_MEMBERS  members of the channel of the fan-out step,
#                      spread over the nodes (0: no fan-out step) [1000]
#   BENCH_FANOUT_RATE  messages per second to it          [50]
#   BENCH_FANOUT_SECS  seconds of the fan-out window      [10]
#   COURIER_DEBUG_BINS_BUILT=1  the debug binaries are built already (scripts/test.sh)
#   CARGO_BUILD_JOBS                                      [2]
# After the sessions, a fan-out step: one channel whose members are spread
# over the nodes (`courier-bench fanout` against every node), measuring the
# nodes' CPU per delivery (summed), Redis's CPU time, and whether every
# delivery arrived.
# Exits non-zero when a generator failed, not every session was open at
# once, or a fan-out delivery was missing.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
SESSIONS="${BENCH_SESSIONS:-50000}"
NODES="${BENCH_NODES:-4}"
GENERATORS="${BENCH_GENERATORS:-3}"
OUT="${BENCH_CLUSTER_OUT:-docs/benchmarks-cluster.md}"
PROFILE="${BENCH_PROFILE:-release}"
PER_GEN=$(( (SESSIONS + GENERATORS - 1) / GENERATORS ))
PER_NODE=$(( (SESSIONS + NODES - 1) / NODES ))
FANOUT_MEMBERS="${BENCH_FANOUT_MEMBERS:-1000}"
FANOUT_RATE="${BENCH_FANOUT_RATE:-50}"
FANOUT_SECS="${BENCH_FANOUT_SECS:-10}"
if (( PER_GEN > 19000 || PER_NODE > 19000 )); then
  echo "each process may hold at most 20,000 open files: use more nodes or generators" >&2
  exit 2
fi

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z "$PGBIN" || ! -x "$PGBIN/initdb" ]] || ! command -v redis-server >/dev/null; then
  echo "PostgreSQL and Redis are needed (scripts/setup.sh --test installs them)" >&2
  exit 2
fi

echo "== building $PROFILE binaries (courier-server, courier-bench)"
case "$PROFILE" in
  release) cargo build -j"$JOBS" --release --locked -p courier-server -p courier-bench || exit 1 ;;
  debug)
    # scripts/test.sh sets COURIER_DEBUG_BINS_BUILT: its `cargo test --workspace` just built them.
    if [[ "${COURIER_DEBUG_BINS_BUILT:-0}" != 1 ]]; then
      cargo build -j"$JOBS" --locked -p courier-server -p courier-bench || exit 1
    fi ;;
  *) echo "BENCH_PROFILE must be release or debug" >&2; exit 2 ;;
esac
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
SERVER=$TARGET_DIR/$PROFILE/courier-server
BENCH=$TARGET_DIR/$PROFILE/courier-bench

TMP=$(mktemp -d /tmp/courier-cluster-bench.XXXXXX)
chmod 755 "$TMP"
PIDS=()
as_postgres() { # from /: postgres may not enter the current directory
  if [[ $(id -u) == 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [[ -n "${RPORT:-}" ]] && redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1
  [[ -d "$TMP/pg" ]] && as_postgres "$PGBIN/pg_ctl" -D "$TMP/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rss_kib() { # summed VmRSS of the given pids
  local total=0 p v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}
redis_used() { redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/ {print $2+0}'; }
node_sessions() { # one node's courier_sessions gauge
  curl -s -H "Authorization: Bearer $ADMIN_SECRET" "http://127.0.0.1:$1/metrics" | awk '/^courier_sessions / {print $2+0}'
}
sessions_now() { # summed over every node
  local total=0 port v
  for port in "${PORTS[@]}"; do
    v=$(node_sessions "$port")
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

echo "== PostgreSQL and Redis on loopback (private, in $TMP)"
[[ $(id -u) == 0 ]] && chown postgres "$TMP"
PGPORT=$(free_port)
as_postgres "$PGBIN/initdb" -D "$TMP/pg" -A trust -U courier -E UTF8 --no-locale --no-sync >"$TMP/initdb.log" 2>&1 \
  || { cat "$TMP/initdb.log"; exit 1; }
as_postgres "$PGBIN/pg_ctl" -D "$TMP/pg" -l "$TMP/pg/log" -w \
  -o "-p $PGPORT -k $TMP/pg -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
  || { cat "$TMP/pg/log"; exit 1; }
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U courier courier || exit 1
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$TMP/redis.pid" --logfile "$TMP/redis.log" --dir "$TMP" || exit 1
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== $NODES nodes"
# /metrics needs the admin secret.
ADMIN_SECRET=$("$SERVER" secret) || exit 1
PORTS=()
NODE_PIDS=()
for i in $(seq 1 "$NODES"); do
  port=$(free_port)
  mkdir -p "$TMP/node$i"
  cat >"$TMP/node$i/server.toml" <<EOF
listen = "127.0.0.1:$port"
data_dir = "$TMP/node$i/data"
dev_auth = true
admin_secret = "$ADMIN_SECRET"
max_connections = 19500
# Generators open thousands of sockets per source address before hello.
max_unauthenticated_per_ip = 1000000
postgres = "postgresql://courier@127.0.0.1:$PGPORT/courier"
redis = "redis://127.0.0.1:$RPORT/"
node_id = "node$i"
[limits]
max_frame_bytes = 65536
max_body_bytes = 32768
send_per_sec = 1000000
send_burst = 1000000
history_page = 200
EOF
  RUST_LOG=warn "$SERVER" --config "$TMP/node$i/server.toml" >"$TMP/node$i/log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  NODE_PIDS+=("$pid")
  PORTS+=("$port")
  up=0
  for _ in $(seq 100); do
    if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then up=1; break; fi
    sleep 0.2
  done
  if (( ! up )); then echo "node$i did not come up:"; cat "$TMP/node$i/log"; exit 1; fi
done
URLS=$(printf 'ws://127.0.0.1:%s,' "${PORTS[@]}"); URLS=${URLS%,}
NODE_PID_LIST=$(IFS=,; echo "${NODE_PIDS[*]}")

sleep 2
RSS_BEFORE=$(rss_kib "${NODE_PIDS[@]}")
REDIS_BEFORE=$(redis_used)

# Hold long enough for every generator to finish connecting; the script
# samples once all sessions are open.
HOLD=$(( SESSIONS / 1000 + 8 ))
echo "== $GENERATORS generators × $PER_GEN sessions over $NODES nodes (hold ${HOLD}s)"
GEN_PIDS=()
T0=$(date +%s.%N)
for g in $(seq 1 "$GENERATORS"); do
  "$BENCH" --url "$URLS" --server-pid "$NODE_PID_LIST" --json connect --n "$PER_GEN" --hold "$HOLD" \
    >"$TMP/gen$g.json" 2>"$TMP/gen$g.err" &
  GEN_PIDS+=("$!")
  PIDS+=("$!")
done

# Wait until every session is open (or the generators gave up).
OPEN=0
PEAK_RSS=0
for _ in $(seq $(( HOLD * 2 ))); do
  OPEN=$(sessions_now)
  rss=$(rss_kib "${NODE_PIDS[@]}")
  (( rss > PEAK_RSS )) && PEAK_RSS=$rss
  (( OPEN >= PER_GEN * GENERATORS )) && break
  sleep 0.5
done
T1=$(date +%s.%N)
# Let them settle as the single-node scenario does, then sample.
sleep 2
OPEN=$(sessions_now)
RSS_HELD=$(rss_kib "${NODE_PIDS[@]}")
REDIS_HELD=$(redis_used)
PER_NODE_RSS=()
PER_NODE_OPEN=()
for k in "${!NODE_PIDS[@]}"; do
  PER_NODE_RSS+=("$(rss_kib "${NODE_PIDS[$k]}")")
  PER_NODE_OPEN+=("$(node_sessions "${PORTS[$k]}")")
done

status=0
for k in "${!GEN_PIDS[@]}"; do
  if ! wait "${GEN_PIDS[$k]}"; then
    echo "generator $((k + 1)) failed:"; cat "$TMP/gen$((k + 1)).err"; status=1
  fi
done
if (( OPEN < PER_GEN * GENERATORS )); then
  echo "only $OPEN of $(( PER_GEN * GENERATORS )) sessions were open at once"; status=1
fi
ALIVE=0
FAILED=0
for g in $(seq 1 "$GENERATORS"); do
  a=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["alive_after_hold"])' "$TMP/gen$g.json" 2>/dev/null || echo 0)
  f=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["summary"]["failed"])' "$TMP/gen$g.json" 2>/dev/null || echo "?")
  ALIVE=$(( ALIVE + a )); [[ "$f" =~ ^[0-9]+$ ]] && FAILED=$(( FAILED + f ))
done

# The fan-out step, on the same cluster (the idle sessions are gone).
FANOUT_JSON="$TMP/fanout.json"
REDIS_CPU_S=0
if (( FANOUT_MEMBERS > 0 )); then
  echo "== fan-out: one channel of $FANOUT_MEMBERS members over $NODES nodes, $FANOUT_RATE msg/s for ${FANOUT_SECS}s"
  redis_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$TMP/redis.pid")/stat"; }
  r0=$(redis_ticks)
  if ! "$BENCH" --url "$URLS" --server-pid "$NODE_PID_LIST" --json fanout --members "$FANOUT_MEMBERS" \
      --rate "$FANOUT_RATE" --duration "$FANOUT_SECS" >"$FANOUT_JSON" 2>"$TMP/fanout.err"; then
    echo "the fan-out step failed:"; cat "$TMP/fanout.err"; status=1
  fi
  r1=$(redis_ticks)
  REDIS_CPU_S=$(python3 -c "import os, sys; print((int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf('SC_CLK_TCK'))" "$r0" "$r1")
  if ! python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["steps"][0]; sys.exit(s["delivered"] != s["expected"])' "$FANOUT_JSON" 2>/dev/null; then
    echo "the fan-out step lost deliveries (or did not run):"; cat "$FANOUT_JSON" "$TMP/fanout.err"; status=1
  fi
fi

python3 - "$OUT" <<PY
import json, os, platform, subprocess, sys, time
out = sys.argv[1]
sessions, open_, alive, failed = $(( PER_GEN * GENERATORS )), $OPEN, $ALIVE, $FAILED
rss_before, rss_held, peak = $RSS_BEFORE, $RSS_HELD, $PEAK_RSS
redis_before, redis_held = $REDIS_BEFORE, $REDIS_HELD
per_node_rss = [int(x) for x in "${PER_NODE_RSS[*]}".split()]
per_node_open = [int(x) for x in "${PER_NODE_OPEN[*]}".split()]
wall = $T1 - $T0
per = (rss_held - rss_before) * 1024 / max(open_, 1)
rper = (redis_held - redis_before) / max(open_, 1)
rows = [
    ("sessions asked for", f"{sessions}"),
    ("sessions open at once (sum of the nodes' courier_sessions)", f"{open_}"),
    ("sessions still open after the hold (generators)", f"{alive}"),
    ("failed connects", f"{failed}"),
    ("nodes / generator processes", f"$NODES / $GENERATORS"),
    ("time until all were open (s)", f"{wall:.1f}"),
    ("connect rate, whole cluster (sessions/s)", f"{open_ / wall:.0f}"),
    ("nodes' RSS before → with all sessions (KiB)", f"{rss_before} → {rss_held}"),
    ("**node memory per session (KiB)**", f"**{per / 1024:.2f}**"),
    ("Redis used_memory per session (bytes)", f"{rper:.0f}"),
    ("node memory + Redis per session (KiB)", f"{(per + rper) / 1024:.2f}"),
]
fanout = ""
try:
    f = json.load(open("$FANOUT_JSON"))["steps"][0]
    fanout = f"""

### A channel over the nodes

Then, on the same cluster, \`courier-bench fanout\`: one channel of $FANOUT_MEMBERS members spread
round robin over the nodes (the sender on node1), {f['target_msgs_per_s']:g} messages a second for
$FANOUT_SECS s. A node delivers to its own members' sessions and publishes each event once on
Redis, naming the members; the others deliver it to theirs (docs/deploy.md, *How the nodes cooperate*).

| figure | value |
|---|---:|
| deliveries per second (target {f['target_deliveries_per_s']:.0f}) | {f['deliveries_per_s']:.0f} |
| delivered / expected | {f['delivered']} / {f['expected']} |
| **nodes' CPU per delivery, summed (µs)** | **{f['server_cpu_us_per_delivery']:.2f}** |
| Redis CPU time over the step (s) | $REDIS_CPU_S |
| send → delivery p50 / p99 (ms) | {f['deliver_p50_ms']:.1f} / {f['deliver_p99_ms']:.1f} |
| send → last member p99 (ms) | {f['last_member_p99_ms']:.1f} |
| kept up | {'yes' if f['kept_up'] else 'no'} |
"""
except (OSError, KeyError, IndexError, ValueError):
    pass
node_rows = "\n".join(f"| node{i+1} | {o} | {r} |" for i, (o, r) in enumerate(zip(per_node_open, per_node_rss)))
cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
text = f"""# Courier: {sessions:,} sessions on a cluster (this machine)

Generated by \`npm run bench:cluster\` (\`bench/cluster.sh\`) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.

One process may hold at most 20,000 open files on this machine, so the
sessions are spread over $NODES \`courier-server\` nodes sharing one PostgreSQL
and one Redis (docs/deploy.md §2), all on loopback, and opened by
$GENERATORS \`courier-bench connect\` processes at once (clients round robin over
the nodes, source addresses 127.0.0.2…). Every session is a signed-in
WebSocket (\`hello\` with a dev token), idle.

The script measures the cluster itself once every session is open: the sum
of the nodes' resident memory (\`VmRSS\`) before the first session and
2 s after the last, and Redis's \`used_memory\` (the cluster's
user-to-node map and subscriptions). PostgreSQL's memory does not grow with
idle sessions (a fixed pool per node).

| figure | value |
|---|---:|
""" + "\n".join(f"| {k} | {v} |" for k, v in rows) + f"""

| node | sessions | RSS (KiB) |
|---|---:|---:|
{node_rows}

Peak summed node RSS while connecting: {peak} KiB.
{fanout}
Machine: {cpu or 'unknown CPU'}, {os.cpu_count()} cores shared by everything above; {platform.system()} {platform.release()}.
"""
open(out, "w").write(text)
print(text)
PY
echo "== wrote $OUT"
exit $status
