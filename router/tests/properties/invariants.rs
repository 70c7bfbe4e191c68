//! What must hold for *any* input to the parsers that read what clients, upstreams and
//! operators send. Each check panics, naming what broke, when its invariant does not hold.
//!
//! The property tests next to this file feed these checks generated inputs; the fuzz targets in
//! `fuzz/` include this same file (`#[path]`) and feed them raw bytes, so a fuzzer and the test
//! suite can never disagree about what "correct" means.

use std::time::Duration;

use frugal::error::ApiError;
use frugal::policy::{CachePolicy, Policy, TrimMode, TrimPolicy};
use frugal::request::ChatRequest;
use frugal::sse::{completion_frames, SseEvent, SseParser};
use frugal::stage::{cache, relay, semantic, trim};
use frugal_cache::{Analysis, CacheScope, Guard, GuardSet, Verifier};
use serde_json::{Map, Value};

/// Context markers the request checks split questions with (the policy default).
pub fn markers() -> Vec<String> {
    vec!["document".into(), "context".into()]
}

/// A small cap, so that the trim checks cut something from most generated contexts.
pub const TRIM_CAP_TOKENS: usize = 24;

// --- The chat request parser ---------------------------------------------------------------

/// A body either parses into a request that keeps the body whole, or is refused with a 4xx
/// in OpenAI's error shape: never a 5xx, never a panic.
pub fn request_parses_or_is_refused(bytes: &[u8]) -> Option<ChatRequest> {
    match ChatRequest::parse(bytes) {
        Ok(request) => {
            let value: Value = serde_json::from_slice(bytes).expect("an accepted body is JSON");
            assert_eq!(
                Value::Object(request.body.clone()),
                value,
                "the body is kept whole"
            );
            assert_eq!(
                request.model.as_deref(),
                value.get("model").and_then(Value::as_str)
            );
            assert_eq!(
                request.stream,
                value.get("stream") == Some(&Value::Bool(true))
            );
            Some(request)
        }
        Err(error) => {
            assert_client_error(&error);
            None
        }
    }
}

/// A refusal is a 4xx whose body is `{"error": {message, type, param, code}}` as OpenAI sends.
pub fn assert_client_error(error: &ApiError) {
    assert!(error.status().is_client_error(), "{error:?} is not a 4xx");
    let body = error.body();
    let inner = body.get("error").and_then(Value::as_object);
    let inner = inner.unwrap_or_else(|| panic!("no `error` object in {body}"));
    for field in ["message", "type"] {
        let text = inner.get(field).and_then(Value::as_str).unwrap_or_default();
        assert!(
            !text.is_empty(),
            "`error.{field}` missing or empty in {body}"
        );
    }
    for field in ["param", "code"] {
        let value = inner.get(field);
        assert!(
            value.is_some_and(|v| v.is_null() || v.is_string()),
            "`error.{field}` must be a string or null in {body}"
        );
    }
}

/// What runs on a parsed request before any upstream call (cache identity, semantic scope,
/// token count, trimming) accepts it without a panic, and agrees with itself: the cache key
/// ignores key order, the semantic scope's question is the question text, and trimming keeps
/// the request valid, within its cap, and the user's own words as they were.
pub fn prepared_request_is_consistent(request: &ChatRequest) {
    let body = &request.body;
    let markers = markers();
    let scope = CacheScope {
        tenant: "tenant",
        namespace: "ns",
        model: "model",
    };
    assert_eq!(
        scope.exact_key(body),
        scope.exact_key(&reversed(body)),
        "the exact cache key depends on key order"
    );
    let _ = cache::not_cacheable(&CachePolicy::default(), body);
    let _ = frugal::tokens::prompt_tokens(body);
    let question = semantic::question_text(body, &markers);
    if let Some((_, scoped)) = semantic::scope(&scope, body, &markers) {
        assert!(
            !scoped.is_empty(),
            "a semantic scope with an empty question"
        );
        assert_eq!(
            scoped, question,
            "the scope's question is not the question text"
        );
    }

    let policy = TrimPolicy {
        mode: TrimMode::On,
        max_context_tokens: TRIM_CAP_TOKENS,
        markers,
        ..TrimPolicy::default()
    };
    let mut trimmed = body.clone();
    let outcome = futures::executor::block_on(trim::trim_request(
        &policy,
        None,
        Duration::ZERO,
        &mut trimmed,
    ));
    let Some(outcome) = outcome else {
        assert_eq!(&trimmed, body, "a request with nothing to trim was changed");
        return;
    };
    assert!(outcome.after <= outcome.before, "{outcome:?}");
    assert!(
        outcome.after <= TRIM_CAP_TOKENS as u64,
        "over the cap: {outcome:?}"
    );
    assert_eq!(
        outcome.removed,
        outcome.before - outcome.after,
        "{outcome:?}"
    );
    if outcome.removed == 0 {
        assert_eq!(&trimmed, body, "nothing removed, yet the request changed");
    }
    let bytes = serde_json::to_vec(&trimmed).expect("a JSON map serialises");
    let again = ChatRequest::parse(&bytes);
    assert!(
        again.is_ok(),
        "trimming made the request invalid: {again:?}"
    );
}

/// `body` with the keys of every object in reverse order.
fn reversed(body: &Map<String, Value>) -> Map<String, Value> {
    fn value(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(reversed(map)),
            Value::Array(items) => Value::Array(items.iter().map(value).collect()),
            other => other.clone(),
        }
    }
    body.iter()
        .rev()
        .map(|(k, v)| (k.clone(), value(v)))
        .collect()
}

// --- The SSE parser -------------------------------------------------------------------------

