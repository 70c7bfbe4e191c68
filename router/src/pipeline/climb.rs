//! Climbing the buffered rungs of a plan: each rung answers in full (never streamed) and is
//! checked; the request escalates while an answer fails its checks or a call fails.

use std::borrow::Cow;

use frugal_classifier::Tier;
use serde_json::{json, Map, Value};

use crate::metrics;
use crate::policy::ModelRoute;
use crate::stage::account::{Attempt, TokenSource, Tokens};
use crate::stage::call::{self, Answer, Answered};
use crate::stage::confidence;
use crate::stage::escalation::{Escalation, EscalationReason};
use crate::stage::relay::reported_tokens;
use crate::stage::route::Rung;
use crate::stage::settle::CompletedAnswer;
use crate::tokens;
use crate::upstream::{UpstreamError, UpstreamReply};

use super::answer::Pending;

/// The answer the client gets, and how it was reached.
pub(super) struct Accepted<'p> {
    pub(super) reply: UpstreamReply,
    pub(super) model: &'p ModelRoute,
    pub(super) tier: Option<Tier>,
    pub(super) tokens: Tokens,
    /// Logprobs the sidecar asked for; removed before the client sees the answer.
    pub(super) added_logprobs: bool,
}

impl Accepted<'_> {
    /// The completion as the client may see it: without logprobs the sidecar asked for.
    pub(super) fn client_completion(&self) -> Map<String, Value> {
        let mut completion = self.reply.body.clone();
        if self.added_logprobs {
            strip_logprobs(&mut completion);
        }
        completion
    }

    /// The answer to settle, its completion as the client may see it (moved, not copied).
    pub(super) fn into_completed(self) -> CompletedAnswer {
        let mut completion = self.reply.body;
        if self.added_logprobs {
            strip_logprobs(&mut completion);
        }
        CompletedAnswer {
            completion,
            tokens: self.tokens,
            model: self.model.alias.clone(),
        }
    }
}

/// How climbing the buffered rungs went.
pub(super) struct Climb<'p> {
    pub(super) attempts: Vec<Attempt>,
    pub(super) escalations: Vec<Escalation>,
    /// The latest answer received; served if nothing better comes.
    pub(super) best: Option<Accepted<'p>>,
    /// Whether `best` passed its checks (or came from the last rung).
    pub(super) accepted: bool,
    pub(super) error: Option<UpstreamError>,
}

/// What one rung's call came to.
enum Verdict {
    /// Serve the answer.
    Serve,
    /// Try the next rung, for these reasons.
    Escalate(Vec<EscalationReason>),
    /// Stop climbing: the upstream refused the request itself.
    Refused,
}

impl<'p> Pending<'p> {
    /// Calls `rungs` in order as plain (non-streaming) completions, escalating while a
    /// rung's answer fails its checks. `then` is the rung that follows the climb (the live
    /// stream); without one, the last rung's answer is taken as it is.
    pub(super) async fn climb(&self, rungs: &[Rung<'p>], then: Option<Rung<'p>>) -> Climb<'p> {
        let mut climb = Climb {
            attempts: Vec::new(),
            escalations: Vec::new(),
            best: None,
            accepted: false,
            error: None,
        };
        for (i, rung) in rungs.iter().enumerate() {
            let next = rungs.get(i + 1).copied().or(then);
            let reasons = match self.try_rung(*rung, next.is_none(), &mut climb).await {
                Verdict::Serve => {
                    climb.accepted = true;
                    return climb;
                }
                Verdict::Refused => return climb,
                Verdict::Escalate(reasons) => reasons,
            };
            let Some(next) = next else {
                // The last rung failed; an earlier answer, if any, is served.
                climb.escalations.push(Escalation::RungFailed(rung.tier));
                return climb;
            };
            if let (Some(from), Some(to), Some(reason)) = (rung.tier, next.tier, reasons.first()) {
                metrics::record_escalation(from.as_str(), to.as_str(), reason.as_str());
            }
            tracing::info!(model = %rung.model.alias, reasons = ?reasons, "escalating");
            climb.escalations.push(Escalation::Climbed(reasons));
        }
        climb
    }

