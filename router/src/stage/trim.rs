//! The trim stage: finds the context in a request (messages with role `tool`, and text inside
//! marker tags such as `<document>…</document>` in user messages), trims it all to the policy's
//! token cap with [`crate::trim`], and writes the trimmed text back in place. Instructions,
//! the system prompt and the user's own words are never touched. Past the embedding deadline
//! the trim ranks without embeddings (BM25 only) rather than not at all.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::embed_worker::EmbedWorker;
use crate::metrics;
use crate::policy::{TrimMode, TrimPolicy};
use crate::trim::{self, Document, Strategy, TrimRequest};

/// What trimming did to a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimOutcome {
    /// Context tokens before trimming (in the policy's tokenizer).
    pub before: u64,
    /// Context tokens after (equal to `before` when nothing was cut or in shadow mode).
    pub after: u64,
    /// Tokens removed from the request that goes upstream (0 in shadow mode).
    pub removed: u64,
    /// Tokens that would have been removed (shadow mode), or were.
    pub would_remove: u64,
}

/// Where one document sits in the request body.
#[derive(Debug, Clone)]
enum Place {
    /// The whole text of message `message` (a tool message).
    Message { message: usize },
    /// Bytes `range` of the text of message `message` (inside marker tags).
    Span {
        message: usize,
        range: std::ops::Range<usize>,
    },
}

/// Trims `body` in place under `policy`; `None` when the policy does not trim or the request
/// holds no context.
pub async fn trim_request(
    policy: &TrimPolicy,
    embedder: Option<&EmbedWorker>,
    deadline: Duration,
    body: &mut Map<String, Value>,
) -> Option<TrimOutcome> {
    if policy.mode == TrimMode::Off {
        return None;
    }
    let (places, documents, question) = find_context(policy, body)?;
    let started = Instant::now();
    let request = TrimRequest {
        question,
        documents,
        cap_tokens: policy.max_context_tokens,
        min_keep_per_document: policy.min_keep_per_document,
        tokenizer: policy.tokenizer,
        strategy: policy.strategy,
    };
    // Chunking and counting happen once; only a missed embedding deadline prepares again,
    // for the lexical ranking.
    let prepared = trim::prepare(&request);
    let texts = prepared.embedding_texts();
    let vectors = match (texts.is_empty(), embedder) {
        (true, _) => Some(Vec::new()),
        (false, Some(worker)) => worker.embed_many(&texts, deadline).await,
        (false, None) => None,
    };
    drop(texts);
    let result = match vectors {
        Some(vectors) => prepared.finish(&vectors),
        None => {
            let lexical = TrimRequest {
                strategy: Strategy::FrugalLexical,
                ..request.clone()
            };
            trim::prepare(&lexical).finish(&[])
        }
    };
    let trimmed = match result {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "trimming failed; the context goes out whole");
            return None;
        }
    };
    metrics::record_trim(
        policy.mode.as_str(),
        trimmed.tokens_before as u64,
        trimmed.tokens_after as u64,
        started.elapsed(),
    );
    let would_remove =
        (trimmed.tokens_before - trimmed.tokens_after.min(trimmed.tokens_before)) as u64;
    let mut outcome = TrimOutcome {
        before: trimmed.tokens_before as u64,
        after: trimmed.tokens_before as u64,
        removed: 0,
        would_remove,
    };
    if policy.mode == TrimMode::On && trimmed.trimmed {
        write_back(body, &places, &trimmed.documents);
        outcome.after = trimmed.tokens_after as u64;
        outcome.removed = would_remove;
    }
    Some(outcome)
}

type Found = (Vec<Place>, Vec<Document>, String);

