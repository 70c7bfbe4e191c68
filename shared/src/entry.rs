//! A semantic entry as it travels through the stream: which question (its vector and text),
//! in which scope, has its answer under which exact key. The answer itself stays under its key
//! (one copy, one TTL); a replica fetches it on its first hit.
//!
//! Layout (little-endian), version 1: `[1u8][key 32][scope 32][created_ms u64][origin u64]
//! [question_len u32][question utf-8][dim u32][dim × f32]`.

use crate::client::SharedError;

/// The format version written first in every entry.
const VERSION: u8 = 1;
/// Longest question an entry may carry.
const MAX_QUESTION: usize = 1 << 20;
/// Most dimensions a vector may have.
const MAX_DIM: usize = 4096;

/// One semantic entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticEntry {
    /// The exact key of the answer.
    pub key: [u8; 32],
    /// The scope the entry belongs to (tenant, namespace, model, instructions).
    pub scope: [u8; 32],
    /// When the answer was stored, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The replica that stored it (a random id per process), so it skips its own entries.
    pub origin: u64,
    /// The question text, for the guards.
    pub question: String,
    /// The question's embedding.
    pub vector: Vec<f32>,
}

impl SemanticEntry {
    /// The entry as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(1 + 64 + 16 + 8 + self.question.len() + 4 * self.vector.len());
        out.push(VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.scope);
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&self.origin.to_le_bytes());
        out.extend_from_slice(&(self.question.len() as u32).to_le_bytes());
        out.extend_from_slice(self.question.as_bytes());
        out.extend_from_slice(&(self.vector.len() as u32).to_le_bytes());
        for x in &self.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// An entry from bytes written by [`SemanticEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, SharedError> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(malformed(format!("entry version {version}")));
        }
        let key = r.array()?;
        let scope = r.array()?;
        let created_ms = u64::from_le_bytes(r.array()?);
        let origin = u64::from_le_bytes(r.array()?);
        let question_len = u32::from_le_bytes(r.array()?) as usize;
        if question_len > MAX_QUESTION {
            return Err(malformed("question too long".into()));
        }
        let question = String::from_utf8(r.take(question_len)?.to_vec())
            .map_err(|_| malformed("question is not UTF-8".into()))?;
        let dim = u32::from_le_bytes(r.array()?) as usize;
        if dim > MAX_DIM {
            return Err(malformed("vector too long".into()));
        }
        let vector = r
            .take(dim * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if r.at != bytes.len() {
            return Err(malformed("trailing bytes".into()));
        }
        Ok(Self {
            key,
            scope,
            created_ms,
            origin,
            question,
            vector,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SharedError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| malformed("entry cut short".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SharedError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

fn malformed(what: String) -> SharedError {
    SharedError::Malformed(format!("semantic entry: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> SemanticEntry {
        SemanticEntry {
            key: [7; 32],
            scope: [9; 32],
            created_ms: 1_700_000_000_123,
            origin: 42,
            question: "What is the capital of Norway? ✓".into(),
            vector: vec![0.25, -1.5, 3.0e-7],
        }
    }

    #[test]
    fn an_entry_round_trips() {
        assert_eq!(SemanticEntry::decode(&entry().encode()).unwrap(), entry());
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let bytes = entry().encode();
        for cut in 0..bytes.len() {
            assert!(
                SemanticEntry::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SemanticEntry::decode(&longer).is_err());
        let mut other_version = bytes;
        other_version[0] = 2;
        assert!(SemanticEntry::decode(&other_version).is_err());
    }
}
