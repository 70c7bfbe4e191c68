//! Admission: how many chat requests may be in flight at once, in all and per tenant. A request
//! over a limit is refused at once with a 429 (the OpenAI clients retry those with backoff)
//! rather than queued, so a burst or a tenant's slow clients cannot pile up work, memory and
//! upstream connections behind everyone else. A [`Permit`] is held until the response body
//! has been sent, so a long stream counts for as long as it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::ApiError;
use crate::metrics;

/// The limits in force (from the live policy; a reload changes them for the next request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Chat requests in flight at once, over all tenants.
    pub max_concurrent: Option<usize>,
    /// Chat requests in flight at once for one tenant.
    pub max_concurrent_per_tenant: Option<usize>,
}

/// Requests in flight, in all and by tenant.
#[derive(Debug, Default)]
pub struct Admission {
    state: Mutex<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    total: usize,
    /// Only tenants with a request in flight; an entry goes when its count reaches zero.
    by_tenant: HashMap<String, usize>,
}

/// One admitted request; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    tenant: String,
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, InFlight> {
        // Plain counters: still right after a panic elsewhere, so recover rather than refuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one request of `tenant`, or refuses it with a 429 naming the limit it hit.
    pub fn admit(
        self: &Arc<Self>,
        tenant: &str,
        limits: AdmissionLimits,
    ) -> Result<Permit, ApiError> {
        let mut state = self.lock();
        if let Some(max) = limits.max_concurrent.filter(|max| state.total >= *max) {
            metrics::record_admission_rejection("global");
            return Err(ApiError::TooManyConcurrent {
                message: format!(
                    "This sidecar is already handling {max} requests, its limit; retry shortly."
                ),
            });
        }
        let mine = state.by_tenant.get(tenant).copied().unwrap_or(0);
        if let Some(max) = limits.max_concurrent_per_tenant.filter(|max| mine >= *max) {
            metrics::record_admission_rejection("tenant");
            return Err(ApiError::TooManyConcurrent {
                message: format!(
                    "Tenant `{tenant}` already has {max} requests in flight, its limit; retry shortly."
                ),
            });
        }
        state.total += 1;
        *state.by_tenant.entry(tenant.to_string()).or_insert(0) += 1;
        Ok(Permit {
            admission: self.clone(),
            tenant: tenant.to_string(),
        })
    }

    /// Requests in flight now, in all.
    pub fn in_flight(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.total = state.total.saturating_sub(1);
        if let Some(count) = state.by_tenant.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.by_tenant.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_tenant: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_concurrent: Some(total),
            max_concurrent_per_tenant: Some(per_tenant),
        }
    }

    #[test]
    fn a_tenant_at_its_limit_does_not_block_the_others() {
        let admission = Arc::new(Admission::default());
        let a: Vec<_> = (0..2)
            .map(|_| admission.admit("a", limits(10, 2)).unwrap())
            .collect();
        assert!(admission.admit("a", limits(10, 2)).is_err());
        assert!(admission.admit("b", limits(10, 2)).is_ok());
        drop(a);
        assert!(admission.admit("a", limits(10, 2)).is_ok());
        assert_eq!(admission.in_flight(), 0, "every permit dropped");
    }

    #[test]
    fn the_global_limit_counts_every_tenant() {
        let admission = Arc::new(Admission::default());
        let held: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|t| admission.admit(t, limits(3, 3)).unwrap())
            .collect();
        let refused = admission.admit("d", limits(3, 3)).unwrap_err();
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        drop(held);
        assert!(
            admission.lock().by_tenant.is_empty(),
            "no entry outlives its requests"
        );
    }

    #[test]
    fn no_limits_admit_everything() {
        let admission = Arc::new(Admission::default());
        let none = AdmissionLimits {
            max_concurrent: None,
            max_concurrent_per_tenant: None,
        };
        let held: Vec<_> = (0..100)
            .map(|_| admission.admit("t", none).unwrap())
            .collect();
        assert_eq!(admission.in_flight(), held.len());
    }
}
