#!/usr/bin/env bash
# Soak-size runs of the fault, soak and fuzz suites (`npm run soak`).
#
# The same tests `npm test` runs at CI size, made bigger through the
# environment (override any of these):
#   SOAK_CLIENTS    client cores in the link and kill -9 scenarios (200)
#   SOAK_SECS       seconds of load per scenario                   (600)
#   SOAK_KILLS      server SIGKILLs during the restart scenario     (10)
#   SOAK_CLI_USERS  courier-cli users killed at random points      (20)
#   SOAK_SEED       seed of every random choice (printed; replays a run)
#   PROPTEST_CASES  cases per fuzz property                      (20000)
# Figures (SOAK-FIGURES / FUZZ-FIGURES lines) are collected in
# target/soak/figures-<time>.jsonl; docs/reliability.md quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
export SOAK_CLIENTS="${SOAK_CLIENTS:-200}"
export SOAK_SECS="${SOAK_SECS:-600}"
export SOAK_KILLS="${SOAK_KILLS:-10}"
export SOAK_CLI_USERS="${SOAK_CLI_USERS:-20}"
export PROPTEST_CASES="${PROPTEST_CASES:-20000}"
# 200 clients need more descriptors than a default shell allows (hard cap here: 20000).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

target="${CARGO_TARGET_DIR:-target}"
out="$target/soak"
mkdir -p "$out"
log="$out/run-$(date +%Y%m%d-%H%M%S).log"
figures="${log%.log}.jsonl"
figures="${figures/run-/figures-}"

echo "== building (the soak scenarios run the real courier-server and courier-cli binaries)"
cargo build -j"$JOBS" --locked -p courier-server -p courier-client --bins
cargo test -j"$JOBS" --locked -p courier-soak -p courier-conformance -p courier-proto --no-run

echo "== soak: clients=$SOAK_CLIENTS secs=$SOAK_SECS kills=$SOAK_KILLS cli_users=$SOAK_CLI_USERS proptest_cases=$PROPTEST_CASES"
echo "   log: $log"
status=0
# One scenario at a time: each is sized to use the machine on its own.
cargo test -j"$JOBS" --locked -p courier-proto --test fuzz -- --test-threads=1 2>&1 | tee -a "$log" || status=1
for t in faults soak; do
  cargo test -j"$JOBS" --locked -p courier-soak --test "$t" -- --test-threads=1 --nocapture 2>&1 | tee -a "$log" || status=1
done
for t in fuzz security; do
  cargo test -j"$JOBS" --locked -p courier-conformance --test "$t" -- --test-threads=1 --nocapture 2>&1 | tee -a "$log" || status=1
done
grep -ho '\(SOAK\|FUZZ\)-FIGURES .*' "$log" | sed 's/^[A-Z]*-FIGURES //' > "$figures" || true
echo "== figures ($figures):"
cat "$figures"
exit "$status"
