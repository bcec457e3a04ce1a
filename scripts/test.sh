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
# That run built the debug courier-server, courier-cli and courier-bench the
# scripts below start. Built again with their own narrower `cargo build -p …`,
# features unify differently and dozens of crates compile a second time
# (minutes on a fresh machine), for the same programs.
export COURIER_DEBUG_BINS_BUILT=1

echo "== bench: the issue-17 pieces as npm run bench runs them (raw relay process, append floor, their section)"
bash bench/smoke17.sh

# The test binaries of the conformance package named in "$@", as built by the
# run above. Cargo is asked with that run's exact selection, so it finds them
# fresh. A narrower selection changes feature unification and which
# dependencies build scripts and proc-macros share, and gives about a hundred
# dependencies other build hashes (112 with `-p courier-conformance`, 88 with
# `--workspace --test …`): every CI run would compile them a second time.
conformance_binaries() {
  cargo test --workspace --locked -j"$JOBS" --no-run --message-format=json 2>/dev/null |
    MANIFEST="$PWD/tests/Cargo.toml" node -e '
      const want = new Set(process.argv.slice(1));
      let out = "";
      process.stdin.on("data", (d) => (out += d)).on("end", () => {
        for (const line of out.split("\n")) {
          if (!line.startsWith("{")) continue;
          const m = JSON.parse(line);
          if (m.reason === "compiler-artifact" && m.executable && m.manifest_path === process.env.MANIFEST
              && m.target.kind.includes("test") && want.has(m.target.name)) console.log(m.executable);
        }
      });' "$@"
}

echo "== Conformance suite again, on a three-node cluster (PostgreSQL + Redis), ends of each case on different nodes"
if command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  CLUSTER_SUITES=(session messages channels presence_profiles invites limits media_push errors
    message_relations channel_roles abuse pagination privacy ice call_records calls)
  mapfile -t suites < <(conformance_binaries "${CLUSTER_SUITES[@]}")
  if [ "${#suites[@]}" -ne "${#CLUSTER_SUITES[@]}" ]; then
    echo "cluster run: found ${#suites[@]} of the ${#CLUSTER_SUITES[@]} conformance test binaries" >&2
    exit 1
  fi
  for bin in "${suites[@]}"; do
    echo "-- $(basename "$bin")"
    (cd tests && COURIER_TEST_CLUSTER=1 "$bin")
  done
  echo "== bench:cluster smoke: 300 sessions over 2 nodes from 2 generator processes, then a 200-member channel over both (debug build)"
  BENCH_PROFILE=debug BENCH_SESSIONS=300 BENCH_NODES=2 BENCH_GENERATORS=2 \
    BENCH_FANOUT_MEMBERS=200 BENCH_FANOUT_RATE=20 BENCH_FANOUT_SECS=5 \
    BENCH_CLUSTER_OUT="$(mktemp)" bash bench/cluster.sh >/tmp/courier-bench-cluster-smoke.log 2>&1 \
    || { cat /tmp/courier-bench-cluster-smoke.log; exit 1; }
  grep -E "^\| (sessions open at once|delivered / expected)" /tmp/courier-bench-cluster-smoke.log
else
  echo "SKIPPED: redis-server or PostgreSQL not installed (scripts/setup.sh --test installs them)"
fi

echo "== Desktop end-to-end: the real app under Xvfb, driven by tauri-driver, against a real server and a courier-cli peer"
bash scripts/e2e.sh
