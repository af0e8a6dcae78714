#!/usr/bin/env bash
# Installs what stream-pack needs to build on Debian 12, and the ffmpeg CLI the demo makes its
# sample with, skipping what is already there. scripts/setup-tests.sh adds what only the tests need.
set -euo pipefail

# Installs those of the Debian packages named that are missing.
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "setup: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

packages=(
  ca-certificates build-essential pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libswscale-dev libswresample-dev libavdevice-dev
  # The demo's sample maker, and the tests' independent judge and media generator.
  ffmpeg
)

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Debian's plain rustc is too old for edition 2024; rustc-web tracks current Rust.
command -v cargo >/dev/null || packages+=(rustc-web cargo-web)

install_missing "${packages[@]}"
