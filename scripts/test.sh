#!/usr/bin/env bash
# Runs every test suite; exits non-zero when any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
[ -d node_modules ] || npm ci --no-audit --no-fund

echo "== UI: Vitest (stores, components, i18n)"
npm run --silent test:ui

echo "== Rust: unit, storage, conformance, crash, client and CLI tests"
cargo test --workspace --locked -j"$JOBS"
