//! The semantic cache tier through the sidecar, with the real embedding model: a rephrased
//! question is answered from the cache; near-identical questions that ask something different
//! are caught by a guard; nothing crosses tenants or scopes; shadow mode only counts (and
//! compares answers, streamed ones included).

use frugal_tests::{header, policy_for, sse_payloads, MockUpstream, Sidecar};
use serde_json::{json, Value};

fn semantic_policy(base_url: &str, cache: &str) -> String {
    policy_for(
        base_url,
        &format!("cache: {{ mode: on, ttl: 10m, max_temperature: 0.5{cache} }}\n"),
    )
}

fn ask_body(question: &str, system: &str, stream: bool) -> Value {
    json!({ "model": "strong", "temperature": 0, "stream": stream, "messages": [
        { "role": "system", "content": system },
        { "role": "user", "content": question }] })
}

/// Asks, then waits for the question to be embedded when the prefilter let it through
/// unembedded (a rephrasing sent at once could otherwise beat its indexing).
async fn ask(sidecar: &Sidecar, body: &Value, tenant: &str) -> reqwest::Response {
    let response = sidecar.chat_as(tenant, body).await;
    sidecar.embeddings_settled().await;
    response
}

const FIRST: &str = "How do I reverse a list in Python?";
const REPHRASED: &str = "How can I reverse a list in Python?";

#[tokio::test]
async fn a_rephrased_question_is_a_semantic_hit() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&semantic_policy(&mock.base_url(), "")).await;
    let first = ask(&sidecar, &ask_body(FIRST, "Be brief.", false), "a").await;
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    let original: Value = first.json().await.unwrap();
    let second = ask(&sidecar, &ask_body(REPHRASED, "Be brief.", false), "a").await;
    assert_eq!(header(&second, "x-frugal-cache"), "semantic");
    let similarity: f32 = header(&second, "x-frugal-cache-similarity")
        .parse()
        .unwrap();
    assert!(similarity >= 0.93, "{similarity}");
    assert_eq!(header(&second, "x-frugal-cost-usd"), "0");
    let served: Value = second.json().await.unwrap();
    assert_eq!(
        served["choices"][0]["message"]["content"],
        original["choices"][0]["message"]["content"]
    );
    assert_ne!(served["id"], original["id"], "a hit has its own id");
    assert_eq!(mock.total_calls(), 1);

    // Streamed, the hit is replayed as SSE.
    let streamed = ask(&sidecar, &ask_body(REPHRASED, "Be brief.", true), "a").await;
    assert_eq!(header(&streamed, "x-frugal-cache"), "semantic");
    let text = streamed.text().await.unwrap();
    assert_eq!(
        sse_payloads(&text).last().map(String::as_str),
        Some("[DONE]")
    );
    assert_eq!(mock.total_calls(), 1);
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains("frugal_cache_lookups_total{tier=\"semantic\",result=\"hit\"} 2"));
}

#[tokio::test]
async fn a_question_with_nothing_near_goes_upstream_unembedded_and_is_indexed_after() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&semantic_policy(&mock.base_url(), "")).await;
    let first = sidecar
        .chat_as("a", &ask_body(FIRST, "Be brief.", false))
        .await;
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    sidecar.embedded_after(1).await;
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_cache_lookups_total{tier=\"semantic\",result=\"prefiltered\"} 1"),
        "an empty scope has nothing near: {metrics}"
    );
    // A question about something else is ruled out by the prefilter too.
    let other = "What is the capital of Australia?";
    let response = ask(&sidecar, &ask_body(other, "Be brief.", false), "a").await;
    assert_eq!(header(&response, "x-frugal-cache"), "miss");
    // A rephrasing is near: embedded before the call, and served from the cache.
    let second = ask(&sidecar, &ask_body(REPHRASED, "Be brief.", false), "a").await;
    assert_eq!(header(&second, "x-frugal-cache"), "semantic");
    assert_eq!(mock.total_calls(), 2);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_cache_lookups_total{tier=\"semantic\",result=\"prefiltered\"} 2")
    );
    assert!(metrics.contains("frugal_cache_deferred_embeddings_total{result=\"indexed\"} 2"));

    // With the prefilter off, every cacheable miss is embedded before the call.
    let off = Sidecar::start(&semantic_policy(
        &mock.base_url(),
        ", semantic_prefilter: 0",
    ))
    .await;
    let response = off.chat_as("a", &ask_body(FIRST, "Be brief.", false)).await;
    assert_eq!(header(&response, "x-frugal-cache"), "miss");
    let metrics = off.metrics().await;
    assert!(metrics.contains("frugal_cache_lookups_total{tier=\"semantic\",result=\"miss\"} 1"));
    assert!(!metrics.contains("result=\"prefiltered\"} 1"));
    let hit = off
        .chat_as("a", &ask_body(REPHRASED, "Be brief.", false))
        .await;
    assert_eq!(header(&hit, "x-frugal-cache"), "semantic");
}

