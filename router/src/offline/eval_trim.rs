//! `frugal eval trim`: how much gold evidence survives trimming a context to a token cap, per
//! strategy (truncation, sentence BM25, sentence embeddings, frugal's), on claims with candidate
//! abstracts (the JSON Lines schema of ../shared/data/trim).
//!
//! Each claim's context is its candidate abstracts in their given order, each a document with
//! its title; a gold sentence counts as kept when every non-blank byte of it is in a kept chunk.
//! Quality figures use vectors from the disk embedding cache (the same vectors the model gives
//! live); latency is measured separately with the live embedder in the loop, one batched call
//! per trim as the server makes it, on a sample of the claims and on a synthetic context of
//! about 6,000 tokens.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use frugal_cache::{percentile, Embedder, MiniLmEmbedder, MiniLmOptions, ModelPaths};
use serde::{Deserialize, Serialize};

use super::progress::progress_bar;
use crate::trim::{self, Document, Strategy, Tokenizer, TrimRequest};

/// Arguments of `frugal eval trim`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("cap").required(true).args(["cap_tokens", "cap_ratio"])))]
pub struct EvalTrimArgs {
    /// Claims with candidate abstracts split into sentences (JSON Lines, gzip or plain).
    #[arg(long)]
    pub data: PathBuf,
    /// Token cap for every context.
    #[arg(long)]
    pub cap_tokens: Option<usize>,
    /// Token cap as a share of each context's own tokens.
    #[arg(long)]
    pub cap_ratio: Option<f64>,
    /// Tokenizer the cap is counted with.
    #[arg(long, value_enum, default_value = "o200k-base")]
    pub tokenizer: Tokenizer,
    /// Only these strategies (comma-separated); all five by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub strategies: Vec<Strategy>,
    /// Claims whose live trim latency is measured (spread evenly over the file).
    #[arg(long, default_value_t = 100)]
    pub latency_queries: usize,
    /// Live trims of the synthetic ~6,000-token context per strategy.
    #[arg(long, default_value_t = 100)]
    pub latency_runs: usize,
    /// Tokens of the synthetic latency context.
    #[arg(long, default_value_t = 6000)]
    pub latency_context_tokens: usize,
    /// One JSON object per strategy instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where the embedding model lives and where embeddings are cached between runs.
    #[command(flatten)]
    pub embed: super::EmbedArgs,
}

/// One row of the data: a claim, its candidate abstracts and their sentences.
#[derive(Debug, Clone, Deserialize)]
struct Row {
    query: String,
    gold_doc_ids: Vec<u64>,
    docs: Vec<RowDoc>,
    chunks: Vec<RowChunk>,
}

#[derive(Debug, Clone, Deserialize)]
struct RowDoc {
    doc_id: u64,
    title: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RowChunk {
    doc_id: u64,
    text: String,
    gold: bool,
}

/// A claim's context as documents, with the byte ranges of its gold sentences.
struct Case {
    question: String,
    documents: Vec<Document>,
    /// (document, byte range in its text) of every gold sentence.
    gold: Vec<(usize, std::ops::Range<usize>)>,
}

impl Case {
    fn from_row(row: Row) -> Self {
        let mut documents = Vec::with_capacity(row.docs.len());
        let mut gold = Vec::new();
        for (d, doc) in row.docs.iter().enumerate() {
            let mut text = String::new();
            for chunk in row.chunks.iter().filter(|c| c.doc_id == doc.doc_id) {
                if !text.is_empty() && !text.ends_with(char::is_whitespace) {
                    text.push(' ');
                }
                let start = text.len();
                text.push_str(&chunk.text);
                if chunk.gold {
                    let trimmed = chunk.text.trim();
                    let lead = chunk.text.len() - chunk.text.trim_start().len();
                    gold.push((d, start + lead..start + lead + trimmed.len()));
                }
            }
            documents.push(Document {
                title: Some(doc.title.clone()),
                text,
            });
        }
        Self {
            question: row.query,
            documents,
            gold,
        }
    }

    fn request(&self, cap: Cap, tokenizer: Tokenizer, strategy: Strategy) -> TrimRequest {
        let mut request = TrimRequest {
            question: self.question.clone(),
            documents: self.documents.clone(),
            cap_tokens: 0,
            min_keep_per_document: 0,
            tokenizer,
            strategy,
        };
        request.cap_tokens = cap.tokens(trim::prepare(&request).tokens_before());
        request
    }

