#!/usr/bin/env bash
# Runs every test suite; exits non-zero when any fails. Installs what the
# suites need first (scripts/setup.sh --test: seconds when nothing is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
bash scripts/setup.sh --test

export NO_COLOR=1
echo "== Node: every locked npm package accepts the Node versions package.json names"
node scripts/check-node.mjs --deps

echo "== UI: Vitest (stores, components, i18n)"
npm run --silent test:ui

echo "== UI: type-check and build (the desktop crate embeds ui/dist)"
npm run --silent ui:build

echo "== Rust: unit, storage, conformance, client-core faults and soak, crash, client and CLI tests"
cargo test --workspace --locked -j"$JOBS"

echo "== Conformance suite again, on a three-node cluster (PostgreSQL + Redis), ends of each case on different nodes"
if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  COURIER_TEST_CLUSTER=1 cargo test --locked -j"$JOBS" -p courier-conformance \
    --test session --test messages --test channels --test presence_profiles \
    --test invites --test limits --test media_push --test errors --test message_relations --test channel_roles --test abuse --test pagination --test privacy
  echo "== bench:cluster smoke: 300 sessions over 2 nodes from 2 generator processes (debug build)"
  BENCH_PROFILE=debug BENCH_SESSIONS=300 BENCH_NODES=2 BENCH_GENERATORS=2 \
    BENCH_CLUSTER_OUT="$(mktemp)" bash bench/cluster.sh >/tmp/courier-bench-cluster-smoke.log 2>&1 \
    || { cat /tmp/courier-bench-cluster-smoke.log; exit 1; }
  grep -E "^\| sessions open at once" /tmp/courier-bench-cluster-smoke.log
else
  echo "SKIPPED: redis-server or PostgreSQL not installed (scripts/setup.sh --test installs them)"
fi

echo "== Desktop end-to-end: the real app under Xvfb, driven by tauri-driver, against a real server and a courier-cli peer"
bash scripts/e2e.sh
