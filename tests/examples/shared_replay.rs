//! The shared tier measured (issue 18): two in-process sidecars on one real Redis, with and
//! without sharing, replaying labelled paraphrase pairs round-robin across them.
//!
//! Traffic: for N duplicate pairs (a, b) of a pairs file, every `a`, then every `a` again (an
//! exact repeat), then every `b` (a paraphrase), request k going to replica k mod 2; with N odd
//! each repeat lands on the other replica than its original. Printed: the hit rate with and
//! without sharing, the latency of an exact hit served from this replica's memory vs fetched
//! from Redis, and the overspend of 64 concurrent requests split across both replicas against
//! a budget (several rounds). Needs `redis-server` and the embedding model (FRUGAL_MODEL_DIR).
//!
//! `cargo run --release -p frugal-tests --example shared_replay -- --pairs ../shared/data/cache/qqp_dev.jsonl.gz`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use frugal::offline::eval_cache::pairs::read_pairs;
use frugal_cache::percentile;
use frugal_tests::redis::RedisServer;
use frugal_tests::{header, policy_for, MockUpstream, Sidecar};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// A pairs file (JSONL, optionally gzipped) with `a`, `b` and `duplicate`.
    #[arg(long)]
    pairs: PathBuf,
    /// Duplicate pairs to replay (odd, so repeats cross replicas).
    #[arg(long, default_value_t = 301)]
    n: usize,
    /// Budget rounds of 64 concurrent requests.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn ask(question: &str) -> Value {
    json!({ "model": "strong", "temperature": 0,
            "messages": [{ "role": "user", "content": question }] })
}

fn policy(mock: &MockUpstream, shared: bool, extra: &str) -> String {
    let section = if shared {
        "shared: { redis_url_env: FRUGAL_REPLAY_REDIS, timeout: 200ms }\n"
    } else {
        ""
    };
    policy_for(
        &mock.base_url(),
        &format!("cache: {{ mode: on, ttl: 10m, max_temperature: 0.5 }}\n{section}{extra}"),
    )
}

/// Hits by kind over the replay, and the latency of each exact hit.
#[derive(Default)]
struct Replay {
    requests: usize,
    exact: usize,
    semantic: usize,
}

