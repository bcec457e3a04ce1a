#!/usr/bin/env bash
# The standard benchmark set (`npm run bench`): builds release binaries, runs
# every scenario against Courier and against the Socket.IO peer with the same
# load generator on this machine, and writes docs/benchmarks.md.
#
# Environment:
#   BENCH_OUT      report to write            [docs/benchmarks.md]
#   BENCH_RESULTS  JSON results, one per line [target/bench/results.jsonl]
#   BENCH_QUICK=1  a short run (small sizes, 3 s steps) to check the harness
#   BENCH_TARGETS  targets to run             ["courier socketio"]
#   CARGO_BUILD_JOBS                          [2]
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
OUT="${BENCH_OUT:-docs/benchmarks.md}"
RESULTS="${BENCH_RESULTS:-target/bench/results.jsonl}"
TARGETS="${BENCH_TARGETS:-courier socketio}"

echo "== building release binaries (courier-server, courier-bench)"
cargo build -j"$JOBS" --release --locked -p courier-server -p courier-bench || exit 1
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
BENCH=$TARGET_DIR/release/courier-bench

if [[ " $TARGETS " == *" socketio "* && ! -d bench/peers/socketio/node_modules/socket.io ]]; then
  echo "== installing the Socket.IO peer (npm ci)"
  (cd bench/peers/socketio && npm ci --no-audit --no-fund) || exit 1
fi

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  D=3
  CONNECT=(connect --n 1000 --hold 2)
  P2P=(p2p --pairs 50 --rate 1000,5000 --duration $D)
  FANOUT=(fanout --members 200 --rate 50,200 --duration $D)
  STORM=(reconnect-storm --n 500)
  MIXED=(mixed --users 200 --channels 20 --rate 500 --duration $D)
else
  D=10
  CONNECT=(connect --n 15000 --hold 5)
  P2P=(p2p --pairs 200 --rate 1000,2000,4000,6000,8000,10000,15000,20000,30000,40000 --duration $D)
  FANOUT=(fanout --members 1000 --rate 10,25,50,100,200,300,500 --duration $D)
  STORM=(reconnect-storm --n 5000)
  MIXED=(mixed --users 1000 --channels 50 --rate 1000 --duration $D)
fi

mkdir -p "$(dirname "$RESULTS")"
: > "$RESULTS"
status=0
for target in $TARGETS; do
  for scenario in CONNECT P2P FANOUT STORM MIXED; do
    declare -n args="$scenario"
    echo "== $target: ${args[*]}"
    if line=$("$BENCH" --target "$target" --json "${args[@]}"); then
      echo "$line" >> "$RESULTS"
      "$BENCH" report --input <(echo "$line") --output /dev/stdout | sed -n '/^### /,/^## Method/p' | sed '$d'
    else
      echo "   failed (see above); continuing"
      status=1
    fi
    unset -n args
    sleep 2
  done
done

# The desktop app's section (scripts/measure-app.sh), last in the file, is kept.
DESKTOP="$(sed -n '/^## Desktop app memory and start-up/,$p' "$OUT" 2>/dev/null || true)"
"$BENCH" report --input "$RESULTS" --output "$OUT" || exit 1
if [ -n "$DESKTOP" ]; then printf '\n%s\n' "$DESKTOP" >>"$OUT"; fi
echo "== wrote $OUT (results in $RESULTS)"
exit $status
