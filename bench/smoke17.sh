#!/usr/bin/env bash
# A few seconds' check of the issue-17 pieces as `npm run bench` runs them
# (`npm test` runs it; the scenarios themselves are covered by
# `cargo test -p courier-bench`): the raw relay started as its own process
# and driven by the generator, the append floor, and the issue-17 section
# written from their results, and the second generator (bench/xcheck.sh)
# against Courier and the Socket.IO peer. Uses the debug binaries `cargo test --workspace`
# built (building it with another selection would rebuild dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BENCH=$TARGET_DIR/debug/courier-bench
[ -x "$BENCH" ] || cargo build -j"${CARGO_BUILD_JOBS:-2}" --locked -p courier-bench
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BENCH" --target relay --label p2p-200 --json p2p --pairs 3 --rate 300,400 --duration 1 --no-stop >>"$TMP/r.jsonl"
"$BENCH" --target relay --label fanout --json fanout --members 5 --rate 20 --duration 1 >>"$TMP/r.jsonl"
"$BENCH" --label socket-floor --json socket-floor --members 5 --rate 20 --duration 0.5 >>"$TMP/r.jsonl"
"$BENCH" --label append-floor --json append-floor --rate 300,400,0 --duration 0.5 >>"$TMP/r.jsonl"
"$BENCH" floors --input "$TMP/r.jsonl" --output "$TMP/issue17.md"
# Every floor has a figure: relay CPU per message and per delivery, append CPU per row,
# the socket floor's CPU per frame written and read.
python3 - "$TMP/r.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
by = {r["label"]: r for r in runs}
p2p = by["p2p-200"]["steps"]
assert [s["step"] for s in p2p] == ["300", "400"], p2p
assert all(s["delivered"] > 0 and s["errors"] == 0 and s["generator_slow_parses"] == 0 for s in p2p), p2p
assert all(s["server_cpu_us_per_msg"] is not None for s in p2p), p2p
assert by["fanout"]["steps"][0]["delivered"] == by["fanout"]["steps"][0]["expected"], by["fanout"]
rows = by["append-floor"]["steps"]
assert [s["step"] for s in rows] == ["300", "400", "max"] and all(s["rows"] > 0 for s in rows), rows
sock = by["socket-floor"]["steps"]
assert [s["step"] for s in sock] == ["send", "uring", "send+multishot", "uring+multishot"], by["socket-floor"]
assert all(s["frames_received"] == s["frames"] > 0 and s["writer_cpu_us_per_frame"] > 0
           and s["reader_cpu_us_per_frame"] > 0 for s in sock), sock
PY
# The second generator (Node + ws) against Courier and the Socket.IO peer, one short run each.
COURIER_SERVER_BIN=$TARGET_DIR/debug/courier-server RATE=200 DURATION=1 WARMUP=0.5 REPS=1 \
  bash bench/xcheck.sh 3 >"$TMP/x.txt"
COURIER_SERVER_BIN=$TARGET_DIR/debug/courier-server MODE=fanout RATE=20 DURATION=1 WARMUP=0.5 REPS=1 \
  bash bench/xcheck.sh 5 >>"$TMP/x.txt"
python3 - "$TMP/x.txt" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
runs = [json.loads(l) for l in lines if l.startswith("{")]
assert [(r["proto"], r["mode"]) for r in runs] == [
    ("courier", "p2p"), ("socketio", "p2p"), ("courier", "fanout"), ("socketio", "fanout")], lines
assert all(r["delivered_per_s"] > 0 and r["failed"] == 0 and r["server_cpu_us_per_msg"] > 0 for r in runs), runs
# Every member gets every message: about 5 deliveries per message sent.
assert all(r["delivered_per_s"] >= 4 * r["acked_per_s"] > 0 for r in runs[2:]), runs
assert any(l.startswith("3 pairs at 200 msg/s: Socket.IO / Courier CPU per message") for l in lines), lines
assert any(l.startswith("5 members at 20 msg/s: Socket.IO / Courier CPU per delivery") for l in lines), lines
PY
grep -q "^(c) the socket floor.*multishot" "$TMP/issue17.md"
grep -q "^## Issue 17: " "$TMP/issue17.md"
grep -E "^\| \(a\) \+ \(b\)" "$TMP/issue17.md"
