//! Splitting a document's text into the units trimming keeps or drops: sentences, with fenced
//! code blocks and markdown tables kept whole (half a table or half a function is worse than
//! none) and markdown headings on their own.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// What a chunk is, which decides how it may be cut and how it is ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkKind {
    /// A document's first line when it reads like a title, or a markdown heading.
    Heading,
    /// A prose sentence (or one line of line-oriented text).
    Sentence,
    /// A fenced code block, kept whole or not at all.
    Code,
    /// A markdown table, kept whole or not at all.
    Table,
}

/// One chunk: a byte range of its document's text, without surrounding white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the document in the request.
    pub document: usize,
    /// Byte range in that document's text.
    pub range: Range<usize>,
    /// What the chunk is.
    pub kind: ChunkKind,
}

/// A first line longer than this is prose, not a title.
const MAX_TITLE_LINE_CHARS: usize = 100;

/// Sentence fragments with fewer letters or digits than this ("1.", "•", "(a)") are glued to
/// the next sentence: alone they cost tokens and carry nothing.
const MIN_ALNUM: usize = 3;

/// Splits one document's text into chunks, in order. With `first_line_is_title`, a short first
/// line that does not end a sentence becomes a [`ChunkKind::Heading`].
pub fn chunk_document(document: usize, text: &str, first_line_is_title: bool) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut prose_start: Option<usize> = None;
    let mut lines = Lines::new(text);
    while let Some(line) = lines.next() {
        let content = text[line.clone()].trim_start();
        let block = if let Some(fence) = fence_of(content) {
            let mut end = line.end;
            for next in lines.by_ref() {
                end = next.end;
                if text[next].trim_start().starts_with(fence) {
                    break;
                }
            }
            Some((line.start..end, ChunkKind::Code))
        } else if content.starts_with('|') && lines.peek_starts_with(text, '|') {
            let mut end = line.end;
            while lines.peek_starts_with(text, '|') {
                if let Some(next) = lines.next() {
                    end = next.end;
                }
            }
            Some((line.start..end, ChunkKind::Table))
        } else if is_markdown_heading(content) {
            Some((line.clone(), ChunkKind::Heading))
        } else {
            None
        };
        match block {
            Some((range, kind)) => {
                if let Some(start) = prose_start.take() {
                    push_sentences(&mut chunks, document, text, start..line.start);
                }
                push_trimmed(&mut chunks, document, text, range, kind);
            }
            None => {
                prose_start.get_or_insert(line.start);
            }
        }
    }
    if let Some(start) = prose_start {
        push_sentences(&mut chunks, document, text, start..text.len());
    }
    if first_line_is_title {
        mark_title_line(&mut chunks, text);
    }
    chunks
}

/// The fence a line opens (```` ``` ```` or `~~~`), if it opens one.
fn fence_of(line: &str) -> Option<&'static str> {
    if line.starts_with("```") {
        Some("```")
    } else if line.starts_with("~~~") {
        Some("~~~")
    } else {
        None
    }
}

fn is_markdown_heading(line: &str) -> bool {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    (1..=6).contains(&hashes) && line[hashes..].starts_with([' ', '\t'])
}

/// Splits prose into sentences (UAX #29; a line break always ends one), gluing fragments
/// without enough letters to the next sentence.
fn push_sentences(chunks: &mut Vec<Chunk>, document: usize, text: &str, range: Range<usize>) {
    let prose = &text[range.clone()];
    let mut pending: Option<usize> = None;
    for (offset, sentence) in prose.split_sentence_bound_indices() {
        let start = pending.unwrap_or(range.start + offset);
        let end = range.start + offset + sentence.len();
        let alnum = text[start..end]
            .chars()
            .filter(|c| c.is_alphanumeric())
            .take(MIN_ALNUM)
            .count();
        if alnum < MIN_ALNUM && end < range.end {
            pending = Some(start);
            continue;
        }
        pending = None;
        push_trimmed(chunks, document, text, start..end, ChunkKind::Sentence);
    }
}

fn push_trimmed(
    chunks: &mut Vec<Chunk>,
    document: usize,
    text: &str,
    range: Range<usize>,
    kind: ChunkKind,
) {
    let slice = &text[range.clone()];
    let start = range.start + (slice.len() - slice.trim_start().len());
    let end = range.start + slice.trim_end().len();
    if start < end {
        chunks.push(Chunk {
            document,
            range: start..end,
            kind,
        });
    }
}