    /// Calls one rung and judges its answer (a final rung's answer is taken unchecked).
    async fn try_rung(&self, rung: Rung<'p>, is_final: bool, climb: &mut Climb<'p>) -> Verdict {
        let checks = &self.live.policy.route.checks;
        let (body, added_logprobs) = self.rung_body(rung, is_final);
        let called = call::call(
            self.live,
            &self.ctx.resilience,
            rung.model,
            &body,
            false,
            &mut climb.attempts,
        )
        .await;
        match called {
            Ok(Answered {
                answer: Answer::Json(reply),
                model,
            }) => {
                let tokens = reported_tokens(reply.body.get("usage")).unwrap_or_else(|| {
                    Tokens::new(
                        tokens::prompt_tokens(&body),
                        tokens::count(&answer_text(&reply.body)),
                        TokenSource::Counted,
                    )
                });
                climb
                    .attempts
                    .push(Attempt::new(&model.alias, tokens, model.token_price));
                let reasons = if is_final {
                    Vec::new()
                } else {
                    confidence::check(checks, &self.outbound, &reply.body)
                };
                climb.best = Some(Accepted {
                    reply,
                    model,
                    tier: rung.tier,
                    tokens,
                    added_logprobs,
                });
                if reasons.is_empty() {
                    Verdict::Serve
                } else {
                    Verdict::Escalate(reasons)
                }
            }
            Ok(_) => Verdict::Escalate(vec![EscalationReason::UpstreamError]),
            // A refused request would be refused higher up too.
            Err(e) if e.is_request_rejected() => {
                climb.error = Some(e);
                Verdict::Refused
            }
            Err(e) => {
                climb.error = Some(e);
                Verdict::Escalate(vec![EscalationReason::UpstreamError])
            }
        }
    }

    /// The body a buffered rung is sent: never streamed, and with logprobs asked for when a
    /// later rung may take over on a low mean logprob (whether they were added is returned).
    fn rung_body(&self, rung: Rung<'p>, is_final: bool) -> (Cow<'_, Map<String, Value>>, bool) {
        let checks = &self.live.policy.route.checks;
        // Copied only when it changes.
        let mut body = Cow::Borrowed(&self.outbound);
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            // A buffered rung of a streamed request: answered whole, replayed as SSE.
            let body = body.to_mut();
            body.insert("stream".into(), Value::Bool(false));
            body.remove("stream_options");
        }
        let added_logprobs = !is_final && checks.min_mean_logprob.is_some() && {
            let supports = self
                .live
                .policy
                .providers
                .get(&rung.model.provider)
                .is_some_and(|p| p.logprobs);
            supports && body.get("logprobs").and_then(Value::as_bool) != Some(true)
        };
        if added_logprobs {
            let body = body.to_mut();
            body.insert("logprobs".into(), Value::Bool(true));
            // Some servers (llama.cpp) return logprobs only with top_logprobs set.
            if !body.contains_key("top_logprobs") {
                body.insert("top_logprobs".into(), json!(1));
            }
        }
        (body, added_logprobs)
    }
}

/// Removes the logprobs the sidecar asked for from every choice.
fn strip_logprobs(completion: &mut Map<String, Value>) {
    if let Some(Value::Array(choices)) = completion.get_mut("choices") {
        for choice in choices {
            if let Some(choice) = choice.as_object_mut() {
                choice.insert("logprobs".into(), Value::Null);
            }
        }
    }
}

/// The text of every choice, for counting output tokens when the upstream reports no usage.
fn answer_text(body: &Map<String, Value>) -> String {
    body.get("choices")
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .map(|c| tokens::content_text(c.get("message").and_then(|m| m.get("content"))))
                .collect::<Vec<_>>()
                .concat()
        })
        .unwrap_or_default()
}
