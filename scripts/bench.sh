#!/usr/bin/env bash
# frugal's benchmarks in one run: builds the release binary, starts the mock (0 ms) and the
# sidecar on loopback, and measures every path against a direct call at fixed rates and bounded
# times (scripts/bench.py). Writes BENCHMARKS.md and target/bench.json. Not part of the tests.
#
#   RATE=1000 DURATION=10s SEQUENTIAL=300 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v python3 >/dev/null || apt_packages python3
command -v hey >/dev/null || apt_packages hey
setup_models
say "cargo build --release"
cargo build --release -p frugal
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/frugal"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "benchmarking (about a minute and a half)"
python3 scripts/bench.py --bin "$bin" --work "$work" \
    --rate "${RATE:-1000}" --duration "${DURATION:-10s}" --sequential "${SEQUENTIAL:-300}" \
    --out-json "${CARGO_TARGET_DIR:-$PWD/target}/bench.json"