    /// Gold sentences all of whose non-blank bytes are in kept chunks.
    fn gold_kept(&self, trimmed: &trim::Trimmed) -> usize {
        if !trimmed.trimmed {
            return self.gold.len();
        }
        let mut covered: Vec<Vec<bool>> = self
            .documents
            .iter()
            .map(|d| vec![false; d.text.len()])
            .collect();
        for chunk in trimmed.chunks.iter().filter(|c| c.kept) {
            if let Some(bytes) = covered
                .get_mut(chunk.document)
                .and_then(|c| c.get_mut(chunk.range.clone()))
            {
                bytes.iter_mut().for_each(|b| *b = true);
            }
        }
        self.gold
            .iter()
            .filter(|(d, range)| {
                let text = self.documents[*d].text.as_bytes();
                range
                    .clone()
                    .all(|i| covered[*d][i] || text[i].is_ascii_whitespace())
            })
            .count()
    }
}

/// The cap, fixed or relative to each context.
#[derive(Debug, Clone, Copy)]
enum Cap {
    Tokens(usize),
    Ratio(f64),
}

impl Cap {
    fn tokens(self, before: usize) -> usize {
        match self {
            Self::Tokens(n) => n,
            Self::Ratio(r) => (r * before as f64).floor() as usize,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Tokens(n) => format!("{n} tokens"),
            Self::Ratio(r) => format!("{r} of context"),
        }
    }
}

/// The figures of one strategy (`--json` prints one object per strategy).
#[derive(Debug, Clone, Serialize)]
pub struct StrategyFigures {
    /// Strategy name.
    pub strategy: &'static str,
    /// Claims with gold evidence evaluated.
    pub queries: usize,
    /// The cap, as given.
    pub cap: String,
    /// 1 − tokens after / tokens before, summed over claims.
    pub token_reduction: f64,
    /// Gold sentences kept / gold sentences.
    pub gold_recall: f64,
    /// Share of claims with every gold sentence kept.
    pub all_gold_kept_share: f64,
    /// Median live trim latency over the sampled claims, embeddings included, in ms.
    pub p50_ms: f64,
    /// 99th-percentile live trim latency over the sampled claims, in ms.
    pub p99_ms: f64,
    /// Claims the latency was measured on.
    pub latency_queries: usize,
    /// Mean tokens per context before trimming.
    pub tokens_before_mean: f64,
    /// Mean tokens per context after trimming.
    pub tokens_after_mean: f64,
    /// Contexts whose trimmed tokens exceeded the cap (must be 0).
    pub over_cap: usize,
    /// Tokens of the synthetic latency context.
    pub latency_6k_tokens: usize,
    /// Median live trim latency on the synthetic context, in ms.
    pub latency_6k_p50_ms: f64,
    /// 99th-percentile live trim latency on the synthetic context, in ms.
    pub latency_6k_p99_ms: f64,
}

/// Runs `frugal eval trim`.
pub fn run(args: &EvalTrimArgs) -> anyhow::Result<()> {
    let cap = match (args.cap_tokens, args.cap_ratio) {
        (Some(n), _) => Cap::Tokens(n),
        (None, Some(r)) if r > 0.0 => Cap::Ratio(r),
        _ => anyhow::bail!("give --cap-tokens N or --cap-ratio R (R > 0)"),
    };
    let strategies: Vec<Strategy> = if args.strategies.is_empty() {
        Strategy::ALL.to_vec()
    } else {
        args.strategies.clone()
    };
    let rows: Vec<Row> = super::read_jsonl(&args.data)?;
    let synthetic = synthetic_case(&rows, args.tokenizer, args.latency_context_tokens);
    let cases = cases_of(rows, &args.data)?;

    let paths = ModelPaths::from_env_or(&args.embed.model_dir);
    let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())
        .context("cannot load the embedding model")?;
    let vectors = cached_vectors(
        &args.embed,
        args.tokenizer,
        &embedder,
        &cases,
        &[cap],
        &strategies,
    )?;

