#!/usr/bin/env bash
# Sets up what is missing and starts Courier with zero configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build -j2 --locked -p courier-server
exec cargo run -j2 --locked -p courier-server -- "$@"
