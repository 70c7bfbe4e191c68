//! Answering a request that missed the cache: as one JSON completion, or as SSE (buffered rungs
//! replayed, or the last rung relayed live). Every answer settles through one
//! [`Settlement`].

use bytes::Bytes;
use futures::stream;
use serde_json::{json, Map, Value};

use crate::context::RequestContext;
use crate::error::ApiError;
use crate::policy::{LiveState, StreamCascade};
use crate::sse::completion_frames;
use crate::stage::account::{Account, Attempt};
use crate::stage::cache;
use crate::stage::call::{self, Answer, Answered};
use crate::stage::escalation::{self, Escalation};
use crate::stage::relay::{account_comment, relay, StreamTap, StreamingModel, TapParts};
use crate::stage::route::Plan;
use crate::stage::settle::Settlement;
use crate::tokens;
use crate::upstream::UpstreamError;

use super::climb::Accepted;
use super::reply::{Reply, ReplyBody, ReplyMeta};

/// A request past every gate, waiting for its answer.
pub(super) struct Pending<'p> {
    pub(super) live: &'p LiveState,
    pub(super) ctx: &'p RequestContext,
    pub(super) plan: Plan<'p>,
    pub(super) outbound: Map<String, Value>,
    pub(super) settlement: Settlement,
    pub(super) meta: ReplyMeta,
}

impl<'p> Pending<'p> {
    /// Answers with a complete JSON completion.
    pub(super) async fn json(self) -> Result<Reply, ApiError> {
        let climb = self.climb(&self.plan.rungs, None).await;
        match climb.best {
            Some(best) => Ok(self.finish_json(best, climb.attempts, climb.escalations)),
            None => Err(climb.error.map_or_else(no_answer, ApiError::Upstream)),
        }
    }

    /// Answers with SSE: lower rungs (buffered cascade) answer in full and are checked first;
    /// the last rung streams live, and once its bytes flow nothing escalates.
    pub(super) async fn stream(mut self) -> Result<Reply, ApiError> {
        let buffered = match self.live.policy.route.stream_cascade {
            StreamCascade::Buffer => self.plan.rungs.len() - 1,
            StreamCascade::Direct => 0,
        };
        let rungs = self.plan.rungs.clone();
        let live_rung = rungs[buffered];
        let mut climb = self.climb(&rungs[..buffered], Some(live_rung)).await;
        if climb.accepted {
            if let Some(best) = climb.best.take() {
                return Ok(self.finish_buffered_stream(best, climb.attempts, climb.escalations));
            }
        }
        let mut body = self.outbound.clone();
        let client_wants_usage = wants_usage(&body);
        set_include_usage(&mut body);
        let prompt_tokens = tokens::prompt_tokens(&body);
        let mut attempts = std::mem::take(&mut climb.attempts);
        let called = call::call(
            self.live,
            &self.ctx.resilience,
            live_rung.model,
            &body,
            true,
            &mut attempts,
        )
        .await;
        let (events, model) = match called {
            Ok(Answered {
                answer: Answer::Stream(events),
                model,
            }) => (events, model),
            Ok(_) => return Err(no_answer()),
            Err(e) => {
                return match climb.best.take() {
                    Some(best) => {
                        climb
                            .escalations
                            .push(Escalation::RungFailed(live_rung.tier));
                        Ok(self.finish_buffered_stream(best, attempts, climb.escalations))
                    }
                    None => Err(ApiError::Upstream(e)),
                }
            }
        };
        self.meta.answered_by(model, live_rung.tier);
        self.ctx
            .note(|d| d.escalations = climb.escalations.iter().map(ToString::to_string).collect());
        let tap = StreamTap::new(TapParts {
            ctx: self.ctx.clone(),
            model: StreamingModel {
                alias: model.alias.clone(),
                price: model.token_price,
            },
            prior: attempts,
            escalations: escalation::count(&climb.escalations),
            prompt_tokens,
            client_wants_usage,
            settlement: self.settlement,
        });
        self.meta.escalations = climb.escalations;
        Ok(Reply {
            meta: self.meta,
            body: ReplyBody::Stream(relay(events, tap)),
        })
    }

    fn finish_json(
        self,
        best: Accepted<'p>,
        attempts: Vec<Attempt>,
        escalations: Vec<Escalation>,
    ) -> Reply {
        let raw = if best.added_logprobs {
            Bytes::from(Value::Object(best.client_completion()).to_string())
        } else {
            best.reply.raw.clone()
        };
        let (meta, _) = self.settle(best, attempts, escalations);
        Reply {
            meta,
            body: ReplyBody::Json(raw),
        }
    }

    fn finish_buffered_stream(
        self,
        best: Accepted<'p>,
        attempts: Vec<Attempt>,
        escalations: Vec<Escalation>,
    ) -> Reply {
        let include_usage = wants_usage(&self.outbound);
        let completion = best.client_completion();
        let (meta, account) = self.settle(best, attempts, escalations);
        let id = completion
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("chatcmpl-frugal")
            .to_string();
        let created = completion
            .get("created")
            .and_then(Value::as_u64)
            .unwrap_or_else(cache::unix_now);
        let mut frames = completion_frames(&completion, &id, created, include_usage);
        frames.insert(frames.len() - 1, account_comment(&account));
        Reply {
            meta,
            body: ReplyBody::Stream(Box::pin(stream::iter(frames))),
        }
    }

    /// Settles an answer received in full and fills the reply's model, rung, escalations,
    /// account and budget warnings.
    fn settle(
        self,
        best: Accepted<'p>,
        attempts: Vec<Attempt>,
        escalations: Vec<Escalation>,
    ) -> (ReplyMeta, Account) {
        let mut meta = self.meta;
        self.ctx
            .note(|d| d.escalations = escalations.iter().map(ToString::to_string).collect());
        let (model, tier) = (best.model, best.tier);
        let (account, warnings) = self.settlement.complete(
            self.ctx,
            best.into_completed(),
            attempts,
            escalation::count(&escalations),
        );
        meta.escalations = escalations;
        meta.budget_warnings = warnings;
        meta.account = Some(account.clone());
        meta.answered_by(model, tier);
        (meta, account)
    }
}

fn no_answer() -> ApiError {
    ApiError::Upstream(UpstreamError::InvalidResponse {
        provider: "frugal".into(),
        reason: "no model answered".into(),
    })
}

/// Whether the client asked for the usage chunk of a stream.
pub(super) fn wants_usage(body: &Map<String, Value>) -> bool {
    body.get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn set_include_usage(body: &mut Map<String, Value>) {
    match body.get_mut("stream_options") {
        Some(Value::Object(options)) => {
            options.insert("include_usage".into(), Value::Bool(true));
        }
        _ => {
            body.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
}
