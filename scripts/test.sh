#!/usr/bin/env bash
# Runs every test suite. Exits non-zero when any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
echo "== Rust: unit, storage, conformance and crash tests"
cargo test --workspace --locked -j"$JOBS"