async fn replay(pair_list: &[(String, String)], shared: bool, mock: &MockUpstream) -> Replay {
    let text = policy(mock, shared, "");
    let pods = [Sidecar::start(&text).await, Sidecar::start(&text).await];
    let traffic: Vec<&str> = pair_list
        .iter()
        .map(|(a, _)| a.as_str())
        .chain(pair_list.iter().map(|(a, _)| a.as_str()))
        .chain(pair_list.iter().map(|(_, b)| b.as_str()))
        .collect();
    let mut out = Replay::default();
    for (k, question) in traffic.iter().enumerate() {
        if k == pair_list.len() * 2 {
            // Let the stream bring every entry to the other replica before the paraphrases.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let response = pods[k % 2].chat_as("acme", &ask(question)).await;
        out.requests += 1;
        match header(&response, "x-frugal-cache").as_str() {
            "exact" => out.exact += 1,
            "semantic" => out.semantic += 1,
            _ => {}
        }
    }
    out
}

/// Client-side latency (ms) of exact hits: served from the replica's memory, and fetched from
/// Redis by the other replica (first time it sees the question).
async fn exact_hit_latency(
    pair_list: &[(String, String)],
    mock: &MockUpstream,
) -> (Vec<f64>, Vec<f64>) {
    let text = policy(mock, true, "");
    let (a, b) = (Sidecar::start(&text).await, Sidecar::start(&text).await);
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    for (question, _) in pair_list {
        let question = format!("{question} (latency)");
        a.chat_as("acme", &ask(&question)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
        let timed = |pod: &Sidecar| {
            let body = ask(&question);
            let (client, url) = (pod.client.clone(), pod.url("/v1/chat/completions"));
            async move {
                let started = Instant::now();
                let response = client
                    .post(url)
                    .header("x-frugal-tenant", "acme")
                    .json(&body)
                    .send()
                    .await
                    .expect("sidecar answers");
                let kind = header(&response, "x-frugal-cache");
                let _ = response.bytes().await;
                (started.elapsed().as_secs_f64() * 1000.0, kind)
            }
        };
        let (ms, kind) = timed(&b).await;
        if kind == "exact" {
            remote.push(ms);
        }
        let (ms, kind) = timed(&a).await;
        if kind == "exact" {
            local.push(ms);
        }
    }
    local.sort_by(f64::total_cmp);
    remote.sort_by(f64::total_cmp);
    (local, remote)
}

/// Largest overspend (dollars over the cap, and in requests' worth) over `rounds` bursts.
async fn overspend(rounds: usize, mock: &MockUpstream) -> (f64, f64, usize) {
    let probe = Sidecar::start(&policy(mock, false, "")).await;
    let body = json!({ "model": "strong", "max_tokens": 20, "messages": [
        { "role": "user", "content": "Write a long essay about budgets and why they matter." }] });
    let one: f64 = header(&probe.chat_as("probe", &body).await, "x-frugal-cost-usd")
        .parse()
        .expect("a cost header");
    let (mut worst, mut served) = (f64::MIN, 0);
    for round in 0..rounds {
        let cap = one * (7.5 + round as f64);
        let budget =
            format!("tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {cap} }}\n");
        let text = policy(mock, true, &budget);
        let pods = [Sidecar::start(&text).await, Sidecar::start(&text).await];
        let tenant = format!("burst-{round}");
        let requests = (0..64).map(|i| {
            let pod = &pods[i % 2];
            let request = pod
                .client
                .post(pod.url("/v1/chat/completions"))
                .header("x-frugal-tenant", tenant.as_str())
                .json(&body);
            async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        let statuses = futures::future::join_all(requests).await;
        served += statuses.iter().filter(|s| **s == 200).count();
        let mut spent = 0.0;
        for pod in &pods {
            let report = pod.savings("").await;
            spent += report["tenants"][tenant.as_str()]["actual_usd"]
                .as_f64()
                .unwrap_or(0.0);
        }
        worst = worst.max(spent - cap);
    }
    (worst, worst / one, served)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let Some(redis) = RedisServer::start() else {
        anyhow::bail!("redis-server is needed (apt-get install redis-server)");
    };
    std::env::set_var("FRUGAL_REPLAY_REDIS", redis.url());
    let pair_list: Vec<(String, String)> = read_pairs(&args.pairs)?
        .into_iter()
        .filter(|p| p.duplicate)
        .take(args.n)
        .map(|p| (p.a, p.b))
        .collect();
    let mock = MockUpstream::start().await;
    let alone = replay(&pair_list, false, &mock).await;
    let shared = replay(&pair_list, true, &mock).await;
    let (local, remote) = exact_hit_latency(&pair_list, &mock).await;
    let (over_usd, over_requests, served) = overspend(args.rounds, &mock).await;
    let rate = |r: &Replay| (r.exact + r.semantic) as f64 / r.requests as f64;
    let p = |v: &[f64], q| percentile(v, q);
    let report = json!({
        "pairs": pair_list.len(),
        "requests_per_replay": alone.requests,
        "without_sharing": { "hit_rate": rate(&alone), "exact": alone.exact, "semantic": alone.semantic },
        "with_sharing": { "hit_rate": rate(&shared), "exact": shared.exact, "semantic": shared.semantic },
        "exact_hit_ms": {
            "local": { "n": local.len(), "p50": p(&local, 0.5), "p99": p(&local, 0.99) },
            "shared": { "n": remote.len(), "p50": p(&remote, 0.5), "p99": p(&remote, 0.99) },
        },
        "budget": { "rounds": args.rounds, "served": served, "max_overspend_usd": over_usd.max(0.0),
                    "max_overspend_requests": over_requests.max(0.0) },
    });
    println!(
        "replay of {} requests ({} pairs) round-robin over two replicas",
        alone.requests,
        pair_list.len()
    );
    println!(
        "  hit rate without sharing  {:.1}% (exact {}, semantic {})",
        rate(&alone) * 100.0,
        alone.exact,
        alone.semantic
    );
    println!(
        "  hit rate with sharing     {:.1}% (exact {}, semantic {})",
        rate(&shared) * 100.0,
        shared.exact,
        shared.semantic
    );
    println!("exact hit, client-side latency (release build, loopback, one connection)");
    println!(
        "  from memory  p50 {:.3} ms  p99 {:.3} ms  (n {})",
        p(&local, 0.5),
        p(&local, 0.99),
        local.len()
    );
    println!(
        "  from Redis   p50 {:.3} ms  p99 {:.3} ms  (n {})",
        p(&remote, 0.5),
        p(&remote, 0.99),
        remote.len()
    );
    println!("budget: {} rounds of 64 concurrent requests across two replicas, {} served; worst overspend ${:.9} ({:.2} requests)", args.rounds, served, over_usd.max(0.0), over_requests.max(0.0));
    println!("{}", serde_json::to_string(&report)?);
    drop(redis);
    Ok(())
}
