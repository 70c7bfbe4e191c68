//! Choosing chunks under the token cap and rendering the trimmed documents.
//!
//! Chunks are taken best score first while their estimated cost fits; then every document is
//! rendered (title, kept chunks in their original order with the original white space between
//! neighbours, `[…]` where text was left out) and counted exactly, and while the exact total is
//! over the cap the weakest kept chunk goes. The estimate is per-chunk token counts plus the
//! separators, so the exact pass rarely has anything to do.

use std::ops::Range;

use super::chunk::{Chunk, ChunkKind};
use super::{Strategy, TrimRequest};

/// What replaces left-out text.
pub const OMISSION: &str = "[…]";

/// The chosen chunks and the documents they render to.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Per chunk, whether it is kept.
    pub kept: Vec<bool>,
    /// Rendered documents (empty for a document with nothing kept).
    pub documents: Vec<String>,
    /// Exact tokens of `documents`, summed.
    pub tokens: usize,
}

/// Token costs the selection estimates with.
struct Costs {
    chunk: Vec<usize>,
    /// Title line (with its line break) per document.
    title: Vec<usize>,
    /// One omission mark with the white space around it.
    omission: usize,
}

/// Keeps the best chunks under the request's cap and renders the documents.
pub fn select(request: &TrimRequest, chunks: &[Chunk], scores: &[f32]) -> Selection {
    let tokenizer = request.tokenizer;
    let docs = document_ranges(request.documents.len(), chunks);
    let costs = Costs {
        chunk: chunks
            .iter()
            .map(|c| tokenizer.count(request.chunk_text(c)))
            .collect(),
        title: request
            .documents
            .iter()
            .map(|d| {
                d.title
                    .as_ref()
                    .map_or(0, |t| tokenizer.count(&format!("{t}\n")))
            })
            .collect(),
        omission: [
            format!(" {OMISSION} "),
            format!("\n{OMISSION}\n"),
            format!("x {OMISSION}\n"),
        ]
        .iter()
        .map(|m| tokenizer.count(m))
        .max()
        .unwrap_or(0),
    };
    // A document's lead heading (its first line, when it reads as a title) comes with it.
    let lead: Vec<Option<usize>> = docs
        .iter()
        .map(|r| Some(r.start).filter(|&i| r.contains(&i) && chunks[i].kind == ChunkKind::Heading))
        .collect();

    let mut kept = vec![false; chunks.len()];
    let mut estimate: Vec<usize> = vec![0; docs.len()];
    let mut total = 0usize;
    let cap = request.cap_tokens;
    let mut try_keep = |i: usize, kept: &mut Vec<bool>| -> bool {
        let d = chunks[i].document;
        if kept[i] {
            return true;
        }
        kept[i] = true;
        if let Some(l) = lead[d] {
            kept[l] = true;
        }
        let new = estimate_document(request, chunks, &docs[d], kept, &costs, d);
        if total - estimate[d] + new <= cap {
            total = total - estimate[d] + new;
            estimate[d] = new;
            true
        } else {
            kept[i] = false;
            if let Some(l) = lead[d] {
                // The lead stays only while something else of its document is kept.
                kept[l] = docs[d].clone().any(|j| j != l && kept[j]);
            }
            false
        }
    };

    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    if request.min_keep_per_document > 0 {
        for range in &docs {
            let mut best: Vec<usize> = order
                .iter()
                .copied()
                .filter(|i| range.contains(i))
                .collect();
            best.truncate(request.min_keep_per_document);
            for i in best {
                try_keep(i, &mut kept);
            }
        }
    }
    for &i in &order {
        if !try_keep(i, &mut kept) && request.strategy == Strategy::KeepFirst {
            break;
        }
    }

    // Exact pass: render, count, and drop the weakest kept chunk while over the cap.
    let mut documents: Vec<String> = (0..docs.len())
        .map(|d| render(request, chunks, &docs[d], &kept, d))
        .collect();
    let mut counts: Vec<usize> = documents.iter().map(|t| tokenizer.count(t)).collect();
    while counts.iter().sum::<usize>() > cap {
        let weakest = order
            .iter()
            .rev()
            .copied()
            .find(|&i| kept[i] && lead[chunks[i].document] != Some(i));
        let Some(i) = weakest else {
            // Only titles are left: drop every document.
            kept.iter_mut().for_each(|k| *k = false);
            documents.iter_mut().for_each(String::clear);
            counts.iter_mut().for_each(|c| *c = 0);
            break;
        };
        let d = chunks[i].document;
        kept[i] = false;
        if let Some(l) = lead[d] {
            kept[l] = docs[d].clone().any(|j| j != l && kept[j]);
        }
        documents[d] = render(request, chunks, &docs[d], &kept, d);
        counts[d] = tokenizer.count(&documents[d]);
    }
    Selection {
        kept,
        tokens: counts.iter().sum(),
        documents,
    }
}

