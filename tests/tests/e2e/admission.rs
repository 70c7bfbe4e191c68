//! Concurrency limits and slow clients: a tenant over its in-flight limit gets a 429 at once
//! while other tenants are served, a stream holds its place until it ends, and a client that
//! sends its body too slowly gets a 408 instead of holding its place.

use std::time::Duration;

use frugal::mock::Behaviour;
use frugal_tests::{chat_body, expect_error, header, policy_for, MockUpstream, Sidecar};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn send_as(sidecar: &Sidecar, tenant: &str, prompt: String) -> (u16, String, String) {
    let response = sidecar.chat_as(tenant, &chat_body("cheap", &prompt)).await;
    let retry_after = header(&response, "retry-after");
    let status = response.status().as_u16();
    (status, retry_after, response.text().await.unwrap())
}

#[tokio::test]
async fn a_tenant_over_its_limit_is_refused_while_others_are_served() {
    let mock = MockUpstream::start().await;
    mock.always().delay(Duration::from_millis(400));
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { max_concurrent_per_tenant: 2 }\n",
    ))
    .await;
    let busy = (0..5).map(|i| send_as(&sidecar, "busy", format!("busy {i}")));
    let other = send_as(&sidecar, "calm", "calm one".into());
    let (busy, other) = tokio::join!(futures::future::join_all(busy), other);
    assert_eq!(other.0, 200, "another tenant is not affected");
    let ok = busy.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(ok, 2, "{busy:?}");
    for (status, retry_after, body) in busy.iter().filter(|(s, _, _)| *s != 200) {
        assert_eq!(*status, 429);
        assert_eq!(retry_after, "1");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "too_many_concurrent_requests");
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
    assert_eq!(
        mock.total_calls(),
        3,
        "refused requests never reach upstream"
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("frugal_admission_rejections_total{limit=\"tenant\"} 3"),
        "{metrics}"
    );
    // Their places are free again once they finished.
    assert_eq!(send_as(&sidecar, "busy", "again".into()).await.0, 200);
}

#[tokio::test]
async fn a_stream_holds_its_place_until_it_ends() {
    let mock = MockUpstream::start().await;
    mock.always().with(Behaviour {
        reply: Some("one two three four five six".into()),
        token_delay_ms: 80,
        ..Default::default()
    });
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { max_concurrent_requests: 1 }\n",
    ))
    .await;
    let mut body = chat_body("cheap", "stream it");
    body["stream"] = json!(true);
    let stream = sidecar.chat(&body).await;
    assert_eq!(stream.status(), 200);
    // The head has arrived, the tokens have not: the stream is still in flight.
    let refused = sidecar.chat(&chat_body("cheap", "meanwhile")).await;
    assert_eq!(
        expect_error(refused, 429).await["error"]["code"],
        "too_many_concurrent_requests"
    );
    let text = stream.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    assert_eq!(
        sidecar.chat(&chat_body("cheap", "after")).await.status(),
        200
    );
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_a_408() {
    let mock = MockUpstream::start().await;
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { body_read_timeout: 300ms, max_concurrent_requests: 1 }\n",
    ))
    .await;
    let mut slow = tokio::net::TcpStream::connect(sidecar.server.addr)
        .await
        .unwrap();
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(read.is_ok(), "the server answers the slow client");
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"code\":\"request_timeout\""), "{reply}");
    // Its place is free: the one allowed request goes through.
    assert_eq!(
        sidecar.chat(&chat_body("cheap", "next")).await.status(),
        200
    );
    assert_eq!(mock.total_calls(), 1);
}

#[tokio::test]
async fn a_request_past_the_request_timeout_gets_an_openai_shaped_408() {
    let mock = MockUpstream::start().await;
    mock.always().delay(Duration::from_secs(3));
    let sidecar = Sidecar::start(&policy_for(
        &mock.base_url(),
        "limits: { request_timeout: 300ms }\n",
    ))
    .await;
    let response = sidecar.chat(&chat_body("cheap", "too slow")).await;
    let body = expect_error(response, 408).await;
    assert_eq!(body["error"]["code"], "request_timeout");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}
