#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for building and testing
# Courier. Safe to run repeatedly: packages already present are skipped.
set -euo pipefail

APT_PACKAGES=(build-essential pkg-config ca-certificates curl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: Rust (cargo) is required: https://rustup.rs" >&2; exit 1; }
command -v node >/dev/null || { echo "setup: Node.js 20+ is required" >&2; exit 1; }