#[tokio::test]
async fn other_tenants_and_other_system_prompts_never_hit() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&semantic_policy(&mock.base_url(), "")).await;
    ask(&sidecar, &ask_body(FIRST, "Be brief.", false), "a").await;
    for (body, tenant) in [
        (ask_body(REPHRASED, "Be brief.", false), "b"),
        (ask_body(REPHRASED, "Answer in French.", false), "a"),
    ] {
        let response = ask(&sidecar, &body, tenant).await;
        assert_eq!(header(&response, "x-frugal-cache"), "miss");
    }
    assert_eq!(mock.total_calls(), 3);
}

/// A user message carrying retrieved documents and then the question.
fn rag_body(document: &str, question: &str) -> Value {
    let content = format!("<document>\n{document}\n</document>\n\n{question}");
    json!({ "model": "strong", "temperature": 0, "messages": [
        { "role": "system", "content": "Answer from the documents." },
        { "role": "user", "content": content }] })
}

#[tokio::test]
async fn retrieved_context_is_scope_and_only_the_question_is_compared() {
    let mock = MockUpstream::start().await;
    // Trim off, so the documents reach the scope as sent.
    let policy = semantic_policy(&mock.base_url(), "");
    let sidecar = Sidecar::start(&format!(
        "{policy}trim: {{ mode: off, max_context_tokens: 1000 }}\n"
    ))
    .await;
    // Long documents: embedded whole, they would be slow and would drown the question.
    let manual = "The reverse() method reverses a Python list in place. ".repeat(150);
    let other = "Slicing with [::-1] returns a reversed copy of a sequence. ".repeat(150);
    let first = ask(&sidecar, &rag_body(&manual, FIRST), "a").await;
    assert_eq!(header(&first, "x-frugal-cache"), "miss");
    let second = ask(&sidecar, &rag_body(&manual, REPHRASED), "a").await;
    assert_eq!(header(&second, "x-frugal-cache"), "semantic");
    let third = ask(&sidecar, &rag_body(&other, REPHRASED), "a").await;
    assert_eq!(
        header(&third, "x-frugal-cache"),
        "miss",
        "the same question about other documents is another scope"
    );
    // Embedded whole, both texts would be the same 256 tokens of document: a false hit.
    let sort = rag_body(&manual, "How do I sort a list in Python?");
    assert_eq!(
        header(&ask(&sidecar, &sort, "a").await, "x-frugal-cache"),
        "miss"
    );
    assert_eq!(mock.total_calls(), 3);
}

#[tokio::test]
async fn a_question_past_semantic_max_tokens_is_not_embedded_for_an_unrouted_model() {
    let mock = MockUpstream::start().await;
    // About 150 model tokens: within what the model reads, past the default cap of 128.
    let long = format!(
        "{} How do I reverse a list in Python?",
        "I am writing a small script that reads lines from a file, cleans them up and keeps them in a list. "
            .repeat(6)
    );
    let rephrased = long.replace("How do I", "How can I");
    let sidecar = Sidecar::start(&semantic_policy(&mock.base_url(), "")).await;
    for question in [&long, &rephrased] {
        let response = ask(&sidecar, &ask_body(question, "Be brief.", false), "a").await;
        assert_eq!(header(&response, "x-frugal-cache"), "miss");
    }
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_cache_lookups_total{tier=\"semantic\",result=\"too_long\"} 2"),
        "{metrics}"
    );
    // Neither question waited for an embedding.
    let embedded = metrics
        .lines()
        .find(|l| l.starts_with("frugal_embedding_batch_size_count"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse::<f64>().unwrap());
    assert_eq!(embedded, 0.0, "{metrics}");
    // With the cap raised to what the model reads, the rephrasing is a semantic hit.
    let raised = Sidecar::start(&semantic_policy(
        &mock.base_url(),
        ", semantic_max_tokens: 256",
    ))
    .await;
    ask(&raised, &ask_body(&long, "Be brief.", false), "a").await;
    let hit = ask(&raised, &ask_body(&rephrased, "Be brief.", false), "a").await;
    assert_eq!(header(&hit, "x-frugal-cache"), "semantic");
}

#[tokio::test]
async fn a_question_longer_than_the_model_reads_is_no_semantic_lookup() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&semantic_policy(&mock.base_url(), "")).await;
    // Over 256 model tokens of the same code, then different questions: embedded, both would
    // be the vector of the code alone.
    let code =
        "let total = items.iter().map(|item| item.price * item.quantity).sum();\n".repeat(30);
    let first = format!("{code}\nWhy does this fail to compile?");
    let second = format!("{code}\nHow can I make this run faster?");
    for question in [&first, &second] {
        let response = ask(&sidecar, &ask_body(question, "Be brief.", false), "a").await;
        assert_eq!(header(&response, "x-frugal-cache"), "miss");
    }
    assert_eq!(mock.total_calls(), 2);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_cache_lookups_total{tier=\"semantic\",result=\"too_long\"} 2"),
        "{metrics}"
    );
    // The exact tier still answers a repeat.
    let repeat = ask(&sidecar, &ask_body(&second, "Be brief.", false), "a").await;
    assert_eq!(header(&repeat, "x-frugal-cache"), "exact");
}

