#!/usr/bin/env bash
# The standard benchmark set (`npm run bench`): builds release binaries, runs
# every scenario against Courier and against the Socket.IO peer with the same
# load generator on this machine, then the issue-17 set (the floors, both
# Socket.IO peers, every target of issue 17), and writes docs/benchmarks.md.
#
#   npm run bench                 both sets (about 35 minutes after the build)
#   npm run bench -- --issue17    the issue-17 set only (about 25 minutes); the
#                                 rest of docs/benchmarks.md is kept
#   npm run bench -- --standard   the standard set only; the issue-17 section is kept
#   npm run bench -- --quick      short runs at small sizes, to check the harness
#
# Environment:
#   BENCH_OUT        report to write               [docs/benchmarks.md]
#   BENCH_RESULTS    JSON results, one per line    [target/bench/results.jsonl]
#   BENCH_RESULTS17  the issue-17 set's results    [target/bench/issue17.jsonl]
#   BENCH_QUICK=1    the same as --quick
#   BENCH_TARGETS    targets of the standard set   ["courier socketio"]
#   BENCH_PROFILE    release, or debug for a smoke run [release]
#   CARGO_BUILD_JOBS                               [2]
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
OUT="${BENCH_OUT:-docs/benchmarks.md}"
RESULTS="${BENCH_RESULTS:-target/bench/results.jsonl}"
RESULTS17="${BENCH_RESULTS17:-target/bench/issue17.jsonl}"
TARGETS="${BENCH_TARGETS:-courier socketio}"
PROFILE="${BENCH_PROFILE:-release}"
QUICK="${BENCH_QUICK:-0}"
STANDARD=1
ISSUE17=1
for arg in "$@"; do
  case "$arg" in
    --issue17) STANDARD=0 ;;
    --standard) ISSUE17=0 ;;
    --quick) QUICK=1 ;;
    *) echo "usage: bench/run.sh [--issue17 | --standard] [--quick]" >&2; exit 2 ;;
  esac
done

echo "== building $PROFILE binaries (courier-server, courier-bench)"
case "$PROFILE" in
  release) cargo build -j"$JOBS" --release --locked -p courier-server -p courier-bench || exit 1 ;;
  debug) cargo build -j"$JOBS" --locked -p courier-server -p courier-bench || exit 1 ;;
  *) echo "BENCH_PROFILE must be release or debug" >&2; exit 2 ;;
esac
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') || exit 1
BENCH=$TARGET_DIR/$PROFILE/courier-bench

if [[ ! -d bench/peers/socketio/node_modules/socket.io || ! -d bench/peers/socketio/node_modules/better-sqlite3 ]]; then
  echo "== installing the Socket.IO peer (npm ci)"
  (cd bench/peers/socketio && npm ci --no-audit --no-fund) || exit 1
fi

# The build (and an install) leave hundreds of MB of dirty pages, which the
# kernel writes back about 30 s later: in the middle of the first runs, where
# every fsync waits behind them (400 MB written back during a p2p window took
# its p99 from 4 ms to 112-143 ms). Write them out before anything is measured.
echo "== writing the build's files out to disk (sync)"
sync

status=0
# run FILE LABEL TARGET ARGS...: one scenario, its JSON line appended to FILE.
run() {
  local file=$1 label=$2 target=$3
  shift 3
  echo "== $label: $target: $*"
  local against=(--target "$target")
  if [[ "$target" == sqlite || "$target" == loopback ]]; then against=(); fi
  if line=$("$BENCH" "${against[@]}" --label "$label" --json "$@"); then
    echo "$line" >> "$file"
    "$BENCH" report --input <(echo "$line") --output /dev/stdout | sed -n '/^### /,/^## Method/p' | sed '$d'
  else
    echo "   failed (see above); continuing"
    status=1
  fi
  sleep 2
}

if [[ "$QUICK" == 1 ]]; then
  D=3
  CONNECT=(connect --n 1000 --hold 2)
  P2P=(p2p --pairs 50 --rate 1000,5000 --duration $D)
  FANOUT=(fanout --members 200 --rate 50,200 --duration $D)
  STORM=(reconnect-storm --n 500)
  MIXED=(mixed --users 200 --channels 20 --rate 500 --duration $D)
  D17=1; PAIRS=(20 10); OTHER_PAIRS=(5); RATES=400,500; MEMBERS=50; FAN_RATE=20; FAN_PAIRS=1; P2P_PAIRS=1; BUSY_MIB=64; PIPE_RATES=200,400
else
  D=10
  CONNECT=(connect --n 15000 --hold 5)
  P2P=(p2p --pairs 200 --rate 1000,2000,4000,6000,8000,10000,15000,20000,30000,40000 --duration $D)
  FANOUT=(fanout --members 1000 --rate 10,25,50,100,200,300,500 --duration $D)
  STORM=(reconnect-storm --n 5000)
  MIXED=(mixed --users 1000 --channels 50 --rate 1000 --duration $D)
  D17=10; PAIRS=(200 100); OTHER_PAIRS=(50 1000); RATES=8000,10000; MEMBERS=1000; FAN_RATE=100; FAN_PAIRS=3; P2P_PAIRS=2; BUSY_MIB=3072; PIPE_RATES=1000,2000,4000
