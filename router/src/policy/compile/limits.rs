//! The `limits:` section: request size, time and cost, concurrency, connections.

use super::super::raw::RawLimits;
use super::errors::Errors;
use super::types::{defaults, Limits};
use super::values::duration;

/// Checks `limits:` (absent: every default).
pub(super) fn compile_limits(raw: Option<RawLimits>, errors: &mut Errors) -> Limits {
    let raw_limits = raw.unwrap_or_default();
    let max_body_bytes = raw_limits
        .max_body_bytes
        .unwrap_or(defaults::MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        errors.push("limits.max_body_bytes", "must be greater than 0");
    }
    let request_timeout = duration(
        raw_limits.request_timeout.as_deref(),
        "limits.request_timeout",
        defaults::REQUEST_TIMEOUT,
        errors,
    );

    if raw_limits.max_input_tokens == Some(0) {
        errors.push("limits.max_input_tokens", "must be at least 1");
    }
    let at_least_one = |value: Option<u64>, path: &str, errors: &mut Errors| match value {
        Some(0) => {
            errors.push(path, "must be at least 1");
            None
        }
        other => other.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let max_concurrent_requests = at_least_one(
        raw_limits.max_concurrent_requests,
        "limits.max_concurrent_requests",
        errors,
    )
    .or(Some(defaults::MAX_CONCURRENT_REQUESTS));
    let max_concurrent_per_tenant = at_least_one(
        raw_limits.max_concurrent_per_tenant,
        "limits.max_concurrent_per_tenant",
        errors,
    );
    let max_connections =
        at_least_one(raw_limits.max_connections, "limits.max_connections", errors)
            .unwrap_or(defaults::MAX_CONNECTIONS);
    let header_read_timeout = duration(
        raw_limits.header_read_timeout.as_deref(),
        "limits.header_read_timeout",
        defaults::HEADER_READ_TIMEOUT,
        errors,
    );
    let body_read_timeout = duration(
        raw_limits.body_read_timeout.as_deref(),
        "limits.body_read_timeout",
        defaults::BODY_READ_TIMEOUT,
        errors,
    );
    let max_request_cost = raw_limits.max_request_cost_usd.and_then(|usd| {
        if usd.is_finite() && usd > 0.0 {
            Some(crate::money::Usd::from_dollars(usd))
        } else {
            errors.push(
                "limits.max_request_cost_usd",
                "must be a positive number of dollars",
            );
            None
        }
    });
    Limits {
        max_body_bytes,
        request_timeout,
        max_input_tokens: raw_limits.max_input_tokens,
        max_request_cost,
        max_concurrent_requests,
        max_concurrent_per_tenant,
        max_connections,
        header_read_timeout,
        body_read_timeout,
        max_tenants: raw_limits.max_tenants.unwrap_or(defaults::MAX_TENANTS),
    }
}
