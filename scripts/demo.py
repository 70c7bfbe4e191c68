"""Replays real prompts through the sidecar with the official openai client and prints what
the sidecar did with each, then the sidecar's own metrics."""

import argparse
import gzip
import json
import re
import time
import urllib.request
from pathlib import Path

import openai

FALLBACK_PROMPTS = [
    "Explain the difference between a process and a thread in two sentences.",
    "Write a Python function that checks whether a string is a palindrome.",
    "What is the capital of Australia?",
]


def load_prompts(path: str, count: int) -> list[str]:
    p = Path(path)
    if not p.exists():
        print(f"(no {path}; using {len(FALLBACK_PROMPTS)} built-in prompts)")
        return FALLBACK_PROMPTS[:count]
    with gzip.open(p, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    # A spread of topics: every k-th prompt, shortest 2,000 characters at most.
    rows = [r for r in rows if len(r["prompt"]) <= 2000]
    step = max(1, len(rows) // count)
    return [rows[i]["prompt"] for i in range(0, step * count, step)][:count]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--count", type=int, default=12)
    args = ap.parse_args()

    client = openai.OpenAI(base_url=f"{args.base_url}/v1", api_key="demo", max_retries=0)
    prompts = load_prompts(args.prompts, args.count)
    models = ["gpt-4o-mini", "gpt-4o"]
    print(f"{'#':>2}  {'model':<12} {'mode':<6} {'in':>5} {'out':>4} {'ms':>6}  prompt → reply")
    totals = {"in": 0, "out": 0}
    for i, prompt in enumerate(prompts):
        model = models[i % 2]
        stream = i % 3 == 2
        started = time.perf_counter()
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
            served_by = model
        else:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
            completion = raw.parse()
            reply, usage = completion.choices[0].message.content, completion.usage
            served_by = raw.headers.get("x-frugal-model", "?")
        ms = (time.perf_counter() - started) * 1000
        totals["in"] += usage.prompt_tokens
        totals["out"] += usage.completion_tokens
        short = re.sub(r"\s+", " ", prompt)[:48]
        print(
            f"{i + 1:>2}  {served_by:<12} {'stream' if stream else 'json':<6} {usage.prompt_tokens:>5} "
            f"{usage.completion_tokens:>4} {ms:>6.1f}  {short!r} → {reply[:40]!r}"
        )
    print(f"\n{len(prompts)} requests, {totals['in']} input and {totals['out']} output tokens (upstream usage).")

    with urllib.request.urlopen(f"{args.base_url}/metrics") as r:
        metrics = r.read().decode()
    print("\nsidecar metrics (GET /metrics):")
    for line in metrics.splitlines():
        if line.startswith(
            ("frugal_requests_total", "frugal_upstream_requests_total", "frugal_cost_usd_total", "frugal_budget_")
        ):
            print("  " + line)
    print(
        "\nLevers live in this build: accounting and budgets. Trim, cache and route are not built yet,"
        "\nso their savings below read zero: each request is relayed to the model it names."
    )


if __name__ == "__main__":
    main()
