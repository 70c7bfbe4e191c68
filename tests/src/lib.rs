//! frugal-tests: end-to-end tests of the sidecar against the real server and a scriptable fake
//! upstream. This library is the harness: a small DSL over the mock upstream
//! ([`MockUpstream::on_model`]`(..).fail_times(2, 503)`), an in-process sidecar wired to it
//! ([`Sidecar`]), and helpers to run the built `frugal` binary as a child process.

pub mod redis;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use frugal::mock::{Behaviour, Matcher, MockServer, Rule, Script};
use frugal::server::RunningServer;
use serde_json::Value;
use tokio::net::TcpListener;

/// A fake OpenAI upstream running in this process.
pub struct MockUpstream {
    server: MockServer,
}

impl MockUpstream {
    /// Starts a mock with the default behaviour (a deterministic reply to everything).
    pub async fn start() -> Self {
        Self::start_with_latency(Duration::ZERO).await
    }

    /// Starts a mock that adds `latency` to every answer.
    pub async fn start_with_latency(latency: Duration) -> Self {
        Self::start_on_with_latency("127.0.0.1:0".parse().expect("addr"), latency).await
    }

    /// Starts a mock on a given address (e.g. one a sidecar could not connect to before).
    pub async fn start_on(addr: SocketAddr) -> Self {
        Self::start_on_with_latency(addr, Duration::ZERO).await
    }

    async fn start_on_with_latency(addr: SocketAddr, latency: Duration) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind mock");
        let server = MockServer::start(listener, Script::default(), latency).expect("start mock");
        Self { server }
    }

    /// The mock's OpenAI base URL.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Rules for requests to one upstream model name.
    pub fn on_model(&self, model: &str) -> RuleBuilder<'_> {
        self.rule(Matcher {
            model: Some(model.to_string()),
            prompt: None,
        })
    }

    /// Rules for requests whose last user message matches a regex.
    pub fn on_prompt(&self, pattern: &str) -> RuleBuilder<'_> {
        self.rule(Matcher {
            model: None,
            prompt: Some(pattern.to_string()),
        })
    }

    /// Rules for every request.
    pub fn always(&self) -> RuleBuilder<'_> {
        self.rule(Matcher::default())
    }

    fn rule(&self, when: Matcher) -> RuleBuilder<'_> {
        RuleBuilder {
            mock: self,
            rule: Rule {
                when,
                ..Default::default()
            },
        }
    }

    /// Appends rules written as a mock script's YAML `rules:` list (the format of
    /// `frugal mock-upstream --script`), tried after the existing ones.
    pub fn script(&self, rules_yaml: &str) {
        let rules: Vec<Rule> = frugal::yaml::from_str(rules_yaml).expect("valid mock rules YAML");
        for rule in rules {
            self.server.push_rule(rule).expect("valid mock rule");
        }
    }

    /// Calls received for an upstream model name.
    pub fn calls(&self, model: &str) -> u64 {
        self.server.calls(model)
    }

    /// Calls received in total.
    pub fn total_calls(&self) -> u64 {
        self.server.total_calls()
    }

    /// Request bodies received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.server.requests()
    }

    /// Embedding inputs received for an upstream model name, over all its calls.
    pub fn embedding_inputs(&self, model: &str) -> u64 {
        self.server.embedding_inputs(model)
    }
}

/// Builds one mock rule; a terminal method (`respond`, `fail_times`, …) installs it.
pub struct RuleBuilder<'a> {
    mock: &'a MockUpstream,
    rule: Rule,
}

