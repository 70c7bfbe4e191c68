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


def load_rag_questions(path: str, count: int) -> list[str]:
    """SciFact claims with their candidate abstracts as <document> context: real retrieval
    prompts for the trim lever."""
    p = Path(path)
    if not p.exists() or count == 0:
        return []
    questions = []
    with gzip.open(p, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("label") == "NOT_ENOUGH_INFO":
                continue
            titles = {d["doc_id"]: d["title"] for d in row["docs"]}
            by_doc: dict = {}
            for chunk in row["chunks"]:
                by_doc.setdefault(chunk["doc_id"], []).append(chunk["text"])
            documents = "\n".join(
                f"<document>{titles.get(doc, '')}\n{' '.join(sentences)}</document>" for doc, sentences in by_doc.items()
            )
            questions.append(f"{documents}\nIs this claim supported by the documents above? {row['query']}")
            if len(questions) == count:
                break
    return questions


# Rephrasings written for this demo (same model, same settings): the second prompt of each of
# the first two pairs is answered from the semantic cache; the last pair has the same words in
# another order and the opposite meaning, so the order guard refuses the cached answer.
REPHRASINGS = [
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("What is the capital city of Australia?", "What's the capital city of Australia?"),
    ("How do I convert Celsius to Fahrenheit?", "How do I convert Fahrenheit to Celsius?"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--count", type=int, default=12)
    ap.add_argument("--rag", default="", help="SciFact JSONL for retrieval prompts (trim lever)")
    ap.add_argument("--rag-count", type=int, default=3)
    ap.add_argument("--agents", default="", help="agent traffic (scripts/agent_traffic.py) for the prompt-cache lever")
    args = ap.parse_args()

    client = openai.OpenAI(base_url=f"{args.base_url}/v1", api_key="demo", max_retries=0)
    prompts = load_prompts(args.prompts, args.count)
    models = ["gpt-4o-mini", "gpt-4o"]
    print(f"{'#':>2}  {'asked':<11} {'answered':<11} {'tier':<6} {'cache':<8} {'mode':<6} {'in':>5} {'out':>4} {'ms':>6}  prompt → reply")
    totals = {"in": 0, "out": 0}
    # Every prompt once (half ask the strong model, which routing may answer cheaply), then the
    # first three again: exact repeats the cache answers.
    plan = [(i, p) for i, p in enumerate(prompts)] + [(i, p) for i, p in enumerate(prompts[:3])]
    # Then rephrasings: semantic hits, and a guard at work.
    plan += [(0, p) for pair in REPHRASINGS for p in pair]
    # Retrieval prompts (about 3,000 tokens of abstracts each), asked of gpt-4o-mini as JSON:
    # the sidecar trims their context to the policy's cap.
    plan += [(0, q) for q in load_rag_questions(args.rag, args.rag_count)]
    for n, (i, prompt) in enumerate(plan):
        model = models[i % 2]
        stream = i % 3 == 2
        started = time.perf_counter()
        messages = [{"role": "user", "content": prompt}]
        if stream:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=messages, temperature=0.3, stream=True, stream_options={"include_usage": True}
            )
            chunks = list(raw.parse())
            reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            usage = chunks[-1].usage
        else:
            raw = client.chat.completions.with_raw_response.create(model=model, messages=messages, temperature=0.3)
            completion = raw.parse()
            reply, usage = completion.choices[0].message.content, completion.usage
        served_by = raw.headers.get("x-frugal-model", "?")
        tier = raw.headers.get("x-frugal-tier", "-")
        if raw.headers.get("x-frugal-escalations"):
            tier += "↑"
        cache = raw.headers.get("x-frugal-cache", "-")
        if raw.headers.get("x-frugal-cache-guard"):
            cache += f" ({raw.headers['x-frugal-cache-guard']} guard)"
        if raw.headers.get("x-frugal-trimmed-tokens"):
            cache += f" ✂{raw.headers['x-frugal-trimmed-tokens']}"
        ms = (time.perf_counter() - started) * 1000
        totals["in"] += usage.prompt_tokens
        totals["out"] += usage.completion_tokens
        short = re.sub(r"\s+", " ", re.sub(r"<document>.*</document>", "[docs] ", prompt, flags=re.S))[:40]
        print(
            f"{n + 1:>2}  {model:<11} {served_by:<11} {tier:<6} {cache:<8} {'stream' if stream else 'json':<6} "
            f"{usage.prompt_tokens:>5} {usage.completion_tokens:>4} {ms:>6.1f}  {short!r} → {reply[:32]!r}"
        )
    print(f"\n{len(plan)} requests, {totals['in']} input and {totals['out']} output tokens (upstream usage).")

    if args.agents:
        replay_agents(client, args.agents)
    other_apis(client, args.base_url)

    with urllib.request.urlopen(f"{args.base_url}/metrics") as r:
        metrics = r.read().decode()
    print("\nsidecar metrics (GET /metrics):")
    for line in metrics.splitlines():
        if line.startswith(
            (
                "frugal_requests_total",
                "frugal_upstream_attempts_total",
                "frugal_cost_usd_total",
                "frugal_route_start_total",
                "frugal_escalations_total",
                "frugal_cache_lookups_total",
                "frugal_cache_guard_rejections_total",
                "frugal_trim_tokens_total",
                "frugal_budget_",
                "frugal_prompt_",
            )
        ):
            print("  " + line)
    print(
        "\nLevers: trim (✂ N: context tokens cut from the SciFact retrieval prompts), cache (exact"
        "\nrepeats and rephrasings, verified), route (requests for gpt-4o start on gpt-4o-mini and"
        "\nescalate when a confidence check fires; ↑ marks an escalation), plus budgets."
    )


def replay_agents(client: openai.OpenAI, path: str) -> None:
    """Sends two agents' calls (a long stable system prompt and six tools each) and prints how
    much of their input the provider's prompt cache served, as its usage reports it."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    per_agent: dict = {}
    for row in rows:
        tenant = row.pop("tenant")
        raw = client.chat.completions.with_raw_response.create(**row, extra_headers={"x-frugal-tenant": tenant})
        usage = raw.parse().usage
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        seen = per_agent.setdefault(tenant, {"calls": 0, "input": 0, "cached": 0, "breaks": set()})
        seen["calls"] += 1
        seen["input"] += usage.prompt_tokens
        seen["cached"] += cached or 0
        if raw.headers.get("x-frugal-prompt-prefix-break"):
            seen["breaks"].add(raw.headers["x-frugal-prompt-prefix-break"])
    print("\nagents with a long system prompt (the provider's prompt cache, as the mock reports it):")
    for tenant, seen in per_agent.items():
        share = 100 * seen["cached"] / seen["input"] if seen["input"] else 0
        flagged = ", flagged: " + ", ".join(sorted(seen["breaks"])) if seen["breaks"] else ""
        print(
            f"  {tenant:<15} {seen['calls']:>3} calls, {seen['cached']:>6} of {seen['input']:>6} input tokens "
            f"served from the provider's cache ({share:.0f}%){flagged}"
        )
    print(
        "  research-agent lists its tools in a new order on every call; the sidecar sorts them"
        "\n  (prompt_cache.stable_tool_order), so from its second call the provider serves the shared"
        "\n  prefix at half price. dated-agent starts its system prompt with the time: nothing can be"
        "\n  served, and the sidecar flags it (x-frugal-prompt-prefix-break: volatile_system)."
    )


def other_apis(client: openai.OpenAI, base_url: str) -> None:
    """The same sidecar behind two more APIs: /v1/embeddings with its per-input cache (the
    official openai client), and Anthropic's /v1/messages (the official anthropic client)."""
    chunks = [
        "Aspirin lowers the risk of a second heart attack.",
        "Statins reduce LDL cholesterol.",
        "Vitamin D does not prevent fractures in healthy adults.",
    ]
    print("\nembeddings (openai client, POST /v1/embeddings):")
    for batch in (chunks, chunks[1:] + ["Exercise improves insulin sensitivity."]):
        raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=batch)
        vectors = raw.parse().data
        print(
            f"  {len(vectors)} inputs, {raw.headers.get('x-frugal-cached-inputs')} from the cache "
            f"({raw.headers.get('x-frugal-cache')}), cost ${raw.headers.get('x-frugal-cost-usd')}, "
            f"saved ${raw.headers.get('x-frugal-saved-usd')}"
        )
    try:
        import anthropic
    except ImportError:
        print("(the anthropic client is not installed; skipping /v1/messages)")
        return
    print("anthropic client (POST /v1/messages, through the same pipeline):")
    claude = anthropic.Anthropic(base_url=base_url, api_key="demo", max_retries=0)
    for _ in range(2):
        raw = claude.messages.with_raw_response.create(
            model="gpt-4o",
            max_tokens=200,
            messages=[{"role": "user", "content": "Summarise what a sidecar proxy does."}],
            # Cacheable at the policy's max_temperature (this client version has no
            # `temperature` argument; the API still takes the field).
            extra_body={"temperature": 0.3},
        )
        message = raw.parse()
        print(
            f"  {message.model} ({raw.headers.get('x-frugal-tier', '-')}), cache {raw.headers.get('x-frugal-cache')}, "
            f"stop {message.stop_reason}, {message.usage.input_tokens} in / {message.usage.output_tokens} out: "
            f"{message.content[0].text[:48]!r}"
        )


if __name__ == "__main__":
    main()
