//! The built `frugal` binary, as an operator runs it: mock upstream + sidecar as processes.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use frugal_tests::{check_with_promtool, free_addr, frugal_binary, sse_payloads};
use serde_json::{json, Value};

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Process {
    spawn_with(args, &[])
}

/// [`spawn`] with extra environment variables.
fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> Process {
    // The example policy routes and caches by meaning: it needs the repository's model.
    let models = std::env::var("FRUGAL_MODEL_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../models").to_string());
    let child = Command::new(frugal_binary())
        .args(args)
        .envs(env.iter().copied())
        .env("FRUGAL_MODEL_DIR", models)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn frugal");
    Process(child)
}

/// Runs `command` to its end, or fails the test if it still runs after `limit` (a server that
/// should have refused to start would otherwise hang the suite).
fn run_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn frugal");
    let mut process = Process(child);
    let started = Instant::now();
    while process.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < limit,
            "still running after {limit:?}: {command:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |pipe: Option<&mut dyn std::io::Read>| {
        let mut bytes = Vec::new();
        if let Some(pipe) = pipe {
            pipe.read_to_end(&mut bytes).unwrap();
        }
        bytes
    };
    let stdout = read(
        process
            .0
            .stdout
            .as_mut()
            .map(|p| p as &mut dyn std::io::Read),
    );
    let stderr = read(
        process
            .0
            .stderr
            .as_mut()
            .map(|p| p as &mut dyn std::io::Read),
    );
    std::process::Output {
        status: process.0.wait().unwrap(),
        stdout,
        stderr,
    }
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not become ready");
}

