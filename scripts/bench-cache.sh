#!/usr/bin/env bash
# Semantic cache hits through the sidecar, embedding included: one question is answered and
# stored, then a rephrasing of it is sent at a fixed rate (hey); every request is a semantic hit
# (embed the question, search the scope, verify, serve; the deadline is long so no request
# skips its embedding and becomes a miss). Prints latency percentiles and JSON.
#
#   RATE=100 DURATION=10s CONCURRENCY=4 scripts/bench-cache.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${RATE:-100}" duration="${DURATION:-10s}" conc="${CONCURRENCY:-4}"
command -v hey >/dev/null || { apt-get install -y -qq hey >/dev/null; }
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/frugal"
[ -x "$bin" ] || cargo build --release -p frugal
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cat >"$work/policy.yaml" <<POLICY
providers:
  mock: { base_url: http://127.0.0.1:9191/v1 }
models:
  gpt-4o-mini: { provider: mock, price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
default_model: gpt-4o-mini
cache: { mode: on, max_temperature: 0.5 }
embeddings: { model_dir: $PWD/models, deadline: 1s }
POLICY
"$bin" mock-upstream --listen 127.0.0.1:9191 >"$work/mock.log" 2>&1 &
RUST_LOG=warn "$bin" serve --policy "$work/policy.yaml" --listen 127.0.0.1:8191 >"$work/sidecar.log" 2>&1 &
for url in http://127.0.0.1:9191/healthz http://127.0.0.1:8191/readyz; do
    for _ in $(seq 200); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done
ask() { printf '{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"%s"}]}' "$1"; }
url=http://127.0.0.1:8191/v1/chat/completions
curl -fsS "$url" -H 'content-type: application/json' -d "$(ask 'How do I reverse a list in Python?')" >/dev/null
hit="$(curl -fsS -D - -o /dev/null "$url" -H 'content-type: application/json' -d "$(ask 'How can I reverse a list in Python?')" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-frugal-cache"{print $2}')"
[ "$hit" = semantic ] || { echo "bench-cache: the rephrasing was not a semantic hit ($hit)" >&2; exit 1; }

hey -z "$duration" -c "$conc" -q "$((rate / conc))" -m POST -T application/json \
    -d "$(ask 'How can I reverse a list in Python?')" "$url" >"$work/hits.txt"
pct() { grep -E "^\s+$1% in" "$work/hits.txt" | awk '{print $3 * 1000}'; }
rps="$(grep -E "Requests/sec" "$work/hits.txt" | awk '{print $2}')"
non200="$({ grep -E "^\s+\[[0-9]+\]" "$work/hits.txt" | grep -v "\[200\]" || true; } | awk '{s+=$2} END {print s+0}')"
metrics="$(curl -fsS http://127.0.0.1:8191/metrics)"
hits="$(grep -F 'frugal_cache_lookups_total{tier="semantic",result="hit"}' <<<"$metrics" | awk '{print $2}')"
skips="$(grep -F 'frugal_embedding_deadline_skips_total' <<<"$metrics" | grep -v '^#' | awk '{s+=$2} END {print s+0}')"
printf '\n%-14s %8s %8s %8s %8s %7s %6s %6s\n' workload "req/s" "p50 ms" "p90 ms" "p99 ms" non200 hits skips
printf '%-14s %8s %8.3f %8.3f %8.3f %7s %6s %6s\n' semantic_hit "$rps" "$(pct 50)" "$(pct 90)" "$(pct 99)" "$non200" "$hits" "$skips"
printf '{"workload":"semantic_hit","rate":%s,"duration":"%s","rps":%s,"p50_ms":%s,"p90_ms":%s,"p99_ms":%s,"non200":%s,"semantic_hits":%s,"embedding_skips":%s}\n' \
    "$rate" "$duration" "$rps" "$(pct 50)" "$(pct 90)" "$(pct 99)" "$non200" "$hits" "$skips"
