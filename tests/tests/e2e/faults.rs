//! The fault table (docs/reliability.md, "Fault table"): one test per upstream fault, each against a mock
//! script, asserting what the client gets (status and an OpenAI-shaped error, or a correct
//! 200), how often the upstream was called, that nothing broken was cached (the same request
//! with the fault gone reaches the upstream and gets the right answer), and what was counted
//! as spent: attempts that failed before any answer cost nothing, a paid-for answer is counted
//! even when it is bad.

use frugal::tokens;
use frugal_tests::{
    expect_error, free_addr, header, policy_with_timeouts, sse_payloads, MockUpstream, Sidecar,
};
use futures::StreamExt;
use serde_json::{json, Map, Value};

/// Short timeouts keep the suite fast; tests assert behaviour, never timings.
const FAST: &str = "{ connect: 200ms, request: 500ms, first_byte: 500ms, idle: 500ms }";

/// Three attempts with tiny backoffs (a `Retry-After` up to 2 s is waited for) and breakers
/// that stay closed.
const RESILIENT: &str = "\
retries: { max_attempts: 3, backoff: 1ms, max_backoff: 2s }
circuit_breaker: { failure_threshold: 1000 }
";

/// The exact cache on, for requests at temperature 0.
const CACHED: &str = "cache: { mode: on, ttl: 10m, max_temperature: 0.5 }\n";

/// The cache on, and everything starts on the cheap rung and may escalate once to the strong
/// one.
const ROUTED: &str = "\
cache: { mode: on, ttl: 10m, max_temperature: 0.5 }
route:
  ladder: [cheap, strong]
  start_strong_above: 0.99
";

/// Prices of the test policy's models, USD per token.
const CHEAP: (f64, f64) = (0.15e-6, 0.6e-6);
const STRONG: (f64, f64) = (2.5e-6, 10e-6);

async fn sidecar_with(mock: &MockUpstream, timeouts: &str, extra: &str) -> Sidecar {
    let policy = policy_with_timeouts(&mock.base_url(), timeouts, &format!("{RESILIENT}{extra}"));
    Sidecar::start(&policy).await
}

async fn sidecar(mock: &MockUpstream) -> Sidecar {
    sidecar_with(mock, FAST, CACHED).await
}

/// A cacheable request (temperature 0), streamed or not.
fn ask(model: &str, prompt: &str, stream: bool) -> Value {
    json!({ "model": model, "temperature": 0, "stream": stream,
            "messages": [{ "role": "user", "content": prompt }] })
}

fn object(value: &Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// What `price` charges for `input` and `output` tokens.
fn priced(price: (f64, f64), input: u64, output: u64) -> f64 {
    input as f64 * price.0 + output as f64 * price.1
}

/// The cost of a JSON answer at `price`, from its own `usage`.
fn cost_of(body: &Value, price: (f64, f64)) -> f64 {
    let usage = &body["usage"];
    priced(
        price,
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    )
}

fn dollars(response: &reqwest::Response, name: &str) -> f64 {
    header(response, name).parse().unwrap()
}

fn assert_usd(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "{what}: {actual} vs {expected}"
    );
}

/// Requests settled and dollars spent, from `/v1/frugal/savings`.
async fn spent(sidecar: &Sidecar) -> (u64, f64) {
    let total = &sidecar.savings("").await["total"];
    (
        total["requests"].as_u64().unwrap(),
        total["actual_usd"].as_f64().unwrap(),
    )
}

fn content(body: &Value) -> &str {
    body["choices"][0]["message"]["content"].as_str().unwrap()
}

/// A streamed reply's text, its content and its last payload.
struct Streamed {
    text: String,
    content: String,
    last: String,
}

