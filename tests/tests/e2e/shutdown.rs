//! Graceful shutdown: stop accepting, finish what is in flight.

use std::time::Duration;

use frugal_tests::{chat_body, MockUpstream, Sidecar};

#[tokio::test]
async fn in_flight_request_finishes_after_shutdown_starts() {
    let mock = MockUpstream::start().await;
    mock.always().delay(Duration::from_millis(700));
    let sidecar = Sidecar::in_front_of(&mock).await;
    let url = sidecar.url("/v1/chat/completions");
    let client = sidecar.client.clone();
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&chat_body("cheap", "slow one"))
            .send()
            .await
    });
    // Let the request reach the upstream before shutting down.
    while mock.total_calls() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = sidecar.server.addr;
    let shutdown = tokio::spawn(sidecar.server.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "new connections are refused while draining"
    );
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("chat.completion"));
    shutdown.await.unwrap().unwrap();
}
