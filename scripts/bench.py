#!/usr/bin/env python3
"""frugal's benchmark run: every path of the sidecar against a direct call to the same mock, in
one run, at fixed rates and bounded times, written to BENCHMARKS.md and a JSON file.

Started by scripts/bench.sh (which builds the release binary, the load generator
router/examples/loadgen.rs and the venv). Fixed-rate paths are open-loop (each request's latency
counts from when it was sent; how late it was sent is reported apart). Paths:

* miss, bypass: `x-frugal-cache: bypass` at a fixed rate, against the mock directly;
* exact hit: the same request again and again, at the same rate, then as fast as 32 connections
  go (wrk), beside the mock alone the same way;
* semantic hit: a rephrasing of a stored question at 50 req/s, embedding included;
* cacheable miss: real prompts at temperature 0, each new, one connection (this client), for the
  cheap model (no routing: the embedding serves the cache only), with the semantic prefilter on
  (the policy's default) and off (a second sidecar, `cache.semantic_prefilter: 0`), and for the
  routed model; with the cache's lookup results and deferred embeddings from /metrics;
* cacheable miss under load: distinct real questions (QQP's, read at run time for evaluation
  only) at temperature 0, as fast as 16 connections go for the duration (wrk with a Lua script
  that sends each question once): the requests per second the cache's whole path sustains; then
  the same on a fresh sidecar with `embeddings.threads: 1`;
* streaming: time to the first content token at 100 req/s, one connection;
* trimming: a ~6,000-token retrieved context trimmed to the policy's cap, one connection;
* RSS of the sidecar, idle and after the load;
* with --index-bench, one scope's vector index at 100k and 1M entries (cache/examples/
  index_scale.rs): real prompt embeddings (QQP questions and Arena-Hard prompts, read here at
  run time and never stored) augmented to size, build time, memory, lookup p50/p99 and recall@1
  against an exact scan;
* with --litellm, the same miss through LiteLLM's proxy (one worker) at 50 req/s, beside frugal
  and the mock at the same rate.

Numbers are measured, never asserted: this script is not a test.
"""

import argparse
import gzip
import http.client
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOCK_PORT, SIDECAR_PORT, LITELLM_PORT = 9193, 8193, 4193
# A second sidecar with the semantic prefilter off: the same cacheable miss with MiniLM on the
# request path of every question, beside the prefiltered one, in the same run.
NO_PREFILTER_PORT = 8194
# A third, started for the load run only: the same policy with one embedding thread.
ONE_THREAD_PORT = 8195
# The environment of the mock and the sidecars: quiet logs, the fetched models.
SIDECAR_ENV = {**os.environ, "RUST_LOG": "warn", "FRUGAL_MODEL_DIR": str(ROOT / "models")}
LITELLM_KEY = "sk-frugal-bench"
LITELLM_RATE = 50
# The one-line request of the miss, hit and LiteLLM paths: the same body wherever they are set
# side by side.
SHORT = {"model": "gpt-4o-mini", "max_tokens": 40, "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Give me one sentence about the sea."}]}
# Search widths of the index benchmark: 32 (IndexConfig's ef_search, the default up to 125k
# entries) and two wider ones; index_scale adds the default's width at a larger size.
INDEX_WIDTHS = "32,64,128"
# Real questions behind the index benchmark's vectors: enough that the points augmented between
# them stay among real prompts at 100k (with 3,500, fresh prompts' recall@1 fell to 0.75 from
# near-ties among the augmented points).
INDEX_QQP = 19500


def percentiles(values):
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 3),
        "p90_ms": round(pick(0.90), 3),
        "p99_ms": round(pick(0.99), 3),
        "mean_ms": round(statistics.mean(values), 3),
    }


def wait_up(url, seconds=60):
    host, port, path = re.match(r"http://([^:/]+):(\d+)(/.*)", url).groups()
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"bench: {url} did not come up")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def post(conn, body, headers=None):
    """One request on a kept-alive connection: (status, headers, body, seconds)."""
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"content-type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    return response.status, dict(response.getheaders()), data, time.perf_counter() - started


