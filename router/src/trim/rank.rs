//! Scoring chunks against the question, per [`Strategy`]: higher is kept first.
//!
//! Frugal's score has two stages. Which documents matter: BM25 over whole documents (title and
//! text) fused with the cosine of the question to the document's title and to the centroid of its
//! sentences; without embeddings, a small head start for the documents that come first (retrieval
//! order) stands in for the cosine. Which sentences: sentence BM25 fused with sentence cosine, plus
//! a share of the better neighbour's relevance (an answer often spans two sentences, and the
//! sentence before a result often names what was measured). Each signal is scaled to [0, 1] within
//! the request, so the fusion weights mean the same for short and long contexts.

use frugal_cache::cosine;

use super::bm25::{terms, Bm25};
use super::chunk::Chunk;
use super::{Strategy, TrimRequest};

// Chosen on the SciFact development split at a cap of 25% (`frugal eval trim`); gold recall
// stays within about ±0.01 for nearby values, so these are round numbers, not a fitted optimum.

/// Share of a sentence's (and a document's) relevance that comes from embeddings, the rest
/// from BM25: cosine catches paraphrase, BM25 the rare exact terms (numbers, gene names).
pub const SEMANTIC_SHARE: f32 = 0.6;
/// Share of the document's embedding relevance in its whole-document score.
pub const DOCUMENT_SEMANTIC_SHARE: f32 = 0.7;
/// Share of a document's score that is its best sentence's relevance (the rest is the
/// whole-document score): one sentence that answers the question makes the document matter.
pub const BEST_SENTENCE_SHARE: f32 = 0.3;
/// Weight of the document's relevance against the sentence's own (both in [0, 1]): above 1,
/// so that sentences of the document that answers stay together ahead of lone matches.
pub const DOCUMENT_WEIGHT: f32 = 1.5;
/// Weight of the better neighbour's relevance.
pub const NEIGHBOUR_WEIGHT: f32 = 0.2;
/// Weight of the document's place in the context, `1 / (1 + index)`, in its score when there
/// are no embeddings: retrievers put what they found most relevant first, so the first document
/// gets this much of a head start, the second half of it, and so on. Small, so that relevance
/// decides and order only breaks near-ties. It stands in for the semantic judgement the lexical
/// strategy lacks (SciFact's candidates come in BM25 order: frugal_lexical +0.014 gold recall at
/// 25%); with embeddings it added nothing (frugal 0.874 -> 0.868), so there it is 0.
pub const ORDER_WEIGHT: f32 = 0.2;

/// Fusion weights of one trim.
#[derive(Debug, Clone, Copy)]
struct Weights {
    semantic: f32,
    document: f32,
    neighbour: f32,
    doc_semantic: f32,
    best_sentence: f32,
    order: f32,
}

impl Weights {
    /// The weights; without embeddings, the lexical signals carry everything.
    fn new(with_embeddings: bool) -> Self {
        let semantic = |share: f32| if with_embeddings { share } else { 0.0 };
        Self {
            semantic: semantic(SEMANTIC_SHARE),
            document: DOCUMENT_WEIGHT,
            neighbour: NEIGHBOUR_WEIGHT,
            doc_semantic: semantic(DOCUMENT_SEMANTIC_SHARE),
            best_sentence: BEST_SENTENCE_SHARE,
            order: if with_embeddings { 0.0 } else { ORDER_WEIGHT },
        }
    }
}

/// The texts whose vectors [`score`] needs, in order: the question, then (for Frugal) every
/// document title, then every chunk.
pub fn embedding_texts<'a>(request: &'a TrimRequest, chunks: &[Chunk]) -> Vec<&'a str> {
    let mut texts = vec![request.question.as_str()];
    if request.strategy == Strategy::Frugal {
        texts.extend(request.documents.iter().filter_map(|d| d.title.as_deref()));
    }
    texts.extend(chunks.iter().map(|c| request.chunk_text(c)));
    texts
}

/// One score per chunk; `vectors` as [`embedding_texts`] asked for them (empty for strategies
/// without embeddings).
pub fn score(request: &TrimRequest, chunks: &[Chunk], vectors: &[Vec<f32>]) -> Vec<f32> {
    match request.strategy {
        // Earlier is better: selection then keeps a prefix.
        Strategy::KeepFirst => (0..chunks.len()).map(|i| -(i as f32)).collect(),
        Strategy::Bm25 => sentence_bm25(request, chunks),
        Strategy::Embedding => {
            let (question, rest) = vectors.split_first().unzip();
            let rest = rest.unwrap_or_default();
            let question = question.map(Vec::as_slice).unwrap_or_default();
            rest.iter().map(|v| cosine(question, v)).collect()
        }
        Strategy::Frugal | Strategy::FrugalLexical => frugal(request, chunks, vectors),
    }
}