#[tokio::test]
async fn guards_reject_similar_questions_that_ask_different_things() {
    let mock = MockUpstream::start().await;
    // A low threshold, so that every pair below reaches verification.
    let sidecar = Sidecar::start(&semantic_policy(
        &mock.base_url(),
        ", similarity_threshold: 0.5",
    ))
    .await;
    let pairs = [
        (
            "What are the top 5 museums in Paris?",
            "What are the top 10 museums in Paris?",
            "numbers",
        ),
        (
            "How do I enable logging in nginx?",
            "How do I disable logging in nginx?",
            "antonym",
        ),
        (
            "What does the error \"connection refused\" mean?",
            "What does the error \"connection reset\" mean?",
            "quoted",
        ),
    ];
    for (tenant, (first, second, guard)) in pairs.iter().enumerate() {
        let tenant = format!("t{tenant}");
        ask(&sidecar, &ask_body(first, "Be brief.", false), &tenant).await;
        let response = ask(&sidecar, &ask_body(second, "Be brief.", false), &tenant).await;
        assert_eq!(header(&response, "x-frugal-cache"), "miss", "{second}");
        assert_eq!(
            header(&response, "x-frugal-cache-guard"),
            *guard,
            "{second} similarity {}",
            header(&response, "x-frugal-cache-similarity")
        );
    }
    assert_eq!(mock.total_calls(), 6);
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains("frugal_cache_guard_rejections_total{guard=\"numbers\"} 1"));
}

#[tokio::test]
async fn shadow_mode_counts_semantic_hits_but_calls_upstream() {
    let mock = MockUpstream::start().await;
    let text = semantic_policy(&mock.base_url(), "").replace("mode: on", "mode: shadow");
    let sidecar = Sidecar::start(&text).await;
    ask(&sidecar, &ask_body(FIRST, "Be brief.", false), "a").await;
    let second = ask(&sidecar, &ask_body(REPHRASED, "Be brief.", false), "a").await;
    assert_eq!(header(&second, "x-frugal-cache"), "shadow_hit");
    assert!(!header(&second, "x-frugal-cache-similarity").is_empty());
    assert_eq!(mock.total_calls(), 2);
    // The fresh answer is compared with the would-be hit off the request path.
    let agreed = "frugal_cache_shadow_comparisons_total{tier=\"semantic\",verdict=\"agree\"} 1";
    assert!(eventually(&sidecar, agreed).await, "{agreed}");

    // A would-be hit (now exact: the rephrased request's answer was stored) whose answer the
    // upstream now contradicts counts as a likely false hit.
    mock.on_prompt("(?i)reverse a list")
        .respond("Bananas are an excellent source of potassium and grow in tropical climates.");
    ask(&sidecar, &ask_body(REPHRASED, "Be brief.", false), "a").await;
    let differed = "frugal_cache_shadow_comparisons_total{tier=\"exact\",verdict=\"differ\"} 1";
    assert!(eventually(&sidecar, differed).await, "{differed}");
    let metrics = sidecar.metrics().await;
    let saved = metrics
        .lines()
        .find(|l| l.starts_with("frugal_cache_shadow_saved_usd_total{tier=\"semantic\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(saved > 0.0, "would-have-saved dollars are counted");
}

#[tokio::test]
async fn shadow_mode_compares_a_streamed_answer_once_it_completes() {
    let mock = MockUpstream::start().await;
    let text = semantic_policy(&mock.base_url(), "").replace("mode: on", "mode: shadow");
    let sidecar = Sidecar::start(&text).await;
    ask(&sidecar, &ask_body(FIRST, "Be brief.", false), "a").await;
    let streamed = ask(&sidecar, &ask_body(REPHRASED, "Be brief.", true), "a").await;
    assert_eq!(header(&streamed, "x-frugal-cache"), "shadow_hit");
    let body = streamed.text().await.unwrap();
    assert_eq!(
        sse_payloads(&body).last().map(String::as_str),
        Some("[DONE]")
    );
    assert_eq!(mock.total_calls(), 2);
    let agreed = "frugal_cache_shadow_comparisons_total{tier=\"semantic\",verdict=\"agree\"} 1";
    assert!(eventually(&sidecar, agreed).await, "{agreed}");
}

/// Whether the sidecar's metrics contain `line` within a few seconds.
async fn eventually(sidecar: &Sidecar, line: &str) -> bool {
    for _ in 0..50 {
        if sidecar.metrics().await.contains(line) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn semantic_off_keeps_only_the_exact_tier() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&semantic_policy(&mock.base_url(), ", semantic: false")).await;
    ask(&sidecar, &ask_body(FIRST, "Be brief.", false), "a").await;
    let second = ask(&sidecar, &ask_body(REPHRASED, "Be brief.", false), "a").await;
    assert_eq!(header(&second, "x-frugal-cache"), "miss");
    assert_eq!(mock.total_calls(), 2);
}