    let mut figures = Vec::new();
    for &strategy in &strategies {
        let mut f = quality(&cases, cap, args.tokenizer, strategy, &vectors)?;
        let step = (cases.len() / args.latency_queries.max(1)).max(1);
        let sample: Vec<&Case> = cases
            .iter()
            .step_by(step)
            .take(args.latency_queries)
            .collect();
        let ms = live_latency(&embedder, &sample, cap, args.tokenizer, strategy, 1)?;
        f.latency_queries = sample.len();
        f.p50_ms = percentile(&ms, 0.50);
        f.p99_ms = percentile(&ms, 0.99);
        if let Some((case, tokens)) = &synthetic {
            let ms = live_latency(
                &embedder,
                &[case],
                cap,
                args.tokenizer,
                strategy,
                args.latency_runs,
            )?;
            f.latency_6k_tokens = *tokens;
            f.latency_6k_p50_ms = percentile(&ms, 0.50);
            f.latency_6k_p99_ms = percentile(&ms, 0.99);
        }
        figures.push(f);
    }

    if args.json {
        for f in &figures {
            println!("{}", serde_json::to_string(f)?);
        }
    } else {
        print_table(&figures);
    }
    Ok(())
}

/// `strategy`'s figures at each token cap of `caps` on the claims of `data` (without latency):
/// `frugal calibrate`'s trim sweep.
pub fn sweep_caps(
    data: &std::path::Path,
    caps: &[usize],
    tokenizer: Tokenizer,
    strategy: Strategy,
    embed: &super::EmbedArgs,
) -> anyhow::Result<Vec<StrategyFigures>> {
    let cases = cases_of(super::read_jsonl(data)?, data)?;
    let caps: Vec<Cap> = caps.iter().map(|&n| Cap::Tokens(n)).collect();
    let vectors = if strategy.embeds() {
        let paths = ModelPaths::from_env_or(&embed.model_dir);
        let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())
            .context("cannot load the embedding model")?;
        cached_vectors(embed, tokenizer, &embedder, &cases, &caps, &[strategy])?
    } else {
        HashMap::new()
    };
    caps.iter()
        .map(|&cap| quality(&cases, cap, tokenizer, strategy, &vectors))
        .collect()
}

/// The claims among `rows` (read from `data`) that have gold evidence.
fn cases_of(rows: Vec<Row>, data: &std::path::Path) -> anyhow::Result<Vec<Case>> {
    let cases: Vec<Case> = rows
        .into_iter()
        .filter(|r| !r.gold_doc_ids.is_empty())
        .map(Case::from_row)
        .filter(|c| !c.gold.is_empty())
        .collect();
    anyhow::ensure!(
        !cases.is_empty(),
        "{} has no claims with gold evidence",
        data.display()
    );
    Ok(cases)
}

fn single(document: &Document, tokenizer: Tokenizer) -> TrimRequest {
    TrimRequest {
        question: String::new(),
        documents: vec![document.clone()],
        cap_tokens: usize::MAX,
        min_keep_per_document: 0,
        tokenizer,
        strategy: Strategy::KeepFirst,
    }
}

