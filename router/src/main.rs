//! The `frugal` command line: `serve`, `mock-upstream`, `policy check`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use frugal::mock::{LabelledModels, MockOptions, MockServer, Script};
use frugal::server::{PolicySource, RunningServer};
use frugal::telemetry::{self, LogFormat};
use tokio::net::TcpListener;

/// jemalloc instead of glibc's malloc: less memory idle and after load (glibc keeps a heap per
/// thread that served requests), and no slower (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "frugal",
    version,
    about = "A sidecar that makes LLM traffic cheaper without making it worse"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FRUGAL_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API, forwarding to the policy's upstreams.
    Serve {
        /// Policy file (YAML).
        #[arg(long, env = "FRUGAL_POLICY")]
        policy: PathBuf,
        /// Listen address; overrides the policy's `listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin listen address (metrics, health, reload, savings); overrides the policy's
        /// `admin_listen`.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// How often to re-check the policy file besides file events (`0s`: events only).
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        reload_interval: Duration,
    },
    /// Run a scriptable fake OpenAI server for tests, demos and benchmarks.
    MockUpstream {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9100")]
        listen: SocketAddr,
        /// Latency added to every answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Script file (YAML or JSON) with rules and a default behaviour.
        #[arg(long)]
        script: Option<PathBuf>,
        /// Latency of one upstream model's answers instead of --latency-ms, as MODEL=MS
        /// (repeatable; e.g. the cheap model faster).
        #[arg(long = "model-latency", value_name = "MODEL=MS", value_parser = parse_model_latency)]
        model_latency: Vec<(String, u64)>,
        /// Labelled routing rows (RouteLLM's format, JSON Lines, gzip or plain): a labelled
        /// prompt gets the recorded answer of the model asked (see --weak-model/--strong-model).
        /// This simulates recorded outcomes, not a live model.
        #[arg(long, requires = "weak_model", requires = "strong_model")]
        labels: Option<PathBuf>,
        /// Upstream model name that answers labelled prompts as the weak model (repeatable).
        #[arg(long = "weak-model", value_name = "MODEL")]
        weak_model: Vec<String>,
        /// Upstream model name that answers labelled prompts as the strong model (repeatable).
        #[arg(long = "strong-model", value_name = "MODEL")]
        strong_model: Vec<String>,
    },
    /// Print the savings of a running sidecar per tenant and lever.
    Report {
        /// The sidecar's base URL (its `admin_listen` address, when it has one).
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "FRUGAL_URL")]
        url: String,
        /// Only the last WINDOW (e.g. 15m, 1h, 24h) instead of since start.
        #[arg(long)]
        window: Option<String>,
        /// Print the JSON report instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Replay traffic through a policy in-process against recorded answers: savings per lever
    /// next to quality kept, false cache hits and escalations (`--against` compares two).
    Replay(frugal::offline::replay::ReplayArgs),
    /// Sweep the cache threshold, start-strong threshold and trim cap on labelled data, pick
    /// the cheapest point meeting the quality targets, and write the calibrated policy.
    Calibrate(frugal::offline::calibrate::CalibrateArgs),
    /// Fit the complexity classifier on labelled routing data and write its weights.
    Train(frugal::offline::train::TrainArgs),
    /// Offline evaluations on labelled data.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// What cheap-first routing costs and keeps (RouteLLM APGR/CPT, 95%-quality share, cascade).
    Router(frugal::offline::eval_router::EvalRouterArgs),
    /// How often the semantic cache serves right and wrong answers on labelled pairs.
    Cache(frugal::offline::eval_cache::EvalCacheArgs),
    /// How much gold evidence survives trimming contexts to a token cap, per strategy.
    Trim(frugal::offline::eval_trim::EvalTrimArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate policy files: exit 0 with a summary each, or 1 with every error.
    Check {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the policy JSON schema (committed as policies/schema.json).
    Schema,
    /// Show what the sidecar would do with one request, without calling any upstream.
    Explain(frugal::explain::ExplainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Replay(_) | Command::Calibrate(_) => "warn",
        _ => "info",
    };
    telemetry::init(cli.log_format, level);
    match cli.command {
        Command::Policy {
            command: PolicyCommand::Check { files },
        } => check_policies(&files),
        Command::Policy {
            command: PolicyCommand::Schema,
        } => print_schema(),
        command => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            policy,
            listen,
            admin_listen,
            reload_interval,
        } => serve(policy, listen, admin_listen, reload_interval).await,
        Command::MockUpstream {
            listen,
            latency_ms,
            script,
            model_latency,
            labels,
            weak_model,
            strong_model,
        } => {
            let labels = labels
                .map(|path| {
                    LabelledModels::load(&path, &weak_model, &strong_model)
                        .map(Arc::new)
                        .map_err(|e| anyhow::anyhow!("cannot read labels {}: {e}", path.display()))
                })
                .transpose()?;
            let options = MockOptions {
                script: read_script(script)?,
                latency: Duration::from_millis(latency_ms),
                model_latency: model_latency
                    .into_iter()
                    .map(|(model, ms)| (model, Duration::from_millis(ms)))
                    .collect(),
                labels,
            };
            mock_upstream(listen, options).await
        }
        Command::Report { url, window, json } => report(&url, window.as_deref(), json).await,
        Command::Train(args) => frugal::offline::train::run(&args),
        Command::Replay(args) => frugal::offline::replay::run(&args).await,
        Command::Calibrate(args) => frugal::offline::calibrate::run(&args).await,
        Command::Eval {
            command: EvalCommand::Router(args),
        } => frugal::offline::eval_router::run(&args),
        Command::Policy {
            command: PolicyCommand::Explain(args),
        } => frugal::explain::run(&args).await,
        Command::Eval {
            command: EvalCommand::Cache(args),
        } => frugal::offline::eval_cache::run(&args),
        Command::Eval {
            command: EvalCommand::Trim(args),
        } => frugal::offline::eval_trim::run(&args),
        Command::Policy { .. } => Ok(()),
    }
}