/// Makes the first chunk a heading when it is the whole first line, short, and not a sentence.
fn mark_title_line(chunks: &mut [Chunk], text: &str) {
    let Some(first) = chunks.first_mut() else {
        return;
    };
    if first.kind != ChunkKind::Sentence {
        return;
    }
    let line = &text[first.range.clone()];
    let ends_line = text[first.range.end..].starts_with(['\n', '\r']);
    let whole_line = !text[..first.range.start].contains('\n');
    let sentence_end = line.ends_with(['.', '!', '?', ':', ';', ',']);
    if ends_line && whole_line && !sentence_end && line.chars().count() <= MAX_TITLE_LINE_CHARS {
        first.kind = ChunkKind::Heading;
    }
}

/// Byte ranges of a text's lines, each including its line break.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn peek_starts_with(&self, text: &str, c: char) -> bool {
        self.pos < text.len()
            && text[self.pos..]
                .trim_start_matches([' ', '\t'])
                .starts_with(c)
    }
}

impl Iterator for Lines<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i + 1);
        self.pos = end;
        Some(start..end)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test should panic on the unexpected")]
mod tests {
    use super::*;

    fn texts<'a>(text: &'a str, chunks: &[Chunk]) -> Vec<(&'a str, ChunkKind)> {
        chunks
            .iter()
            .map(|c| (&text[c.range.clone()], c.kind))
            .collect()
    }

    #[test]
    fn prose_splits_into_sentences_without_white_space() {
        let text = "  The cat sat. It was happy!  Then it left.\n";
        let chunks = chunk_document(0, text, false);
        assert_eq!(
            texts(text, &chunks),
            vec![
                ("The cat sat.", ChunkKind::Sentence),
                ("It was happy!", ChunkKind::Sentence),
                ("Then it left.", ChunkKind::Sentence),
            ]
        );
    }

    #[test]
    fn code_block_is_one_atomic_chunk() {
        let text = "Run this. It works.\n```rust\nfn main() {\n    println!(\"Hi. There.\");\n}\n```\nDone.";
        let chunks = chunk_document(0, text, false);
        let got = texts(text, &chunks);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(
            got[2],
            (
                "```rust\nfn main() {\n    println!(\"Hi. There.\");\n}\n```",
                ChunkKind::Code
            )
        );
        assert_eq!(got[3], ("Done.", ChunkKind::Sentence));
    }

    #[test]
    fn unclosed_code_block_runs_to_the_end() {
        let text = "Intro.\n~~~\nlet a = 1. b\n";
        let chunks = chunk_document(0, text, false);
        assert_eq!(
            texts(text, &chunks)[1],
            ("~~~\nlet a = 1. b", ChunkKind::Code)
        );
    }

    #[test]
    fn markdown_table_is_one_atomic_chunk() {
        let text = "Prices follow.\n| model | price |\n|---|---|\n| a. | 1. |\nAfter the table.";
        let chunks = chunk_document(0, text, false);
        assert_eq!(
            texts(text, &chunks),
            vec![
                ("Prices follow.", ChunkKind::Sentence),
                (
                    "| model | price |\n|---|---|\n| a. | 1. |",
                    ChunkKind::Table
                ),
                ("After the table.", ChunkKind::Sentence),
            ]
        );
    }

    #[test]
    fn short_first_line_is_a_title_and_markdown_headings_stand_alone() {
        let text = "Release notes\nThe build is faster.\n## Fixes\nA crash is gone.";
        let chunks = chunk_document(3, text, true);
        assert_eq!(
            texts(text, &chunks),
            vec![
                ("Release notes", ChunkKind::Heading),
                ("The build is faster.", ChunkKind::Sentence),
                ("## Fixes", ChunkKind::Heading),
                ("A crash is gone.", ChunkKind::Sentence),
            ]
        );
        assert!(chunks.iter().all(|c| c.document == 3));
        let sentence_first = chunk_document(0, "It rained.\nThen it stopped.", true);
        assert_eq!(sentence_first[0].kind, ChunkKind::Sentence);
    }

    #[test]
    fn tiny_fragments_join_the_next_sentence() {
        let text = "1. First point here.";
        let chunks = chunk_document(0, text, false);
        assert_eq!(
            texts(text, &chunks),
            vec![("1. First point here.", ChunkKind::Sentence)]
        );
    }
}
