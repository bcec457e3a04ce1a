#!/usr/bin/env bash
# A cross-check of issue 17's p2p comparison with a second load generator
# (bench/peers/socketio/xgen.js: Node + ws, JSON.stringify / JSON.parse per
# frame), independent of courier-bench. For each pair count, REPS alternated
# runs of Courier (release build, every message fsynced before its ok) and
# the Socket.IO peer that stores nothing, each on a fresh server; prints one
# JSON line per run and, at the end, Socket.IO's CPU per message / Courier's
# per run and their median.
#
#   bench/xcheck.sh [PAIRS...]        (default: 50 200 1000)
#   MODE=fanout RATE=100 bench/xcheck.sh 1000   (one channel of 1000 members)
#   RATE=10000 DURATION=10 REPS=3 WARMUP=3 bench/xcheck.sh 200
#   COURIER_SERVER_BIN=/path/to/courier-server bench/xcheck.sh   (another build)
#
# Needs: a release courier-server ($CARGO_TARGET_DIR or target/), the peer's
# node_modules (`npm ci` in bench/peers/socketio; `npm run bench` does it).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-p2p}"
RATE="${RATE:-10000}"
DURATION="${DURATION:-10}"
REPS="${REPS:-3}"
WARMUP="${WARMUP:-3}"
PAIRS=("${@:-50 200 1000}")
read -r -a PAIRS <<< "${PAIRS[*]}"
BIN="${COURIER_SERVER_BIN:-${CARGO_TARGET_DIR:-target}/release/courier-server}"
PEER=bench/peers/socketio
[[ -x "$BIN" ]] || { echo "xcheck: no courier-server at $BIN (cargo build --release -p courier-server, or set COURIER_SERVER_BIN)" >&2; exit 2; }
[[ -d "$PEER/node_modules/ws" ]] || (cd "$PEER" && npm ci --silent --no-audit --no-fund)
WORK="$(mktemp -d)"
OUT="$WORK/runs.jsonl"
SERVER_PID=""
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_healthy() {
  for _ in $(seq 100); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
      "http://127.0.0.1:$1/healthz" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "xcheck: the server exited; its log:" >&2; cat "$2" >&2; exit 1; }
    sleep 0.1
  done
  echo "xcheck: the server did not answer /healthz" >&2; exit 1
}

start() { # proto -> sets SERVER_PID, PORT
  PORT="$(free_port)"
  local dir="$WORK/$1-$RANDOM"
  mkdir -p "$dir"
  if [[ "$1" == courier ]]; then
    cat > "$dir/courier.toml" <<EOF
listen = "127.0.0.1:$PORT"
metrics_listen = "127.0.0.1:$(free_port)"
data_dir = "$dir/data"
dev_auth = true
max_connections = 20000
max_unauthenticated_per_ip = 20000
# Per-user send rate lifted: one user sends 50 msg/s here.
[limits]
send_per_sec = 1000000
send_burst = 1000000
EOF
    RUST_LOG=warn "$BIN" --config "$dir/courier.toml" > "$dir/log" 2>&1 &
  else
    PORT="$PORT" node "$PEER/server.js" > "$dir/log" 2>&1 &
  fi
  SERVER_PID=$!
  wait_healthy "$PORT" "$dir/log"
}

stop() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

sync
SIZE_FLAG=--pairs
[[ "$MODE" == fanout ]] && SIZE_FLAG=--members
for pairs in "${PAIRS[@]}"; do
  for rep in $(seq "$REPS"); do
    for proto in courier socketio; do
      start "$proto"
      node "$PEER/xgen.js" --proto "$proto" --url "ws://127.0.0.1:$PORT" --pid "$SERVER_PID" \
        --mode "$MODE" "$SIZE_FLAG" "$pairs" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" | tee -a "$OUT"
      stop
    done
  done
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in runs:
    size = f'{r["pairs"]} pairs' if r["mode"] == "p2p" else f'{r["members"]} members'
    by.setdefault(size, {}).setdefault(r["proto"], []).append(r)
for size, d in by.items():
    ratios = [s["server_cpu_us_per_msg"] / c["server_cpu_us_per_msg"] for c, s in zip(d["courier"], d["socketio"])]
    unit = "message" if d["courier"][0]["mode"] == "p2p" else "delivery"
    print(f"{size} at {runs[0]['rate']} msg/s: Socket.IO / Courier CPU per {unit} "
          + " / ".join(f"{x:.2f}" for x in ratios) + f", median {statistics.median(ratios):.2f}x; "
          + "p99 ms C " + " / ".join(str(c["deliver_p99_ms"]) for c in d["courier"])
          + ", S " + " / ".join(str(s["deliver_p99_ms"]) for s in d["socketio"]))
EOF
