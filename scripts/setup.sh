#!/usr/bin/env bash
# Installs what stream-pack needs to build and test on Debian 12, skipping what is already there.
set -euo pipefail

packages=(
  ca-certificates build-essential pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libswscale-dev libswresample-dev libavdevice-dev
  # The tests' independent judges and media generator (openssl decrypts AES-128 segments).
  ffmpeg openssl
  # The browser that plays the packages in tests/e2e.
  chromium
  # The RTMP server of the live recording tests (tests/integration/util/rtmp.rs).
  nginx-light libnginx-mod-rtmp
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Debian's plain rustc is too old for edition 2024; rustc-web tracks current Rust.
command -v cargo >/dev/null || missing+=(rustc-web cargo-web)
# Node drives the browser tests; Debian's nodejs (18) is enough.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The browser tests' players and driver, pinned by tests/e2e/package-lock.json; npm writes
# node_modules/.package-lock.json on install, so a lock file newer than it means a stale install.
e2e="$(dirname "${BASH_SOURCE[0]}")/../tests/e2e"
if [ ! "$e2e/node_modules/.package-lock.json" -nt "$e2e/package-lock.json" ]; then
  echo "setup: installing the browser tests' packages (npm ci)" >&2
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
