"""Writes agent traffic for the prompt-cache lever: chat request bodies (JSON Lines, one per
call, with a top-level `tenant`) from two research agents that share a long, stable system
prompt (instructions and SciFact abstracts as reference material) and six tools, and ask
Arena-Hard questions.

- `research-agent` lists its tools in a different order on every call, as an agent that builds
  them from a plugin registry or a set does: the provider's prompt cache never sees the same
  prefix twice, unless the sidecar sorts the tools (`prompt_cache.stable_tool_order`).
- `dated-agent` lists its tools in one order but starts its system prompt with the current
  time: the prefix changes on every call, which no sidecar setting can mend; the sidecar flags
  it (`x-frugal-prompt-prefix-break: volatile_system`).

Deterministic: a fixed seed, the first rows of the data files.

    python scripts/agent_traffic.py --prompts ARENA.jsonl.gz --abstracts SCIFACT.jsonl.gz \
        --calls 24 --out agents.jsonl
"""

import argparse
import gzip
import json
import random
from pathlib import Path

INSTRUCTIONS = """You are a research assistant for a biomedical evidence team.
Work from the reference abstracts below; when you use one, cite it as [title].
Use the tools to search for more papers, fetch a full abstract, or save a note for the team.
Answer in at most five sentences, say when the evidence is weak or mixed, never give medical
advice to a patient, and ask the user when a question is ambiguous.

Reference abstracts:
"""

TOOLS = {
    "search_papers": ("Search the literature index for papers matching a query.", {"query": "string", "limit": "integer"}),
    "fetch_abstract": ("Fetch the full abstract of a paper by its id.", {"paper_id": "string"}),
    "cite": ("Format a citation for a paper id in the team's style.", {"paper_id": "string", "style": "string"}),
    "summarize_evidence": ("Summarise what a set of papers says about a claim.", {"claim": "string", "paper_ids": "array"}),
    "save_note": ("Save a note to the team's shared notebook.", {"title": "string", "body": "string"}),
    "ask_user": ("Ask the user a clarifying question.", {"question": "string"}),
}


def tool(name: str) -> dict:
    description, params = TOOLS[name]
    properties = {
        key: ({"type": "array", "items": {"type": "string"}} if kind == "array" else {"type": kind})
        for key, kind in params.items()
    }
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)},
        },
    }


def abstracts(path: Path, count: int) -> str:
    """The first `count` SciFact abstracts with at least five sentences, as reference text."""
    seen, out = set(), []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            titles = {d["doc_id"]: d["title"] for d in row["docs"]}
            by_doc: dict = {}
            for chunk in row["chunks"]:
                by_doc.setdefault(chunk["doc_id"], []).append(chunk["text"])
            for doc, sentences in by_doc.items():
                if doc in seen or len(sentences) < 5:
                    continue
                seen.add(doc)
                out.append(f"[{titles.get(doc, doc)}]\n{' '.join(sentences)}")
                if len(out) == count:
                    return "\n\n".join(out)
    return "\n\n".join(out)


def questions(path: Path, count: int) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line)["prompt"] for line in f]
    short = [p for p in rows if len(p) <= 400]
    return short[:count]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", required=True, help="Arena-Hard JSONL (gzip)")
    ap.add_argument("--abstracts", required=True, help="SciFact JSONL (gzip)")
    ap.add_argument("--calls", type=int, default=24, help="calls in all, half per agent")
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    rng = random.Random(20261204)
    reference = abstracts(Path(args.abstracts), 4)
    system = INSTRUCTIONS + reference
    names = list(TOOLS)
    asked = questions(Path(args.prompts), args.calls)
    with open(args.out, "w", encoding="utf-8") as out:
        for i, question in enumerate(asked):
            if i % 2 == 0:
                tenant, order = "research-agent", rng.sample(names, len(names))
                prompt = system
            else:
                tenant, order = "dated-agent", names
                minute, second = divmod(7 * i, 60)
                prompt = f"Current time: 2026-12-04T10:{minute:02d}:{second:02d}Z\n" + system
            body = {
                "tenant": tenant,
                "model": args.model,
                "temperature": 0.7,
                "max_tokens": 200,
                "messages": [
                    {"role": "system", "content": prompt},
                    {"role": "user", "content": question},
                ],
                "tools": [tool(n) for n in order],
            }
            out.write(json.dumps(body) + "\n")


if __name__ == "__main__":
    main()