fn chunk_terms(request: &TrimRequest, chunks: &[Chunk]) -> Vec<Vec<String>> {
    chunks
        .iter()
        .map(|c| terms(request.chunk_text(c)))
        .collect()
}

fn sentence_bm25(request: &TrimRequest, chunks: &[Chunk]) -> Vec<f32> {
    Bm25::new(&chunk_terms(request, chunks)).scores(&terms(&request.question))
}

fn frugal(request: &TrimRequest, chunks: &[Chunk], vectors: &[Vec<f32>]) -> Vec<f32> {
    let w = Weights::new(!vectors.is_empty());
    let empty: &[f32] = &[];
    let question = vectors.first().map_or(empty, Vec::as_slice);
    let titles = request
        .documents
        .iter()
        .filter(|d| d.title.is_some())
        .count();
    let title_vectors = vectors.get(1..1 + titles).unwrap_or_default();
    let chunk_vectors = vectors.get(1 + titles..).unwrap_or_default();

    // Which sentences: lexical and semantic relevance of each chunk on its own.
    let question_terms = terms(&request.question);
    let sentence_terms = chunk_terms(request, chunks);
    let lexical = unit_scale(&Bm25::new(&sentence_terms).scores(&question_terms));
    let cosines: Vec<f32> = chunk_vectors.iter().map(|v| cosine(question, v)).collect();
    let semantic = unit_scale(&cosines);
    let own: Vec<f32> = (0..chunks.len())
        .map(|i| {
            (1.0 - w.semantic) * lexical.get(i).copied().unwrap_or(0.0)
                + w.semantic * semantic.get(i).copied().unwrap_or(0.0)
        })
        .collect();

    // Which documents: BM25 over whole documents, and the question's cosine to each title and
    // to the centroid of the document's sentences.
    let n_docs = request.documents.len();
    // A document's words are its title's and its chunks' (chunks cover its text).
    let mut doc_terms: Vec<Vec<String>> = request
        .documents
        .iter()
        .map(|d| terms(d.title.as_deref().unwrap_or_default()))
        .collect();
    for (chunk, t) in chunks.iter().zip(sentence_terms) {
        if let Some(d) = doc_terms.get_mut(chunk.document) {
            d.extend(t);
        }
    }
    let doc_lexical = unit_scale(&Bm25::new(&doc_terms).scores(&question_terms));
    let mut centroids = vec![vec![0.0f32; question.len()]; n_docs];
    for (chunk, v) in chunks.iter().zip(chunk_vectors) {
        if let Some(c) = centroids.get_mut(chunk.document) {
            for (a, b) in c.iter_mut().zip(v) {
                *a += b;
            }
        }
    }
    let mut title_iter = title_vectors.iter();
    let doc_cosine: Vec<f32> = request
        .documents
        .iter()
        .zip(&mut centroids)
        .map(|(d, centroid)| {
            normalise(centroid);
            let body = cosine(question, centroid);
            let title = d
                .title
                .as_ref()
                .and_then(|_| title_iter.next())
                .map(|t| cosine(question, t));
            title.map_or(body, |t| 0.5 * (t + body))
        })
        .collect();
    let doc_semantic = unit_scale(&doc_cosine);
    let mut best = vec![0.0f32; n_docs];
    for (chunk, s) in chunks.iter().zip(&own) {
        if let Some(b) = best.get_mut(chunk.document) {
            *b = b.max(*s);
        }
    }
    let document: Vec<f32> = (0..n_docs)
        .map(|d| {
            let whole = (1.0 - w.doc_semantic) * doc_lexical.get(d).copied().unwrap_or(0.0)
                + w.doc_semantic * doc_semantic.get(d).copied().unwrap_or(0.0);
            (1.0 - w.best_sentence) * whole + w.best_sentence * best[d] + w.order / (1.0 + d as f32)
        })
        .collect();

    (0..chunks.len())
        .map(|i| {
            let chunk = &chunks[i];
            let same_doc = |j: usize| chunks.get(j).filter(|c| c.document == chunk.document);
            let neighbour = [i.checked_sub(1), Some(i + 1)]
                .into_iter()
                .flatten()
                .filter(|&j| same_doc(j).is_some())
                .map(|j| own[j])
                .fold(0.0f32, f32::max);
            own[i]
                + w.document * document.get(chunk.document).copied().unwrap_or(0.0)
                + w.neighbour * neighbour
        })
        .collect()
}

/// Scales scores linearly to [0, 1] (all zeros when they are all equal).
fn unit_scale(scores: &[f32]) -> Vec<f32> {
    let (lo, hi) = scores
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    let span = hi - lo;
    if !span.is_finite() || span <= f32::EPSILON {
        return vec![0.0; scores.len()];
    }
    scores.iter().map(|s| (s - lo) / span).collect()
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v {
            *x /= norm;
        }
    }
}
