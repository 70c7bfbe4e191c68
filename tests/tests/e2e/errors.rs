//! Every client mistake is a 4xx and every upstream failure a 5xx, all OpenAI-shaped.

use std::time::Duration;

use frugal_tests::{chat_body, expect_error, policy_for, MockUpstream, Sidecar};
use serde_json::json;

#[tokio::test]
async fn invalid_json_is_400() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = expect_error(sidecar.chat_raw("{not json").await, 400).await;
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(mock.total_calls(), 0);
}

#[tokio::test]
async fn missing_or_empty_messages_and_wrong_types_are_400_naming_the_field() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    for (body, param) in [
        (json!({ "model": "cheap" }), "messages"),
        (json!({ "model": "cheap", "messages": [] }), "messages"),
        (
            json!({ "model": "cheap", "messages": [{ "role": "user" }] }),
            "messages[0].content",
        ),
        (
            json!({ "model": "cheap", "messages": [{ "role": "user", "content": "x" }], "stream": 1 }),
            "stream",
        ),
        (
            json!({ "model": 7, "messages": [{ "role": "user", "content": "x" }] }),
            "model",
        ),
    ] {
        let error = expect_error(sidecar.chat(&body).await, 400).await;
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    assert_eq!(mock.total_calls(), 0);
}

#[tokio::test]
async fn unknown_model_is_404() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = expect_error(sidecar.chat(&chat_body("gpt-9", "hi")).await, 404).await;
    assert_eq!(body["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn body_over_the_policy_limit_is_413() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { max_body_bytes: 1000 }\n",
    ))
    .await;
    let body = expect_error(
        sidecar.chat(&chat_body("cheap", &"x".repeat(2000))).await,
        413,
    )
    .await;
    assert_eq!(body["error"]["code"], "request_too_large");
    // Chunked upload without Content-Length is cut off too.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(vec![b' '; 1500])]);
    let response = sidecar
        .client
        .post(sidecar.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    expect_error(response, 413).await;
}

#[tokio::test]
async fn upstream_5xx_is_502() {
    let mock = MockUpstream::start().await;
    mock.always().fail_times(3, 500);
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 502).await;
    assert_eq!(body["error"]["code"], "upstream_server_error");
    assert_eq!(
        mock.total_calls(),
        3,
        "retried up to max_attempts, then reported"
    );
}

#[tokio::test]
async fn upstream_4xx_is_passed_through_with_its_body() {
    let mock = MockUpstream::start().await;
    mock.always().fail_times(3, 429);
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 429).await;
    assert_eq!(
        body["error"]["type"], "rate_limit_error",
        "the upstream's own body: {body}"
    );
}

#[tokio::test]
async fn unparseable_upstream_reply_is_502() {
    let mock = MockUpstream::start().await;
    mock.always().malformed();
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 502).await;
    assert_eq!(body["error"]["code"], "upstream_invalid_response");
}

#[tokio::test]
async fn truncated_upstream_json_is_502() {
    let mock = MockUpstream::start().await;
    mock.always().truncate(0);
    let sidecar = Sidecar::in_front_of(&mock).await;
    expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 502).await;
}

#[tokio::test]
async fn upstream_connection_reset_is_502() {
    let mock = MockUpstream::start().await;
    mock.always().reset();
    let sidecar = Sidecar::in_front_of(&mock).await;
    let body = expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 502).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let sidecar = Sidecar::start(&policy_for(
        &format!("http://{}/v1", frugal_tests::free_addr()),
        "",
    ))
    .await;
    let body = expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 502).await;
    assert_eq!(body["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn upstream_that_never_answers_is_504() {
    let mock = MockUpstream::start().await;
    mock.always().hang(); // the test policy's request timeout is 2 s
    let no_retries = policy_for(&mock.base_url(), "retries: { max_attempts: 1 }\n");
    let sidecar = Sidecar::start(&no_retries).await;
    let body = expect_error(sidecar.chat(&chat_body("cheap", "hi")).await, 504).await;
    assert_eq!(body["error"]["code"], "upstream_timeout");
    let stream = json!({ "model": "cheap", "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    let body = expect_error(sidecar.chat(&stream).await, 504).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first_byte"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_openai_shaped() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let response = sidecar
        .client
        .get(sidecar.url("/v1/nothing"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404).await;
    let response = sidecar
        .client
        .get(sidecar.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    expect_error(response, 405).await;
}

#[tokio::test]
async fn no_client_input_causes_a_5xx() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::in_front_of(&mock).await;
    let inputs = [
        "",
        "null",
        "[]",
        "\"str\"",
        "{}",
        "{\"messages\":null}",
        "{\"messages\":[null]}",
        "{\"messages\":[{\"role\":5,\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[1]}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":7}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":0}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
        "\u{0}\u{1}binary",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}",
    ];
    for input in inputs {
        let response = sidecar.chat_raw(input).await;
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{input:?} gave {status}");
        expect_error(response, status).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(mock.total_calls(), 0);
}
