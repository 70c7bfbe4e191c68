//! Context trimming: cut retrieved documents and tool output down to a token cap, keeping the
//! sentences that answer the question.
//!
//! A trim runs in three steps, one file each: [`chunk`] splits every document into sentences
//! (code blocks and tables whole), [`rank`] scores each chunk against the question (BM25 fused
//! with embedding cosine, plus a document-level score, so a sentence from the document that
//! answers the question outranks a lucky match elsewhere), and [`select`] keeps the best chunks
//! until the cap, in their original order, with each kept document's title and compact `[…]`
//! marks where text was left out. Token counts use the model family's real tokenizer and the
//! result never exceeds the cap. Embeddings are computed in a few length-sorted batches; [`prepare`] and
//! [`Prepared::finish`] split a trim around that call for callers that bring their own vectors.

pub mod bm25;
pub mod chunk;
pub mod rank;
pub mod select;

use std::ops::Range;

use frugal_cache::{EmbedError, Embedder};

pub use chunk::{Chunk, ChunkKind};

/// One document of the context: retrieved text or tool output, with an optional title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Title, kept (on its own line, before the text) whenever any of the document is kept.
    pub title: Option<String>,
    /// The text that may be trimmed.
    pub text: String,
}

/// The tokenizer whose counts the cap is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// GPT-4o and later (tiktoken `o200k_base`).
    #[default]
    O200kBase,
    /// GPT-4 and GPT-3.5 (tiktoken `cl100k_base`).
    Cl100kBase,
}

impl Tokenizer {
    /// Exact token count of a text: the count tiktoken gives, from GitHub's `bpe` encoder,
    /// several times faster than tiktoken-rs (trimming counts every chunk). The text is split
    /// into pre-tokenizer pieces (words with their leading space, mostly) as tiktoken does, and
    /// each short piece's count is remembered per thread: a context repeats its words, and
    /// encoding a piece costs far more than looking it up.
    pub fn count(self, text: &str) -> usize {
        let bpe = self.bpe();
        PIECE_COUNTS.with(|memo| {
            let mut memo = memo.borrow_mut();
            let memo = &mut memo[self as usize];
            if memo.len() >= MAX_REMEMBERED_PIECES {
                memo.clear();
            }
            bpe.split(text)
                .map(|piece| {
                    if piece.len() > MAX_REMEMBERED_PIECE_BYTES {
                        return bpe.bpe.count(piece.as_bytes());
                    }
                    if let Some(&n) = memo.get(piece) {
                        return n as usize;
                    }
                    let n = bpe.bpe.count(piece.as_bytes());
                    memo.insert(piece.into(), n as u32);
                    n
                })
                .sum()
        })
    }

    /// Loads the tokenizer's tables now (o200k_base: ~50 ms and ~65 MiB resident, half of it
    /// the embedded dictionary's pages) rather than in the first request that counts tokens.
    pub fn load(self) {
        self.bpe();
    }

    fn bpe(self) -> &'static bpe_openai::Tokenizer {
        match self {
            Self::O200kBase => bpe_openai::o200k_base(),
            Self::Cl100kBase => bpe_openai::cl100k_base(),
        }
    }
}

/// Longest piece whose count is remembered (longer ones are rare and mostly unique).
const MAX_REMEMBERED_PIECE_BYTES: usize = 32;
/// Pieces remembered per tokenizer and thread before the memo starts afresh (a few MB).
const MAX_REMEMBERED_PIECES: usize = 1 << 16;

thread_local! {
    /// Token count of each recently counted piece, per [`Tokenizer`] (indexed by discriminant).
    static PIECE_COUNTS: std::cell::RefCell<[rustc_hash::FxHashMap<Box<str>, u32>; 2]> =
        std::cell::RefCell::new(Default::default());
}

/// How chunks are chosen; everything but [`Strategy::Frugal`] is a baseline for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Truncation: keep chunks from the start until the next one does not fit.
    KeepFirst,
    /// Sentence-level BM25 against the question.
    Bm25,
    /// Sentence-level embedding cosine against the question.
    Embedding,
    /// Document and sentence relevance, BM25 fused with embeddings, neighbours considered.
    #[default]
    Frugal,
    /// Frugal's ranking from BM25 alone: for when embeddings are too slow or unavailable.
    FrugalLexical,
}

impl Strategy {
    /// Every strategy, baselines first.
    pub const ALL: [Strategy; 5] = [
        Strategy::KeepFirst,
        Strategy::Bm25,
        Strategy::Embedding,
        Strategy::Frugal,
        Strategy::FrugalLexical,
    ];

    /// The strategy's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeepFirst => "keep_first",
            Self::Bm25 => "bm25",
            Self::Embedding => "embedding",
            Self::Frugal => "frugal",
            Self::FrugalLexical => "frugal_lexical",
        }
    }

    /// Whether the strategy needs embeddings.
    pub fn embeds(self) -> bool {
        matches!(self, Self::Embedding | Self::Frugal)
    }
}

/// What to trim, to how many tokens, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct TrimRequest {
    /// The question the context should answer (never trimmed itself).
    pub question: String,
    /// The documents, in context order.
    pub documents: Vec<Document>,
    /// Most tokens the trimmed documents may take together.
    pub cap_tokens: usize,
    /// Chunks every document keeps if the cap allows (0: a document may vanish entirely).
    pub min_keep_per_document: usize,
    /// Tokenizer the cap is counted with.
    pub tokenizer: Tokenizer,
    /// How chunks are chosen.
    pub strategy: Strategy,
}

