//! Embeddings of evaluation texts kept on disk between runs, keyed by the SHA-256 of the text,
//! so re-running an offline evaluation does not embed tens of thousands of texts again.
//! Never used on the request path; the files belong under `target/` and are never committed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use frugal_cache::{EmbedError, Embedder};

/// Texts embedded per model call: large enough to amortise the call, small enough to report
/// progress often and to lose little when interrupted.
pub const BATCH: usize = 32;

/// Why embeddings could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum EmbedCacheError {
    /// The cache file could not be read or written.
    #[error("embedding cache {}", .path.display())]
    Io {
        /// The cache file or folder.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The embedder failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// What embedding a set of texts took.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EmbedTiming {
    /// Distinct texts that had to be embedded (not found on disk).
    pub embedded: usize,
    /// Distinct texts found on disk.
    pub from_disk: usize,
    /// Time spent in the embedder.
    pub embedding_time: Duration,
}

/// A disk cache of vectors for one embedder, in one append-only file of records
/// (32-byte SHA-256 of the text, then `dim` little-endian f32s).
#[derive(Debug, Clone)]
pub struct DiskEmbeddings {
    file: Option<PathBuf>,
}

impl DiskEmbeddings {
    /// A cache in `dir`, in a file named after `model` (which must identify the model and its
    /// settings, e.g. its token cap); `None` embeds everything afresh and writes nothing.
    pub fn new(dir: Option<&Path>, model: &str) -> Self {
        Self {
            file: dir.map(|d| d.join(format!("cache-eval-{model}.f32le"))),
        }
    }

    /// One vector per text, in order: read from disk where known, otherwise embedded in
    /// batches of [`BATCH`] (each distinct text once) and appended to the file.
    /// `progress` is called with (done, total) after each batch.
    pub fn embed(
        &self,
        embedder: &dyn Embedder,
        texts: &[&str],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<(Vec<Vec<f32>>, EmbedTiming), EmbedCacheError> {
        let dim = embedder.dim();
        let mut known = match &self.file {
            Some(path) => read_records(path, dim)?,
            None => HashMap::new(),
        };
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| Sha256::digest(t).into()).collect();
        let mut missing: Vec<(usize, [u8; 32])> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for (i, key) in keys.iter().enumerate() {
            if !known.contains_key(key) && queued.insert(*key) {
                missing.push((i, *key));
            }
        }
        let mut timing = EmbedTiming {
            embedded: missing.len(),
            from_disk: keys
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                .saturating_sub(missing.len()),
            embedding_time: Duration::ZERO,
        };
        let mut writer = match (&self.file, missing.is_empty()) {
            (Some(path), false) => Some(open_for_append(path, dim)?),
            _ => None,
        };
        let mut done = 0;
        for batch in missing.chunks(BATCH) {
            let batch_texts: Vec<&str> = batch.iter().map(|(i, _)| texts[*i]).collect();
            let started = Instant::now();
            let vectors = embedder.embed(&batch_texts)?;
            timing.embedding_time += started.elapsed();
            for ((_, key), vector) in batch.iter().zip(vectors) {
                if let (Some(w), Some(path)) = (writer.as_mut(), &self.file) {
                    write_record(w, key, &vector).map_err(|source| EmbedCacheError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
                known.insert(*key, vector);
            }
            if let (Some(w), Some(path)) = (writer.as_mut(), &self.file) {
                // A record is only useful whole: flush per batch so an interrupted run keeps
                // everything embedded so far.
                w.flush().map_err(|source| EmbedCacheError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            done += batch.len();
            progress(done, missing.len());
        }
        let vectors = keys
            .iter()
            .map(|key| known.get(key).cloned().unwrap_or_default())
            .collect();
        Ok((vectors, timing))
    }
}

fn write_record(w: &mut impl Write, key: &[u8; 32], vector: &[f32]) -> std::io::Result<()> {
    w.write_all(key)?;
    for x in vector {
        w.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

fn read_records(path: &Path, dim: usize) -> Result<HashMap<[u8; 32], Vec<f32>>, EmbedCacheError> {
    let io = |source| EmbedCacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(io)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io(e)),
    }
    let record = 32 + dim * 4;
    // A torn last record (interrupted write) is ignored; it will be embedded again.
    let mut map = HashMap::with_capacity(bytes.len() / record);
    for rec in bytes.chunks_exact(record) {
        let (key, vector) = rec.split_at(32);
        let mut k = [0u8; 32];
        k.copy_from_slice(key);
        let v = vector
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        map.insert(k, v);
    }
    Ok(map)
}

fn open_for_append(path: &Path, dim: usize) -> Result<BufWriter<File>, EmbedCacheError> {
    let io = |source| EmbedCacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    // Drop a torn tail first so later records stay aligned.
    let record = (32 + dim * 4) as u64;
    let len = file.metadata().map_err(io)?.len();
    let whole = len - len % record;
    if whole != len {
        file.set_len(whole).map_err(io)?;
    }
    Ok(BufWriter::new(file))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Deterministic 4-d "embedder" that counts the texts it was asked for.
    struct Counting(AtomicUsize);

    impl Embedder for Counting {
        fn dim(&self) -> usize {
            4
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts
                .iter()
                .map(|t| vec![t.len() as f32, 1.0, 0.0, 0.0])
                .collect())
        }
    }

    #[test]
    fn second_run_reads_everything_from_disk() {
        let dir = std::env::temp_dir().join(format!("frugal-embed-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = DiskEmbeddings::new(Some(&dir), "test");
        let embedder = Counting(AtomicUsize::new(0));
        let texts = ["a", "bb", "a", "ccc"];
        let (first, t1) = cache.embed(&embedder, &texts, |_, _| {}).unwrap();
        assert_eq!(
            embedder.0.load(Ordering::SeqCst),
            3,
            "each distinct text once"
        );
        assert_eq!((t1.embedded, t1.from_disk), (3, 0));
        let (second, t2) = cache.embed(&embedder, &texts, |_, _| {}).unwrap();
        assert_eq!(embedder.0.load(Ordering::SeqCst), 3);
        assert_eq!((t2.embedded, t2.from_disk), (0, 3));
        assert_eq!(first, second);
        assert_eq!(first[0], first[2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
