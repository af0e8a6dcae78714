#!/usr/bin/env bash
# Installs what stream-pack needs to build and test on Debian 12, skipping what is already there.
set -euo pipefail

packages=(
  ca-certificates build-essential pkg-config clang libclang-dev
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libswscale-dev libswresample-dev libavdevice-dev
  # The tests' independent judges and media generator (openssl decrypts AES-128 segments).
  ffmpeg openssl
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
# Debian's plain rustc is too old for edition 2024; rustc-web tracks current Rust.
command -v cargo >/dev/null || missing+=(rustc-web cargo-web)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
