//! Calls to upstream LLM providers and the errors they can end in, each tagged with the status
//! the client sees and whether a retry could help.

pub mod anthropic;
mod openai;
mod resilience;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;

pub use openai::{OpenAiCompatible, Simulate, UpstreamReply, UpstreamStream};
pub use resilience::{backoff, CircuitState, Permit, Resilience};

use crate::policy::Policy;

/// How a call to an upstream failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The provider could not be reached (DNS, connect, TLS, reset before a reply).
    #[error("upstream `{provider}` is unreachable: {reason}")]
    Unreachable {
        /// Provider name.
        provider: String,
        /// The transport error.
        reason: String,
    },
    /// No reply within the configured time.
    #[error("upstream `{provider}` timed out after {after_ms} ms ({phase})")]
    Timeout {
        /// Provider name.
        provider: String,
        /// Which timeout fired: `request`, `first_byte` or `idle`.
        phase: &'static str,
        /// The limit that was hit.
        after_ms: u128,
    },
    /// The provider answered 5xx.
    #[error("upstream `{provider}` failed with HTTP {status}: {excerpt}")]
    ServerError {
        /// Provider name.
        provider: String,
        /// The provider's status.
        status: StatusCode,
        /// The start of its body, for the message.
        excerpt: String,
        /// The provider's `Retry-After`, if it sent one.
        retry_after: Option<std::time::Duration>,
    },
    /// The provider rejected the request with a 4xx; its body is passed to the client as is.
    #[error("upstream `{provider}` rejected the request with HTTP {status}")]
    ClientError {
        /// Provider name.
        provider: String,
        /// The provider's status (400, 401, 404, 429, …).
        status: StatusCode,
        /// The provider's body.
        body: Bytes,
        /// The provider's `Retry-After`, if it sent one.
        retry_after: Option<std::time::Duration>,
    },
    /// The provider answered 2xx with something that is not a chat completion.
    #[error("upstream `{provider}` sent an invalid response: {reason}")]
    InvalidResponse {
        /// Provider name.
        provider: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The HTTP client for a provider could not be built from the policy.
    #[error("cannot configure upstream `{provider}`: {reason}")]
    Config {
        /// Provider name.
        provider: String,
        /// Why.
        reason: String,
    },
    /// The provider's circuit breaker is open after repeated failures; it was not called.
    #[error("upstream `{provider}` is failing; its circuit breaker is open")]
    CircuitOpen {
        /// Provider name.
        provider: String,
    },
}

impl UpstreamError {
    /// The status the client of the sidecar sees.
    pub fn client_status(&self) -> StatusCode {
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::ClientError { status, .. } => *status,
            Self::Unreachable { .. }
            | Self::ServerError { .. }
            | Self::InvalidResponse { .. }
            | Self::Config { .. } => StatusCode::BAD_GATEWAY,
            Self::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OpenAI-style error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "upstream_unreachable",
            Self::Timeout { .. } => "upstream_timeout",
            Self::ServerError { .. } => "upstream_server_error",
            Self::ClientError { .. } => "upstream_rejected",
            Self::InvalidResponse { .. } => "upstream_invalid_response",
            Self::Config { .. } => "upstream_misconfigured",
            Self::CircuitOpen { .. } => "upstream_circuit_open",
        }
    }

    /// Whether trying again (or elsewhere) could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::ServerError { .. } => true,
            Self::ClientError { status, .. } => *status == StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidResponse { .. } | Self::Config { .. } | Self::CircuitOpen { .. } => false,
        }
    }

    /// Whether the failure says the provider is unhealthy (for its circuit breaker), rather
    /// than that this request was refused.
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::ServerError { .. }
        )
    }

    /// Whether the provider refused this request (a 4xx other than 429): retrying it, or
    /// sending it elsewhere, would be refused too.
    pub fn is_request_rejected(&self) -> bool {
        matches!(self, Self::ClientError { status, .. } if *status != StatusCode::TOO_MANY_REQUESTS)
    }

    /// How long the provider asked to wait before trying again.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::ServerError { retry_after, .. } | Self::ClientError { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// Low-cardinality label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::ServerError { .. } => "server_error",
            Self::ClientError { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "rate_limited"
            }
            Self::ClientError { .. } => "client_error",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Config { .. } => "config",
            Self::CircuitOpen { .. } => "circuit_open",
        }
    }
}

/// One client per provider in the policy.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    providers: BTreeMap<String, Arc<OpenAiCompatible>>,
}

impl Upstreams {
    /// Builds a client for every provider in the policy.
    pub fn from_policy(policy: &Policy) -> Result<Self, UpstreamError> {
        let shaping = anthropic::Shaping {
            breakpoints: policy.prompt_cache.breakpoints,
        };
        Self::build(policy, |config| {
            OpenAiCompatible::new(config).map(|c| c.with_shaping(shaping))
        })
    }

    /// A client for every provider in the policy, each answered in-process by `simulation`.
    pub fn simulated(
        policy: &Policy,
        simulation: &Arc<dyn Simulate>,
    ) -> Result<Self, UpstreamError> {
        Self::build(policy, |config| {
            OpenAiCompatible::simulated(config, simulation.clone())
        })
    }

    fn build(
        policy: &Policy,
        client: impl Fn(Arc<crate::policy::ProviderConfig>) -> Result<OpenAiCompatible, UpstreamError>,
    ) -> Result<Self, UpstreamError> {
        let providers = policy
            .providers
            .iter()
            .map(|(name, config)| Ok((name.clone(), Arc::new(client(config.clone())?))))
            .collect::<Result<_, UpstreamError>>()?;
        Ok(Self { providers })
    }

    /// All provider clients.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<OpenAiCompatible>> {
        self.providers.values()
    }

    /// The client for a provider named in the policy.
    pub fn get(&self, provider: &str) -> Option<&Arc<OpenAiCompatible>> {
        self.providers.get(provider)
    }
}