fi
HI=${RATES##*,}

mkdir -p "$(dirname "$RESULTS")" "$(dirname "$RESULTS17")"
if [[ "$STANDARD" == 1 ]]; then
  : > "$RESULTS"
  for target in $TARGETS; do
    for scenario in CONNECT P2P FANOUT STORM MIXED; do
      declare -n args="$scenario"
      run "$RESULTS" standard "$target" "${args[@]}"
      unset -n args
    done
  done
fi

# The issue-17 set: every target under the same load, then the runs that
# need one target at a time. The disk-heavy runs come last.
if [[ "$ISSUE17" == 1 ]]; then
  : > "$RESULTS17"
  for target in courier socketio socketio-durable relay; do
    run "$RESULTS17" p2p-200 "$target" p2p --pairs "${PAIRS[0]}" --rate "$RATES" --duration $D17 --no-stop
    run "$RESULTS17" p2p-100 "$target" p2p --pairs "${PAIRS[1]}" --rate "$RATES" --duration $D17 --no-stop
    run "$RESULTS17" fanout "$target" fanout --members $MEMBERS --rate $FAN_RATE --duration $D17 --no-stop
  done
  # Fan-out again, Courier and Socket.IO in turn: the ratio is judged by the
  # median of the pairs (one pair moves with the host by more than the margin).
  for _ in $(seq "$FAN_PAIRS"); do
    for target in courier socketio; do
      run "$RESULTS17" fanout-pair "$target" fanout --members $MEMBERS --rate $FAN_RATE --duration $D17 --no-stop
    done
  done
  # p2p again, Courier and Socket.IO in turn: the same median of pairs,
  # and every 100-sender run's p99 is judged.
  for _ in $(seq "$P2P_PAIRS"); do
    for target in courier socketio; do
      run "$RESULTS17" p2p-pair-200 "$target" p2p --pairs "${PAIRS[0]}" --rate "$RATES" --duration $D17 --no-stop
      run "$RESULTS17" p2p-pair-100 "$target" p2p --pairs "${PAIRS[1]}" --rate "$RATES" --duration $D17 --no-stop
    done
  done
  # Other pair counts at the highest rate, one pair each: shown, not judged.
  for pairs in "${OTHER_PAIRS[@]}"; do
    for target in courier socketio; do
      run "$RESULTS17" "p2p-other-$pairs" "$target" p2p --pairs "$pairs" --rate "$HI" --duration $D17 --no-stop
    done
  done
  for i in 1 2 3; do
    run "$RESULTS17" "latency-$i" courier p2p --pairs "${PAIRS[0]}" --rate "$HI" --duration $D17
  done
  for target in courier socketio-durable; do
    run "$RESULTS17" pipeline "$target" pipeline --rate $PIPE_RATES --duration $D17
  done
  # The kernel's own cost of a fan-out's frames, written and read with nothing else.
  run "$RESULTS17" socket-floor loopback socket-floor --members $MEMBERS --rate $FAN_RATE --duration $D17
  run "$RESULTS17" append-floor sqlite append-floor --rate "$RATES,0" --duration $D17
  # The disk's own floor under the same writer: the slow-disk runs are
  # judged against it.
  run "$RESULTS17" slow-disk-floor sqlite append-floor --rate "$HI" --duration $D17 --busy-disk-mib $BUSY_MIB
  for target in courier socketio-durable; do
    run "$RESULTS17" slow-disk "$target" p2p --pairs "${PAIRS[0]}" --rate "$HI" --duration $D17 \
      --busy-disk-mib $BUSY_MIB --no-stop
  done
fi

# The file is: the standard report, the issue-17 section, then the desktop
# app's section (scripts/measure-app.sh). A part not run this time is kept
# from the file as it was.
HEADING17='^## Issue 17: '
DESKTOP='^## Desktop app memory and start-up'
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [[ "$STANDARD" == 1 ]]; then
  "$BENCH" report --input "$RESULTS" --output "$TMP/main.md" || exit 1
else
  awk -v a="$HEADING17" -v b="$DESKTOP" '$0 ~ a || $0 ~ b {exit} {print}' "$OUT" > "$TMP/main.md" 2>/dev/null
fi
if [[ "$ISSUE17" == 1 ]]; then
  "$BENCH" floors --input "$RESULTS17" --output "$TMP/issue17.md" || exit 1
else
  awk -v a="$HEADING17" -v b="$DESKTOP" '$0 ~ b {exit} $0 ~ a {on=1} on {print}' "$OUT" > "$TMP/issue17.md" 2>/dev/null
fi
sed -n "/$DESKTOP/,\$p" "$OUT" > "$TMP/desktop.md" 2>/dev/null
# Each part without its trailing blank lines, one blank line between parts
# (so a part kept from the file does not gather blank lines run by run).
part() { sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$1"; }
{
  part "$TMP/main.md"
  if [ -s "$TMP/issue17.md" ]; then printf '\n'; part "$TMP/issue17.md"; fi
  if [ -s "$TMP/desktop.md" ]; then printf '\n'; part "$TMP/desktop.md"; fi
} > "$TMP/out.md"
mkdir -p "$(dirname "$OUT")"
cp "$TMP/out.md" "$OUT"
echo "== wrote $OUT (results in $RESULTS and $RESULTS17)"
exit $status