async fn serve(
    path: PathBuf,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    reload_interval: Duration,
) -> anyhow::Result<()> {
    let policy = frugal::policy::load(&path)
        .map_err(|errors| anyhow::anyhow!("refusing to start:\n{errors}"))?;
    let addr = listen.unwrap_or(policy.listen);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let admin = match admin_listen.or(policy.admin_listen) {
        Some(admin) => Some(
            TcpListener::bind(admin)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {admin} (admin_listen): {e}"))?,
        ),
        None => None,
    };
    let models = policy.models.len();
    let hash = policy.hash.clone();
    let source = PolicySource {
        path: path.clone(),
        poll: reload_interval,
    };
    let server = RunningServer::start_with_admin(policy, listener, admin, Some(source))?;
    match server.admin_addr {
        Some(admin) => {
            tracing::info!(addr = %server.addr, %admin, policy = %path.display(), %hash, models, "frugal is serving")
        }
        None => {
            tracing::info!(addr = %server.addr, policy = %path.display(), %hash, models, "frugal is serving")
        }
    }
    server.run_until(shutdown_signal()).await
}

/// The script file's rules, or the default script.
fn read_script(script: Option<PathBuf>) -> anyhow::Result<Script> {
    let Some(path) = script else {
        return Ok(Script::default());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read script {}: {e}", path.display()))?;
    frugal::yaml::from_str::<Script>(&text)
        .map_err(|e| anyhow::anyhow!("bad script {}: {e}", path.display()))
}

/// `MODEL=MS` of `--model-latency`.
fn parse_model_latency(text: &str) -> Result<(String, u64), String> {
    let (model, ms) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("`{text}` is not MODEL=MS"))?;
    let ms = ms
        .parse()
        .map_err(|_| format!("`{ms}` in `{text}` is not a whole number of milliseconds"))?;
    if model.is_empty() {
        return Err(format!("`{text}` names no model"));
    }
    Ok((model.to_string(), ms))
}

async fn mock_upstream(listen: SocketAddr, options: MockOptions) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let latency_ms = options.latency.as_millis();
    let labelled = options.labels.as_ref().map_or(0, |l| l.len());
    let mock = MockServer::start_with(listener, options).map_err(anyhow::Error::msg)?;
    tracing::info!(base_url = %mock.base_url(), latency_ms, labelled, "mock upstream is serving");
    shutdown_signal().await;
    Ok(())
}

async fn report(url: &str, window: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut endpoint = format!("{}/v1/frugal/savings", url.trim_end_matches('/'));
    if let Some(window) = window {
        endpoint.push_str(&format!("?window={window}"));
    }
    let response = reqwest::get(&endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {endpoint}: {e}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        anyhow::bail!("{endpoint} answered {status}: {text}");
    }
    if json {
        println!("{text}");
        return Ok(());
    }
    let report: frugal::ledger::SavingsReport = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("unexpected savings report: {e}"))?;
    print!("{}", frugal::report::render(&report));
    Ok(())
}

fn check_policies(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for file in files {
        match frugal::policy::load(file) {
            Ok(policy) => println!(
                "{}: ok ({})",
                file.display(),
                frugal::policy::summary::summary(&policy)
            ),
            Err(errors) => {
                failed = true;
                eprint!("{errors}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_schema() -> ExitCode {
    match serde_json::to_string_pretty(&frugal::policy::raw::json_schema()) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot render the schema: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
