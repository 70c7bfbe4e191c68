//! The shared tier through sidecars on one real Redis: what one replica stores, another serves
//! (exact at once, semantic once the stream brings it), a new replica warms from Redis, budget
//! and run caps hold across replicas under concurrency, two replicas filling a small cache at
//! once stay within its bound and serve no other question's answer, and Redis going away fails
//! no request.

use std::time::{Duration, Instant};

use frugal_tests::redis::RedisServer;
use frugal_tests::{check_with_promtool, header, policy_for, MockUpstream, Sidecar};
use futures::StreamExt;
use serde_json::{json, Value};

/// A policy on `mock` sharing through the Redis at `url`, with the cache on (semantic too).
fn shared_policy(mock: &MockUpstream, url: &str, extra: &str) -> String {
    shared_policy_with_cache(mock, url, "", extra)
}

/// [`shared_policy`] with more `cache` settings (`cache_extra`, e.g. `max_bytes: 1000, `).
fn shared_policy_with_cache(
    mock: &MockUpstream,
    url: &str,
    cache_extra: &str,
    extra: &str,
) -> String {
    // Each test process has its own variable, so tests in one process could not collide.
    let var = format!("FRUGAL_TEST_REDIS_{}", std::process::id());
    std::env::set_var(&var, url);
    policy_for(
        &mock.base_url(),
        &format!(
            "cache: {{ {cache_extra}mode: on, ttl: 10m, max_temperature: 0.5 }}\n\
             shared: {{ redis_url_env: {var}, timeout: 200ms, warm_timeout: 2s }}\n{extra}"
        ),
    )
}

fn ask(question: &str) -> Value {
    json!({ "model": "strong", "temperature": 0, "messages": [
        { "role": "system", "content": "Be brief." },
        { "role": "user", "content": question }] })
}

const FIRST: &str = "How do I reverse a list in Python?";
const REPHRASED: &str = "How can I reverse a list in Python?";

