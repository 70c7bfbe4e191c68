//! The SSE parser: any byte stream, however chunked, yields the same events, each of which
//! re-frames to itself; a JSON object event, replayed as a cached completion, streams back.
//! The first two bytes choose where the rest is cut.
#![no_main]

#[allow(dead_code)]
#[path = "../../router/tests/properties/invariants.rs"]
mod invariants;

use frugal::sse::SseEvent;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let (cuts, stream) = match bytes {
        [a, b, rest @ ..] => (cut_points(*a, *b, rest.len()), rest),
        _ => (Vec::new(), bytes),
    };
    for event in invariants::sse_events_survive_chunking(stream, &cuts)
        .iter()
        .flatten()
    {
        if let SseEvent::Data {
            json: serde_json::Value::Object(map),
            ..
        } = event
        {
            invariants::replay_frames_parse(map);
        }
    }
});

/// Cuts every `step` bytes from an offset: a few byte-determined chunkings of the stream.
fn cut_points(step: u8, offset: u8, len: usize) -> Vec<usize> {
    let step = usize::from(step % 31) + 1;
    (usize::from(offset)..len).step_by(step).collect()
}
