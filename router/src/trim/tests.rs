//! Behaviour every strategy must keep: the cap holds exactly, order is kept, short contexts
//! pass through untouched, code blocks are never cut.

#![allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]

use frugal_cache::{EmbedError, Embedder};

use super::*;

/// A deterministic bag-of-words "embedder": texts sharing words point the same way.
struct Words;

impl Embedder for Words {
    fn dim(&self) -> usize {
        64
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 64];
                for w in bm25::terms(t) {
                    let h = w
                        .bytes()
                        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
                    v[(h % 64) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

fn filler(topic: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("The {topic} report number {i} lists routine figures for the quarter."))
        .collect::<Vec<_>>()
        .join(" ")
}

fn request(strategy: Strategy, cap_tokens: usize) -> TrimRequest {
    TrimRequest {
        question: "Which enzyme breaks down lactose in the gut?".into(),
        documents: vec![
            Document {
                title: Some("Weather almanac".into()),
                text: filler("weather", 12),
            },
            Document {
                title: Some("Digestive enzymes".into()),
                text: format!(
                    "{} Lactase is the enzyme that breaks down lactose in the gut. {}",
                    filler("digestion", 5),
                    filler("digestion", 5)
                ),
            },
            Document {
                title: None,
                text: filler("traffic", 12),
            },
        ],
        cap_tokens,
        min_keep_per_document: 0,
        tokenizer: Tokenizer::O200kBase,
        strategy,
    }
}

#[test]
fn every_strategy_stays_within_the_exact_cap() {
    for strategy in Strategy::ALL {
        for cap in [0, 5, 17, 40, 90, 200] {
            let req = request(strategy, cap);
            let out = trim(&req, &Words).unwrap();
            let counted: usize = out.documents.iter().map(|d| req.tokenizer.count(d)).sum();
            assert_eq!(counted, out.tokens_after, "{strategy:?} cap {cap}");
            assert!(
                out.tokens_after <= cap,
                "{strategy:?}: {} > {cap}",
                out.tokens_after
            );
            assert!(out.trimmed);
        }
    }
}

#[test]
fn kept_chunks_stay_in_their_original_order() {
    let req = request(Strategy::Frugal, 120);
    let out = trim(&req, &Words).unwrap();
    for (d, rendered) in out.documents.iter().enumerate() {
        let mut from = 0;
        for c in out.chunks.iter().filter(|c| c.document == d && c.kept) {
            let text = &req.documents[d].text[c.range.clone()];
            let at = rendered[from..].find(text).unwrap();
            from += at + text.len();
        }
    }
}

#[test]
fn frugal_keeps_the_answer_and_its_title() {
    let req = request(Strategy::Frugal, 60);
    let out = trim(&req, &Words).unwrap();
    let doc = &out.documents[1];
    assert!(doc.starts_with("Digestive enzymes\n"), "{doc}");
    assert!(doc.contains("Lactase is the enzyme"), "{doc}");
    assert!(doc.contains(select::OMISSION), "{doc}");
}

#[test]
fn context_under_the_cap_passes_through_byte_identical() {
    let mut req = request(Strategy::Frugal, 100_000);
    req.documents[2].text = "  odd   spacing\n\n kept as is ".into();
    let out = trim(&req, &Words).unwrap();
    assert!(!out.trimmed);
    assert_eq!(out.tokens_before, out.tokens_after);
    assert_eq!(out.documents[2], req.documents[2].text);
    assert_eq!(
        out.documents[1],
        format!("Digestive enzymes\n{}", req.documents[1].text)
    );
}

#[test]
fn code_block_is_kept_whole_or_not_at_all() {
    let code = "```python\ndef lactase():\n    return 'breaks down lactose. in the gut'\n```";
    let mut req = request(Strategy::Bm25, 0);
    req.documents[1].text = format!("Lactose notes follow.\n{code}\n{}", filler("digestion", 6));
    for cap in [10, 30, 45, 60, 80] {
        req.cap_tokens = cap;
        let out = trim(&req, &Words).unwrap();
        let doc = &out.documents[1];
        let has_start = doc.contains("```python");
        let has_end = doc.contains("in the gut'\n```");
        assert_eq!(has_start, has_end, "cap {cap}: {doc}");
        let code_chunks: Vec<_> = out
            .chunks
            .iter()
            .filter(|c| c.kind == ChunkKind::Code)
            .collect();
        assert_eq!(code_chunks.len(), 1);
        assert_eq!(code_chunks[0].kept, has_start);
    }
}

#[test]
fn keep_first_truncates_at_the_first_chunk_that_does_not_fit() {
    let req = request(Strategy::KeepFirst, 50);
    let out = trim(&req, &Words).unwrap();
    let kept: Vec<bool> = out.chunks.iter().map(|c| c.kept).collect();
    let first_dropped = kept.iter().position(|k| !k).unwrap();
    assert!(kept[first_dropped..].iter().all(|k| !k));
    assert!(first_dropped > 0);
}

#[test]
fn min_keep_gives_every_document_something() {
    let mut req = request(Strategy::Frugal, 150);
    req.min_keep_per_document = 1;
    let out = trim(&req, &Words).unwrap();
    assert!(
        out.documents.iter().all(|d| !d.is_empty()),
        "{:?}",
        out.documents
    );
    assert!(out.tokens_after <= 150);
}

#[test]
fn precomputed_vectors_must_match_the_texts() {
    let req = request(Strategy::Embedding, 20);
    let err = prepare(&req).finish(&[]).unwrap_err();
    assert!(matches!(err, TrimError::VectorCount { actual: 0, .. }));
}

#[test]
fn token_counts_match_tiktoken_exactly() {
    let samples = [
        "",
        "Hello, world!",
        "  leading and trailing spaces  \n\n\ttabs\tand\r\nCRLF",
        "Vitamin D₃ (cholecalciferol) cut hip fractures by 20 % in 2,000 adults ≥ 65 y.",
        "naïve café façade — “quotes” and 'single' ones… ✓ 日本語のテキスト 🚀🚀 emoji",
        "fn main() { let x: Vec<u64> = (0..10).map(|i| i * i).collect(); println!(\"{x:?}\"); }",
        "| col a | col b |\n|---|---|\n| 1.5e-3 | 0xDEADBEEF |",
        "https://example.com/path?q=1&r=two#frag and /usr/local/bin/frugal --flag=value",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Ünïcödé NFC vs NFD: é vs e\u{301}, Å vs A\u{30a}",
    ];
    for text in samples {
        assert_eq!(
            Tokenizer::O200kBase.count(text),
            tiktoken_rs::o200k_base_singleton()
                .encode_ordinary(text)
                .len(),
            "o200k: {text:?}"
        );
        assert_eq!(
            Tokenizer::Cl100kBase.count(text),
            tiktoken_rs::cl100k_base_singleton()
                .encode_ordinary(text)
                .len(),
            "cl100k: {text:?}"
        );
    }
}

#[test]
fn of_two_equally_relevant_documents_the_earlier_scores_higher() {
    let answer = "Lactase is the enzyme that breaks down lactose in the gut.";
    let mut req = request(Strategy::FrugalLexical, 15);
    req.documents = (0..3)
        .map(|i| Document {
            title: None,
            text: if i < 2 {
                answer.to_owned()
            } else {
                filler("weather", 2)
            },
        })
        .collect();
    let prepared = prepare(&req);
    let scores = rank::score(&req, &prepared.chunks, &[]);
    assert!(
        scores[0] > scores[1],
        "retrieval order breaks the tie: {scores:?}"
    );
    let out = trim(&req, &Words).unwrap();
    assert_eq!(out.documents[0], answer);
    assert!(out.documents[1].is_empty());
}
