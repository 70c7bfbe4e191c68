#!/usr/bin/env bash
# frugal's benchmarks in one run: builds the release binary, starts the mock (0 ms) and the
# sidecar on loopback, and measures every path against a direct call at fixed rates and bounded
# times (scripts/bench.py), criterion's micro-benchmarks, and the same miss through LiteLLM's
# proxy (pinned, its own venv) at a rate it survives. Writes BENCHMARKS.md and
# target/bench.json. Not part of the tests.
#
#   RATE=2000 DURATION=10s SEQUENTIAL=300 BENCH_LITELLM=1 INDEX_SIZES=100000 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
command -v python3 >/dev/null || apt_packages python3
command -v wrk >/dev/null || apt_packages wrk
target="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target"
work="$(mktemp -d)"
litellm_install=""
trap '[ -n "$litellm_install" ] && kill "$litellm_install" 2>/dev/null; rm -rf "$work"' EXIT
# LiteLLM, pinned, in its own venv, as the side-by-side peer (BENCH_LITELLM=0 skips it). Its
# first install (a few minutes, mostly downloads) runs while the models are fetched and the
# release build compiles.
litellm_args=()
if [ "${BENCH_LITELLM:-1}" = 1 ]; then
    peer="$target/litellm-venv"
    litellm_log="$target/litellm-install.log"
    if [ ! -x "$peer/bin/litellm" ]; then
        python3 -c 'import ensurepip' 2>/dev/null || apt_packages python3-venv
        say "pip install 'litellm[proxy]==1.108.7' in the background (the peer to compare with; once)"
        (python3 -m venv "$peer" && "$peer/bin/pip" install -q 'litellm[proxy]==1.108.7') \
            >"$litellm_log" 2>&1 &
        litellm_install=$!
    fi
    litellm_args=(--litellm "$peer/bin/litellm")
fi
setup_models
say "cargo build --release"
cargo build --release -p frugal
cargo build --release -p frugal-cache --example index_scale
cargo build --release -p frugal --example loadgen --example cache_memory
bin="$target/release/frugal"
say "criterion micro-benchmarks (cargo bench, short runs)"
rm -rf "$target/criterion"
for crate in frugal-cache frugal-classifier frugal; do
    cargo bench -q -p "$crate" --bench hot_paths -- --warm-up-time 1 --measurement-time 3 >/dev/null
done
if [ -n "$litellm_install" ]; then
    say "waiting for LiteLLM's install to finish"
    if ! wait "$litellm_install"; then
        cat "$litellm_log" >&2
        echo "bench: installing LiteLLM failed (log above; BENCH_LITELLM=0 skips the peer)" >&2
        exit 1
    fi
    litellm_install=""
fi
say "benchmarking (about five minutes: fixed rates, one-connection paths, two wrk runs, LiteLLM, the 100k index, the cache's memory)"
python3 scripts/bench.py --bin "$bin" --loadgen "$target/release/examples/loadgen" --work "$work" \
    --rate "${RATE:-2000}" --duration "${DURATION:-10s}" --sequential "${SEQUENTIAL:-300}" \
    --out-json "$target/bench.json" --target "$target" "${litellm_args[@]}" \
    --index-bench "$target/release/examples/index_scale" --index-sizes "${INDEX_SIZES:-100000}" \
    --cache-memory "$target/release/examples/cache_memory"