/// The context documents of a request, where they are, and the question.
fn find_context(policy: &TrimPolicy, body: &Map<String, Value>) -> Option<Found> {
    let messages = body.get("messages").and_then(Value::as_array)?;
    let mut places = Vec::new();
    let mut documents = Vec::new();
    let last_user = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    let mut question = String::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        let text = crate::tokens::content_text(message.get("content"));
        match role {
            "tool" if policy.tool_messages && !text.trim().is_empty() => {
                places.push(Place::Message { message: i });
                documents.push(Document { title: None, text });
            }
            "user" => {
                // A message with images or audio keeps its parts: only all-text messages are
                // rewritten.
                let all_text = match message.get("content") {
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .all(|p| p.get("type").and_then(Value::as_str) == Some("text")),
                    _ => true,
                };
                let split = if all_text {
                    split_marked(&text, &policy.markers)
                } else {
                    MarkedText::unmarked(&text)
                };
                for range in split.context {
                    documents.push(Document {
                        title: None,
                        text: text[range.clone()].to_string(),
                    });
                    places.push(Place::Span { message: i, range });
                }
                if Some(i) == last_user {
                    question = split.own_words;
                }
            }
            _ => {}
        }
    }
    if documents.is_empty() {
        return None;
    }
    if question.trim().is_empty() {
        question = crate::tokens::last_user_text(body);
    }
    Some((places, documents, question))
}

/// A message's text split at its context markers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedText {
    /// The text outside the marked spans and their tags, in order: the user's own words.
    pub own_words: String,
    /// Byte ranges of the marked spans' contents, in order.
    pub context: Vec<std::ops::Range<usize>>,
}

impl MarkedText {
    /// A text with no context in it.
    fn unmarked(text: &str) -> Self {
        Self {
            own_words: text.to_string(),
            context: Vec::new(),
        }
    }
}

/// Splits `text` into the context inside its `markers` tags and the words around them (the
/// tags themselves belong to neither).
pub fn split_marked(text: &str, markers: &[String]) -> MarkedText {
    let spans = marked_spans(text, markers);
    let mut own_words = String::new();
    let mut from = 0;
    for span in &spans {
        own_words.push_str(&text[from..span.outer.start]);
        from = span.outer.end;
    }
    own_words.push_str(&text[from..]);
    MarkedText {
        own_words,
        context: spans.into_iter().map(|s| s.inner).collect(),
    }
}

/// One marked span: the whole `<tag …>…</tag>` and its contents.
struct MarkedSpan {
    outer: std::ops::Range<usize>,
    inner: std::ops::Range<usize>,
}

/// The `<tag …>…</tag>` spans of every marker tag, in order, outermost where they nest.
fn marked_spans(text: &str, markers: &[String]) -> Vec<MarkedSpan> {
    let mut spans = Vec::new();
    for tag in markers {
        let open = format!("<{tag}");
        let close = format!("</{tag}>");
        let mut at = 0;
        while let Some(start) = text[at..].find(&open).map(|s| s + at) {
            let after_name = start + open.len();
            // `<document>` or `<document id=…>`, not `<documents>`.
            if !text[after_name..].starts_with(['>', ' ', '\n', '\t']) {
                at = after_name;
                continue;
            }
            let Some(head_end) = text[after_name..].find('>').map(|e| e + after_name + 1) else {
                break;
            };
            let Some(end) = text[head_end..].find(&close).map(|e| e + head_end) else {
                break;
            };
            at = end + close.len();
            spans.push(MarkedSpan {
                outer: start..at,
                inner: head_end..end,
            });
        }
    }
    spans.sort_by_key(|s| s.outer.start);
    // Nested or overlapping markers: keep the outermost.
    let mut kept: Vec<MarkedSpan> = Vec::new();
    for span in spans {
        if kept
            .last()
            .is_some_and(|last| span.outer.start < last.outer.end)
        {
            continue;
        }
        kept.push(span);
    }
    kept
}