impl RuleBuilder<'_> {
    /// Limits the rule to the next `n` matching requests.
    pub fn times(mut self, n: u64) -> Self {
        self.rule.times = Some(n);
        self
    }

    /// Installs the rule with a full behaviour.
    pub fn with(mut self, behaviour: Behaviour) {
        self.rule.then = behaviour;
        self.mock
            .server
            .push_rule(self.rule)
            .expect("valid mock rule");
    }

    /// Replies with fixed text.
    pub fn respond(self, text: &str) {
        self.with(Behaviour {
            reply: Some(text.to_string()),
            ..Default::default()
        })
    }

    /// Fails the next `n` matching requests with an HTTP status.
    pub fn fail_times(self, n: u64, status: u16) {
        self.times(n).with(Behaviour {
            status: Some(status),
            ..Default::default()
        })
    }

    /// Answers normally after a delay.
    pub fn delay(self, delay: Duration) {
        self.with(Behaviour {
            delay_ms: millis(delay),
            ..Default::default()
        })
    }

    /// Streams slowly: `per_chunk` between chunks.
    pub fn slow_stream(self, reply: &str, per_chunk: Duration) {
        self.with(Behaviour {
            reply: Some(reply.into()),
            token_delay_ms: millis(per_chunk),
            ..Default::default()
        })
    }

    /// Cuts the answer short: a stream stops after `chunks` content chunks without `[DONE]`.
    pub fn truncate(self, chunks: usize) {
        self.with(Behaviour {
            truncate_after: Some(chunks),
            ..Default::default()
        })
    }

    /// Answers 200 with invalid JSON.
    pub fn malformed(self) {
        self.with(Behaviour {
            malformed: true,
            ..Default::default()
        })
    }

    /// Closes the connection without answering.
    pub fn reset(self) {
        self.with(Behaviour {
            reset: true,
            ..Default::default()
        })
    }

    /// Never answers.
    pub fn hang(self) {
        self.with(Behaviour {
            hang: true,
            ..Default::default()
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A policy text pointing two aliases (`cheap`, `strong`) at a mock; the embedding model is
/// the repository's `models/` (tests run in `tests/`).
pub fn policy_for(base_url: &str, extra: &str) -> String {
    policy_with_timeouts(
        base_url,
        "{ connect: 1s, request: 2s, first_byte: 2s, idle: 2s }",
        extra,
    )
}

/// [`policy_for`] with the provider's `timeouts` given as a YAML flow mapping.
pub fn policy_with_timeouts(base_url: &str, timeouts: &str, extra: &str) -> String {
    format!(
        "\
providers:
  mock:
    base_url: {base_url}
    timeouts: {timeouts}
models:
  cheap:
    provider: mock
    upstream: gpt-4o-mini
    price: {{ input_per_mtok: 0.15, output_per_mtok: 0.6 }}
  strong:
    provider: mock
    upstream: gpt-4o
    price: {{ input_per_mtok: 2.5, output_per_mtok: 10 }}
default_model: cheap
shutdown_grace: 5s
embeddings: {{ model_dir: ../models, deadline: 2s }}
{extra}"
    )
}

/// A response header as text ("" when absent).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The sidecar running in this process in front of a mock.
pub struct Sidecar {
    /// The running server (for shutdown and live-state access).
    pub server: RunningServer,
    /// A client for talking to it.
    pub client: reqwest::Client,
}

impl Sidecar {
    /// Starts the sidecar with a policy text.
    pub async fn start(policy_text: &str) -> Self {
        let policy =
            frugal::policy::parse(policy_text, "test-policy.yaml").expect("valid test policy");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sidecar");
        let server = RunningServer::start(policy, listener, None).expect("start sidecar");
        Self {
            server,
            client: reqwest::Client::new(),
        }
    }

    /// Starts the sidecar with its admin routes on a second listener (as `admin_listen` does):
    /// [`Sidecar::url`] is the API, [`Sidecar::admin_url`] the admin listener.
    pub async fn start_with_admin(policy_text: &str) -> Self {
        let policy =
            frugal::policy::parse(policy_text, "test-policy.yaml").expect("valid test policy");
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (api, admin) = (bind().await.expect("bind"), bind().await.expect("bind"));
        let server =
            RunningServer::start_with_admin(policy, api, Some(admin), None).expect("start sidecar");
        Self {
            server,
            client: reqwest::Client::new(),
        }
    }

    /// Starts the sidecar from a policy file, watched for changes every `poll`.
    pub async fn start_watching(path: &std::path::Path, poll: Duration) -> Self {
        let policy = frugal::policy::load(path).expect("valid test policy");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sidecar");
        let source = frugal::server::PolicySource {
            path: path.to_path_buf(),
            poll,
        };
        let server = RunningServer::start(policy, listener, Some(source)).expect("start sidecar");
        Self {
            server,
            client: reqwest::Client::new(),
        }
    }

    /// Starts the sidecar in front of `mock` with the standard test policy.
    pub async fn in_front_of(mock: &MockUpstream) -> Self {
        Self::start(&policy_for(&mock.base_url(), "")).await
    }

    /// The sidecar's base URL (`http://ADDR`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// A URL on the admin listener (the API's when there is none).
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self.server.admin_addr.unwrap_or(self.server.addr);
        format!("http://{addr}{path}")
    }

    /// POSTs a JSON chat completion request.
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .expect("sidecar reachable")
    }

    /// `POST /v1/chat/completions` billed to `tenant` (`x-frugal-tenant`).
    pub async fn chat_as(&self, tenant: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .header("x-frugal-tenant", tenant)
            .json(body)
            .send()
            .await
            .expect("sidecar reachable")
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self
            .client
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .expect("sidecar reachable");
        response.text().await.expect("metrics text")
    }

    /// Waits (up to 5 s) until `n` questions stored without their embedding (the semantic
    /// prefilter found nothing near them) have been embedded and indexed, so a rephrasing sent
    /// next can find them; panics with the metrics when they are not.
    pub async fn embedded_after(&self, n: u64) {
        let needle = format!("frugal_cache_deferred_embeddings_total{{result=\"indexed\"}} {n}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let metrics = self.metrics().await;
            if metrics.contains(&needle) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle} within 5 s:\n{metrics}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to 5 s, then returns anyway) until every question the semantic prefilter let
    /// through unembedded has been embedded after its answer (indexed or dropped), so the next
    /// request sees the index a pause would leave.
    pub async fn embeddings_settled(&self) {
        let count = |metrics: &str, prefix: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let metrics = self.metrics().await;
            let deferred = count(
                &metrics,
                "frugal_cache_lookups_total{tier=\"semantic\",result=\"prefiltered\"}",
            );
            let done = count(&metrics, "frugal_cache_deferred_embeddings_total{");
            if done >= deferred {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The savings report of `GET /v1/frugal/savings{query}` (e.g. `""` or `"?window=15m"`).
    pub async fn savings(&self, query: &str) -> Value {
        let url = self.admin_url(&format!("/v1/frugal/savings{query}"));
        let response = self
            .client
            .get(url)
            .send()
            .await
            .expect("sidecar reachable");
        response.json().await.expect("savings JSON")
    }

    /// `POST /v1/embeddings` with extra request headers.
    pub async fn embed(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(self.url("/v1/embeddings")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("sidecar reachable")
    }

    /// `POST /v1/messages` (Anthropic's Messages API) with the headers Anthropic's clients send.
    pub async fn messages(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .header("x-api-key", "unused")
            .json(body)
            .send()
            .await
            .expect("sidecar reachable")
    }

    /// POSTs raw bytes as a chat completion request.
    pub async fn chat_raw(&self, body: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("sidecar reachable")
    }
}

/// Asserts an OpenAI-shaped error body and returns it.
pub async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("error body is JSON");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message in {body}"
    );
    assert!(error["type"].is_string(), "error.type in {body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "error.param/code in {body}"
    );
    body
}

/// Asserts an Anthropic-shaped error body (`{"type":"error","error":{"type","message"}}`) of
/// `status` and error `kind`, and returns it.
pub async fn expect_anthropic_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message in {body}"
    );
    body
}

