#!/usr/bin/env bash
# frugal's main job, end to end on one machine: install what is missing, fetch the model, build
# the release binary, start a simulated upstream and the sidecar, replay real prompts through
# the official `openai` client, and print what came back and what the sidecar measured.
#
#   FRUGAL_DEMO_PROMPTS=N   how many prompts to replay (default 12)
set -euo pipefail
cd "$(dirname "$0")/.."
export FRUGAL_SKIP_LLAMA=1   # the demo needs no real LLM
source scripts/setup.sh

setup_system
setup_models
setup_python

say "cargo build --release"
cargo build --release -p frugal
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/frugal"

logs="$(mktemp -d)"
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

say "starting the simulated upstream (127.0.0.1:9100, 40 ms latency) and the sidecar (127.0.0.1:8080)"
"$bin" mock-upstream --listen 127.0.0.1:9100 --latency-ms 40 >"$logs/mock.log" 2>&1 &
"$bin" serve --policy policies/examples/local.yaml >"$logs/sidecar.log" 2>&1 &
for url in http://127.0.0.1:9100/healthz http://127.0.0.1:8080/readyz; do
    for _ in $(seq 100); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$url" >/dev/null || { echo "demo: $url did not come up; logs in $logs" >&2; exit 1; }
done

data="${FRUGAL_SHARED:-../shared}/data"
agents=()
if [[ -f "$data/prompts/arena_hard.jsonl.gz" && -f "$data/trim/scifact_dev.jsonl.gz" ]]; then
    # Two research agents with a long system prompt and six tools (the prompt-cache lever).
    .venv/bin/python scripts/agent_traffic.py --calls 24 --out "$logs/agents.jsonl" \
        --prompts "$data/prompts/arena_hard.jsonl.gz" --abstracts "$data/trim/scifact_dev.jsonl.gz"
    agents=(--agents "$logs/agents.jsonl")
fi

say "replaying real prompts through the official openai client"
.venv/bin/python scripts/demo.py --base-url http://127.0.0.1:8080 \
    --prompts "$data/prompts/arena_hard.jsonl.gz" \
    --count "${FRUGAL_DEMO_PROMPTS:-12}" \
    --rag "$data/trim/scifact_dev.jsonl.gz" "${agents[@]}"

say "savings per lever (frugal report)"
"$bin" report --url http://127.0.0.1:8080

# Savings mean little without the quality they cost: replay labelled traffic in-process through
# the same policy, against the answers each model is recorded to have given.
if [[ -f "$data/router/routellm_dev.jsonl.gz" && -f "$data/cache/qqp_dev.jsonl.gz" ]]; then
    say "quality kept next to dollars saved: 600 labelled RouteLLM prompts (MMLU, GSM8K, MT-Bench)"
    "$bin" replay --policy policies/examples/local.yaml --without-caps --sample 600 \
        --traffic "$data/router/routellm_dev.jsonl.gz"
    say "false cache hits next to cache savings: 300 labelled QQP question pairs"
    "$bin" replay --policy policies/examples/local.yaml --without-caps --sample 300 \
        --traffic "$data/cache/qqp_dev.jsonl.gz"
else
    echo "demo: $data has no labelled sets; skipping the quality replay" >&2
fi

# The prompt-cache lever before and after shaping: the same agent calls through local.yaml as
# it is (tools sorted by name) and with the tools sent as the agent wrote them.
if [[ -f "$logs/agents.jsonl" ]]; then
    say "the provider's prompt cache: 24 agent calls with tools as sent vs sorted by the sidecar"
    sed 's/stable_tool_order: true/stable_tool_order: false/' policies/examples/local.yaml >"$logs/as-sent.yaml"
    "$bin" replay --policy "$logs/as-sent.yaml" --against policies/examples/local.yaml --without-caps \
        --traffic "$logs/agents.jsonl"
fi