fn write_policy(dir: &tempfile::TempDir, mock: SocketAddr) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/examples/local.yaml"
    ))
    .unwrap()
    .replace("127.0.0.1:9100", &mock.to_string());
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn binary_serves_the_acceptance_checks_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mock_addr, sidecar_addr) = (free_addr(), free_addr());
    let policy = write_policy(&dir, mock_addr);
    let _mock = spawn(&["mock-upstream", "--listen", &mock_addr.to_string()]);
    let mut sidecar = spawn(&[
        "serve",
        "--policy",
        policy.to_str().unwrap(),
        "--listen",
        &sidecar_addr.to_string(),
    ]);
    let base = format!("http://{sidecar_addr}");
    wait_ready(&format!("http://{mock_addr}/healthz")).await;
    wait_ready(&format!("{base}/readyz")).await;
    let client = reqwest::Client::new();
    let chat = format!("{base}/v1/chat/completions");

    let ok: Value = client
        .post(&chat)
        .json(&json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "Hello!" }] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        ok["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{ok}"
    );

    let stream = client
        .post(&chat)
        .json(&json!({ "model": "gpt-4o", "stream": true, "messages": [{ "role": "user", "content": "Hi" }] }))
        .send()
        .await
        .unwrap();
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = stream.text().await.unwrap();
    assert_eq!(
        sse_payloads(&text).last().map(String::as_str),
        Some("[DONE]")
    );

    let bad = client
        .post(&chat)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(bad["error"]["message"].is_string());

    let unknown = client
        .post(&chat)
        .json(&json!({ "model": "nope", "messages": [{ "role": "user", "content": "x" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("frugal_requests_total{endpoint=\"chat_completions\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("frugal_requests_total{endpoint=\"chat_completions\",status=\"400\"} 1"),
        "{metrics}"
    );
    assert!(
        // The example policy routes the gpt-4o request cheap-first: both answered by gpt-4o-mini.
        metrics.contains(
            "frugal_upstream_attempts_total{provider=\"mock\",model=\"gpt-4o-mini\",outcome=\"ok\"} 2"
        ),
        "{metrics}"
    );
    check_with_promtool(&metrics);

    // SIGTERM: the process drains and exits cleanly.
    terminate(&mut sidecar).await;
}

/// Sends SIGTERM and waits for a clean exit.
async fn terminate(process: &mut Process) {
    let pid = process.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sidecar did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn binary_serves_operations_on_admin_listen_and_the_api_on_listen() {
    let dir = tempfile::tempdir().unwrap();
    let (mock_addr, api_addr, admin_addr) = (free_addr(), free_addr(), free_addr());
    let policy = write_policy(&dir, mock_addr);
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{text}\nadmin_listen: {admin_addr}\n")).unwrap();
    let _mock = spawn(&["mock-upstream", "--listen", &mock_addr.to_string()]);
    let mut sidecar = spawn(&[
        "serve",
        "--policy",
        policy.to_str().unwrap(),
        "--listen",
        &api_addr.to_string(),
    ]);
    let (api, admin) = (format!("http://{api_addr}"), format!("http://{admin_addr}"));
    wait_ready(&format!("http://{mock_addr}/healthz")).await;
    wait_ready(&format!("{admin}/readyz")).await;
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(format!("{api}/readyz")).await, 404);
    assert_eq!(status(format!("{api}/metrics")).await, 404);
    assert_eq!(status(format!("{admin}/v1/models")).await, 404);
    let chat = client
        .post(format!("{api}/v1/chat/completions"))
        .json(&json!({ "model": "gpt-4o-mini", "messages": [{ "role": "user", "content": "Hello!" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("frugal_requests_total{endpoint=\"chat_completions\",status=\"200\"} 1"),
        "{metrics}"
    );
    terminate(&mut sidecar).await;
    assert!(
        client.get(format!("{admin}/healthz")).send().await.is_err(),
        "the admin listener closed with the process"
    );
}

#[test]
fn policy_check_reports_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "providers:\n  p:\n    base_url: nope\nmodels:\n  m:\n    provider: q\n    price: { input_per_mtok: 1, output_per_mtok: 1 }\nlimts: {}\n",
    )
    .unwrap();
    let output = Command::new(frugal_binary())
        .args(["policy", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 8:1: limts: unknown key `limts`; did you mean `limits`?"),
        "{stderr}"
    );

    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/default.yaml");
    let output = Command::new(frugal_binary())
        .args(["policy", "check", good])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains(": ok ("));
}

#[test]
fn serve_refuses_to_start_on_a_bad_policy() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "providers: {}\nmodels: {}\n").unwrap();
    let output = run_within(
        Command::new(frugal_binary()).args(["serve", "--policy", bad.to_str().unwrap()]),
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to start") && stderr.contains("at least one provider"),
        "{stderr}"
    );
    assert!(stderr.contains("at least one model"), "{stderr}");
}

#[test]
fn serve_refuses_to_start_when_it_cannot_save_budget_spend() {
    let dir = tempfile::tempdir().unwrap();
    let spend = dir.path().join("no-such-dir").join("spend.json");
    let policy = dir.path().join("policy.yaml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/examples/local.yaml"
    ))
    .unwrap();
    std::fs::write(
        &policy,
        format!("{text}\nbudget_state_file: {}\n", spend.display()),
    )
    .unwrap();
    let output = run_within(
        Command::new(frugal_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
            .arg(&policy),
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write budget_state_file"),
        "{stderr}"
    );
}

/// `frugal policy explain SHIPPED_POLICY --json ARGS…` (with the model), parsed.
fn explain_json(policy: &str, args: &[&str]) -> Value {
    let policy = format!("{}/../policies/{policy}", env!("CARGO_MANIFEST_DIR"));
    let models = std::env::var("FRUGAL_MODEL_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../models").to_string());
    let output = Command::new(frugal_binary())
        .args(["policy", "explain", &policy, "--json"])
        .args(args)
        .env("FRUGAL_MODEL_DIR", models)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn usd(value: &Value) -> f64 {
    value.as_str().unwrap().parse().unwrap()
}

#[test]
fn policy_explain_counts_trimmed_context_tenant_settings_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let passage = "Aspirin lowers the risk of a second heart attack in adults. ".repeat(12);
    let filler = "The museum opened a new wing for modern sculpture last spring. ".repeat(120);
    let content = format!(
        "<document>{passage}</document>\n<document>{filler}</document>\n\
         Does aspirin lower the risk of a second heart attack?"
    );
    std::fs::write(
        &request,
        json!({"model": "gpt-4o", "temperature": 0, "max_tokens": 100,
               "messages": [{"role": "user", "content": content}]})
        .to_string(),
    )
    .unwrap();
    let request = request.to_str().unwrap();

    // rag.yaml: the context fits its 2,000-token cap; the tenant `legal` has its own cache
    // namespace and inherits the default's monthly budget.
    let e = explain_json(
        "examples/rag.yaml",
        &["--request", request, "--tenant", "legal"],
    );
    assert_eq!(e["tenant_settings"], "own");
    assert_eq!(e["cache"]["namespace"], "legal");
    assert_eq!(e["budget"]["window"], "month");
    assert!(e["refused"].is_null());
    assert_eq!(e["trim"]["context_found"], true);
    assert_eq!(e["trim"]["tokens_removed"], 0, "{e}");

    // local.yaml trims to a small cap: the baseline is the untrimmed prompt, and the trim's
    // share of the saving is what the cut tokens cost at the baseline's price.
    let e = explain_json(
        "examples/local.yaml",
        &["--request", request, "--tenant", "nobody"],
    );
    assert_eq!(e["tenant_settings"], "default");
    let removed = e["trim"]["tokens_removed"].as_u64().unwrap();
    assert!(removed > 500, "{e}");
    let by_trim = usd(&e["cost_usd"]["saved_by_trim"]);
    assert!(by_trim > 0.0, "{e}");
    let (baseline, start) = (
        usd(&e["cost_usd"]["baseline"]),
        usd(&e["cost_usd"]["start_rung"]),
    );
    let by_route = usd(&e["cost_usd"]["saved_by_route"]);
    assert!((baseline - start - by_trim - by_route).abs() < 1e-12, "{e}");

    // support-bot.yaml caches only requests at temperature ≤ 0.7; a prompt sets none.
    let e = explain_json(
        "examples/support-bot.yaml",
        &[
            "--prompt",
            "How do I reset my password?",
            "--tenant",
            "brand-trial",
        ],
    );
    assert_eq!(e["cache"]["eligible"], false);
    let reason = e["cache"]["not_cached_because"].as_str().unwrap();
    assert!(reason.contains("temperature"), "{reason}");
    assert_eq!(e["route"]["tenant_max_tier"], "cheap");
    assert_eq!(e["route"]["rungs"].as_array().unwrap().len(), 1);

    // coding-agent.yaml refuses a request whose worst case passes $2.
    std::fs::write(
        request,
        json!({"max_tokens": 200000, "messages": [{"role": "user", "content": "Refactor it."}]})
            .to_string(),
    )
    .unwrap();
    let e = explain_json("examples/coding-agent.yaml", &["--request", request]);
    assert_eq!(e["refused"]["status"], 400);
    assert_eq!(e["refused"]["code"], "request_cost_too_high");
}

#[test]
fn policy_explain_says_whether_the_providers_prompt_cache_would_serve_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, stamp: &str, tools: &[&str]| {
        let path = dir.path().join(name);
        let system = format!(
            "{stamp}You are the support agent of Acme Outdoor. {}",
            "Answer in two sentences and cite the refund policy by section. ".repeat(90)
        );
        let tools: Vec<Value> = tools
            .iter()
            .map(|n| json!({"type": "function", "function": {"name": n, "parameters": {}}}))
            .collect();
        let body = json!({"model": "gpt-4o-mini", "tools": tools, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "Where is my order?"}]});
        std::fs::write(&path, body.to_string()).unwrap();
        path.to_str().unwrap().to_string()
    };
    let stable = write("stable.json", "", &["b", "a"]);
    let stamped = write("stamped.json", "Now: 2026-12-04T10:32:11Z. ", &["a", "b"]);
    let restamped = write("restamped.json", "Now: 2026-12-04T10:32:15Z. ", &["a", "b"]);

    // default.yaml sends tools as written; a long stable prefix would be served.
    let e = explain_json("default.yaml", &["--request", &stable]);
    let p = &e["prompt_cache"];
    assert_eq!(p["would_hit"], true, "{p}");
    assert_eq!(p["tools_unsorted"], true, "{p}");
    assert!(p["cacheable_tokens"].as_u64().unwrap() >= 1024, "{p}");
    assert!(usd(&p["saved_per_repeat_usd"]) > 0.0, "{p}");

    // A timestamp at the start leaves nothing the provider can serve, and the previous call
    // with another time shows the break.
    let e = explain_json(
        "default.yaml",
        &["--request", &restamped, "--previous", &stamped],
    );
    let p = &e["prompt_cache"];
    assert_eq!(p["would_hit"], false, "{p}");
    assert_eq!(p["volatile_values"][0]["value"], "2026-12-04T10:32:15Z");
    assert!(p["why"].as_str().unwrap().contains("move it after"), "{p}");
    assert_eq!(p["against_previous"]["cause"], "volatile_system", "{p}");

    // local.yaml sorts tools, so the two orders are one prefix.
    let e = explain_json("examples/local.yaml", &["--request", &stable]);
    assert_eq!(e["prompt_cache"]["tools_sorted"], true, "{e}");
}

