//! Lookup latency and memory of one large scope's index:
//! `cargo run --release -p frugal-cache --example index_bench -- [entries] [queries] [ef_search]
//! [vectors]`, where `ef_search` may be a comma-separated list (one build, each width measured).
//! Without `vectors`, they are pseudo-random unit vectors (384-d), the hardest case for a graph
//! index, and the queries are noisy copies of stored vectors, as near-duplicate prompts would
//! be. With `vectors` (an evaluation embedding cache, e.g.
//! `target/frugal-embeddings-cache/cache-eval-all-MiniLM-L6-v2-int8-max256.f32le`, filled by
//! `frugal eval cache`), the first `entries` real prompt embeddings are stored and the next
//! `queries` ones are looked up; recall@1 is then measured against an exact scan, over all
//! queries and over those whose true nearest neighbour is a cache hit (cosine ≥ 0.93); for the
//! latter, "served" counts the queries where any of the 3 neighbours returned is at ≥ 0.93,
//! which is what the semantic tier needs to answer (a near-tie may stand in for the nearest).

#[path = "support/resident.rs"]
mod resident;

use resident::resident_mib;

use std::time::Instant;

use frugal_cache::percentile;
use frugal_cache::synthetic::{normalised, Xorshift};
use frugal_cache::{IndexConfig, VectorIndex};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let entries: usize = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let queries: usize = args.next().map_or(Ok(2_000), |s| s.parse())?;
    let widths: Vec<usize> = match args.next() {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![IndexConfig::default().ef_search],
    };
    let ef_search = widths.first().copied().unwrap_or(1);
    let dim = 384;
    if let Some(path) = args.next() {
        return real_vectors(&path, entries, queries, &widths, dim);
    }
    let mut rng = Xorshift::new(0x9e37_79b9_7f4a_7c15);
    let mut unit = |noise_of: Option<&[f32]>| -> Vec<f32> {
        match noise_of {
            Some(base) => normalised(
                base.iter()
                    .map(|x| x + 0.02 * rng.next_centered())
                    .collect(),
            ),
            None => rng.unit_vector(dim),
        }
    };
    let rss_before = resident_mib();
    let mut index = empty_index(dim, ef_search);
    let started = Instant::now();
    let mut probes = Vec::new();
    for id in 0..entries {
        let v = unit(None);
        if id % (entries / queries.max(1)).max(1) == 0 && probes.len() < queries {
            probes.push((id as u64, unit(Some(&v))));
        }
        index.insert(id as u64, &v)?;
    }
    let build = started.elapsed();
    let rss_after = resident_mib();
    let mut ms = Vec::new();
    let mut found = 0;
    for (id, q) in &probes {
        let t = Instant::now();
        let hits = index.nearest(q, 3)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        found += usize::from(hits.first().is_some_and(|h| h.id == *id));
    }
    let (p50, p99) = p50_p99(&mut ms);
    println!(
        "entries {entries} (graph: {}), built in {:.1} s, RSS {:.0} MB (index ~{:.0} MB); \
         lookup p50 {:.3} ms p99 {:.3} ms; recall@1 of noisy copies {:.3}",
        index.is_hnsw(),
        build.as_secs_f64(),
        rss_after,
        rss_after - rss_before,
        p50,
        p99,
        found as f64 / probes.len().max(1) as f64
    );
    Ok(())
}

/// The benchmark over real prompt embeddings read from an evaluation embedding cache (records
/// of a 32-byte key and `dim` little-endian f32s).
fn real_vectors(
    path: &str,
    entries: usize,
    queries: usize,
    widths: &[usize],
    dim: usize,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(path)?;
    let vectors: Vec<Vec<f32>> = bytes
        .chunks_exact(32 + dim * 4)
        .map(|record| {
            record[32..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
        .collect();
    drop(bytes);
    anyhow::ensure!(
        vectors.len() >= entries + queries,
        "{path} holds {} vectors; {entries} entries and {queries} queries need more",
        vectors.len()
    );
    let (stored, rest) = vectors.split_at(entries);
    let probes = &rest[..queries];
    let rss_before = resident_mib();
    let mut index = empty_index(dim, widths.first().copied().unwrap_or(1));
    let started = Instant::now();
    for (id, v) in stored.iter().enumerate() {
        index.insert(id as u64, v)?;
    }
    let build = started.elapsed();
    let rss_after = resident_mib();
    println!(
        "real prompt vectors: entries {entries} (graph: {}), built in {:.1} s, RSS {:.0} MB \
         (index ~{:.0} MB)",
        index.is_hnsw(),
        build.as_secs_f64(),
        rss_after,
        rss_after - rss_before,
    );
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let exact: Vec<(u64, f32)> = probes
        .iter()
        .map(|q| {
            stored
                .iter()
                .enumerate()
                .map(|(i, v)| (i as u64, dot(q, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((u64::MAX, 0.0))
        })
        .collect();
    for &ef in widths {
        index.set_ef_search(ef);
        let (mut ms, mut found, mut hits, mut hits_found, mut hits_served) =
            (Vec::new(), 0, 0, 0, 0);
        for (q, &(best, similarity)) in probes.iter().zip(&exact) {
            let t = Instant::now();
            let got = index.nearest(q, 3)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            let right = got.first().is_some_and(|h| h.id == best);
            found += usize::from(right);
            if similarity >= 0.93 {
                hits += 1;
                hits_found += usize::from(right);
                hits_served += usize::from(got.iter().any(|h| h.similarity >= 0.93));
            }
        }
        let (p50, p99) = p50_p99(&mut ms);
        println!(
            "ef_search {ef}: lookup p50 {p50:.3} ms p99 {p99:.3} ms; recall@1 {:.3} over \
             {queries} queries; of the {hits} whose nearest is at cosine >= 0.93: recall@1 \
             {:.3}, served {:.3}",
            found as f64 / queries.max(1) as f64,
            hits_found as f64 / hits.max(1) as f64,
            hits_served as f64 / hits.max(1) as f64
        );
    }
    Ok(())
}

/// The 50th and 99th percentiles of latencies (sorts them); 0 for none.
fn p50_p99(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(ms, 0.5), percentile(ms, 0.99))
}

/// An empty index with the default tuning but `ef_search` (at every size: no widening).
fn empty_index(dim: usize, ef_search: usize) -> VectorIndex {
    let config = IndexConfig {
        ef_search,
        widen_every: 0,
        ..IndexConfig::default()
    };
    VectorIndex::new(dim, config)
}
