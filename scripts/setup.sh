#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for building, running and
# testing Courier, then the npm packages. Safe to run repeatedly: packages
# already present are skipped, so a warm machine spends seconds here.
#
#   scripts/setup.sh          build + run (what `npm start` needs)
#   scripts/setup.sh --test   also the test tools (`npm test` runs this first)
#
# Node.js itself is not installed here: the versions Courier supports are
# package.json's "engines" (checked by scripts/check-node.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PACKAGES=(
  build-essential pkg-config ca-certificates curl
  # Tauri v2 on Linux (WebKitGTK 4.1)
  libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libsoup-3.0-dev libssl-dev
  # notifications and deep-link registration
  dbus-x11 libnotify-bin xdg-utils desktop-file-utils
  # OS keyring (Secret Service over D-Bus) for stored tokens
  libdbus-1-dev
  # colour emoji in messages and the picker, and Chinese for the 简体中文 UI and
  # messages (a fresh Debian shows empty boxes for both)
  fonts-noto-color-emoji fonts-noto-cjk
  # calls: the media engine (GStreamer webrtcbin + libnice, Opus, VP8, webrtcdsp)
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-nice
  gstreamer1.0-alsa gstreamer1.0-pulseaudio
)
TEST_PACKAGES=(
  # headless desktop: virtual display, screenshots, WebDriver, a notification daemon
  xvfb xauth imagemagick webkit2gtk-driver dunst
  # the E2E's StatusNotifier host + notification daemon (tests/e2e/desktop_bus.py)
  # and a dictionary for the composer's spell-check scenario
  python3-dbus python3-gi hunspell-en-us
  # libunity: the window's badge count reaches a Unity launcher (the E2E's stub)
  libunity9
  # cluster tests start private instances of these
  postgresql redis-server haproxy
  # calls: TURN relay for the relay-only call test; network namespaces (ip netns, veth);
  # packet loss inside a test's namespace (the bandwidth adaptation test)
  coturn iproute2 nftables
  # calls: the interop test's independent WebRTC peer (aiortc, in a venv below)
  python3-venv
)

packages=("${BUILD_PACKAGES[@]}")
[[ "${1:-}" == "--test" ]] && packages+=("${TEST_PACKAGES[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
command -v node >/dev/null || {
  echo "setup: Node.js is required ($(sed -n 's/.*"node": "\(.*\)".*/\1/p' package.json)): https://nodejs.org" >&2
  exit 1
}
node scripts/check-node.mjs

# npm packages: reinstall when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# The benchmark's Socket.IO peers, without and with better-sqlite3 (their smoke tests run in `npm test`).
if [[ "${1:-}" == "--test" ]] && [ ! -d bench/peers/socketio/node_modules/better-sqlite3 ]; then
  echo "setup: npm ci (bench/peers/socketio)"
  npm ci --prefix bench/peers/socketio --no-audit --no-fund
fi

# The call interop test's aiortc peer (tests/interop): a venv outside the checkout,
# reinstalled only when tests/interop/requirements.txt changed.
VENV="${COURIER_VENV:-$HOME/.cache/courier-venv}"
if [[ "${1:-}" == "--test" ]] && [ ! "$VENV/.installed" -nt tests/interop/requirements.txt ]; then
  echo "setup: aiortc venv ($VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r tests/interop/requirements.txt
  touch "$VENV/.installed"
fi
