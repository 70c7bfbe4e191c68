//! Lookup latency, recall@1 against an exact scan, build time and memory of one scope's index
//! at 100k and 1M entries, over real prompt embeddings augmented to that size (run by
//! `scripts/bench.sh`, which writes the table into BENCHMARKS.md):
//!
//! `cargo run --release -p frugal-cache --example index_scale -- TEXTS SIZES QUERIES EF_LIST`
//!
//! TEXTS holds one question per line. All are embedded with the real model (all-MiniLM-L6-v2,
//! `FRUGAL_MODEL_DIR`); the last QUERIES are held out as fresh queries, the rest are the real
//! vectors. For each size in SIZES (comma-separated), the index holds the real vectors, then
//! augmented ones up to the size: each a point between a real vector and one of its ten nearest
//! real neighbours, a uniform share of the way, plus uniform noise of ±0.01 per component,
//! renormalised (new prompts among the real ones). `INDEX_AUGMENT=mix` instead mixes 2 or 3
//! random real vectors (a random convex combination, then the same noise): points between
//! unrelated prompts, far from any real one, a stress case for the graph. It is built with
//! `VectorIndex::from_vectors` and the default `IndexConfig`, then searched at each width of
//! EF_LIST (comma-separated) and at the default's width for its size (`search_width`).
//! Queries: QUERIES noisy copies of random stored vectors (±0.03 per component, cosine ~0.95
//! to their source: near-duplicate prompts), and the QUERIES fresh real vectors. Recall@1: the
//! index's first neighbour is the exact scan's (f32, all entries); `recall_at_1_int8`: it is as
//! near as the best of an exact scan of the graph's int8 vectors alone (what a perfect search
//! of the graph returns without the re-rank by residuals, `IndexConfig::exact_rerank`; the gap
//! to the f32 scan is int8 rounding among near-ties, which the re-rank closes for the
//! candidates the search reached). One JSON line per size on
//! stdout; progress on stderr. `INDEX_M` and `INDEX_EF_CONSTRUCTION` override the graph's
//! links per node and insert width, and `INDEX_RERANK=off` drops the residuals' re-rank
//! (`IndexConfig::exact_rerank`), to try other settings. `INDEX_VECTORS=FILE` keeps the
//! texts' embeddings in FILE and reuses them while the texts are the same (embedding ~100k
//! texts takes ~10 minutes on 2 cores). `INDEX_EVAL_VECTORS=FILE` takes the real vectors from
//! an evaluation embedding cache instead (`frugal eval cache` keeps the QQP and PAWS texts'
//! under `target/frugal-embeddings-cache/`, ~105k), and TEXTS only for its count check.

#[path = "support/resident.rs"]
mod resident;

use resident::resident_mib;

use std::time::Instant;

use anyhow::Context;
use frugal_cache::percentile;
use frugal_cache::synthetic::{normalised, Xorshift};
use frugal_cache::{
    int8_round_trip, Embedder, IndexConfig, MiniLmEmbedder, MiniLmOptions, ModelPaths, VectorIndex,
};
use serde_json::{json, Value};

/// Dimension of all-MiniLM-L6-v2's vectors.
const DIM: usize = MiniLmEmbedder::DIM;
/// Stored vectors scanned against every query while they are in the CPU cache.
const SCAN_BLOCK: usize = 1024;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [texts, sizes, queries, widths] = args.as_slice() else {
        anyhow::bail!("usage: index_scale TEXTS SIZES QUERIES EF_LIST");
    };
    let sizes: Vec<usize> = sizes.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let queries: usize = queries.parse()?;
    let widths: Vec<usize> = widths
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let texts = std::fs::read_to_string(texts).with_context(|| format!("reading {texts}"))?;
    let texts: Vec<&str> = texts.lines().filter(|t| !t.trim().is_empty()).collect();
    anyhow::ensure!(
        texts.len() > 2 * queries,
        "{} texts are too few",
        texts.len()
    );

    let started = Instant::now();
    let mut real = match (
        std::env::var_os("INDEX_EVAL_VECTORS"),
        std::env::var_os("INDEX_VECTORS"),
    ) {
        (Some(file), _) => eval_vectors(std::path::Path::new(&file))?,
        (None, Some(file)) => embed_all_kept(&texts, std::path::Path::new(&file))?,
        (None, None) => embed_all(&texts)?,
    };
    anyhow::ensure!(
        real.len() > 2 * queries,
        "{} vectors are too few",
        real.len()
    );
    let fresh = real.split_off(real.len() - queries);
    eprintln!(
        "index_scale: {} real vectors in {:.1} s",
        real.len() + fresh.len(),
        started.elapsed().as_secs_f64()
    );
    for &size in &sizes {
        let line = measure(&real, &fresh, size, &widths)?;
        println!("{line}");
    }
    Ok(())
}