/// Asks until the `x-frugal-cache` header is `want` (the stream may take a moment), at most 5 s.
async fn ask_until(sidecar: &Sidecar, question: &str, want: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = sidecar.chat_as("acme", &ask(question)).await;
        assert_eq!(response.status(), 200);
        if header(&response, "x-frugal-cache") == want || Instant::now() > deadline {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ready(sidecar: &Sidecar) -> bool {
    let response = sidecar
        .client
        .get(sidecar.url("/readyz"))
        .send()
        .await
        .unwrap();
    response.status() == 200
}

#[tokio::test]
async fn what_one_replica_stores_the_other_serves_exactly_and_semantically() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let policy = shared_policy(&mock, &redis.url(), "");
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    let c = Sidecar::start(&policy).await;
    let first = a.chat_as("acme", &ask(FIRST)).await;
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    let original: Value = first.json().await.unwrap();
    // Nothing near it, so A embedded the question after answering, then published it.
    a.embedded_after(1).await;

    // B never saw the question: the exact key finds A's answer in Redis.
    let exact = ask_until(&b, FIRST, "exact").await;
    assert_eq!(header(&exact, "x-frugal-cache"), "exact");
    assert_eq!(header(&exact, "x-frugal-cost-usd"), "0");
    let served: Value = exact.json().await.unwrap();
    assert_eq!(
        served["choices"][0]["message"]["content"],
        original["choices"][0]["message"]["content"]
    );
    // A rephrasing finds A's question in C's index (through the stream) and its answer in Redis.
    let semantic = ask_until(&c, REPHRASED, "semantic").await;
    assert_eq!(header(&semantic, "x-frugal-cache"), "semantic");
    assert_eq!(mock.total_calls(), 1, "one upstream call for three answers");
    // Another tenant's identical question is not served from acme's answer.
    let other = b.chat_as("globex", &ask(FIRST)).await;
    assert_eq!(header(&other, "x-frugal-cache"), "miss");
    assert_eq!(mock.total_calls(), 2);
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("frugal_shared_hits_total{tier=\"exact\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_shared_hits_total{tier=\"semantic\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_new_replica_warms_its_index_from_redis_before_it_is_ready() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let policy = shared_policy(&mock, &redis.url(), "");
    let a = Sidecar::start(&policy).await;
    assert_eq!(a.chat_as("acme", &ask(FIRST)).await.status(), 200);
    a.embedded_after(1).await;
    // Let A's entry reach Redis (published in the background).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = Sidecar::start(&policy).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while !ready(&c).await {
        assert!(Instant::now() < deadline, "not ready within warm_timeout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = c.chat_as("acme", &ask(REPHRASED)).await;
    assert_eq!(
        header(&response, "x-frugal-cache"),
        "semantic",
        "warmed, not streamed"
    );
    assert_eq!(mock.total_calls(), 1);
    assert!(c.metrics().await.contains("frugal_shared_warm_entries 1"));
}

/// Forty questions on unrelated subjects: no two are a semantic match.
const UNRELATED: [&str; 40] = [
    "How do volcanoes form?",
    "What is the best way to tune a violin?",
    "Should I choose a fixed or variable rate mortgage?",
    "Why do cats purr?",
    "How does a refrigerator keep food cold?",
    "What caused the fall of the Roman Empire?",
    "How many bones are in the human hand?",
    "Which programming language should a beginner learn first?",
    "How do I remove a red wine stain from carpet?",
    "What is the difference between weather and climate?",
    "How long should I boil an egg for a runny yolk?",
    "Why is the sky blue during the day?",
    "What are the rules of chess castling?",
    "How do vaccines train the immune system?",
    "What is a good stretching routine for runners?",
    "How does compound interest work on savings?",
    "Who painted the ceiling of the Sistine Chapel?",
    "How can I improve my sleep quality?",
    "What does a database index do?",
    "Why do leaves change colour in autumn?",
    "How do I replace a flat bicycle tyre?",
    "What is the plot of Hamlet?",
    "How do solar panels generate electricity?",
    "What should I pack for a week of winter camping?",
    "How are diamonds formed underground?",
    "What is the capital city of Australia?",
    "How do I write a polite resignation letter?",
    "Why do onions make people cry?",
    "How does GPS work out where I am?",
    "What are the symptoms of dehydration?",
    "How do bees make honey?",
    "What is the offside rule in football?",
    "How can I learn to juggle three balls?",
    "Why does bread go stale?",
    "What is a black hole made of?",
    "How do I grow tomatoes on a balcony?",
    "What makes a good password?",
    "How did the printing press change Europe?",
    "Why do we have leap years?",
    "How does a jet engine produce thrust?",
];

/// Asks `questions` on `sidecar`, eight at a time: each answer's status and text by question.
async fn ask_all(
    sidecar: &Sidecar,
    questions: Vec<&'static str>,
) -> Vec<(&'static str, u16, String)> {
    futures::stream::iter(questions)
        .map(|question| async move {
            let response = sidecar.chat_as("acme", &ask(question)).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            let text = body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (question, status, text)
        })
        .buffer_unordered(8)
        .collect()
        .await
}

#[tokio::test]
async fn two_replicas_filling_a_small_shared_cache_stay_within_its_bound_and_serve_only_their_own_answers(
) {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    // Room for about ten of these answers with their semantic entries, fewer than the
    // questions: both replicas evict while they store and while the other's questions arrive.
    const MAX_BYTES: u64 = 70_000;
    let cache = format!("max_bytes: {MAX_BYTES}, ");
    let policy = shared_policy_with_cache(&mock, &redis.url(), &cache, "");
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    // Each replica asks every question twice, eight at a time, in opposite orders.
    let forward: Vec<&str> = UNRELATED.iter().chain(&UNRELATED).copied().collect();
    let backward: Vec<&str> = forward.iter().rev().copied().collect();
    let asking = futures::future::join(ask_all(&a, forward), ask_all(&b, backward));
    // Meanwhile the counted bytes of each replica's cache are sampled.
    let largest = std::cell::Cell::new(0);
    let watching = async {
        loop {
            for sidecar in [&a, &b] {
                largest.set(largest.get().max(sidecar.server.cache.size().1));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (answers_a, answers_b) = tokio::select! {
        answers = asking => answers,
        _ = watching => unreachable!("the watcher never ends"),
    };
    assert!(
        largest.get() <= MAX_BYTES,
        "{} bytes counted at one point, bound {MAX_BYTES}",
        largest.get()
    );
    let answers: Vec<_> = answers_a.into_iter().chain(answers_b).collect();
    for (question, status, text) in &answers {
        assert_eq!(*status, 200, "{question}");
        // The mock quotes the question it answered: a cached answer must be this question's.
        assert!(
            text.contains(&format!("You asked: \"{question}\"")),
            "{question:?} was answered with {text:?}"
        );
    }
    a.embeddings_settled().await;
    b.embeddings_settled().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for sidecar in [&a, &b] {
        let (entries, bytes) = sidecar.server.cache.size();
        assert!(
            bytes <= MAX_BYTES,
            "{bytes} bytes counted, bound {MAX_BYTES}"
        );
        assert!(entries < 40, "{entries} entries: nothing was evicted");
        assert!(entries > 0);
    }
    let upstream = mock.total_calls();
    assert!(
        (40..160).contains(&upstream),
        "{upstream} upstream calls for 160 requests of 40 questions"
    );
}

/// A request whose reserved worst case equals its cost (see budget.rs).
fn priced(max_tokens: u64) -> Value {
    json!({ "model": "strong", "max_tokens": max_tokens, "messages": [
        { "role": "user", "content": "Write a long essay about budgets and why they matter." }] })
}

/// Sends 64 requests at once, alternating between the two sidecars; the statuses.
async fn burst(a: &Sidecar, b: &Sidecar, tenant: &str, headers: &[(&str, &str)]) -> Vec<u16> {
    let requests = (0..64).map(|i| {
        let sidecar = if i % 2 == 0 { a } else { b };
        let mut request = sidecar
            .client
            .post(sidecar.url("/v1/chat/completions"))
            .header("x-frugal-tenant", tenant)
            .json(&priced(20));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    });
    futures::future::join_all(requests).await
}

/// Dollars one `priced(20)` request costs, asked of a sidecar without caps.
async fn cost_of_one(mock: &MockUpstream) -> f64 {
    let probe = Sidecar::in_front_of(mock).await;
    header(
        &probe.chat_as("probe", &priced(20)).await,
        "x-frugal-cost-usd",
    )
    .parse()
    .unwrap()
}

async fn spent(sidecar: &Sidecar, tenant: &str) -> f64 {
    let report = sidecar.savings("").await;
    report["tenants"][tenant]["actual_usd"]
        .as_f64()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_budget_holds_across_two_replicas_under_64_concurrent_requests() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start_with_latency(Duration::from_millis(50)).await;
    let one = cost_of_one(&mock).await;
    let cap = one * 10.5;
    let budget = format!(
        "tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {cap}, soft_thresholds: [0.5] }}\n"
    );
    let policy = shared_policy(&mock, &redis.url(), &budget);
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    let calls_before = mock.total_calls();
    let statuses = burst(&a, &b, "burst", &[]).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 54);
    let total = spent(&a, "burst").await + spent(&b, "burst").await;
    assert!(
        total <= cap,
        "spent {total} over the cap {cap} across two replicas"
    );
    assert_eq!(mock.total_calls() - calls_before, 10);
}

#[tokio::test]
async fn a_run_cap_holds_across_two_replicas() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start_with_latency(Duration::from_millis(50)).await;
    let one = cost_of_one(&mock).await;
    let cap = one * 6.5;
    let policy = shared_policy(
        &mock,
        &redis.url(),
        &format!("runs: {{ max_cost_usd: {cap} }}\n"),
    );
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    let statuses = burst(&a, &b, "agent", &[("x-frugal-run-id", "run-42")]).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 6, "{statuses:?}");
    let total = spent(&a, "agent").await + spent(&b, "agent").await;
    assert!(
        total <= cap,
        "run spent {total} over its cap {cap} across two replicas"
    );
}

#[tokio::test]
async fn a_reserve_that_timed_out_while_redis_stalled_leaves_no_hold_behind() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let one = cost_of_one(&mock).await;
    // Room for one request's worst case, not two.
    let budget = format!(
        "tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {} }}\n",
        one * 1.5
    );
    let policy =
        shared_policy(&mock, &redis.url(), &budget).replace("timeout: 200ms", "timeout: 50ms");
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    // A has reserved and settled before (Redis knows the scripts, so it runs them after a stall).
    assert_eq!(a.chat_as("earlier", &priced(20)).await.status(), 200);
    // Redis stalls for longer than the timeout: A's reserve gives up waiting and A enforces the
    // cap alone, but Redis runs the reserve when the stall ends.
    redis.pause(Duration::from_millis(400));
    let during = a.chat_as("stalled", &priced(20)).await;
    assert_eq!(during.status(), 200);
    assert!(a
        .metrics()
        .await
        .contains("frugal_shared_errors_total{op=\"reserve\"}"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // That hold was released by id, so B (which has spent nothing) still has room for one.
    let after = b.chat_as("stalled", &priced(20)).await;
    assert_eq!(
        after.status(),
        200,
        "a hold made after its reserve timed out still counts: {}",
        after.text().await.unwrap()
    );
    assert_eq!(b.chat_as("stalled", &priced(20)).await.status(), 429);
}

#[tokio::test]
async fn a_request_longer_than_the_lease_keeps_its_hold_by_renewing_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    mock.on_prompt("slowly").delay(Duration::from_secs(8));
    let one = cost_of_one(&mock).await;
    let budget = format!(
        "tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {} }}\n",
        one * 1.5
    );
    let policy = shared_policy(&mock, &redis.url(), &budget)
        .replace("warm_timeout: 2s", "warm_timeout: 2s, hold_lease: 6s")
        .replace("request: 2s", "request: 20s");
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    let slow = json!({ "model": "strong", "max_tokens": 20, "messages": [
        { "role": "user", "content": "Write a long essay about budgets, slowly please." }] });
    let long = tokio::spawn(async move { a.chat_as("patient", &slow).await.status() });
    // Past the 6 s lease, A's request still runs: its renewed hold still counts on B.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(b.chat_as("patient", &priced(20)).await.status(), 429);
    assert_eq!(long.await.unwrap(), 200);
}

#[tokio::test]
async fn with_redis_gone_every_request_answers_and_sharing_resumes_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let budget = "tenants:\n  default:\n    budget: { window: day, hard_cap_usd: 100 }\n";
    let policy = shared_policy(&mock, &redis.url(), budget);
    let (a, b) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    assert_eq!(a.chat_as("acme", &ask(FIRST)).await.status(), 200);
    redis.kill();
    for (i, sidecar) in [&a, &b, &a, &b].into_iter().enumerate() {
        let response = sidecar
            .chat_as(
                "acme",
                &ask(&format!("Question number {i} while Redis is away?")),
            )
            .await;
        assert_eq!(response.status(), 200, "request {i} failed with Redis down");
    }
    let metrics = b.metrics().await;
    assert!(
        metrics.contains("frugal_shared_errors_total{op=\"get\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_shared_fallback{lever=\"budgets\"} 1"),
        "{metrics}"
    );
    redis.restart();
    // After Redis returns (empty), an answer stored via A is an exact hit on B again.
    let question = "What is the capital of Norway, now that Redis is back?";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(a.chat_as("acme", &ask(question)).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let on_b = b.chat_as("acme", &ask(question)).await;
        if header(&on_b, "x-frugal-cache") == "exact" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shared tier did not resume within 10 s"
        );
        // A's answer may have been stored before the reconnection: ask a fresh question.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = b.metrics().await;
    assert!(metrics.contains("frugal_shared_fallback{lever=\"budgets\"} 0"));
    // After misses, hits, skipped operations and a fallback, the exposition is still clean.
    check_with_promtool(&metrics);
}

#[tokio::test]
async fn a_neighbour_whose_answer_expired_in_redis_is_forgotten_not_served() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mock = MockUpstream::start().await;
    let policy = shared_policy(&mock, &redis.url(), "").replace("ttl: 10m", "ttl: 1s");
    let (a, c) = (Sidecar::start(&policy).await, Sidecar::start(&policy).await);
    assert_eq!(a.chat_as("acme", &ask(FIRST)).await.status(), 200);
    // C indexes A's question from the stream; then the answer expires in Redis (TTL 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = c.chat_as("acme", &ask(REPHRASED)).await;
    assert_eq!(late.status(), 200);
    assert_eq!(
        header(&late, "x-frugal-cache"),
        "miss",
        "an expired answer is never served"
    );
    assert_eq!(mock.total_calls(), 2);
}

#[tokio::test]
async fn an_unset_url_variable_refuses_to_start() {
    let policy = policy_for(
        "http://127.0.0.1:9/v1",
        "shared: { redis_url_env: FRUGAL_TEST_REDIS_NEVER_SET }\n",
    );
    let parsed = frugal::policy::parse(&policy, "t.yaml").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = frugal::server::RunningServer::start(parsed, listener, None)
        .err()
        .expect("refused");
    let text = format!("{error:#}");
    assert!(text.contains("FRUGAL_TEST_REDIS_NEVER_SET"), "{text}");
    assert!(text.contains("not set"), "{text}");
}
