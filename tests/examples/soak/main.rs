//! The soak driver (`scripts/soak.sh` starts the sidecar and the mock, then runs this): sends
//! a deterministic mix of requests at a fixed rate with bounded concurrency, samples the
//! sidecar's RSS and open file descriptors every period, and at the end prints outcome counts
//! (unexpected ones must be zero), latency percentiles, memory behaviour and the savings
//! identity, as a table and as JSON.
//!
//! `--probe` sends each fault kind once (JSON and SSE, routed and direct model) and prints
//! what came back: how the expectations in `outcome.rs` were measured.

mod outcome;
mod report;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::MissedTickBehavior;

use report::{Identity, Report, Sample, Stats};
use workload::{Fault, Mix, Spec, Workload, MODELS};

/// Drives a running sidecar with mixed traffic at a steady rate.
#[derive(Debug, Parser)]
struct Args {
    /// The sidecar's base URL.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    url: String,
    /// Requests to send.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Requests started per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Requests in flight at most; a request due while all are busy starts late (counted).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The sidecar's process id, for RSS and fd samples.
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// Seed of the request mix.
    #[arg(long, default_value_t = 16)]
    seed: u64,
    /// Percent of requests that repeat a prompt from a fixed pool.
    #[arg(long, default_value_t = 40.0)]
    exact: f64,
    /// Percent that rephrase an earlier question.
    #[arg(long, default_value_t = 15.0)]
    semantic: f64,
    /// Percent with documents over the trim cap.
    #[arg(long, default_value_t = 7.0)]
    trim: f64,
    /// Percent with an injected upstream fault (the rest are unique misses).
    #[arg(long, default_value_t = 2.0)]
    fault: f64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/soak/report.json")]
    out: PathBuf,
    /// Send each fault kind once and print the outcomes, instead of the soak.
    #[arg(long)]
    probe: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    if args.probe {
        probe(&client, &args).await;
        return Ok(());
    }
    let report_json = soak(client, &args).await?;
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report_json)?)?;
    println!("report: {}", args.out.display());
    if report_json.get("passed") != Some(&Value::Bool(true)) {
        std::process::exit(1);
    }
    Ok(())
}

/// Each fault kind, JSON and SSE, to the routed and the direct model, once.
async fn probe(client: &reqwest::Client, args: &Args) {
    let url = format!("{}/v1/chat/completions", args.url);
    let mut seq = 0;
    println!(
        "{:<10} {:<12} {:<6} {:<48} expected",
        "fault", "model", "sse", "outcome"
    );
    for (kind, _) in Fault::WEIGHTED {
        for model in MODELS {
            for stream in [false, true] {
                seq += 1;
                let spec = workload::probe(kind, model, stream, seq);
                let got = outcome::send(client, &url, &spec).await;
                let ok = outcome::expected(spec.class, stream, &got.label);
                println!(
                    "{:<10} {:<12} {:<6} {:<48} {} ({:.0} ms)",
                    kind.as_str(),
                    model,
                    stream,
                    got.label,
                    if ok { "yes" } else { "NO" },
                    got.latency.as_secs_f64() * 1000.0
                );
            }
        }
    }
}

/// Runs the load, then gathers the report.
async fn soak(client: reqwest::Client, args: &Args) -> Result<Value, Box<dyn std::error::Error>> {
    let mix = Mix {
        exact: args.exact,
        semantic: args.semantic,
        trim: args.trim,
        fault: args.fault,
    };
    let stats = Arc::new(Mutex::new(Stats::default()));
    let progress = Arc::new(Progress::default());
    let (stop, stopped) = oneshot::channel();
    let sampler = tokio::spawn(sample_loop(
        client.clone(),
        args.url.clone(),
        args.pid,
        Duration::from_secs(args.sample_every),
        stats.clone(),
        progress.clone(),
        stopped,
    ));
    println!(
        "soak: {} requests at {}/s, {} in flight at most, against {}",
        args.requests, args.rate, args.concurrency, args.url
    );
    let started = progress.started;
    drive(
        &client,
        args,
        Workload::new(mix, args.seed),
        &stats,
        &progress,
    )
    .await;
    let duration = started.elapsed();
    let _ = stop.send(());
    let samples = sampler.await?;

    let savings = get_json(&client, &format!("{}/v1/frugal/savings", args.url)).await;
    let metrics = final_metrics(&client, &args.url).await;
    let stats = stats.lock().unwrap_or_else(PoisonError::into_inner);
    let report = Report {
        settings: json!({
            "requests": args.requests,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "seed": args.seed,
            "mix_percent": { "exact": args.exact, "semantic": args.semantic, "trim": args.trim, "fault": args.fault },
        }),
        sent: progress.sent(),
        late: progress.late(),
        duration,
        stats: &stats,
        samples: &samples,
        identities: savings
            .as_ref()
            .map(Identity::check_all)
            .unwrap_or_default(),
        metrics,
    };
    print!("{}", report.table());
    Ok(report.to_json())
}

