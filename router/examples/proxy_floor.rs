//! What any proxy hop costs on this machine, to set beside the sidecar's added latency: POST
//! `/v1/chat/completions` relayed to the upstream with no logic at all, on the sidecar's own
//! stack (axum, and reqwest or hyper-util's client).
//!
//! ```sh
//! cargo run --release -p frugal --example proxy_floor -- 127.0.0.1:18081 \
//!     http://127.0.0.1:19100/v1/chat/completions reqwest   # or: hyper
//! ```
//!
//! then load it with `loadgen` as `scripts/bench.sh` loads the sidecar (2026-12-05, 2,000 req/s,
//! 20 connections, 2 cores shared with the mock and loadgen: direct 0.11 ms p50; this relay
//! +0.13–0.15 ms with reqwest, +0.10–0.11 with hyper-util's client; the sidecar's bypass
//! +0.26–0.27). A measuring tool: it panics on any failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

/// Where and how requests are relayed.
#[derive(Clone)]
struct Relay {
    url: String,
    uri: hyper::Uri,
    reqwest: reqwest::Client,
    hyper: HyperClient<HttpConnector, Full<Bytes>>,
    use_hyper: bool,
}

/// Relays one request body and answers with the upstream's body.
async fn relay(State(r): State<Relay>, body: Bytes) -> impl IntoResponse {
    let bytes = if r.use_hyper {
        let req = hyper::Request::post(r.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .unwrap();
        let resp = r.hyper.request(req).await.unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    } else {
        let resp = r
            .reqwest
            .post(&r.url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        resp.bytes().await.unwrap()
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 4,
        "usage: proxy_floor LISTEN UPSTREAM_URL reqwest|hyper"
    );
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let relay_state = Relay {
        url: args[2].clone(),
        uri: args[2].parse().unwrap(),
        reqwest: reqwest::Client::builder().build().unwrap(),
        hyper: HyperClient::builder(TokioExecutor::new()).build(connector),
        use_hyper: args[3] == "hyper",
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(relay))
        .with_state(relay_state);
    let listener = tokio::net::TcpListener::bind(&args[1]).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