impl Streamed {
    async fn read(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let payloads = sse_payloads(&text);
        let content = payloads
            .iter()
            .filter_map(|p| serde_json::from_str::<Value>(p).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        let last = payloads.last().cloned().unwrap_or_default();
        Self {
            text,
            content,
            last,
        }
    }

    fn completed(&self) -> bool {
        self.last == "[DONE]"
    }

    /// The error event a broken stream ends with (and no `[DONE]`).
    fn error(&self) -> Value {
        let done = sse_payloads(&self.text).iter().any(|p| p == "[DONE]");
        assert!(!done, "{}", self.text);
        let last: Value = serde_json::from_str(&self.last).unwrap();
        let error = &last["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(
            error["type"].is_string() && error.get("code").is_some(),
            "{last}"
        );
        last
    }
}

/// Sends `body` again with the fault gone: it must reach the upstream (nothing was cached)
/// and get a complete answer, which is cached in turn.
async fn fault_gone(sidecar: &Sidecar, mock: &MockUpstream, body: &Value) {
    let before = mock.total_calls();
    let fresh = sidecar.chat(body).await;
    assert_eq!(fresh.status(), 200);
    assert_eq!(
        header(&fresh, "x-frugal-cache"),
        "miss",
        "nothing was cached"
    );
    let streamed = body["stream"] == true;
    if streamed {
        assert!(Streamed::read(fresh).await.completed());
    } else {
        let fresh: Value = fresh.json().await.unwrap();
        assert_eq!(fresh["choices"][0]["finish_reason"], "stop");
    }
    assert_eq!(
        mock.total_calls(),
        before + 1,
        "the repeat reached upstream"
    );
    let again = sidecar.chat(body).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(mock.total_calls(), before + 1);
}

/// Sends `body` expecting an OpenAI-shaped error after `calls` upstream calls in all, with
/// nothing settled or spent; returns the error body.
async fn fails(
    sidecar: &Sidecar,
    mock: &MockUpstream,
    body: &Value,
    status: u16,
    calls: u64,
) -> Value {
    let error = expect_error(sidecar.chat(body).await, status).await;
    assert_eq!(mock.total_calls(), calls, "upstream calls");
    assert_eq!(
        spent(sidecar).await,
        (0, 0.0),
        "a failed request costs nothing"
    );
    error
}

/// Sends a routed `body` expecting the strong rung's answer after one escalation for
/// `reason`; returns the cost header and the answer.
async fn escalated(sidecar: &Sidecar, body: &Value, reason: &str) -> (f64, Value) {
    let response = sidecar.chat(body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-frugal-tier"), "strong");
    assert_eq!(header(&response, "x-frugal-escalations"), reason);
    let cost = dollars(&response, "x-frugal-cost-usd");
    let answer: Value = response.json().await.unwrap();
    assert!(content(&answer).starts_with("This is gpt-4o,"), "{answer}");
    (cost, answer)
}

// --- 429 ---------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_with_retry_after_is_retried_after_the_wait() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { status: 429, retry_after: 1 } }");
    let sidecar = sidecar(&mock).await;
    let response = sidecar.chat(&ask("cheap", "Name a colour.", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-frugal-cache"), "miss");
    let cost = dollars(&response, "x-frugal-cost-usd");
    let body: Value = response.json().await.unwrap();
    assert!(content(&body).contains("Name a colour."), "{body}");
    assert_eq!(mock.total_calls(), 2, "the 429, then the answer");
    assert_usd(cost, cost_of(&body, CHEAP), "the 429 costs nothing");
    let again = sidecar.chat(&ask("cheap", "Name a colour.", false)).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(mock.total_calls(), 2);
}

#[tokio::test]
async fn rate_limit_with_a_long_retry_after_reaches_the_client_with_it() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { status: 429, retry_after: 60 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", false);
    let response = sidecar.chat(&request).await;
    assert_eq!(
        header(&response, "retry-after"),
        "60",
        "the provider's wait reaches the client, whose own retries honour it"
    );
    let body = expect_error(response, 429).await;
    assert_eq!(
        body["error"]["type"], "rate_limit_error",
        "upstream body: {body}"
    );
    assert_eq!(
        mock.total_calls(),
        1,
        "a wait over max_backoff is not waited for"
    );
    assert_eq!(spent(&sidecar).await, (0, 0.0));
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn rate_limit_without_retry_after_is_retried_then_passed_through() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 3, then: { status: 429 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", false);
    let response = sidecar.chat(&request).await;
    assert_eq!(header(&response, "retry-after"), "", "none was sent");
    let body = expect_error(response, 429).await;
    assert_eq!(
        body["error"]["type"], "rate_limit_error",
        "upstream body: {body}"
    );
    assert_eq!(mock.total_calls(), 3, "max_attempts");
    assert_eq!(spent(&sidecar).await, (0, 0.0));
    fault_gone(&sidecar, &mock, &request).await;
}

// --- 5xx ---------------------------------------------------------------------------------

#[tokio::test]
async fn server_error_500_is_retried_then_a_502() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 3, then: { status: 500 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", false);
    let body = fails(&sidecar, &mock, &request, 502, 3).await;
    assert_eq!(body["error"]["code"], "upstream_server_error");
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn server_error_500_on_the_cheap_rung_escalates() {
    let mock = MockUpstream::start().await;
    mock.script("- { when: { model: gpt-4o-mini }, times: 3, then: { status: 500 } }");
    let sidecar = sidecar_with(&mock, FAST, ROUTED).await;
    let (cost, body) = escalated(
        &sidecar,
        &ask("strong", "Name a colour.", false),
        "upstream_error",
    )
    .await;
    assert_eq!((mock.calls("gpt-4o-mini"), mock.calls("gpt-4o")), (3, 1));
    assert_usd(cost, cost_of(&body, STRONG), "only the answer is paid for");
    let again = sidecar.chat(&ask("strong", "Name a colour.", false)).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(mock.total_calls(), 4);
}

#[tokio::test]
async fn bad_gateway_502_falls_back_to_the_next_model() {
    let mock = MockUpstream::start().await;
    mock.script("- { when: { model: gpt-4o }, times: 3, then: { status: 502 } }");
    let policy = format!(
        "\
providers:
  primary:
    base_url: {url}
    timeouts: {FAST}
  secondary:
    base_url: {url}
    timeouts: {FAST}
models:
  strong:
    provider: primary
    upstream: gpt-4o
    price: {{ input_per_mtok: 2.5, output_per_mtok: 10 }}
    fallbacks: [backup]
  backup:
    provider: secondary
    upstream: gpt-4o-backup
    price: {{ input_per_mtok: 0.15, output_per_mtok: 0.6 }}
default_model: strong
{RESILIENT}{CACHED}",
        url = mock.base_url()
    );
    let sidecar = Sidecar::start(&policy).await;
    let response = sidecar.chat(&ask("strong", "Name a colour.", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-frugal-model"), "backup");
    assert_eq!(header(&response, "x-frugal-provider"), "secondary");
    let cost = dollars(&response, "x-frugal-cost-usd");
    let body: Value = response.json().await.unwrap();
    assert!(
        content(&body).starts_with("This is gpt-4o-backup,"),
        "{body}"
    );
    assert_eq!((mock.calls("gpt-4o"), mock.calls("gpt-4o-backup")), (3, 1));
    assert_usd(cost, cost_of(&body, CHEAP), "the fallback's answer only");
    let again = sidecar.chat(&ask("strong", "Name a colour.", false)).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
}

#[tokio::test]
async fn unavailable_503_before_a_stream_is_retried_and_the_stream_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 2, then: { status: 503 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", true);
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    assert!(streamed.completed(), "{}", streamed.text);
    assert!(streamed.content.contains("Name a colour."));
    assert_eq!(mock.total_calls(), 3);
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    let output = tokens::count(&streamed.content);
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        priced(CHEAP, prompt, output),
        "the 503s cost nothing",
    );
    let again = sidecar.chat(&request).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(Streamed::read(again).await.content, streamed.content);
    assert_eq!(mock.total_calls(), 3);
}

#[tokio::test]
async fn exhausted_503_before_a_stream_is_a_plain_json_502() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 3, then: { status: 503 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", true);
    let body = fails(&sidecar, &mock, &request, 502, 3).await;
    assert_eq!(body["error"]["code"], "upstream_server_error");
    fault_gone(&sidecar, &mock, &request).await;
}

// --- transport ---------------------------------------------------------------------------

#[tokio::test]
async fn connect_refused_is_retried_then_a_502() {
    let addr = free_addr(); // nothing listens here yet
    let policy = policy_with_timeouts(
        &format!("http://{addr}/v1"),
        FAST,
        &format!("{RESILIENT}{CACHED}"),
    );
    let sidecar = Sidecar::start(&policy).await;
    let request = ask("cheap", "Name a colour.", false);
    let body = expect_error(sidecar.chat(&request).await, 502).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    assert!(sidecar.metrics().await.contains(
        "frugal_upstream_attempts_total{provider=\"mock\",model=\"cheap\",outcome=\"unreachable\"} 3"
    ));
    assert_eq!(spent(&sidecar).await, (0, 0.0));
    let mock = MockUpstream::start_on(addr).await;
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn timeout_before_headers_is_retried_then_a_504() {
    let mock = MockUpstream::start().await;
    mock.script(
        "- { when: { prompt: json }, times: 3, then: { hang: true } }\n\
         - { when: { prompt: stream }, times: 3, then: { hang: true } }",
    );
    let sidecar = sidecar(&mock).await;
    let json_request = ask("cheap", "Answer as json.", false);
    let body = fails(&sidecar, &mock, &json_request, 504, 3).await;
    assert_eq!(body["error"]["code"], "upstream_timeout");
    let stream_request = ask("cheap", "Answer as a stream.", true);
    let body = fails(&sidecar, &mock, &stream_request, 504, 6).await;
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first_byte"),
        "{body}"
    );
    fault_gone(&sidecar, &mock, &json_request).await;
    fault_gone(&sidecar, &mock, &stream_request).await;
}

#[tokio::test]
async fn reset_mid_json_body_is_retried() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { reset_after_bytes: 40 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", false);
    let response = sidecar.chat(&request).await;
    assert_eq!(response.status(), 200);
    let cost = dollars(&response, "x-frugal-cost-usd");
    let body: Value = response.json().await.unwrap();
    assert!(content(&body).contains("Name a colour."), "{body}");
    assert_eq!(mock.total_calls(), 2);
    assert_usd(
        cost,
        cost_of(&body, CHEAP),
        "the cut-off reply is not counted",
    );
    let again = sidecar.chat(&request).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(mock.total_calls(), 2);
}

#[tokio::test]
async fn reset_mid_json_body_every_time_is_a_502() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 3, then: { reset_after_bytes: 40 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", false);
    let body = fails(&sidecar, &mock, &request, 502, 3).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("body"), "cut off in the body: {message}");
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn reset_mid_stream_ends_with_an_error_event_and_counts_what_was_sent() {
    let mock = MockUpstream::start().await;
    // The role chunk and a few content chunks (~200 bytes each), then the connection drops.
    mock.script("- { times: 1, then: { reset_after_bytes: 900 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", true);
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    let error = streamed.error();
    assert_eq!(error["error"]["code"], "upstream_unreachable", "{error}");
    assert!(
        !streamed.content.is_empty(),
        "content before the reset was relayed"
    );
    assert_eq!(mock.total_calls(), 1, "a started stream is not retried");
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        priced(CHEAP, prompt, tokens::count(&streamed.content)),
        "the prompt and the tokens relayed are counted",
    );
    fault_gone(&sidecar, &mock, &request).await;
}

// --- bad bodies --------------------------------------------------------------------------

#[tokio::test]
async fn truncated_sse_ends_with_an_error_event_and_is_counted_not_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { truncate_after: 3 } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", true);
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    let error = streamed.error();
    assert_eq!(
        error["error"]["code"], "upstream_invalid_response",
        "{error}"
    );
    assert_eq!(
        tokens::split(&streamed.content).len(),
        3,
        "{}",
        streamed.text
    );
    assert_eq!(mock.total_calls(), 1);
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        priced(CHEAP, prompt, tokens::count(&streamed.content)),
        "a paid-for stream is counted",
    );
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn malformed_json_is_a_502_not_retried_not_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { malformed: true } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", false);
    // Not retried: the same request would get the same reply.
    let body = fails(&sidecar, &mock, &request, 502, 1).await;
    assert_eq!(body["error"]["code"], "upstream_invalid_response");
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn malformed_json_on_the_cheap_rung_escalates() {
    let mock = MockUpstream::start().await;
    mock.script("- { when: { model: gpt-4o-mini }, then: { malformed: true } }");
    let sidecar = sidecar_with(&mock, FAST, ROUTED).await;
    let (cost, body) = escalated(
        &sidecar,
        &ask("strong", "Name a colour.", false),
        "upstream_error",
    )
    .await;
    assert_eq!((mock.calls("gpt-4o-mini"), mock.calls("gpt-4o")), (1, 1));
    assert_usd(cost, cost_of(&body, STRONG), "only the strong answer");
}

#[tokio::test]
async fn malformed_stream_event_ends_with_an_error_event_and_is_counted_not_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { malformed: true } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", true);
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    let error = streamed.error();
    assert_eq!(
        error["error"]["code"], "upstream_invalid_response",
        "{error}"
    );
    assert_eq!(mock.total_calls(), 1);
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        priced(CHEAP, prompt, tokens::count(&streamed.content)),
        "counted up to the bad event",
    );
    fault_gone(&sidecar, &mock, &request).await;
}

// --- finish_reason: length ---------------------------------------------------------------

#[tokio::test]
async fn length_on_the_cheap_rung_escalates_as_truncated_and_both_are_paid() {
    let mock = MockUpstream::start().await;
    mock.script(
        "- { when: { model: gpt-4o-mini }, then: { reply: 'The colour is', finish_reason: length } }",
    );
    let sidecar = sidecar_with(&mock, FAST, ROUTED).await;
    let request = ask("strong", "Name a colour.", false);
    let (cost, body) = escalated(&sidecar, &request, "truncated").await;
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let prompt = tokens::prompt_tokens(&object(&request));
    let cheap = priced(CHEAP, prompt, tokens::split("The colour is").len() as u64);
    assert_usd(
        cost,
        cheap + cost_of(&body, STRONG),
        "the cut-off cheap answer is paid",
    );
    let again = sidecar.chat(&request).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(header(&again, "x-frugal-model"), "strong");
    assert_eq!(mock.total_calls(), 2);
}

#[tokio::test]
async fn length_on_the_last_rung_is_served_as_is_and_not_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 2, then: { reply: 'The colour is', finish_reason: length } }");
    let sidecar = sidecar_with(&mock, FAST, ROUTED).await;
    let request = ask("strong", "Name a colour.", false);
    let response = sidecar.chat(&request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-frugal-escalations"), "truncated");
    assert_eq!(header(&response, "x-frugal-tier"), "strong");
    let cost = dollars(&response, "x-frugal-cost-usd");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length", "not hidden");
    assert_eq!(content(&body), "The colour is");
    let cheap = priced(
        CHEAP,
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        body["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert_usd(
        cost,
        cheap + cost_of(&body, STRONG),
        "both answers are paid",
    );
    assert_eq!(mock.total_calls(), 2);
    fault_gone(&sidecar, &mock, &request).await;
}

#[tokio::test]
async fn length_on_a_live_stream_is_relayed_as_is_and_not_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { reply: 'The colour is', finish_reason: length } }");
    let sidecar = sidecar(&mock).await;
    let request = ask("cheap", "Name a colour.", true);
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    assert!(streamed.completed());
    assert_eq!(streamed.content, "The colour is");
    assert!(streamed.text.contains("\"finish_reason\":\"length\""));
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        priced(CHEAP, prompt, tokens::split("The colour is").len() as u64),
        "paid",
    );
    fault_gone(&sidecar, &mock, &request).await;
}