/// Counters shared by the scheduler and the sampler.
struct Progress {
    started: Instant,
    sent: std::sync::atomic::AtomicU64,
    late: std::sync::atomic::AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            sent: 0.into(),
            late: 0.into(),
        }
    }
}

impl Progress {
    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn late(&self) -> u64 {
        self.late.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The fixed-rate scheduler: every millisecond, starts the requests whose time has come. A
/// request due while every slot is busy waits for one and is counted late; later requests
/// keep their schedule (they catch up when slots free), so the achieved rate is what the
/// machine sustained.
async fn drive(
    client: &reqwest::Client,
    args: &Args,
    mut workload: Workload,
    stats: &Arc<Mutex<Stats>>,
    progress: &Arc<Progress>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let url: Arc<str> = format!("{}/v1/chat/completions", args.url).into();
    let slots = Arc::new(Semaphore::new(args.concurrency));
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next = 0;
    while next < args.requests {
        ticker.tick().await;
        let due =
            ((progress.started.elapsed().as_secs_f64() * args.rate) as u64 + 1).min(args.requests);
        while next < due {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    progress.late.fetch_add(1, Relaxed);
                    match slots.clone().acquire_owned().await {
                        Ok(permit) => permit,
                        Err(_) => return,
                    }
                }
            };
            let spec = workload.next(next);
            let (client, url, stats) = (client.clone(), url.clone(), stats.clone());
            tokio::spawn(async move {
                let got = outcome::send(&client, &url, &spec).await;
                record(&stats, &spec, &got);
                drop(permit);
            });
            next += 1;
            progress.sent.store(next, Relaxed);
        }
    }
    // Every slot back means every request has finished.
    let all = u32::try_from(args.concurrency).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

fn record(stats: &Mutex<Stats>, spec: &Spec, got: &outcome::Outcome) {
    stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .record(spec, got);
}

/// Samples the sidecar every `every` until told to stop; prints a line each time.
async fn sample_loop(
    client: reqwest::Client,
    url: String,
    pid: Option<u32>,
    every: Duration,
    stats: Arc<Mutex<Stats>>,
    progress: Arc<Progress>,
    mut stop: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(every);
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut stop => true,
        };
        let sample = take_sample(&client, &url, pid, &stats, &progress).await;
        let unexpected = stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unexpected();
        println!("{}", sample.line(progress.late(), unexpected));
        samples.push(sample);
        if last {
            return samples;
        }
    }
}

async fn take_sample(
    client: &reqwest::Client,
    url: &str,
    pid: Option<u32>,
    stats: &Mutex<Stats>,
    progress: &Progress,
) -> Sample {
    let metrics = get_text(client, &format!("{url}/metrics"))
        .await
        .unwrap_or_default();
    let finished = stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finished();
    Sample {
        at_secs: progress.started.elapsed().as_secs_f64(),
        sent: progress.sent(),
        finished,
        rss_kib: pid.and_then(rss_kib).unwrap_or(0),
        fds: pid.and_then(open_fds).unwrap_or(0),
        cache_bytes: metric_sum(&metrics, "frugal_cache_bytes"),
        cache_entries: metric_sum(&metrics, "frugal_cache_entries"),
        evictions: metric_sum(&metrics, "frugal_cache_evictions_total"),
        embedding_skips: metric_sum(&metrics, "frugal_embedding_deadline_skips_total"),
    }
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The sum of every series of a metric in a Prometheus text scrape.
fn metric_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

/// Counters worth reading next to the outcomes.
async fn final_metrics(client: &reqwest::Client, url: &str) -> BTreeMap<&'static str, f64> {
    let scrape = get_text(client, &format!("{url}/metrics"))
        .await
        .unwrap_or_default();
    [
        "frugal_cache_entries",
        "frugal_cache_bytes",
        "frugal_cache_evictions_total",
        "frugal_cache_guard_rejections_total",
        "frugal_embedding_deadline_skips_total",
        "frugal_escalations_total",
        "frugal_retries_total",
        "frugal_upstream_attempts_total",
        "frugal_circuit_state",
        "frugal_budget_rejections_total",
        "frugal_requests_in_flight",
    ]
    .into_iter()
    .map(|name| (name, metric_sum(&scrape, name)))
    .collect()
}

async fn get_text(client: &reqwest::Client, url: &str) -> Option<String> {
    client.get(url).send().await.ok()?.text().await.ok()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}