/// The vectors of an evaluation embedding cache (`frugal eval cache` fills one under
/// `target/frugal-embeddings-cache/`: records of a 32-byte SHA-256 of the text, then DIM
/// little-endian f32s), in file order.
fn eval_vectors(file: &std::path::Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let record = 32 + DIM * 4;
    anyhow::ensure!(
        bytes.len() % record == 0,
        "{} is not a file of {record}-byte records",
        file.display()
    );
    Ok(bytes
        .chunks_exact(record)
        .map(|r| {
            r[32..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect())
}

/// Every text's embedding, read from `file` when it holds those of the same texts, else
/// computed and written there: a little-endian u64 fingerprint of the texts, then DIM f32s a
/// text.
fn embed_all_kept(texts: &[&str], file: &std::path::Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let fingerprint = texts.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, t| {
        t.bytes()
            .chain([b'\n'])
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    });
    if let Ok(bytes) = std::fs::read(file) {
        let expected = 8 + texts.len() * DIM * 4;
        if bytes.len() == expected && bytes[..8] == fingerprint.to_le_bytes() {
            let floats: Vec<f32> = bytes[8..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            return Ok(floats.chunks_exact(DIM).map(<[f32]>::to_vec).collect());
        }
    }
    let vectors = embed_all(texts)?;
    let mut bytes = fingerprint.to_le_bytes().to_vec();
    for x in vectors.iter().flatten() {
        bytes.extend(x.to_le_bytes());
    }
    std::fs::write(file, bytes).with_context(|| format!("writing {}", file.display()))?;
    Ok(vectors)
}

/// Every text's embedding, in order. Batches are of texts of similar length, as a batch is
/// padded to its longest text.
fn embed_all(texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
    let paths = ModelPaths::from_env_or(std::path::Path::new("models"));
    let embedder = MiniLmEmbedder::load(&paths, &MiniLmOptions::default())?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut vectors = vec![Vec::new(); texts.len()];
    for batch in order.chunks(32) {
        let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
        for (&i, v) in batch.iter().zip(embedder.embed(&batch_texts)?) {
            vectors[i] = v;
        }
    }
    Ok(vectors)
}

/// Builds an index of `size` entries and measures it at each search width.
fn measure(
    real: &[Vec<f32>],
    fresh: &[Vec<f32>],
    size: usize,
    widths: &[usize],
) -> anyhow::Result<Value> {
    let mut rng = Xorshift::new(0x2100_0000 ^ size as u64);
    let mixed = std::env::var("INDEX_AUGMENT").is_ok_and(|a| a == "mix");
    let stored = if mixed {
        augmented(real, size, &mut rng)
    } else {
        interpolated(real, size, &mut rng)?
    };
    let near: Vec<Vec<f32>> = (0..fresh.len())
        .map(|_| {
            let source = pick(&mut rng, size);
            let v = &stored[source * DIM..(source + 1) * DIM];
            normalised(v.iter().map(|x| x + 0.06 * rng.next_centered()).collect())
        })
        .collect();

    let rss_before = resident_mib();
    let started = Instant::now();
    let items = stored
        .chunks_exact(DIM)
        .enumerate()
        .map(|(id, v)| (id as u64, v));
    let mut config = IndexConfig::default();
    if let Some(m) = std::env::var("INDEX_M").ok().and_then(|v| v.parse().ok()) {
        config.max_connections = m;
    }
    if let Some(ef) = std::env::var("INDEX_EF_CONSTRUCTION")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.ef_construction = ef;
    }
    if std::env::var("INDEX_RERANK").is_ok_and(|r| r == "off") {
        config.exact_rerank = false;
    }
    let mut index = VectorIndex::from_vectors(DIM, config, items)?;
    let build_s = started.elapsed().as_secs_f64();
    let index_mib = resident_mib() - rss_before;
    eprintln!("index_scale: {size} entries built in {build_s:.1} s, ~{index_mib:.0} MiB");

    let started = Instant::now();
    let exact_near = exact_nearest(&stored, &near)?;
    let exact_fresh = exact_nearest(&stored, fresh)?;
    // The same scans over the int8 vectors the index holds and searches with: what a perfect
    // search of the index could return, to tell search misses from int8 rounding.
    let stored_int8: Vec<f32> = stored.chunks_exact(DIM).flat_map(int8_round_trip).collect();
    let near_int8: Vec<Vec<f32>> = near.iter().map(|q| int8_round_trip(q)).collect();
    let fresh_int8: Vec<Vec<f32>> = fresh.iter().map(|q| int8_round_trip(q)).collect();
    let near_scan = Int8Scan {
        stored: &stored_int8,
        exact: exact_nearest(&stored_int8, &near_int8)?,
        queries: near_int8,
    };
    let fresh_scan = Int8Scan {
        stored: &stored_int8,
        exact: exact_nearest(&stored_int8, &fresh_int8)?,
        queries: fresh_int8,
    };
    eprintln!(
        "index_scale: exact scans of {} queries in {:.1} s",
        near.len() + fresh.len(),
        started.elapsed().as_secs_f64()
    );
    // The default width at this size (`IndexConfig::search_width`) is always measured.
    let default_width = IndexConfig::default().search_width(size);
    let mut widths = widths.to_vec();
    if !widths.contains(&default_width) {
        widths.push(default_width);
        widths.sort_unstable();
    }
    let mut searches = Vec::new();
    for &ef in &widths {
        index.set_ef_search(ef);
        let near_found = lookups(&index, &stored, &near, &exact_near, &near_scan)?;
        let fresh_found = lookups(&index, &stored, fresh, &exact_fresh, &fresh_scan)?;
        let mut all: Vec<f64> = near_found
            .ms
            .iter()
            .chain(&fresh_found.ms)
            .copied()
            .collect();
        all.sort_by(f64::total_cmp);
        searches.push(json!({
            "ef_search": ef,
            "p50_ms": round3(percentile(&all, 0.5)),
            "p99_ms": round3(percentile(&all, 0.99)),
            "near_duplicate": summary(near_found),
            "fresh": summary(fresh_found),
        }));
    }
    Ok(json!({
        "entries": size,
        "real_vectors": real.len().min(size),
        "augmentation": if mixed { "mix" } else { "neighbours" },
        "hnsw": index.is_hnsw(),
        "exact_rerank": config.exact_rerank,
        "build_s": round3(build_s),
        "index_mib": index_mib.round(),
        "queries_per_kind": fresh.len(),
        "default_ef_search": default_width,
        "searches": searches,
    }))
}

/// `size` unit vectors, flat: the real ones, then convex combinations of 2–3 of them with noise.
fn augmented(real: &[Vec<f32>], size: usize, rng: &mut Xorshift) -> Vec<f32> {
    let mut stored = real_first(real, size);
    while stored.len() < size * DIM {
        let parts = 2 + pick(rng, 2);
        let weights: Vec<f32> = (0..parts)
            .map(|_| rng.next_centered() + 0.5 + 1e-3)
            .collect();
        let total: f32 = weights.iter().sum();
        let mut v = vec![0.0f32; DIM];
        for w in weights {
            let base = &real[pick(rng, real.len())];
            for (x, b) in v.iter_mut().zip(base) {
                *x += w / total * b;
            }
        }
        stored.extend(normalised(
            v.iter().map(|x| x + 0.02 * rng.next_centered()).collect(),
        ));
    }
    stored
}

/// `size` unit vectors, flat: the real ones, then points between a real vector and one of its
/// ten nearest real neighbours (a uniform share of the way, SMOTE's oversampling) with noise of
/// ±0.01 per component, renormalised: new prompts among the real ones, where [`augmented`]'s
/// mixes of unrelated prompts fill the space between topics that no prompt embeds to.
fn interpolated(real: &[Vec<f32>], size: usize, rng: &mut Xorshift) -> anyhow::Result<Vec<f32>> {
    let mut stored = real_first(real, size);
    if stored.len() >= size * DIM {
        return Ok(stored);
    }
    let started = Instant::now();
    let items = real
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()));
    let mut index = VectorIndex::from_vectors(DIM, IndexConfig::default(), items)?;
    index.set_ef_search(64);
    let mut neighbours: Vec<Vec<usize>> = Vec::with_capacity(real.len());
    for v in real {
        let found = index.nearest(v, 11)?;
        neighbours.push(found.iter().skip(1).map(|n| n.id as usize).collect());
    }
    eprintln!(
        "index_scale: neighbours of {} real vectors in {:.1} s",
        real.len(),
        started.elapsed().as_secs_f64()
    );
    while stored.len() < size * DIM {
        let a = pick(rng, real.len());
        let Some(&b) = neighbours[a].get(pick(rng, neighbours[a].len().max(1))) else {
            continue;
        };
        let t = rng.next_centered() + 0.5;
        stored.extend(normalised(
            real[a]
                .iter()
                .zip(&real[b])
                .map(|(x, y)| x + t * (y - x) + 0.02 * rng.next_centered())
                .collect(),
        ));
    }
    Ok(stored)
}