/// Vectors of every text the embedding strategies ask for, through the disk cache.
fn cached_vectors(
    embed: &super::EmbedArgs,
    tokenizer: Tokenizer,
    embedder: &dyn Embedder,
    cases: &[Case],
    caps: &[Cap],
    strategies: &[Strategy],
) -> anyhow::Result<HashMap<String, Vec<f32>>> {
    let mut texts: Vec<String> = Vec::new();
    for &strategy in strategies.iter().filter(|s| s.embeds()) {
        for (case, &cap) in cases
            .iter()
            .flat_map(|c| caps.iter().map(move |cap| (c, cap)))
        {
            let request = case.request(cap, tokenizer, strategy);
            texts.extend(
                trim::prepare(&request)
                    .embedding_texts()
                    .into_iter()
                    .map(str::to_owned),
            );
        }
    }
    // Similar lengths batch together, so little of each batch is padding.
    texts.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    texts.dedup();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = progress_bar(true, refs.len(), "embedding");
    let (vectors, _) = embed
        .disk_embeddings()
        .embed(embedder, &refs, |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(texts.into_iter().zip(vectors).collect())
}

/// Trims every case with cached vectors and measures what was kept.
fn quality(
    cases: &[Case],
    cap: Cap,
    tokenizer: Tokenizer,
    strategy: Strategy,
    vectors: &HashMap<String, Vec<f32>>,
) -> anyhow::Result<StrategyFigures> {
    let bar = progress_bar(true, cases.len(), strategy.as_str());
    let (mut before, mut after, mut gold, mut kept, mut all_kept, mut over) = (0, 0, 0, 0, 0, 0);
    for case in cases {
        let request = case.request(cap, tokenizer, strategy);
        let prepared = trim::prepare(&request);
        let v: Vec<Vec<f32>> = prepared
            .embedding_texts()
            .iter()
            .map(|t| vectors.get(*t).cloned().context("a vector is missing"))
            .collect::<anyhow::Result<_>>()?;
        let trimmed = prepared.finish(&v)?;
        let k = case.gold_kept(&trimmed);
        before += trimmed.tokens_before;
        after += trimmed.tokens_after;
        gold += case.gold.len();
        kept += k;
        all_kept += usize::from(k == case.gold.len());
        over += usize::from(trimmed.tokens_after > request.cap_tokens);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let n = cases.len() as f64;
    Ok(StrategyFigures {
        strategy: strategy.as_str(),
        queries: cases.len(),
        cap: cap.describe(),
        token_reduction: 1.0 - after as f64 / before.max(1) as f64,
        gold_recall: kept as f64 / gold.max(1) as f64,
        all_gold_kept_share: all_kept as f64 / n,
        p50_ms: 0.0,
        p99_ms: 0.0,
        latency_queries: 0,
        tokens_before_mean: before as f64 / n,
        tokens_after_mean: after as f64 / n,
        over_cap: over,
        latency_6k_tokens: 0,
        latency_6k_p50_ms: 0.0,
        latency_6k_p99_ms: 0.0,
    })
}

/// Sorted milliseconds of live trims (embedder in the loop), `runs` per case, after one
/// untimed warm-up trim.
fn live_latency(
    embedder: &dyn Embedder,
    cases: &[&Case],
    cap: Cap,
    tokenizer: Tokenizer,
    strategy: Strategy,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let requests: Vec<TrimRequest> = cases
        .iter()
        .map(|c| c.request(cap, tokenizer, strategy))
        .collect();
    if let Some(first) = requests.first() {
        trim::trim(first, embedder)?;
    }
    let label = format!("{} live", strategy.as_str());
    let bar = progress_bar(true, requests.len() * runs, &label);
    let mut ms = Vec::with_capacity(requests.len() * runs);
    for request in &requests {
        for _ in 0..runs {
            let started = Instant::now();
            let trimmed = trim::trim(request, embedder)?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(trimmed);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// A context of about `tokens` tokens: the abstracts of consecutive claims with evidence, asked
/// the first claim's question.
fn synthetic_case(rows: &[Row], tokenizer: Tokenizer, tokens: usize) -> Option<(Case, usize)> {
    let mut cases = rows
        .iter()
        .filter(|r| !r.gold_doc_ids.is_empty())
        .map(|r| Case::from_row(r.clone()));
    let mut out = cases.next()?;
    let mut total: usize = out
        .documents
        .iter()
        .map(|d| trim::prepare(&single(d, tokenizer)).tokens_before())
        .sum();
    // Past the target, drop whole documents from the end until just under it.
    for case in cases {
        for document in case.documents {
            if total >= tokens {
                break;
            }
            total += trim::prepare(&single(&document, tokenizer)).tokens_before();
            out.documents.push(document);
        }
    }
    while total > tokens && out.documents.len() > 1 {
        if let Some(last) = out.documents.pop() {
            total -= trim::prepare(&single(&last, tokenizer)).tokens_before();
        }
    }
    out.gold.clear();
    Some((out, total))
}

fn print_table(figures: &[StrategyFigures]) {
    let ms = |x: f64| format!("{x:.2}");
    println!(
        "{:<11} {:>7} {:>9} {:>11} {:>9} {:>8} {:>8} {:>8} | {:>7} {:>9} {:>9}",
        "strategy",
        "queries",
        "reduction",
        "gold_recall",
        "all_gold",
        "p50_ms",
        "p99_ms",
        "over_cap",
        "6k_tok",
        "6k_p50_ms",
        "6k_p99_ms"
    );
    for f in figures {
        println!(
            "{:<11} {:>7} {:>9} {:>11.4} {:>9} {:>8} {:>8} {:>8} | {:>7} {:>9} {:>9}",
            f.strategy,
            f.queries,
            super::pct(Some(f.token_reduction)),
            f.gold_recall,
            super::pct(Some(f.all_gold_kept_share)),
            ms(f.p50_ms),
            ms(f.p99_ms),
            f.over_cap,
            f.latency_6k_tokens,
            ms(f.latency_6k_p50_ms),
            ms(f.latency_6k_p99_ms),
        );
    }
    if let Some(f) = figures.first() {
        println!(
            "cap: {}; mean tokens before {:.0}; latency: live embedder, {} claims and the synthetic context",
            f.cap, f.tokens_before_mean, f.latency_queries
        );
    }
}
