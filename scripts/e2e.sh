#!/usr/bin/env bash
# End-to-end test of the desktop app: installs tauri-driver if missing,
# builds the app (bundled UI, debug), the server and the CLI peer, then runs
# tests/e2e/app.e2e.mjs under Xvfb inside a private D-Bus session (so
# single-instance and notifications work, and everything started ends with it),
# then the call E2E (tests/e2e/call.sh: the app calls a courier-cli peer).
# Needs: webkit2gtk-driver (WebKitWebDriver), xvfb, xauth, dbus.
# E2E_SKIP_BUILD=1 builds nothing; COURIER_DEBUG_BINS_BUILT=1 (set by
# scripts/test.sh after its cargo test --workspace) skips only the server and
# CLI build.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_BUILD_JOBS="$JOBS"

if ! command -v tauri-driver >/dev/null; then
  echo "== installing tauri-driver"
  cargo install tauri-driver --locked -j"$JOBS"
fi
command -v WebKitWebDriver >/dev/null || { echo "WebKitWebDriver missing: apt-get install webkit2gtk-driver" >&2; exit 1; }

if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
  echo "== building the app (npx tauri build --debug --no-bundle)"
  npx tauri build --debug --no-bundle -- -j"$JOBS"
  # scripts/test.sh sets COURIER_DEBUG_BINS_BUILT: its `cargo test --workspace` just built them.
  if [ "${COURIER_DEBUG_BINS_BUILT:-0}" != 1 ]; then
    echo "== building courier-server and courier-cli"
    cargo build -j"$JOBS" --locked -p courier-server -p courier-client
  fi
fi

echo "== running the E2E under Xvfb + dbus-run-session"
xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node tests/e2e/app.e2e.mjs "$@"

# Real calls: the app calls a courier-cli peer inside a network namespace
# (root: unshare -n; the media stack ignores loopback).
echo "== running the call E2E (app <-> courier-cli, network namespace)"
bash tests/e2e/call.sh