// --- slow streams ------------------------------------------------------------------------

#[tokio::test]
async fn slow_stream_at_one_token_a_second_is_relayed_live() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { reply: 'Blue', token_delay_ms: 1000 } }");
    let idle = "{ connect: 200ms, request: 2s, first_byte: 2s, idle: 2s }";
    let sidecar = sidecar_with(&mock, idle, CACHED).await;
    let request = ask("cheap", "Name a colour.", true);
    let response = sidecar.chat(&request).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("\"content\":\"Blue\"") {
        let chunk = body.next().await.expect("more frames").unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(
        spent(&sidecar).await.0,
        0,
        "the token reached the client while the upstream was still streaming"
    );
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    assert_eq!(requests, 1);
    assert_usd(actual, priced(CHEAP, prompt, tokens::count("Blue")), "paid");
    let again = sidecar.chat(&request).await;
    assert_eq!(header(&again, "x-frugal-cache"), "exact");
    assert_eq!(mock.total_calls(), 1);
}

#[tokio::test]
async fn stream_stalled_past_idle_ends_with_a_timeout_event_not_cached() {
    let mock = MockUpstream::start().await;
    mock.script("- { times: 1, then: { reply: 'Blue', token_delay_ms: 1000 } }");
    let sidecar = sidecar(&mock).await; // idle: 500ms
    let request = ask("cheap", "Name a colour.", true);
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    let error = streamed.error();
    assert_eq!(error["error"]["code"], "upstream_timeout", "{error}");
    assert!(
        error["error"]["message"].as_str().unwrap().contains("idle"),
        "{error}"
    );
    assert_eq!(mock.total_calls(), 1, "a started stream is not retried");
    let (requests, actual) = spent(&sidecar).await;
    let prompt = tokens::prompt_tokens(&object(&request));
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        priced(CHEAP, prompt, tokens::count(&streamed.content)),
        "the prompt is counted",
    );
    fault_gone(&sidecar, &mock, &request).await;
}