/// Parses an Anthropic event stream into `(event, data)` pairs (comments skipped).
pub fn anthropic_events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|frame| {
            let mut name = None;
            let mut data = None;
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_string());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(value).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

/// A simple chat request body.
pub fn chat_body(model: &str, prompt: &str) -> Value {
    serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": prompt }] })
}

/// Parses an SSE body into its `data:` payloads.
pub fn sse_payloads(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

/// The built `frugal` binary (built by `cargo build` or nextest before the tests run).
pub fn frugal_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/frugal
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    let binary = profile_dir.join("frugal");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p frugal` first (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A free loopback port (bound then released; fine for tests on one machine).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Whether a missing tool fails a test instead of skipping its check: in CI (`CI` set) and
/// under `FRUGAL_REQUIRE_TOOLS=1` (scripts/test.sh).
pub fn tools_required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("FRUGAL_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Fails unless `promtool check metrics` accepts the exposition with no complaint at all (no
/// parse error, no lint finding). Without promtool: a failure in CI or under
/// `FRUGAL_REQUIRE_TOOLS=1`; elsewhere only the line grammar is checked, with a note.
pub fn check_with_promtool(metrics: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(
            !tools_required(),
            "promtool is not installed, and CI or FRUGAL_REQUIRE_TOOLS=1 requires it: \
             install apt package `prometheus` (scripts/setup.sh does)"
        );
        eprintln!("promtool not installed: checking the exposition's line grammar only");
        for line in metrics
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(
                value.parse::<f64>().is_ok() || value == "+Inf" || value == "NaN",
                "bad sample line: {line}"
            );
        }
        return;
    };
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(metrics.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    let report = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && report.trim().is_empty(),
        "promtool check metrics complained ({}):\n{report}\n--- the exposition:\n{metrics}",
        output.status
    );
}
