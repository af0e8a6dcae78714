#!/usr/bin/env bash
# Installs what the tests need beyond scripts/setup.sh (which it runs first) on Debian 12,
# skipping what is already there: the servers, browser and players of the tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

packages=(
  # openssl decrypts AES-128 segments; groff renders the manual page.
  openssl groff-base
  # The browser that plays the packages in tests/e2e.
  chromium
  # The RTMP server of the live recording tests (tests/integration/util/rtmp.rs).
  nginx-light libnginx-mod-rtmp
  # What Garage, the S3 server of the publishing tests, links to (see scripts/test.sh).
  libsodium-dev libzstd-dev libsqlite3-dev
  # The Slurm cluster of the scale-out tests (tests/integration/util/slurm.rs).
  slurm-wlm munge
)
# Node drives the browser tests; Debian's nodejs (18) is enough.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)

install_missing "${packages[@]}"

# The browser tests' players and driver, pinned by tests/e2e/package-lock.json; npm writes
# node_modules/.package-lock.json on install, so a lock file newer than it means a stale install.
e2e="$(dirname "${BASH_SOURCE[0]}")/../tests/e2e"
if [ ! "$e2e/node_modules/.package-lock.json" -nt "$e2e/package-lock.json" ]; then
  echo "setup: installing the browser tests' packages (npm ci)" >&2
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
