#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: style, lints, unit and integration tests,
# the benchmark script's smoke run, then playback of generated packages in real players (tests/e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup-tests.sh

# The publishing tests' servers: nginx-light (its dav module takes PUT/DELETE/MKCOL) and Garage
# (S3-compatible; no registry packages it, so it is built from crates.io once into ~/.cargo/bin
# and reused by every later run on the machine, CI's included). Only what the tests use: its
# SQLite engine (tests/integration/util/garage.rs), linked to Debian's libsodium, zstd and SQLite
# instead of building them; no LMDB, K2V or metrics.
dpkg-query -W -f='${Status}' nginx-light 2>/dev/null | grep -q "install ok installed" || {
  echo "test: installing nginx-light" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
}
command -v garage >/dev/null || {
  echo "test: building Garage for the S3 tests (once: about 7 minutes on 2 cores)" >&2
  cargo install garage --version 2.5.0 --locked --no-default-features --features sqlite,system-libs
}
# The cloud tests' emulators, in tests/servers: Azurite (Azure Blob Storage, npm, pinned by its
# package-lock.json) and gcp-storage-emulator (Google Cloud Storage, PyPI, in a venv).
servers=tests/servers
if [ ! "$servers/node_modules/.package-lock.json" -nt "$servers/package-lock.json" ]; then
  echo "test: installing Azurite (npm ci)" >&2
  (cd "$servers" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! "$servers/.venv/installed" -nt "$servers/requirements.txt" ]; then
  echo "test: installing gcp-storage-emulator (pip, in $servers/.venv)" >&2
  python3 -m venv "$servers/.venv" 2>/dev/null || {
    [ "$(id -u)" -eq 0 ] && sudo="" || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$servers/.venv"
  }
  "$servers/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$servers/requirements.txt"
  touch "$servers/.venv/installed"
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
# The benchmark script on a tiny clip: every contender makes a playable package of the same ladder.
python3 bench/run.py --smoke --stream-pack target/debug/stream-pack
node tests/e2e/run.mjs
