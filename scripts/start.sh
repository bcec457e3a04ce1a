#!/usr/bin/env bash
# `npm start`: sets up what is missing, builds the UI and the desktop app, and
# opens it. With no account configured the app starts its embedded server and
# signs in on it; pass `--server` to run only the server instead.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${CARGO_BUILD_JOBS:-2}"
TARGET="${CARGO_TARGET_DIR:-target}"

if [[ "${1:-}" == "--server" ]]; then
  shift
  bash scripts/setup.sh
  exec cargo run -j"$JOBS" --locked -p courier-server -- "$@"
fi

bash scripts/setup.sh
echo "start: building the UI"
npm run --silent ui:build
echo "start: building the desktop app (the first build takes a few minutes)"
cargo build -j"$JOBS" --locked -p courier-desktop
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  echo "start: no display (DISPLAY / WAYLAND_DISPLAY unset); run under a desktop session or xvfb-run" >&2
  exit 1
fi
# First run (no saved account for this profile): go straight to chatting on
# the embedded server with a random nickname and avatar (editable in
# Settings), instead of the first-run screen the installed app shows.
root="${COURIER_DATA_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/courier}"
if [ ! -f "$root/${COURIER_PROFILE:-default}/account.json" ]; then
  export COURIER_EMBEDDED=1
fi
exec "$TARGET/debug/courier" "$@"