#[test]
fn policy_explain_shows_the_plan_without_calling_anything() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    std::fs::write(
        &request,
        serde_json::to_string(&json!({
            "model": "gpt-4o",
            "temperature": 0,
            "max_tokens": 200,
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "messages": [{"role": "user", "content": "What's the weather in Oslo?"}],
        }))
        .unwrap(),
    )
    .unwrap();
    let e = explain_json(
        "examples/local.yaml",
        &["--request", request.to_str().unwrap()],
    );
    assert_eq!(e["model"], "gpt-4o");
    assert_eq!(
        e["trim"]["context_found"], false,
        "no tool output or documents"
    );
    assert_eq!(e["output_tokens_assumed"], 200);
    assert_eq!(e["cache"]["eligible"], true);
    assert_eq!(e["cache"]["in_an_empty_cache"], "miss");
    assert_eq!(
        e["cache"]["semantic"]["question"],
        "What's the weather in Oslo?"
    );
    assert_eq!(e["cache"]["semantic"]["question_fits_model"], true);
    assert!(e["classifier"]["score"].as_f64().is_some());
    assert_eq!(e["classifier"]["embedding"], true);
    assert_eq!(e["route"]["rungs"][0]["model"], "gpt-4o-mini");
    let armed = e["route"]["checks_armed"].as_array().unwrap();
    assert!(armed.contains(&json!("invalid_tool_call")));
    assert!(
        !armed.contains(&json!("invalid_json")),
        "no response_format, no JSON check"
    );
    assert!(usd(&e["cost_usd"]["start_rung"]) < usd(&e["cost_usd"]["baseline"]));
}