/// Room for `size` unit vectors, flat, holding the real ones (as many as fit) first.
fn real_first(real: &[Vec<f32>], size: usize) -> Vec<f32> {
    let mut stored = Vec::with_capacity(size * DIM);
    for v in real.iter().take(size) {
        stored.extend(normalised(v.clone()));
    }
    stored
}

/// A uniform index below `n`.
fn pick(rng: &mut Xorshift, n: usize) -> usize {
    (((rng.next_centered() + 0.5) * n as f32) as usize).min(n - 1)
}

/// What the index found for one kind of query.
struct Found {
    /// Each lookup's time, ms.
    ms: Vec<f64>,
    /// Lookups whose first neighbour is the exact scan's.
    exact: usize,
    /// Lookups whose first neighbour is as near as the best by the index's own int8 vectors.
    exact_int8: usize,
    /// Each lookup's shortfall: the exact best cosine less the exact cosine of the neighbour
    /// the index returned first (0 when it is the best; 1 when it returned none).
    shortfall: Vec<f64>,
}

/// The exact scan over the int8 vectors (as f32): stored vectors, queries, each query's best.
struct Int8Scan<'a> {
    stored: &'a [f32],
    queries: Vec<Vec<f32>>,
    exact: Vec<(u64, f32)>,
}