// --- huge answers ------------------------------------------------------------------------

const ROOMY: &str = "{ connect: 1s, request: 10s, first_byte: 10s, idle: 10s }";

#[tokio::test]
async fn huge_json_answer_is_relayed_whole_counted_and_not_cached_past_the_cache_size() {
    let mock = MockUpstream::start().await;
    mock.script("- { then: { reply_bytes: 4194304 } }");
    let sidecar = sidecar_with(
        &mock,
        ROOMY,
        "cache: { mode: on, ttl: 10m, max_temperature: 0.5, max_bytes: 1048576 }\n",
    )
    .await;
    let request = ask("cheap", "Write a lot.", false);
    let response = sidecar.chat(&request).await;
    assert_eq!(response.status(), 200);
    let cost = dollars(&response, "x-frugal-cost-usd");
    let body: Value = response.json().await.unwrap();
    assert_eq!(content(&body).len(), 4 << 20);
    assert_usd(cost, cost_of(&body, CHEAP), "priced from its usage");
    let again = sidecar.chat(&request).await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        header(&again, "x-frugal-cache"),
        "miss",
        "bigger than the cache"
    );
    assert_eq!(mock.total_calls(), 2);
}

#[tokio::test]
async fn huge_stream_is_relayed_whole_and_counted() {
    let mock = MockUpstream::start().await;
    mock.script("- { then: { reply_bytes: 1048576 } }");
    let sidecar = sidecar_with(&mock, ROOMY, CACHED).await;
    let mut request = ask("cheap", "Write a lot.", true);
    request["stream_options"] = json!({ "include_usage": true });
    let streamed = Streamed::read(sidecar.chat(&request).await).await;
    assert!(streamed.completed());
    assert_eq!(streamed.content.len(), 1 << 20);
    let payloads = sse_payloads(&streamed.text);
    let usage: Value = serde_json::from_str(&payloads[payloads.len() - 2]).unwrap();
    let (requests, actual) = spent(&sidecar).await;
    assert_eq!(requests, 1);
    assert_usd(
        actual,
        cost_of(&usage, CHEAP),
        "priced from the upstream's usage",
    );
}

