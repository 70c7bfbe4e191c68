//! Shutdown and reload while clients keep sending: requests and streams in flight finish,
//! nobody gets a 5xx, and a policy reload (valid or broken) fails no request.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use frugal_tests::{chat_body, policy_for, sse_payloads, MockUpstream, Sidecar};
use serde_json::json;

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// Complete 200 answers (a stream counts when it reached `[DONE]`).
    ok: u64,
    /// Responses with any other status, or a 200 whose body broke off: `(status, body)`.
    bad: Vec<(u16, String)>,
    /// Requests that never got a response (connection refused or closed before one).
    unsent: u64,
}

/// One client sending JSON and streamed requests in turn until `stop` is set (and at least
/// `min_requests`).
async fn client_loop(
    client: reqwest::Client,
    url: String,
    id: usize,
    stop: Arc<AtomicBool>,
    min_requests: u64,
) -> Tally {
    let mut tally = Tally::default();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) || sent < min_requests {
        sent += 1;
        let stream = sent.is_multiple_of(2);
        let mut body = chat_body("cheap", &format!("client {id} request {sent}"));
        body["stream"] = json!(stream);
        let response = match client.post(&url).json(&body).send().await {
            Ok(response) => response,
            Err(_) => {
                tally.unsent += 1;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let complete = if stream {
            sse_payloads(&text).last().map(String::as_str) == Some("[DONE]")
        } else {
            text.contains("chat.completion")
        };
        if status == 200 && complete {
            tally.ok += 1;
        } else {
            tally.bad.push((status, text));
        }
    }
    tally
}

fn spawn_clients(
    sidecar: &Sidecar,
    count: usize,
    stop: &Arc<AtomicBool>,
    min_requests: u64,
) -> Vec<tokio::task::JoinHandle<Tally>> {
    (0..count)
        .map(|id| {
            tokio::spawn(client_loop(
                reqwest::Client::new(),
                sidecar.url("/v1/chat/completions"),
                id,
                stop.clone(),
                min_requests,
            ))
        })
        .collect()
}

async fn totals(clients: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::default();
    for client in clients {
        let tally = client.await.unwrap();
        total.ok += tally.ok;
        total.unsent += tally.unsent;
        total.bad.extend(tally.bad);
    }
    total
}

#[tokio::test]
async fn shutdown_under_load_finishes_what_is_in_flight_without_a_5xx() {
    let mock = MockUpstream::start().await;
    // Slow enough answers that shutdown lands while requests and streams are in flight.
    mock.always().delay(Duration::from_millis(150));
    let sidecar = Sidecar::in_front_of(&mock).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = spawn_clients(&sidecar, 16, &stop, 0);
    // Let every client get a request or two in flight.
    while mock.total_calls() < 24 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight_at_shutdown = mock.total_calls();
    let addr = sidecar.server.addr;
    sidecar.server.shutdown().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let total = totals(clients).await;
    assert!(
        total.bad.is_empty(),
        "every response is a complete 200: {:?}",
        total.bad
    );
    assert!(
        total.ok >= in_flight_at_shutdown.saturating_sub(16),
        "{} answered, {in_flight_at_shutdown} calls made",
        total.ok
    );
    assert_eq!(
        total.ok,
        mock.total_calls(),
        "every upstream call's answer reached its client"
    );
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err(),
        "nothing listens once drained"
    );
}

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn reloads_under_load_fail_no_request() {
    let (first, second) = (MockUpstream::start().await, MockUpstream::start().await);
    first.always().delay(Duration::from_millis(20));
    second.always().delay(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    write(&path, &policy_for(&first.base_url(), ""));
    let sidecar = Sidecar::start_watching(&path, Duration::from_millis(25)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = spawn_clients(&sidecar, 8, &stop, 10);
    let broken = "providers: {}\nmodels:\n  cheap: { provider: nowhere }\n";
    for round in 0..8 {
        let next = match round % 3 {
            0 => policy_for(&second.base_url(), ""),
            1 => broken.to_string(),
            _ => policy_for(&first.base_url(), "cache: { mode: on }\n"),
        };
        write(&path, &next);
        // A forced reload too, racing the file watcher.
        let forced = sidecar
            .client
            .post(sidecar.url("/v1/frugal/reload"))
            .send()
            .await
            .unwrap();
        assert!(
            [200, 422].contains(&forced.status().as_u16()),
            "{}",
            forced.status()
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let total = totals(clients).await;
    assert!(total.bad.is_empty(), "{:?}", total.bad);
    assert_eq!(total.unsent, 0, "no request lost during reloads");
    assert!(total.ok >= 80, "{} answered", total.ok);
    assert!(first.total_calls() > 0 && second.total_calls() > 0);
}
