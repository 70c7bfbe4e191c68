#!/usr/bin/env bash
# The soak (not in CI, not in scripts/test.sh): one million mixed requests at a steady rate
# through the release sidecar in front of `frugal mock-upstream`, which injects faults for
# prompts carrying a `[fault:KIND]` marker. The driver (tests/examples/soak) samples the
# sidecar's RSS and open fds every 10 s and ends with outcome counts (unexpected ones must be
# zero), latency p50/p99, memory before and after the cache filled, and the savings identity
# per tenant. Table on stdout, JSON in target/soak/report.json; exit 1 unless it all held.
#
#   scripts/soak.sh                                  # 1,000,000 requests at 1000/s
#   scripts/soak.sh --requests 50000 --rate 800      # any driver flag (see --help)
#   scripts/soak.sh --probe                          # each fault kind once: what it becomes
#
# Environment: SOAK_PORT (sidecar, default 18080; the mock uses SOAK_PORT+10),
# SOAK_CACHE_MAX_BYTES (default 8 MiB, so the cache fills early), SOAK_MOCK_LATENCY_MS (20),
# FRUGAL_MODEL_DIR (the embedding model; default ./models), ORT_DYLIB_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${SOAK_PORT:-18080}"
mock_port="$((port + 10))"
max_bytes="${SOAK_CACHE_MAX_BYTES:-8388608}"
latency="${SOAK_MOCK_LATENCY_MS:-20}"
# One routed request that fails six times in a row opens the circuit (threshold 5), so the probe,
# which sends faults back to back with nothing healthy in between, measures each kind with the
# breaker out of the way; the soak keeps the default, its healthy traffic interleaving.
breaker=5
for arg in "$@"; do [ "$arg" = --probe ] && breaker=1000000; done
model_dir="${FRUGAL_MODEL_DIR:-$PWD/models}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$model_dir/onnxruntime/libonnxruntime.so}"
[ -f "$model_dir/all-MiniLM-L6-v2-int8/model.onnx" ] && [ -f "$ORT_DYLIB_PATH" ] || {
    echo "soak: no embedding model in $model_dir (run scripts/fetch-models.sh or set FRUGAL_MODEL_DIR)" >&2
    exit 1
}
for p in "$port" "$mock_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "soak: 127.0.0.1:$p is in use; set SOAK_PORT" >&2
        exit 1
    fi
done

cargo build --release -p frugal -p frugal-tests --example soak
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target/release/frugal"
work="$target/soak"
mkdir -p "$work"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The mock misbehaves for prompts carrying a marker; everything else gets its default answer.
cat >"$work/mock-script.yaml" <<'SCRIPT'
rules:
  - { when: { prompt: "\\[fault:500\\]" },       then: { status: 500 } }
  - { when: { prompt: "\\[fault:429\\]" },       then: { status: 429, retry_after: 1 } }
  - { when: { prompt: "\\[fault:400\\]" },       then: { status: 400 } }
  - { when: { prompt: "\\[fault:reset\\]" },     then: { reset: true } }
  - { when: { prompt: "\\[fault:malformed\\]" }, then: { malformed: true } }
  - { when: { prompt: "\\[fault:length\\]" },    then: { finish_reason: length } }
  - { when: { prompt: "\\[fault:truncate\\]" },  then: { truncate_after: 2 } }
  - { when: { prompt: "\\[fault:hang\\]" },      then: { hang: true } }
default: {}
SCRIPT

# Every lever on: trim (documents over a 300-token cap), the exact and semantic cache (small,
# so it fills early and evicts from then on), cheap-first routing for gpt-4o, and tenants with
# budgets far above what the soak spends.
cat >"$work/policy.yaml" <<POLICY
listen: 127.0.0.1:$port
shutdown_grace: 5s
providers:
  mock:
    base_url: http://127.0.0.1:$mock_port/v1
    timeouts: { connect: 1s, request: 3s, first_byte: 2s, idle: 5s }
models:
  gpt-4o-mini: { provider: mock, price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
  gpt-4o: { provider: mock, price: { input_per_mtok: 2.50, output_per_mtok: 10.00 } }
default_model: gpt-4o-mini
limits: { max_body_bytes: 1048576, request_timeout: 60s }
tenants:
  default: { budget: { window: day, hard_cap_usd: 100000, soft_thresholds: [0.5] } }
  acme: { budget: { window: day, hard_cap_usd: 100000 } }
  globex: { budget: { window: day, hard_cap_usd: 100000 } }
  initech: { budget: { window: month, hard_cap_usd: 100000 } }
  umbrella: { budget: { window: hour, hard_cap_usd: 100000 } }
cache:
  mode: on
  ttl: 1h
  max_bytes: $max_bytes
  max_temperature: 0.7
  semantic: true
route:
  mode: on
  ladder: [gpt-4o-mini, gpt-4o]
retries: { max_attempts: 3, backoff: 100ms, max_backoff: 2s }
circuit_breaker: { failure_threshold: $breaker, open_for: 30s }
trim:
  mode: on
  max_context_tokens: 300
embeddings:
  model_dir: $model_dir
POLICY
"$bin" policy check "$work/policy.yaml"

"$bin" mock-upstream --listen "127.0.0.1:$mock_port" --latency-ms "$latency" \
    --script "$work/mock-script.yaml" >"$work/mock.log" 2>&1 &
pids+=("$!")
RUST_LOG=warn "$bin" serve --policy "$work/policy.yaml" >"$work/sidecar.log" 2>&1 &
sidecar="$!"
pids+=("$sidecar")
for url in "http://127.0.0.1:$mock_port/healthz" "http://127.0.0.1:$port/readyz"; do
    for _ in $(seq 300); do curl -fsS --noproxy '*' "$url" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS --noproxy '*' "$url" >/dev/null || { echo "soak: $url did not come up; logs in $work" >&2; exit 1; }
done

"$target/release/examples/soak" --url "http://127.0.0.1:$port" --pid "$sidecar" \
    --out "$work/report.json" "$@"