/// Parses a stream delivered as `chunks`.
pub fn sse_events<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Result<SseEvent, String>> {
    let mut parser = SseParser::default();
    chunks
        .into_iter()
        .flat_map(|chunk| parser.push(chunk))
        .collect()
}

/// `bytes` cut at `cuts` (positions, taken modulo the length, in any order).
pub fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| c % (bytes.len() + 1))
        .chain([0, bytes.len()])
        .collect();
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Any byte stream yields the same events however it is chunked, and every event relayed as
/// data re-frames to itself: what the parser reads, [`SseEvent::to_frame`] writes back intact.
pub fn sse_events_survive_chunking(bytes: &[u8], cuts: &[usize]) -> Vec<Result<SseEvent, String>> {
    let whole = sse_events([bytes]);
    let chunked = sse_events(split_at(bytes, cuts));
    assert_eq!(whole, chunked, "chunking changed the events");
    let bytewise = sse_events(bytes.chunks(1));
    assert_eq!(whole, bytewise, "byte-by-byte delivery changed the events");
    for event in whole.iter().flatten() {
        sse_event_reframes_to_itself(event);
        if let SseEvent::Data { json, .. } = event {
            let _ = relay::reported_tokens(json.get("usage"));
        }
    }
    whole
}

/// An event, framed and parsed again, is the same event.
pub fn sse_event_reframes_to_itself(event: &SseEvent) {
    let frame = event.to_frame();
    let again = sse_events([frame.as_ref()]);
    assert_eq!(
        again,
        vec![Ok(event.clone())],
        "the frame {:?} does not read back as its event",
        String::from_utf8_lossy(&frame)
    );
}

/// A cache hit replayed as a stream, whatever the stored completion holds, is a valid SSE
/// stream of JSON chunks ending in `[DONE]` whose content deltas add up to the message.
pub fn replay_frames_parse(completion: &Map<String, Value>) {
    for include_usage in [false, true] {
        let frames = completion_frames(completion, "chatcmpl-replay", 0, include_usage);
        let events = sse_events(frames.iter().map(|f| f.as_ref()));
        assert_eq!(events.len(), frames.len(), "one event per frame");
        assert_eq!(events.last(), Some(&Ok(SseEvent::Done)));
        for event in &events {
            assert!(event.is_ok(), "a replayed frame is not JSON: {event:?}");
        }
        let first_choice_text = completion
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("message"))
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str);
        if let Some(expected) = first_choice_text {
            let streamed: String = events
                .iter()
                .flatten()
                .filter_map(|e| match e {
                    SseEvent::Data { json, .. } => json["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned),
                    SseEvent::Done => None,
                })
                .collect();
            assert_eq!(streamed, expected, "the replay does not spell the answer");
        }
    }
}

// --- The policy compiler --------------------------------------------------------------------

/// A policy text compiles, or is refused with a list of errors each naming a path, saying
/// what is wrong and, when positioned, pointing inside the text. Never a panic. `source_name`
/// is the file the text stands for (relative paths in it resolve next to it).
pub fn policy_compiles_or_lists_errors(text: &str, source_name: &str) -> Option<Policy> {
    match frugal::policy::parse(text, source_name) {
        Ok(policy) => {
            let _ = frugal::policy::summary::summary(&policy);
            Some(policy)
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty(), "refused without a reason");
            // Lines as YAML counts them: `\r\n`, `\n`, a lone `\r` and the Unicode breaks
            // (NEL, LS, PS) each end one.
            let lines = text
                .replace("\r\n", "\n")
                .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
                .count()
                + 1;
            for error in &errors.errors {
                assert!(!error.path.is_empty(), "an error without a path: {error:?}");
                assert!(
                    !error.message.is_empty(),
                    "an error without a message: {error:?}"
                );
                if let Some(p) = error.position {
                    assert!(
                        (1..=lines + 1).contains(&p.line) && p.column >= 1,
                        "{error:?} points outside the text ({lines} lines)"
                    );
                }
            }
            let _ = errors.to_string();
            None
        }
    }
}

// --- The semantic cache's guards ------------------------------------------------------------

/// For any two texts: each passes against itself, the verdict does not depend on which is the
/// query (the verifier says it is symmetric), each guard fires alone exactly when it fires
/// among all, and the first guard reported is one that fired.
pub fn guards_are_consistent(a: &str, b: &str) {
    let all = Verifier::default();
    let (x, y) = (Analysis::new(a), Analysis::new(b));
    for (text, analysis) in [(a, &x), (b, &y)] {
        let verdict = all.verify(analysis, analysis);
        assert!(
            verdict.passed(),
            "{text:?} fails against itself: {verdict:?}"
        );
    }
    let forward = all.verify(&x, &y);
    let backward = all.verify(&y, &x);
    assert_eq!(
        forward.fired(),
        backward.fired(),
        "not symmetric: {a:?} vs {b:?}"
    );
    assert_eq!(forward, all.verify_texts(a, b));
    for guard in Guard::ALL {
        let alone = Verifier::new(GuardSet::NONE.with(guard)).verify(&x, &y);
        assert_eq!(
            alone.fired().contains(guard),
            forward.fired().contains(guard),
            "{guard} alone disagrees with {guard} among all: {a:?} vs {b:?}"
        );
    }
    assert_eq!(forward.passed(), forward.first().is_none());
    if let Some(first) = forward.first() {
        assert!(forward.fired().contains(first));
    }
}

/// A guard list that parses prints as a list that parses back to the same set.
pub fn guard_list_round_trips(text: &str) {
    if let Ok(set) = text.parse::<GuardSet>() {
        let printed = set.to_string();
        assert_eq!(
            printed.parse::<GuardSet>(),
            Ok(set),
            "{text:?} printed as {printed:?}"
        );
    }
}