/// Each query's lookup against the exact scan's answer, and against the int8 scan's (equal
/// int8 similarities count as found: the index cannot tell such vectors apart).
fn lookups(
    index: &VectorIndex,
    stored: &[f32],
    queries: &[Vec<f32>],
    exact: &[(u64, f32)],
    int8: &Int8Scan<'_>,
) -> anyhow::Result<Found> {
    let mut found = Found {
        ms: Vec::new(),
        exact: 0,
        exact_int8: 0,
        shortfall: Vec::new(),
    };
    for (i, (q, (best, best_similarity))) in queries.iter().zip(exact).enumerate() {
        let t = Instant::now();
        let got = index.nearest(q, 3)?;
        found.ms.push(t.elapsed().as_secs_f64() * 1e3);
        let first = got.first().map(|n| n.id);
        found.exact += usize::from(first == Some(*best));
        found.exact_int8 += usize::from(first.is_some_and(|id| {
            let at = id as usize * DIM;
            dot(&int8.queries[i], &int8.stored[at..at + DIM]) >= int8.exact[i].1 - 1e-6
        }));
        let shortfall = first.map_or(1.0, |id| {
            let at = id as usize * DIM;
            best_similarity - dot(q, &stored[at..at + DIM])
        });
        found.shortfall.push(f64::from(shortfall.max(0.0)));
    }
    Ok(found)
}

/// p50, p99, recall@1 and the shortfall of one kind of query: how often the first neighbour is
/// within 0.01 cosine of the best (among near-identical stored vectors, which one is first
/// does not change what the cache serves), and the shortfall's p99.
fn summary(found: Found) -> Value {
    let Found {
        mut ms,
        exact,
        exact_int8,
        mut shortfall,
    } = found;
    ms.sort_by(f64::total_cmp);
    shortfall.sort_by(f64::total_cmp);
    let n = ms.len().max(1) as f64;
    let close = shortfall.iter().filter(|&&s| s <= 0.01).count();
    json!({
        "n": ms.len(),
        "p50_ms": round3(percentile(&ms, 0.5)),
        "p99_ms": round3(percentile(&ms, 0.99)),
        "recall_at_1": round3(exact as f64 / n),
        "recall_at_1_int8": round3(exact_int8 as f64 / n),
        "within_0_01": round3(close as f64 / n),
        "shortfall_p99": (percentile(&shortfall, 0.99) * 1e4).round() / 1e4,
    })
}

/// The exact nearest stored vector (id, cosine) of each query: a full f32 scan, the queries
/// split across the cores.
fn exact_nearest(stored: &[f32], queries: &[Vec<f32>]) -> anyhow::Result<Vec<(u64, f32)>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = queries.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per_thread)
            .map(|part| s.spawn(move || scan(stored, part)))
            .collect();
        let mut found = Vec::with_capacity(queries.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow::anyhow!("an exact-scan thread panicked"))?;
            found.extend(part);
        }
        Ok(found)
    })
}

/// Exact nearest of each query, a block of stored vectors at a time.
fn scan(stored: &[f32], queries: &[Vec<f32>]) -> Vec<(u64, f32)> {
    let mut best = vec![(u64::MAX, f32::NEG_INFINITY); queries.len()];
    for (b, block) in stored.chunks(SCAN_BLOCK * DIM).enumerate() {
        for (q, best) in queries.iter().zip(&mut best) {
            for (i, v) in block.chunks_exact(DIM).enumerate() {
                let similarity = dot(q, v);
                if similarity > best.1 {
                    *best = ((b * SCAN_BLOCK + i) as u64, similarity);
                }
            }
        }
    }
    best
}

/// Dot product in eight independent partial sums, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