def sequential(port, bodies, headers=None, warmup=5):
    """Latency of each body sent in turn on one connection (after `warmup` unmeasured ones)."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times, statuses, caches = [], {}, {}
    for i, body in enumerate(bodies):
        status, head, _, seconds = post(conn, body, headers)
        if i >= warmup:
            times.append(seconds * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            cache = head.get("x-frugal-cache")
            if cache:
                caches[cache] = caches.get(cache, 0) + 1
    result = percentiles(times)
    result["statuses"] = statuses
    if caches:
        result["cache"] = caches
    return result


LOADGEN = None  # the built router/examples/loadgen binary (set from --loadgen)


def load(url, body, rate, conc, duration, headers=(), first_byte=False):
    """Open-loop load at a fixed rate (examples/loadgen.rs): each request's latency counts from
    when it was sent (how late, apart: `late_p99_ms`), to its end or, with `first_byte`, to the
    first content token of a streamed answer."""
    args = [LOADGEN, "--url", url, "--rate", str(rate), "--connections", str(conc),
            "--duration", duration, "--body", json.dumps(body)]
    for header in headers:
        args += ["--header", header]
    if first_byte:
        args.append("--first-byte")
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def prompts(limit):
    path = Path(os.environ.get("FRUGAL_SHARED", ROOT.parent / "shared")) / "data/prompts/arena_hard.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt") as f:
            texts = [json.loads(line)["prompt"] for line in f]
    else:
        texts = [f"Explain idea number {i} of distributed systems in a few sentences." for i in range(2000)]
    return texts[:limit]


def long_context(tokens_wanted):
    """A question with ~tokens_wanted tokens of retrieved documents, SciFact abstracts or filler."""
    path = Path(os.environ.get("FRUGAL_SHARED", ROOT.parent / "shared")) / "data/trim/scifact_dev.jsonl.gz"
    sentences = []
    if path.exists():
        with gzip.open(path, "rt") as f:
            for line in f:
                sentences += [c["text"] for c in json.loads(line)["chunks"]]
                if len(sentences) > tokens_wanted // 10:
                    break
    else:
        sentences = [f"Sentence {i} says something about the study and its results." for i in range(tokens_wanted // 10)]
    docs, words = [], 0
    for i in range(0, len(sentences), 8):
        text = " ".join(sentences[i:i + 8])
        docs.append(f"<document>{text}</document>")
        words += len(text.split())
        if words * 1.3 >= tokens_wanted:
            break
    return "\n".join(docs) + "\n\nQuestion: does vitamin D reduce fractures in older adults?"


def index_texts(path, qqp_count=3500, arena_count=500):
    """Distinct real questions for the index benchmark, shuffled with a fixed seed, one a line:
    QQP's (evaluation only: its licence is non-commercial) and Arena-Hard's. None without them."""
    shared = Path(os.environ.get("FRUGAL_SHARED", ROOT.parent / "shared")) / "data"
    qqp_path, arena_path = shared / "cache/qqp_dev.jsonl.gz", shared / "prompts/arena_hard.jsonl.gz"
    if not (qqp_path.exists() and arena_path.exists()):
        return None
    seen, texts = set(), []
    with gzip.open(qqp_path, "rt") as f:
        for line in f:
            row = json.loads(line)
            for text in (" ".join(row["a"].split()), " ".join(row["b"].split())):
                if text and text not in seen and len(texts) < qqp_count:
                    seen.add(text)
                    texts.append(text)
            if len(texts) >= qqp_count:
                break
    with gzip.open(arena_path, "rt") as f:
        texts += [" ".join(json.loads(line)["prompt"].split()) for line in f][:arena_count]
    random.Random(21).shuffle(texts)
    path.write_text("\n".join(texts) + "\n")
    return path


def index_scale(command, work, sizes, queries, target):
    """The index at each size (cache/examples/index_scale.rs), one dict per size, then the
    mixed-prompts stress case at the first size. The texts' embeddings are kept in the target
    folder for the next run (the texts are evaluation data: only their vectors are kept)."""
    texts = index_texts(work / "index_texts.txt", qqp_count=INDEX_QQP)
    if texts is None:
        print("index: no QQP/Arena-Hard data under ../shared/data; skipped", file=sys.stderr)
        return []
    print(f"index at {sizes} entries (a few minutes; the first run embeds {INDEX_QQP:,} "
          "questions, ~2 minutes) ...", file=sys.stderr)
    kept = {"INDEX_VECTORS": str(Path(target) / "bench-index-vectors.bin")}
    args = [command, str(texts), sizes, str(queries), INDEX_WIDTHS]
    found = example_lines(args, kept)
    stress = [command, str(texts), sizes.split(",")[0], str(queries), INDEX_WIDTHS]
    return found + example_lines(stress, {**kept, "INDEX_AUGMENT": "mix"})


def example_lines(args, env=None):
    """The JSON lines a measuring example (run with the repository's models) prints."""
    env = {**os.environ, "FRUGAL_MODEL_DIR": str(ROOT / "models"), **(env or {})}
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def cache_memory(command, work, entries):
    """The cache's memory per entry against what `cache.max_bytes` counts, one dict per kind
    of entry (router/examples/cache_memory.rs, each in a process of its own)."""
    texts = index_texts(work / "index_texts.txt")
    if texts is None:
        print("cache memory: no QQP/Arena-Hard data under ../shared/data; skipped", file=sys.stderr)
        return []
    print(f"cache memory, {entries} entries of each kind (a minute or two) ...", file=sys.stderr)
    return [kind for mode in ("answers", "semantic", "prefiltered", "elsewhere")
            for kind in example_lines([command, str(texts), str(entries), mode])]


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 2**20, 1),
            "kernel": platform.release(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--loadgen", required=True, help="the built router/examples/loadgen binary")
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--sequential", type=int, default=300, help="requests per one-connection path")
    ap.add_argument("--out-md", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--out-json", default=str(ROOT / "target/bench.json"))
    ap.add_argument("--target", default=str(ROOT / "target"), help="cargo's target folder (criterion's results)")
    ap.add_argument("--litellm", help="the `litellm` command of a venv with litellm[proxy], to compare")
    ap.add_argument("--index-bench", help="the built cache/examples/index_scale binary")
    ap.add_argument("--index-sizes", default="100000",
                    help="entries, comma-separated (1000000 builds for ~3 minutes on 2 cores and takes ~0.7 GiB)")
    ap.add_argument("--index-queries", type=int, default=500, help="queries of each kind")
    ap.add_argument("--cache-memory", help="the built router/examples/cache_memory binary")
    ap.add_argument("--cache-memory-entries", type=int, default=20000, help="entries of each kind")
    args = ap.parse_args()
    work = Path(args.work)
    global LOADGEN
    LOADGEN = args.loadgen

    policy = (ROOT / "policies/examples/local.yaml").read_text()
    policy = policy.replace("127.0.0.1:9100", f"127.0.0.1:{MOCK_PORT}")
    policy = re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{SIDECAR_PORT}", policy)
    policy = policy.replace("model_dir: models", f"model_dir: {ROOT / 'models'}")
    (work / "policy.yaml").write_text(policy)
    unfiltered = re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{NO_PREFILTER_PORT}", policy)
    unfiltered = re.sub(r"(?m)^cache:\n", "cache:\n  semantic_prefilter: 0\n", unfiltered)
    (work / "policy-no-prefilter.yaml").write_text(unfiltered)
    one_thread = re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{ONE_THREAD_PORT}", policy)
    (work / "policy-one-thread.yaml").write_text(one_thread + "\nembeddings:\n  threads: 1\n")
    mock = subprocess.Popen([args.bin, "mock-upstream", "--listen", f"127.0.0.1:{MOCK_PORT}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=SIDECAR_ENV)
    sidecar = start_sidecar(args.bin, work, "policy.yaml", "sidecar.log")
    second = start_sidecar(args.bin, work, "policy-no-prefilter.yaml", "sidecar-no-prefilter.log")
    processes = [sidecar, second, mock]
    try:
        wait_up(f"http://127.0.0.1:{MOCK_PORT}/healthz")
        wait_up(f"http://127.0.0.1:{SIDECAR_PORT}/readyz")
        wait_up(f"http://127.0.0.1:{NO_PREFILTER_PORT}/readyz")
        results = run(args, sidecar.pid)
        if args.litellm:
            litellm = start_litellm(args.litellm, work)
            processes.append(litellm)
            results.update(compare_litellm(args, litellm.pid))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    if args.index_bench:
        # After the sidecar has stopped, so that the two do not share the cores.
        results["index"] = index_scale(args.index_bench, work, args.index_sizes, args.index_queries,
                                       args.target)
    if args.cache_memory:
        results["cache_memory"] = cache_memory(args.cache_memory, work, args.cache_memory_entries)
    report = {"machine": machine(), "command": "scripts/bench.sh", "policy": "policies/examples/local.yaml",
              "results": results, "micro": criterion_results(args.target)}
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_json).write_text(json.dumps(report, indent=1) + "\n")
    Path(args.out_md).write_text(markdown(report, args))
    print(markdown(report, args))
    print(f"wrote {args.out_md} and {args.out_json}")


def run(args, sidecar_pid):
    direct_url = f"http://127.0.0.1:{MOCK_PORT}/v1/chat/completions"
    frugal_url = f"http://127.0.0.1:{SIDECAR_PORT}/v1/chat/completions"
    results = {"rss_idle_mib": rss_mib(sidecar_pid)}
    print("fixed-rate paths ...", file=sys.stderr)
    results["direct"] = load(direct_url, SHORT, args.rate, 20, args.duration)
    results["miss_bypass"] = load(frugal_url, SHORT, args.rate, 20, args.duration, ["x-frugal-cache: bypass"])
    cached = {**SHORT, "temperature": 0}
    sequential(SIDECAR_PORT, [cached], warmup=0)
    results["exact_hit"] = load(frugal_url, cached, args.rate, 20, args.duration)
    results["direct_closed"] = wrk_same(MOCK_PORT, Path(args.work), cached, "5s")
    results["exact_hit_closed"] = wrk_same(SIDECAR_PORT, Path(args.work), cached, "5s")
    results["bypass_closed"] = wrk_same(SIDECAR_PORT, Path(args.work), SHORT, "5s",
                                        headers=["x-frugal-cache: bypass"])
    first = {"model": "gpt-4o-mini", "temperature": 0, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I reverse a list in Python?"}]}
    rephrased = json.loads(json.dumps(first))
    rephrased["messages"][1]["content"] = "How can I reverse a list in Python?"
    sequential(SIDECAR_PORT, [first], warmup=0)
    results["semantic_hit"] = load(frugal_url, rephrased, 50, 1, args.duration)

    print("one-connection paths ...", file=sys.stderr)
    texts = prompts(3 * args.sequential + 20)
    ask = lambda model, text: {"model": model, "temperature": 0, "max_tokens": 40,
                               "messages": [{"role": "user", "content": text}]}
    n = args.sequential
    results["direct_sequential"] = sequential(MOCK_PORT, [ask("gpt-4o-mini", t) for t in texts[:n]])
    results["cacheable_miss_no_prefilter"] = sequential(NO_PREFILTER_PORT, [ask("gpt-4o-mini", t) for t in texts[:n]])
    before = cache_counters(SIDECAR_PORT)
    results["cacheable_miss"] = sequential(SIDECAR_PORT, [ask("gpt-4o-mini", t) for t in texts[:n]])
    results["cacheable_miss"]["lookups"] = settled_counters(SIDECAR_PORT, before)
    results["cacheable_miss_routed"] = sequential(SIDECAR_PORT, [ask("gpt-4o", t) for t in texts[n:2 * n]])
    results["rss_before_load_mib"] = rss_mib(sidecar_pid)
    print("cacheable misses under load (wrk) ...", file=sys.stderr)
    before = cache_counters(SIDECAR_PORT)
    loaded = wrk_distinct(SIDECAR_PORT, Path(args.work), args.duration)
    if loaded:
        loaded["lookups"] = settled_counters(SIDECAR_PORT, before)
        results["cacheable_miss_load"] = loaded
        results["cacheable_miss_load_one_thread"] = load_one_thread(args)
    stream = {**SHORT, "stream": True}
    results["ttfb_direct"] = load(direct_url, stream, 100, 1, "5s", first_byte=True)
    results["ttfb"] = load(frugal_url, stream, 100, 1, "5s", ["x-frugal-cache: bypass"], first_byte=True)
    # The same low rate without streaming: what a request adds when the cores are idle between
    # requests (each wakes parked threads), set against the streaming relay's own share.
    results["slow_direct"] = load(direct_url, SHORT, 100, 1, "5s")
    results["slow_bypass"] = load(frugal_url, SHORT, 100, 1, "5s", ["x-frugal-cache: bypass"])
    context = long_context(6000)
    trim_body = {"model": "gpt-4o-mini", "max_tokens": 40, "messages": [{"role": "user", "content": context}]}
    results["trim_6k_direct"] = sequential(MOCK_PORT, [trim_body] * 60, {"x-frugal-cache": "bypass"})
    results["trim_6k"] = sequential(SIDECAR_PORT, [trim_body] * 60, {"x-frugal-cache": "bypass"})
    results["rss_loaded_mib"] = rss_mib(sidecar_pid)
    results["cache_loaded"] = cache_size(SIDECAR_PORT)
    return results


def start_sidecar(binary, work, policy, log):
    """`frugal serve` with the policy file `work/policy`, its stderr in `work/log`."""
    return subprocess.Popen([binary, "serve", "--policy", str(work / policy)],
                            stdout=subprocess.DEVNULL, stderr=open(work / log, "w"), env=SIDECAR_ENV)


def load_one_thread(args):
    """The load run again on a fresh sidecar with `embeddings.threads: 1` (the main one embeds
    with the default threads): the throughput one embedding thread leaves to the requests."""
    work = Path(args.work)
    sidecar = start_sidecar(args.bin, work, "policy-one-thread.yaml", "sidecar-one-thread.log")
    try:
        wait_up(f"http://127.0.0.1:{ONE_THREAD_PORT}/readyz")
        before = cache_counters(ONE_THREAD_PORT)
        loaded = wrk_distinct(ONE_THREAD_PORT, work, args.duration)
        if loaded:
            loaded["lookups"] = settled_counters(ONE_THREAD_PORT, before)
            loaded["rss_after_mib"] = rss_mib(sidecar.pid)
        return loaded
    finally:
        sidecar.terminate()
        sidecar.wait(timeout=20)


def metrics_text(port):
    """The sidecar's /metrics exposition."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    return conn.getresponse().read().decode()


def cache_counters(port):
    """The sidecar's cache lookup results and deferred embeddings so far, from /metrics."""
    text = metrics_text(port)
    counts = {}
    for name, labels, value in re.findall(
            r'^frugal_cache_(lookups|deferred_embeddings)_total\{([^}]*)\} ([\d.e+]+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        key = f"{labels.get('tier')} {labels.get('result')}" if name == "lookups" else f"deferred {labels.get('result')}"
        counts[key] = counts.get(key, 0) + int(float(value))
    return counts


def cache_size(port):
    """The entries the sidecar's response cache holds and the bytes it counts, from /metrics."""
    text = metrics_text(port)
    gauge = lambda name: int(float(m[1])) if (m := re.search(rf"^{name} (\S+)$", text, re.M)) else 0
    return {"entries": gauge("frugal_cache_entries"), "bytes": gauge("frugal_cache_bytes")}


def settled_counters(port, before, seconds=60):
    """The counters' growth since `before`, once the deferred embeddings are done (or after
    `seconds`): what the prefilter did to the run's lookups."""
    deadline = time.time() + seconds
    while True:
        now = cache_counters(port)
        grown = {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}
        deferred = grown.get("deferred indexed", 0) + grown.get("deferred dropped", 0)
        if deferred >= grown.get("semantic prefiltered", 0) or time.time() > deadline:
            return grown
        time.sleep(0.2)


WRK_SCRIPT = """
-- One wrk thread serves every connection: it sends the bodies file's lines in turn, each once
-- (the last again if the file runs out).
-- Headers given with -H are sent too.
local bodies, next_body, headers = {}, 1, {}
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["content-type"] = "application/json"
end
function request()
  local body = bodies[next_body] or bodies[#bodies]
  next_body = next_body + 1
  return wrk.format("POST", "/v1/chat/completions", headers, body)
end
"""


def question_bodies(path, model, count):
    """`count` distinct real questions (QQP's, evaluation only) as request bodies, one a line;
    None without the data."""
    qqp = Path(os.environ.get("FRUGAL_SHARED", ROOT.parent / "shared")) / "data/cache/qqp_dev.jsonl.gz"
    if not qqp.exists():
        return None
    seen, lines = set(), []
    with gzip.open(qqp, "rt") as f:
        for row in map(json.loads, f):
            for text in (row["a"], row["b"]):
                text = " ".join(text.split())
                if text and text not in seen:
                    seen.add(text)
                    lines.append(json.dumps({"model": model, "temperature": 0, "max_tokens": 40,
                                             "messages": [{"role": "user", "content": text}]}))
            if len(lines) >= count:
                break
    path.write_text("\n".join(lines[:count]) + "\n")
    return path


def wrk_distinct(port, work, duration, conns=16, count=120_000):
    """Cacheable misses as fast as `conns` connections go: each request a distinct question."""
    bodies = question_bodies(work / "wrk_bodies.jsonl", "gpt-4o-mini", count)
    if bodies is None or not shutil.which("wrk"):
        print("cacheable miss under load: no QQP data or no wrk; skipped", file=sys.stderr)
        return None
    return {**wrk(port, work, bodies, duration, conns), "distinct_bodies": count}


def wrk_same(port, work, body, duration, conns=32, headers=()):
    """One body again and again, as fast as `conns` connections go (closed loop), with
    `headers` ("Name: value")."""
    if not shutil.which("wrk"):
        print("closed-loop paths: no wrk; skipped", file=sys.stderr)
        return None
    bodies = work / "wrk_same.jsonl"
    bodies.write_text(json.dumps(body) + "\n")
    return wrk(port, work, bodies, duration, conns, headers)


def wrk(port, work, bodies, duration, conns, headers=()):
    """wrk, one thread, `conns` connections, sending the lines of `bodies` in turn (the last
    again once they run out) with `headers`; its throughput, latency percentiles and statuses."""
    script = work / "bodies.lua"
    script.write_text(WRK_SCRIPT)
    args = ["wrk", "-t1", f"-c{conns}", f"-d{duration}", "--latency", "-s", str(script)]
    for header in headers:
        args += ["-H", header]
    args += [f"http://127.0.0.1:{port}", "--", str(bodies)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = lambda p: (lambda m: float(m.group(1)) * unit[m.group(2)])(
        re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": conns, "duration": duration,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": round(pct(50), 3), "p90_ms": round(pct(90), 3), "p99_ms": round(pct(99), 3),
        "statuses": {"non_2xx": int(bad.group(1)) if bad else 0, "all": requests},
    }


def start_litellm(command, work):
    """LiteLLM's proxy (one worker, offline cost map, a master key) in front of the same mock."""
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{MOCK_PORT}/v1\n"
        "      api_key: unused\n"
        f"general_settings:\n  master_key: {LITELLM_KEY}\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    process = subprocess.Popen(
        [command, "--config", str(config), "--host", "127.0.0.1", "--port", str(LITELLM_PORT),
         "--num_workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(work / "litellm.log", "w"), env=env)
    wait_up(f"http://127.0.0.1:{LITELLM_PORT}/health/liveliness", seconds=180)
    return process


def compare_litellm(args, litellm_pid):
    """The same miss path through LiteLLM and through frugal, at a rate LiteLLM survives."""
    print("the same miss through LiteLLM ...", file=sys.stderr)
    url = lambda port: f"http://127.0.0.1:{port}/v1/chat/completions"
    return {
        "litellm_rate_direct": load(url(MOCK_PORT), SHORT, LITELLM_RATE, 5, args.duration),
        "litellm_rate_frugal": load(url(SIDECAR_PORT), SHORT, LITELLM_RATE, 5, args.duration,
                                   ["x-frugal-cache: bypass"]),
        "litellm": load(url(LITELLM_PORT), SHORT, LITELLM_RATE, 5, args.duration,
                       [f"Authorization: Bearer {LITELLM_KEY}"]),
        # As fast as it goes, to set beside frugal's `bypass_closed` (the same body).
        "litellm_closed": wrk_same(LITELLM_PORT, Path(args.work), SHORT, "5s",
                                   headers=[f"Authorization: Bearer {LITELLM_KEY}"]),
        "litellm_rss_loaded_mib": rss_total_mib(litellm_pid),
    }


def rss_total_mib(pid):
    """RSS of a process and its children (LiteLLM runs its worker as a child)."""
    total = rss_mib(pid) or 0.0
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for cpid in child.read_text().split():
            total += rss_total_mib(int(cpid))
    return round(total, 1)


def criterion_results(target):
    """Mean time of every criterion benchmark under target/criterion (from `cargo bench`)."""
    results = {}
    for meta in sorted(Path(target, "criterion").glob("**/new/benchmark.json")):
        bench = json.loads(meta.read_text())
        estimates = json.loads((meta.parent / "estimates.json").read_text())
        results[bench["full_id"]] = {
            "mean_ns": round(estimates["mean"]["point_estimate"], 1),
            "ci_low_ns": round(estimates["mean"]["confidence_interval"]["lower_bound"], 1),
            "ci_high_ns": round(estimates["mean"]["confidence_interval"]["upper_bound"], 1),
        }
    return results


def markdown(report, args):
    r, m = report["results"], report["machine"]
    added = lambda a, b, k: f"{r[a][k] - r[b][k]:+.2f}"
    rows = [
        ("direct to the mock", "direct", None, f"{args.rate} req/s, 20 conns"),
        ("miss, `x-frugal-cache: bypass`", "miss_bypass", "direct", f"{args.rate} req/s, 20 conns"),
        ("exact hit", "exact_hit", "direct", f"{args.rate} req/s, 20 conns"),
        ("direct to the mock, as fast as it goes", "direct_closed", None, "32 conns, closed loop (wrk)"),
        ("exact hit, as fast as it goes", "exact_hit_closed", "direct_closed", "32 conns, closed loop (wrk)"),
        ("miss (bypass), as fast as it goes", "bypass_closed", "direct_closed", "32 conns, closed loop (wrk)"),
        ("semantic hit (embedding included)", "semantic_hit", None, "50 req/s, 1 conn"),
        ("direct, real prompts", "direct_sequential", None, "1 conn, sequential"),
        ("cacheable miss, cheap model, prefilter off (MiniLM on every miss)", "cacheable_miss_no_prefilter", "direct_sequential", "1 conn, sequential"),
        ("cacheable miss, cheap model, prefilter on (MiniLM only near a stored question)", "cacheable_miss", "direct_sequential", "1 conn, sequential"),
        ("cacheable miss, routed model (classifier + cache embed)", "cacheable_miss_routed", "direct_sequential", "1 conn, sequential"),
        ("cacheable miss under load, distinct QQP questions, cheap model, prefilter on", "cacheable_miss_load", None, "16 conns, closed loop (wrk)"),
        ("the same, `embeddings.threads: 1` (a fresh sidecar)", "cacheable_miss_load_one_thread", None, "16 conns, closed loop (wrk)"),
        ("streaming, time to the first content token, direct", "ttfb_direct", None, "100 req/s, 1 conn"),
        ("streaming, time to the first content token, bypass", "ttfb", "ttfb_direct", "100 req/s, 1 conn"),
        ("not streaming, direct", "slow_direct", None, "100 req/s, 1 conn"),
        ("not streaming, miss (bypass)", "slow_bypass", "slow_direct", "100 req/s, 1 conn"),
        ("~6k-token context, direct", "trim_6k_direct", None, "1 conn"),
        ("~6k-token context trimmed to 800 tokens", "trim_6k", "trim_6k_direct", "1 conn"),
    ]
    if "litellm" in r:
        load = f"{LITELLM_RATE} req/s, 5 conns"
        rows += [
            ("direct to the mock", "litellm_rate_direct", None, load),
            ("frugal, miss (bypass)", "litellm_rate_frugal", "litellm_rate_direct", load),
            ("LiteLLM 1.108.7 proxy (1 worker), same miss", "litellm", "litellm_rate_direct", load),
            ("LiteLLM 1.108.7 proxy (1 worker), same miss, as fast as it goes", "litellm_closed", None, "32 conns, closed loop (wrk)"),
        ]
    lines = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.sh` (which runs `scripts/bench.py`); the same figures are in",
        "`target/bench.json`. Load generators: `router/examples/loadgen.rs` for the fixed rates (open",
        "loop, one thread; a request's latency counts from when it was sent, and how late it was sent",
        "is `late_p99_ms` in the JSON), wrk for the closed-loop load, the script's own client for the",
        "one-connection paths. Mock",
        "upstream (0 ms latency) and sidecar share the machine's cores, so these are upper bounds on",
        "what the sidecar adds. Policy: `policies/examples/local.yaml` (cache on, gpt-4o routed",
        "cheap-first, trimming to 800 tokens).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; {m['date']}.",
        "",
        "| path | load | req/s | p50 ms | p90 ms | p99 ms | added p50 / p99 ms | statuses |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, key, base, load in rows:
        if not r.get(key):
            continue
        x = r[key]
        rps = f"{x['rps']:.0f}" if "rps" in x else "—"
        extra = f"{added(key, base, 'p50_ms')} / {added(key, base, 'p99_ms')}" if base else ""
        statuses = ", ".join(f"{k}: {v}" for k, v in x.get("statuses", {}).items())
        cache = x.get("cache")
        if cache:
            statuses += " (" + ", ".join(f"{k} {v}" for k, v in cache.items()) + ")"
        lines.append(f"| {name} | {load} | {rps} | {x['p50_ms']:.2f} | {x['p90_ms']:.2f} | {x['p99_ms']:.2f} | {extra} | {statuses} |")
    lines += [
        "",
        "The prefiltered run's lookups (`frugal_cache_lookups_total` by result, and the stored",
        "questions embedded after their answers, `frugal_cache_deferred_embeddings_total`): "
        + ", ".join(f"{k} {v}" for k, v in sorted(r["cacheable_miss"].get("lookups", {}).items())) + "."
        + (" Under load: " + ", ".join(f"{k} {v}" for k, v in sorted(r["cacheable_miss_load"].get("lookups", {}).items())) + "."
           if "cacheable_miss_load" in r else "")
        + (" With one embedding thread: " + ", ".join(f"{k} {v}" for k, v in sorted(r["cacheable_miss_load_one_thread"].get("lookups", {}).items()))
           + f"; RSS after {r['cacheable_miss_load_one_thread'].get('rss_after_mib')} MiB."
           if r.get("cacheable_miss_load_one_thread") else ""),
        "",
        f"Sidecar RSS: {r['rss_idle_mib']} MiB idle, {r.get('rss_before_load_mib')} MiB after the",
        f"one-connection paths, {r['rss_loaded_mib']} MiB after everything (the load run sent some",
        f"{r.get('cacheable_miss_load', {}).get('statuses', {}).get('all', 0):,} more cacheable questions"
        + (f"; the cache then held {r['cache_loaded']['entries']:,} entries, counted at"
           f" {r['cache_loaded']['bytes'] / 2**20:.1f} MiB of its `max_bytes`)."
           if r.get("cache_loaded") else ").")
        + (f" LiteLLM's proxy: {r['litellm_rss_loaded_mib']} MiB after its run." if "litellm" in r else ""),
        "",
    ]
    if r.get("bypass_closed") and r.get("litellm_closed"):
        ours, theirs = r["bypass_closed"]["rps"], r["litellm_closed"]["rps"]
        lines += [
            f"The same miss as fast as 32 connections go: frugal {ours:,.0f} req/s, LiteLLM's proxy"
            f" {theirs:,.0f} req/s: {ours / theirs:,.0f} times its throughput on the same cores.",
            "",
        ]
    micro = report.get("micro") or {}
    if micro:
        lines += [
            "Micro-benchmarks of the hot functions (criterion, `cargo bench --bench hot_paths` in",
            "cache, classifier and router; mean with its 95% interval):",
            "",
            "| function | mean | 95% interval |",
            "| --- | ---: | ---: |",
        ]
        fmt = lambda ns: f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
        for name, x in micro.items():
            lines.append(f"| {name} | {fmt(x['mean_ns'])} | {fmt(x['ci_low_ns'])}–{fmt(x['ci_high_ns'])} |")
        lines.append("")
    lines += index_markdown(r.get("index") or [])
    if r.get("index_note"):
        lines += [f"({r['index_note']}.)", ""]
    lines += cache_memory_markdown(r.get("cache_memory") or [])
    lines += [
        "Reading it: with the prefilter off, every cacheable miss pays for the question's",
        "embedding (all-MiniLM-L6-v2, 8-bit weights, on CPU), which grows with the question's",
        "length; real Arena-Hard prompts are longer than the one-line question of the hit paths.",
        "With it on (the default), a question with no stored question of its scope near it in",
        "static word vectors goes upstream without MiniLM and is embedded after its answer, in the",
        "embedding worker's background lane; the questions that pass it still wait for MiniLM.",
        "Questions past `cache.semantic_max_tokens` (128) skip the semantic tier, so for the",
        "unrouted model they wait for no embedding; the routed model's classifier reads the",
        "embedding of every question, long ones included. An exact hit never embeds.",
        "Under load the embedding worker and the requests share the two cores: with one",
        "embedding thread (`embeddings.threads: 1`) the worker leaves a core to the requests, and",
        "ONNX Runtime's threads do not spin waiting for each other.",
        "",
    ]
    return "\n".join(lines)


def cache_memory_markdown(kinds):
    if not kinds:
        return []
    what = {
        "answers": "answers only (exact tier)",
        "semantic": "answers + semantic tier",
        "prefiltered": "answers + semantic tier + prefilter (the default)",
        "elsewhere": "questions from other replicas (shared tier)",
    }
    lines = [
        "The cache's memory against what `cache.max_bytes` counts (`router/examples/cache_memory.rs`,",
        f"{kinds[0]['entries']:,} entries of each kind in one scope, each in a fresh process with the",
        "sidecar's allocator: real questions of up to 512 characters, chat completion answers of",
        "200 to 2,000 characters, random unit vectors; resident growth once the index's background",
        "rebuilds are done).",
        "",
        "| entries | resident bytes per entry | counted bytes per entry | counted / resident |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in kinds:
        lines.append(
            f"| {what.get(kind['mode'], kind['mode'])} | {kind['rss_bytes_per_entry']:,.0f} | "
            f"{kind['counted_bytes_per_entry']:,.0f} | {kind['counted_share_of_rss']:.2f} |")
    return lines + [""]


def augmented(size):
    """How an index_scale run augmented its real vectors, for the table."""
    return {"mix": "mixed (stress)", "neighbours": "between neighbours"}.get(size.get("augmentation"), "—")


def index_markdown(sizes):
    if not sizes:
        return []
    lines = [
        "One scope's vector index at scale (`cache/examples/index_scale.rs`, default",
        "`IndexConfig`: 32 links a node, ef_construction 100, int8 graph whose best 16 candidates",
        "are re-ranked with each vector's int8 rounding residual, a search width of 32 per 125k",
        "entries up to 256; built in one go with `VectorIndex::from_vectors` on all cores).",
        "Vectors: "
        f"{sizes[0]['real_vectors']:,} real prompt",
        "embeddings (all-MiniLM-L6-v2 of QQP questions and Arena-Hard prompts), augmented to the",
        "size with points between a real vector and one of its ten nearest real neighbours (a",
        "uniform share of the way) plus ±0.01 uniform noise per component, renormalised: new",
        "prompts among the real ones. The stress case (\"mixed\") augments with random convex",
        "combinations of 2 or 3 unrelated real vectors instead: points far from every real prompt,",
        "where a graph search loses its way. Queries, "
        f"{sizes[0]['queries_per_kind']} of each kind: near-duplicates (a stored",
        "vector plus ±0.03 noise per component, cosine ~0.95 to it) and fresh real prompts",
        "(held out of the stored set). Recall@1: the index's first neighbour is the exact f32",
        "scan's; \"within 0.01\": its exact cosine is within 0.01 of the best (a near-tie serves the",
        "same); \"int8\": it is as near as the best by the graph's int8 vectors alone (an exact scan",
        "of those: what a perfect search of the graph finds without the re-rank; the re-rank closes",
        "the gap of int8 rounding among near-ties for the candidates the search reached). Memory:",
        "the process's RSS growth over the build.",
        "",
        "| entries | augmented | build s | index MiB | ef_search | lookup p50 / p99 ms | recall@1, near-duplicates | recall@1, fresh prompts | first within 0.01 of the best, near-duplicates / fresh | recall@1 by the int8 vectors, near-duplicates / fresh |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    close = lambda kind: f"{kind['within_0_01']:.3f}" if "within_0_01" in kind else "—"
    int8 = lambda kind: f"{kind['recall_at_1_int8']:.3f}" if "recall_at_1_int8" in kind else "—"
    for size in sizes:
        for search in size["searches"]:
            default = " (default)" if search["ef_search"] == size["default_ef_search"] else ""
            lines.append(
                f"| {size['entries']:,} | {augmented(size)} | {size['build_s']:.0f} | {size['index_mib']:.0f} | "
                f"{search['ef_search']}{default} | {search['p50_ms']:.2f} / {search['p99_ms']:.2f} | "
                f"{search['near_duplicate']['recall_at_1']:.3f} | {search['fresh']['recall_at_1']:.3f} | "
                f"{close(search['near_duplicate'])} / {close(search['fresh'])} | "
                f"{int8(search['near_duplicate'])} / {int8(search['fresh'])} |")
    return lines + [""]


if __name__ == "__main__":
    main()
