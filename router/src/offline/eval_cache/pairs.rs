//! Labelled prompt pairs for evaluating the cache: the JSON Lines schema of
//! `../shared/data/cache` (`a`, `b`, `duplicate`, optional `hard`), gzip-compressed or plain.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One labelled pair: would serving `a`'s answer for `b` be right?
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pair {
    /// The prompt whose answer is cached.
    pub a: String,
    /// The prompt that looks the cache up.
    pub b: String,
    /// Whether the two ask the same thing (so a hit would be correct).
    pub duplicate: bool,
    /// A non-duplicate that is lexically close (a hard negative); false when absent.
    #[serde(default)]
    pub hard: bool,
}

/// Why a pairs file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    /// The file could not be opened or read (or its gzip stream is broken).
    #[error("cannot read {}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the file system or the decompressor said.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a pair object.
    #[error("{}:{line}: not a pair (`a`, `b`, `duplicate`, optional `hard`)", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: usize,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
}

/// Reads every pair of a JSON Lines file; gzip is recognised by its magic bytes, not the name.
/// Blank lines are skipped; unknown fields (`id`, `jaccard`, …) are ignored.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>, PairsError> {
    let io = |source| PairsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let gzip = file.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut pairs = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let pair = serde_json::from_str(&line).map_err(|source| PairsError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        pairs.push(pair);
    }
    Ok(pairs)
}

/// Every `every`-th pair, starting with the first: a deterministic subsample.
pub fn every_kth(pairs: Vec<Pair>, every: usize) -> Vec<Pair> {
    if every <= 1 {
        return pairs;
    }
    pairs.into_iter().step_by(every).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use std::io::Write;

    use super::*;

    const ROWS: &str = "{\"id\":\"x\",\"a\":\"What is 2+2?\",\"b\":\"What is 2+3?\",\"duplicate\":false,\"hard\":true}\n\
        \n\
        {\"a\":\"How do I learn Rust?\",\"b\":\"How can I learn Rust?\",\"duplicate\":true}\n";

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("frugal-pairs-{}-{name}", std::process::id()))
    }

    #[test]
    fn reads_plain_and_gzip_alike() {
        let plain = scratch("plain.jsonl");
        std::fs::write(&plain, ROWS).unwrap();
        let gz = scratch("rows.jsonl.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(ROWS.as_bytes()).unwrap();
        enc.finish().unwrap();

        let a = read_pairs(&plain).unwrap();
        let b = read_pairs(&gz).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert!(a[0].hard && !a[0].duplicate);
        assert!(!a[1].hard && a[1].duplicate);
        std::fs::remove_file(plain).unwrap();
        std::fs::remove_file(gz).unwrap();
    }

    #[test]
    fn bad_line_is_reported_with_its_number() {
        let path = scratch("bad.jsonl");
        std::fs::write(&path, format!("{ROWS}{{\"a\":1}}\n")).unwrap();
        let err = read_pairs(&path).unwrap_err();
        assert!(err.to_string().contains(":4:"), "{err}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn every_kth_keeps_the_first_and_every_kth_after() {
        let pairs = read_pairs_from_str(ROWS);
        assert_eq!(every_kth(pairs.clone(), 1).len(), 2);
        assert_eq!(every_kth(pairs, 2).len(), 1);
    }

    fn read_pairs_from_str(s: &str) -> Vec<Pair> {
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