/// Writes trimmed documents back into the body, later spans first so earlier ranges hold.
fn write_back(body: &mut Map<String, Value>, places: &[Place], documents: &[String]) {
    let Some(Value::Array(messages)) = body.get_mut("messages") else {
        return;
    };
    let mut edits: Vec<(&Place, &String)> = places.iter().zip(documents).collect();
    edits.sort_by_key(|(place, _)| match place {
        Place::Message { message } => (*message, 0),
        Place::Span { message, range } => (*message, range.start),
    });
    for (place, trimmed) in edits.into_iter().rev() {
        let text = if trimmed.is_empty() {
            "[…]"
        } else {
            trimmed.as_str()
        };
        match place {
            Place::Message { message } => {
                if let Some(m) = messages.get_mut(*message).and_then(Value::as_object_mut) {
                    m.insert("content".into(), Value::String(text.to_string()));
                }
            }
            Place::Span { message, range } => {
                let Some(m) = messages.get_mut(*message).and_then(Value::as_object_mut) else {
                    continue;
                };
                let mut whole = crate::tokens::content_text(m.get("content"));
                if range.end <= whole.len() {
                    whole.replace_range(range.clone(), text);
                }
                m.insert("content".into(), Value::String(whole));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(cap: usize) -> TrimPolicy {
        TrimPolicy {
            mode: TrimMode::On,
            max_context_tokens: cap,
            ..TrimPolicy::default()
        }
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn long_document(topic: &str, n: usize) -> String {
        (0..n)
            .map(|i| format!("Sentence {i} about {topic} and several unrelated filler words here."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[tokio::test]
    async fn tool_output_is_cut_to_the_cap_and_instructions_are_untouched() {
        let mut request = body(json!({"messages": [
            {"role": "system", "content": "Answer from the tool output only."},
            {"role": "user", "content": "What did sentence 3 say about rivers?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function",
                "function": {"name": "search", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "1", "content": long_document("rivers", 60)},
        ]}));
        let original = request.clone();
        let outcome = trim_request(&policy(100), None, Duration::ZERO, &mut request)
            .await
            .unwrap();
        assert!(outcome.before > 100 && outcome.after <= 100, "{outcome:?}");
        assert_eq!(outcome.removed, outcome.before - outcome.after);
        let tool = request["messages"][3]["content"].as_str().unwrap();
        assert_eq!(
            crate::trim::Tokenizer::O200kBase.count(tool) as u64,
            outcome.after
        );
        for i in 0..3 {
            assert_eq!(request["messages"][i], original["messages"][i]);
        }
    }

    #[tokio::test]
    async fn marked_documents_are_trimmed_and_the_question_kept() {
        let text = format!(
            "Use these.\n<document>{}</document>\n<document id=\"b\">{}</document>\nWhich sentence mentions lakes?",
            long_document("lakes", 40),
            long_document("deserts", 40)
        );
        let mut request = body(json!({"messages": [{"role": "user", "content": text}]}));
        let outcome = trim_request(&policy(120), None, Duration::ZERO, &mut request)
            .await
            .unwrap();
        assert!(outcome.after <= 120);
        let sent = request["messages"][0]["content"].as_str().unwrap();
        assert!(sent.starts_with("Use these.\n<document>"));
        assert!(sent.ends_with("</document>\nWhich sentence mentions lakes?"));
        assert!(sent.contains("<document id=\"b\">"));
    }

    #[tokio::test]
    async fn small_context_passes_through_and_shadow_changes_nothing() {
        let mut small = body(json!({"messages": [
            {"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "1", "content": "short"}]}));
        let before = small.clone();
        let outcome = trim_request(&policy(100), None, Duration::ZERO, &mut small)
            .await
            .unwrap();
        assert_eq!((outcome.removed, outcome.would_remove), (0, 0));
        assert_eq!(small, before, "byte-identical");

        let mut big = body(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "tool", "tool_call_id": "1", "content": long_document("x", 50)}]}));
        let before = big.clone();
        let shadow = TrimPolicy {
            mode: TrimMode::Shadow,
            ..policy(50)
        };
        let outcome = trim_request(&shadow, None, Duration::ZERO, &mut big)
            .await
            .unwrap();
        assert!(outcome.would_remove > 0);
        assert_eq!(outcome.removed, 0);
        assert_eq!(big, before);
    }

    #[test]
    fn markers_match_whole_tag_names_only() {
        let text = "<documents>x</documents> <document>a</document> <context k=1>b</context>";
        let split = split_marked(text, &["document".into(), "context".into()]);
        let inner: Vec<&str> = split.context.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(inner, ["a", "b"]);
        assert_eq!(split.own_words, "<documents>x</documents>  ");
    }
}
