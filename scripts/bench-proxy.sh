#!/usr/bin/env bash
# First look at the sidecar's overhead: the same fixed-rate load (hey) straight at the mock
# upstream and through the sidecar, printing latency percentiles, the added latency and JSON.
#
#   RATE=1000 DURATION=15s CONCURRENCY=20 scripts/bench-proxy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${RATE:-1000}" duration="${DURATION:-15s}" conc="${CONCURRENCY:-20}"
command -v hey >/dev/null || { apt-get install -y -qq hey >/dev/null; }
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/frugal"
[ -x "$bin" ] || cargo build --release -p frugal
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" mock-upstream --listen 127.0.0.1:9190 >"$work/mock.log" 2>&1 &
sed 's/127.0.0.1:9100/127.0.0.1:9190/' policies/examples/local.yaml >"$work/policy.yaml"
RUST_LOG=warn "$bin" serve --policy "$work/policy.yaml" --listen 127.0.0.1:8190 >"$work/sidecar.log" 2>&1 &
for url in http://127.0.0.1:9190/healthz http://127.0.0.1:8190/readyz; do
    for _ in $(seq 100); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
done
body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Give me one sentence about the sea."}],"max_tokens":40}'

run() { # name url
    hey -z "$duration" -c "$conc" -q "$((rate / conc))" -m POST -T application/json -d "$body" "$2" >"$work/$1.txt"
}
pct() { grep -E "^\s+$2% in" "$work/$1.txt" | awk '{print $3 * 1000}'; }
rps() { grep -E "Requests/sec" "$work/$1.txt" | awk '{print $2}'; }
errors() { grep -E "^\s+\[[0-9]+\]" "$work/$1.txt" | grep -v "\[200\]" | awk '{s+=$2} END {print s+0}'; }

run direct http://127.0.0.1:9190/v1/chat/completions
run sidecar http://127.0.0.1:8190/v1/chat/completions

printf '\n%-8s %10s %9s %9s %9s %7s\n' path "req/s" "p50 ms" "p90 ms" "p99 ms" non200
for p in direct sidecar; do
    printf '%-8s %10s %9.3f %9.3f %9.3f %7s\n' "$p" "$(rps $p)" "$(pct $p 50)" "$(pct $p 90)" "$(pct $p 99)" "$(errors $p)"
done
printf 'added    %10s %9.3f %9.3f %9.3f\n' "" \
    "$(echo "$(pct sidecar 50) - $(pct direct 50)" | bc -l)" \
    "$(echo "$(pct sidecar 90) - $(pct direct 90)" | bc -l)" \
    "$(echo "$(pct sidecar 99) - $(pct direct 99)" | bc -l)"
printf '{"rate":%s,"duration":"%s","direct":{"rps":%s,"p50_ms":%s,"p99_ms":%s},"sidecar":{"rps":%s,"p50_ms":%s,"p99_ms":%s}}\n' \
    "$rate" "$duration" "$(rps direct)" "$(pct direct 50)" "$(pct direct 99)" "$(rps sidecar)" "$(pct sidecar 50)" "$(pct sidecar 99)"
