//! Open-loop HTTP load at a fixed rate, for `scripts/bench.py`: request `i` is due at
//! `start + i / rate` whatever became of the earlier ones, on the first of the kept-alive
//! connections free. Its latency counts from when it was sent; how late it was sent (a timer
//! tick, or all connections busy: the server's queue) is reported apart, as `late_p99_ms`. One
//! thread, far lighter than hey on the cores it shares with the server, timed to the
//! microsecond. Prints one JSON object: rate, rps, p50/p90/p99 in ms, statuses.
//!
//! `cargo run --release -p frugal --example loadgen -- --url http://127.0.0.1:8080/v1/chat/completions
//!  --rate 1000 --connections 20 --duration 10s --body '{"model":...}' [--header 'k: v']
//!  [--first-byte]`
//!
//! `--first-byte` times each streamed answer to its first content token (the first
//! `"content":"` with something in it) instead of to the end.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use frugal_cache::percentile;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// `http://host:port/path` to POST to.
    #[arg(long)]
    url: Uri,
    /// Requests per second, spread evenly.
    #[arg(long)]
    rate: u64,
    /// Connections (kept alive); a request waits for a free one.
    #[arg(long, default_value_t = 10)]
    connections: usize,
    /// How long to send for, e.g. `10s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The JSON body of every request.
    #[arg(long)]
    body: String,
    /// Extra headers, `name: value`.
    #[arg(long)]
    header: Vec<String>,
    /// Time to the first content token of a streamed answer instead of to its end.
    #[arg(long)]
    first_byte: bool,
}

/// What every request sends, built once: the body and the headers.
struct Template {
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Template {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let host = args.url.authority().map_or("", |a| a.as_str());
        let mut headers = vec![
            (HOST, HeaderValue::from_str(host)?),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ];
        for header in &args.header {
            let (name, value) = header
                .split_once(':')
                .with_context(|| format!("header {header:?} is not `name: value`"))?;
            headers.push((name.trim().parse()?, value.trim().parse()?));
        }
        Ok(Self {
            body: Bytes::from(args.body.clone()),
            headers,
        })
    }
}

/// What one connection saw: latencies and lateness in ms, responses by status (`error` for
/// none).
#[derive(Default)]
struct Seen {
    latencies: Vec<f64>,
    late: Vec<f64>,
    statuses: BTreeMap<String, u64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    let template = Arc::new(Template::new(&args)?);
    let total = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / args.rate as f64);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let (args, template, next) =
                (Arc::clone(&args), Arc::clone(&template), Arc::clone(&next));
            tokio::spawn(
                async move { connection(&args, &template, &next, total, start, period).await },
            )
        })
        .collect();
    let mut seen = Seen::default();
    for task in tasks {
        let one = task.await??;
        seen.latencies.extend(one.latencies);
        seen.late.extend(one.late);
        for (status, n) in one.statuses {
            *seen.statuses.entry(status).or_default() += n;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    seen.latencies.sort_by(f64::total_cmp);
    seen.late.sort_by(f64::total_cmp);
    let ms = |sorted: &[f64], p: f64| (percentile(sorted, p) * 1000.0).round() / 1000.0;
    let report = serde_json::json!({
        "rate": args.rate,
        "connections": args.connections,
        "duration": humantime::format_duration(args.duration).to_string(),
        "rps": (seen.latencies.len() as f64 / elapsed * 10.0).round() / 10.0,
        "p50_ms": ms(&seen.latencies, 0.5),
        "p90_ms": ms(&seen.latencies, 0.9),
        "p99_ms": ms(&seen.latencies, 0.99),
        "late_p99_ms": ms(&seen.late, 0.99),
        "statuses": seen.statuses,
    });
    println!("{report}");
    Ok(())
}

/// Sends the requests due while there are any, one at a time on its own connection.
async fn connection(
    args: &Args,
    template: &Template,
    next: &AtomicU64,
    total: u64,
    start: Instant,
    period: Duration,
) -> anyhow::Result<Seen> {
    let mut seen = Seen::default();
    let mut sender = None;
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return Ok(seen);
        }
        let due = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        seen.late
            .push(sent.duration_since(due).as_secs_f64() * 1000.0);
        let status = match send(args, template, &mut sender, sent).await {
            Ok((status, latency)) => {
                seen.latencies.push(latency.as_secs_f64() * 1000.0);
                status.to_string()
            }
            Err(_) => {
                sender = None;
                "error".to_owned()
            }
        };
        *seen.statuses.entry(status).or_default() += 1;
    }
}

/// One request on the connection (opened first if there is none): its status and the time
/// from `sent` to its end, or to its first content token with `--first-byte`.
async fn send(
    args: &Args,
    template: &Template,
    sender: &mut Option<SendRequest<Full<Bytes>>>,
    sent: Instant,
) -> anyhow::Result<(u16, Duration)> {
    let connected = match sender.take() {
        Some(open) => open,
        None => connect(&args.url).await?,
    };
    let open = sender.insert(connected);
    open.ready().await?;
    let mut request = Request::post(args.url.path()).body(Full::new(template.body.clone()))?;
    request
        .headers_mut()
        .extend(template.headers.iter().cloned());
    let response = open.send_request(request).await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut first = None;
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let (true, None, Some(data)) = (args.first_byte, first, frame.data_ref()) {
            seen.extend_from_slice(data);
            if has_content(&seen) {
                first = Some(sent.elapsed());
            }
        }
    }
    Ok((status, first.unwrap_or_else(|| sent.elapsed())))
}

/// Opens a kept-alive HTTP/1.1 connection to the URL's host.
async fn connect(url: &Uri) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let host = url.host().context("the URL has no host")?;
    let port = url.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Whether a streamed answer so far holds a content token: `"content":"` followed by
/// something other than the closing quote.
fn has_content(seen: &[u8]) -> bool {
    const KEY: &[u8] = b"\"content\":\"";
    seen.windows(KEY.len() + 1)
        .any(|w| w.starts_with(KEY) && w[KEY.len()] != b'"')
}