impl TrimRequest {
    /// A chunk's text (empty if the chunk is not of this request).
    fn chunk_text(&self, chunk: &Chunk) -> &str {
        self.documents
            .get(chunk.document)
            .and_then(|d| d.text.get(chunk.range.clone()))
            .unwrap_or_default()
    }
}

/// One chunk of the input and whether the trim kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// Index of the document.
    pub document: usize,
    /// Byte range in that document's `text`.
    pub range: Range<usize>,
    /// What the chunk is.
    pub kind: ChunkKind,
    /// Whether it is in the output.
    pub kept: bool,
}

/// The trimmed context.
#[derive(Debug, Clone, PartialEq)]
pub struct Trimmed {
    /// Each document as it should be sent: `title\ntext` (or the text alone without a title),
    /// trimmed; an empty string for a document left out entirely.
    pub documents: Vec<String>,
    /// Tokens of the documents before trimming (sum over documents, titles included).
    pub tokens_before: usize,
    /// Tokens of `documents` (sum over documents, markers included); at most the cap.
    pub tokens_after: usize,
    /// Whether anything was cut (false: the documents passed through unchanged).
    pub trimmed: bool,
    /// Every chunk of every document, in order, with whether it was kept.
    pub chunks: Vec<ChunkOutcome>,
}

/// Why a trim failed.
#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    /// The embedder failed.
    #[error("cannot embed the context for trimming")]
    Embed(#[from] EmbedError),
    /// Precomputed vectors do not match the texts that needed them.
    #[error("expected {expected} embedding vectors, got {actual}")]
    VectorCount {
        /// Texts that needed a vector.
        expected: usize,
        /// Vectors given.
        actual: usize,
    },
}

/// Texts per embedding call. The model pads every text of a call to the longest one, so a
/// trim embeds its texts shortest first in calls of this many: a long sentence then costs its
/// own length, not every short sentence's too.
pub const EMBED_BATCH: usize = 32;

/// Trims a request's documents, embedding what its strategy needs (in length-sorted batches of
/// [`EMBED_BATCH`]).
pub fn trim(request: &TrimRequest, embedder: &dyn Embedder) -> Result<Trimmed, TrimError> {
    let prepared = prepare(request);
    let texts = prepared.embedding_texts();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut vectors = vec![Vec::new(); texts.len()];
    for batch in order.chunks(EMBED_BATCH) {
        let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
        for (&i, v) in batch.iter().zip(embedder.embed(&batch_texts)?) {
            vectors[i] = v;
        }
    }
    prepared.finish(&vectors)
}

/// A request split into chunks and counted, waiting for its embeddings.
#[derive(Debug)]
pub struct Prepared<'a> {
    request: &'a TrimRequest,
    chunks: Vec<Chunk>,
    tokens_before: usize,
}

/// Chunks and counts a request; the first half of [`trim`].
pub fn prepare(request: &TrimRequest) -> Prepared<'_> {
    let tokens_before = request
        .documents
        .iter()
        .map(|d| request.tokenizer.count(&render_whole(d)))
        .sum();
    let chunks = if tokens_before <= request.cap_tokens {
        Vec::new()
    } else {
        request
            .documents
            .iter()
            .enumerate()
            .flat_map(|(i, d)| chunk::chunk_document(i, &d.text, d.title.is_none()))
            .collect()
    };
    Prepared {
        request,
        chunks,
        tokens_before,
    }
}

impl Prepared<'_> {
    /// Tokens of the untrimmed documents.
    pub fn tokens_before(&self) -> usize {
        self.tokens_before
    }

    /// The texts to embed, in the order [`Prepared::finish`] wants their vectors; empty when
    /// the strategy needs none or nothing has to be cut.
    pub fn embedding_texts(&self) -> Vec<&str> {
        if !self.needs_cut() || !self.request.strategy.embeds() {
            return Vec::new();
        }
        rank::embedding_texts(self.request, &self.chunks)
    }

    fn needs_cut(&self) -> bool {
        self.tokens_before > self.request.cap_tokens
    }

    /// Ranks, selects and renders, given one vector per [`Prepared::embedding_texts`] entry.
    pub fn finish(self, vectors: &[Vec<f32>]) -> Result<Trimmed, TrimError> {
        let request = self.request;
        if !self.needs_cut() {
            return Ok(Trimmed {
                documents: request.documents.iter().map(render_whole).collect(),
                tokens_before: self.tokens_before,
                tokens_after: self.tokens_before,
                trimmed: false,
                chunks: Vec::new(),
            });
        }
        let expected = self.embedding_texts().len();
        if vectors.len() != expected {
            return Err(TrimError::VectorCount {
                expected,
                actual: vectors.len(),
            });
        }
        let scores = rank::score(request, &self.chunks, vectors);
        let selection = select::select(request, &self.chunks, &scores);
        let chunks = self
            .chunks
            .into_iter()
            .zip(&selection.kept)
            .map(|(c, &kept)| ChunkOutcome {
                document: c.document,
                range: c.range,
                kind: c.kind,
                kept,
            })
            .collect();
        Ok(Trimmed {
            documents: selection.documents,
            tokens_before: self.tokens_before,
            tokens_after: selection.tokens,
            trimmed: true,
            chunks,
        })
    }
}

/// A document as sent untrimmed: its title on the first line, then its text.
fn render_whole(document: &Document) -> String {
    match &document.title {
        Some(title) => format!("{title}\n{}", document.text),
        None => document.text.clone(),
    }
}

#[cfg(test)]
mod tests;