#[test]
fn every_shipped_policy_passes_check() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut files = vec![format!("{root}/policies/default.yaml")];
    for entry in std::fs::read_dir(format!("{root}/policies/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path.display().to_string());
        }
    }
    assert!(
        files.len() >= 5,
        "default + local, support-bot, coding-agent, rag: {files:?}"
    );
    let output = Command::new(frugal_binary())
        .args(["policy", "check"])
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches(": ok (").count(), files.len(), "{stdout}");
}

/// Two `frugal serve` processes on one Redis (the shared tier): an answer one stores is an
/// exact hit on the other, and a rephrasing a semantic hit once the stream has brought the
/// question over; the upstream is called once.
#[tokio::test]
async fn two_serve_processes_share_answers_through_redis() {
    let Some(redis) = frugal_tests::redis::RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mock_addr = free_addr();
    let policy = write_policy(&dir, mock_addr);
    let mut text = std::fs::read_to_string(&policy).unwrap();
    text.push_str("\nshared: { redis_url_env: FRUGAL_SHARED_CACHE_URL, timeout: 200ms }\n");
    std::fs::write(&policy, text).unwrap();
    let _mock = spawn(&["mock-upstream", "--listen", &mock_addr.to_string()]);
    let url = redis.url();
    let env = [("FRUGAL_SHARED_CACHE_URL", url.as_str())];
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let serve = |addr: SocketAddr| {
        spawn_with(
            &[
                "serve",
                "--policy",
                policy.to_str().unwrap(),
                "--listen",
                &addr.to_string(),
            ],
            &env,
        )
    };
    let (_a, _b) = (serve(a_addr), serve(b_addr));
    for addr in [a_addr, b_addr] {
        wait_ready(&format!("http://{addr}/readyz")).await;
    }
    wait_ready(&format!("http://{mock_addr}/healthz")).await;
    let client = reqwest::Client::new();
    let ask = |addr: SocketAddr, question: &str| {
        client
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&json!({ "model": "gpt-4o-mini", "temperature": 0,
                "messages": [{ "role": "user", "content": question }] }))
            .send()
    };
    let cache_header = |r: &reqwest::Response| {
        r.headers()
            .get("x-frugal-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let first = ask(a_addr, "How do I reverse a list in Python?")
        .await
        .unwrap();
    assert_eq!(cache_header(&first), "miss");
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut exact, mut semantic) = (false, false);
    while !(exact && semantic) {
        assert!(
            Instant::now() < deadline,
            "exact {exact}, semantic {semantic} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !exact {
            let on_b = ask(b_addr, "How do I reverse a list in Python?")
                .await
                .unwrap();
            exact = cache_header(&on_b) == "exact";
        }
        if !semantic {
            let on_b = ask(b_addr, "How can I reverse a list in Python?")
                .await
                .unwrap();
            semantic = cache_header(&on_b) == "semantic";
        }
    }
    let calls: Value = client
        .get(format!("http://{mock_addr}/_mock/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["total"], 1, "{calls}");
}

/// A replica killed in the middle of a request (SIGKILL: no settle, no release) leaves its
/// budget hold in Redis; the hold's lease ends it, so the tenant's room comes back within
/// `shared.hold_lease` instead of at the end of the budget window.
#[tokio::test]
async fn a_hold_of_a_killed_replica_frees_its_room_when_its_lease_ends() {
    let Some(redis) = frugal_tests::redis::RedisServer::start() else {
        return;
    };
    let mock = frugal_tests::MockUpstream::start().await;
    mock.on_prompt("slowly").delay(Duration::from_secs(60));
    let body = |content: &str| {
        json!({ "model": "strong", "max_tokens": 20,
            "messages": [{ "role": "user", "content": content }] })
    };
    let probe = frugal_tests::Sidecar::in_front_of(&mock).await;
    let one: f64 = frugal_tests::header(
        &probe.chat(&body("Answer this one quickly please")).await,
        "x-frugal-cost-usd",
    )
    .parse()
    .unwrap();
    let var = format!("FRUGAL_TEST_REDIS_LEASE_{}", std::process::id());
    std::env::set_var(&var, redis.url());
    let policy = frugal_tests::policy_with_timeouts(
        &mock.base_url(),
        "{ connect: 1s, request: 120s, first_byte: 120s, idle: 120s }",
        &format!(
            "shared: {{ redis_url_env: {var}, timeout: 200ms, hold_lease: 6s, cache: false }}\n\
             tenants:\n  default:\n    budget: {{ window: day, hard_cap_usd: {} }}\n",
            one * 1.5
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, &policy).unwrap();
    let a_addr = free_addr();
    let url = redis.url();
    let mut a = spawn_with(
        &[
            "serve",
            "--policy",
            path.to_str().unwrap(),
            "--listen",
            &a_addr.to_string(),
        ],
        &[(var.as_str(), url.as_str())],
    );
    wait_ready(&format!("http://{a_addr}/readyz")).await;
    // A holds the tenant's room for a request that will not finish; then A is killed.
    let slow = tokio::spawn(
        reqwest::Client::new()
            .post(format!("http://{a_addr}/v1/chat/completions"))
            .header("x-frugal-tenant", "acme")
            .json(&body("Answer this one slowly please"))
            .send(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.total_calls() < 2 {
        assert!(Instant::now() < deadline, "A never called the upstream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    assert!(slow.await.unwrap().is_err(), "A died mid-request");
    let b = frugal_tests::Sidecar::start(&policy).await;
    let killed_at = Instant::now();
    let quick = body("Answer this one quickly please");
    assert_eq!(
        b.chat_as("acme", &quick).await.status(),
        429,
        "the killed replica's hold still counts"
    );
    // Within the lease (6 s, plus the next call that drops it) the room comes back.
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let status = b.chat_as("acme", &quick).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            killed_at.elapsed() < Duration::from_secs(12),
            "the hold outlived its 6 s lease"
        );
    }
}

#[test]
fn policy_explain_says_anthropic_caches_nothing_without_breakpoints() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let system = "Review the diff and name the file and line of each problem. ".repeat(100);
    std::fs::write(
        &request,
        json!({"messages": [{"role": "system", "content": system}, {"role": "user", "content": "Review it."}]})
            .to_string(),
    )
    .unwrap();
    let explain = |breakpoints: bool| -> Value {
        let policy = dir.path().join(format!("claude-{breakpoints}.yaml"));
        std::fs::write(
            &policy,
            format!(
                "providers: {{ claude: {{ base_url: 'https://api.anthropic.com/v1', kind: anthropic }} }}\n\
                 models: {{ sonnet: {{ provider: claude, price: {{ input_per_mtok: 3, output_per_mtok: 15, \
                 cached_input_per_mtok: 0.3, cache_write_per_mtok: 3.75 }} }} }}\n\
                 default_model: sonnet\n\
                 prompt_cache: {{ breakpoints: {breakpoints} }}\n"
            ),
        )
        .unwrap();
        let output = Command::new(frugal_binary())
            .args(["policy", "explain", policy.to_str().unwrap(), "--json"])
            .args(["--request", request.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let with = explain(true);
    assert_eq!(with["prompt_cache"]["would_hit"], true, "{with}");
    let without = explain(false);
    assert_eq!(without["prompt_cache"]["would_hit"], false, "{without}");
    let why = without["prompt_cache"]["why"].as_str().unwrap();
    assert!(why.contains("breakpoints"), "{why}");
}