/// The chunk indices of each document (chunks come in document order).
fn document_ranges(n_docs: usize, chunks: &[Chunk]) -> Vec<Range<usize>> {
    let mut start = 0;
    (0..n_docs)
        .map(|d| {
            while start < chunks.len() && chunks[start].document < d {
                start += 1;
            }
            let mut end = start;
            while end < chunks.len() && chunks[end].document == d {
                end += 1;
            }
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

/// The white space between two chunks of a document.
fn between<'a>(request: &'a TrimRequest, a: &Chunk, b: &Chunk) -> &'a str {
    request
        .documents
        .get(a.document)
        .and_then(|d| d.text.get(a.range.end..b.range.start))
        .unwrap_or_default()
}

/// Estimated tokens of a document rendered with the kept chunks.
fn estimate_document(
    request: &TrimRequest,
    chunks: &[Chunk],
    range: &Range<usize>,
    kept: &[bool],
    costs: &Costs,
    d: usize,
) -> usize {
    let mut tokens = 0;
    let mut prev: Option<usize> = None;
    for i in range.clone().filter(|&i| kept[i]) {
        tokens += costs.chunk[i];
        tokens += match prev {
            None if i == range.start => 0,
            None => costs.omission,
            // A line break between neighbours is a token of its own; a space joins the word.
            Some(p) if p + 1 == i => {
                usize::from(between(request, &chunks[p], &chunks[i]).contains('\n'))
            }
            Some(_) => costs.omission,
        };
        prev = Some(i);
    }
    match prev {
        None => 0,
        Some(p) => {
            tokens
                + costs.title[d]
                + if p + 1 == range.end {
                    0
                } else {
                    costs.omission
                }
        }
    }
}

/// A document with only its kept chunks: title line, chunks in order, original white space
/// between neighbours, an omission mark for every left-out stretch.
fn render(
    request: &TrimRequest,
    chunks: &[Chunk],
    range: &Range<usize>,
    kept: &[bool],
    d: usize,
) -> String {
    let mut out = String::new();
    let mut prev: Option<usize> = None;
    for i in range.clone().filter(|&i| kept[i]) {
        match prev {
            None => {
                if let Some(title) = request.documents.get(d).and_then(|doc| doc.title.as_ref()) {
                    out.push_str(title);
                    out.push('\n');
                }
                if i != range.start {
                    out.push_str(OMISSION);
                    out.push(' ');
                }
            }
            Some(p) => {
                let gap = between(request, &chunks[p], &chunks[i]);
                if p + 1 == i {
                    out.push_str(gap);
                } else if gap.contains('\n') {
                    out.push('\n');
                    out.push_str(OMISSION);
                    out.push('\n');
                } else {
                    out.push(' ');
                    out.push_str(OMISSION);
                    out.push(' ');
                }
            }
        }
        out.push_str(request.chunk_text(&chunks[i]));
        prev = Some(i);
    }
    if let Some(p) = prev {
        if p + 1 != range.end {
            out.push(' ');
            out.push_str(OMISSION);
        }
    }
    out
}
