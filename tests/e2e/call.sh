#!/usr/bin/env bash
# End-to-end call between the desktop app and a courier-cli peer
# (tests/e2e/call.e2e.mjs), inside a network namespace this script creates:
# libnice ignores loopback, so the namespace gets a veth pair (10.99.0.1,
# 10.99.0.2) for ICE host candidates, and no packet can leave the machine.
# Needs root (unshare -n), iproute2, Xvfb, dbus, tauri-driver and
# WebKitWebDriver; the app (npm run app:build), courier-server and
# courier-cli built in $CARGO_TARGET_DIR (or target/).
# E2E_SHOTS=docs/screenshots keeps the in-call screenshot (call-video.png).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${COURIER_CALL_NETNS:-}" != 1 ]; then
  exec unshare -n -- env COURIER_CALL_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.99.0.1/24 dev v0
ip addr add 10.99.0.2/24 dev v1
ip link set v0 up
ip link set v1 up
exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node tests/e2e/call.e2e.mjs "$@"
