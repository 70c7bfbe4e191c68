#!/usr/bin/env bash
# Runs frugal's whole test suite on a fresh Debian machine with Rust: installs what is missing,
# fetches the embedding model, then format, lint, Rust tests (nextest) and the Python
# end-to-end tests (official `openai` client; a real llama.cpp server).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

setup_system
setup_models
setup_python

export FRUGAL_MODEL_DIR="${FRUGAL_MODEL_DIR:-$PWD/models}"
export FRUGAL_REQUIRE_MODELS=1   # the real-model tests must run, not skip
export FRUGAL_REQUIRE_TOOLS=1    # a missing promtool, kubectl or hadolint fails, never skips
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

say "cargo build (the binary the end-to-end tests run)"
cargo build -p frugal

say "cargo nextest run --workspace"
cargo nextest run --workspace --no-fail-fast

say "python end-to-end tests (openai client, llama.cpp server)"
FRUGAL_BIN="$target_dir/debug/frugal" "$PWD/.venv/bin/python" -m pytest -q tests/python
