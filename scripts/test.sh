#!/usr/bin/env bash
# Installs what is missing and runs the whole test suite: style, lints, unit and integration tests,
# the benchmark script's smoke run, then playback of generated packages in real players (tests/e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
cargo test --doc
# The benchmark script on a tiny clip: every contender makes a playable package of the same ladder.
python3 bench/run.py --smoke --stream-pack target/debug/stream-pack
node tests/e2e/run.mjs