// --- the table itself --------------------------------------------------------------------

#[test]
fn every_fault_table_row_names_a_test_in_this_file() {
    let page = include_str!("../../../docs/reliability.md");
    let source = include_str!("faults.rs");
    let table = page
        .split("## Fault table")
        .nth(1)
        .expect("docs/reliability.md has a fault table")
        .split("\n\n")
        .find(|block| block.starts_with("| fault"))
        .expect("the table");
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert!(rows.len() >= 13, "{} rows", rows.len());
    for row in rows {
        let tests: Vec<&str> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| name.starts_with("faults::"))
            .collect();
        assert!(!tests.is_empty(), "row names no test: {row}");
        for test in tests {
            let name = test.trim_start_matches("faults::");
            assert!(
                source.contains(&format!("async fn {name}()")),
                "{name} is not a test in faults.rs"
            );
        }
    }
}

#[test]
fn the_documented_mock_script_is_a_valid_script() {
    let page = include_str!("../../../docs/mock-upstream.md");
    let yaml = page
        .split("```yaml\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .expect("a YAML script in docs/mock-upstream.md");
    let script: frugal::mock::Script = frugal::yaml::from_str(yaml).unwrap();
    assert!(script
        .rules
        .iter()
        .any(|rule| rule.then.reset_after_bytes.is_some()));
    frugal::mock::CompiledScript::compile(script).unwrap();
}
