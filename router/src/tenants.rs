//! Bounded tenant names: the name a request's metrics, ledger row, budget entry and run are
//! kept under.
//!
//! Any client can send any `x-frugal-tenant`, and each new name would otherwise add metric
//! series, a ledger row and a budget entry that live until restart: a client cycling random
//! names would grow memory and `/metrics` without limit. So names are bounded here:
//!
//! - a tenant the policy names (`tenants:` entries, keyed tenants) and `default` always keep
//!   their own name;
//! - the first `limits.max_tenants` other names seen keep theirs too (until restart);
//! - every name after that is counted under [`OVERFLOW_TENANT`] (`other`), and
//!   `frugal_tenant_overflow_total` counts the requests that were.
//!
//! `other` is one tenant for budgets too: when `tenants.default` has a budget, all overflowing
//! names share a single `other` budget entry under that cap. That fails closed: a flood of
//! random names cannot get a fresh cap per name (before this bound each new name did), it can
//! only exhaust the one shared cap, and tenants that need their own cap should be listed.
//!
//! The response cache is *not* scoped by this name but by the name the request claimed
//! ([`crate::context::RequestContext::cache_tenant`]): folding unknown tenants into `other`
//! there would let unrelated tenants receive each other's answers. The cache's memory is
//! bounded by `cache.max_bytes` whatever the names.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::metrics;
use crate::policy::Policy;

/// Tenant of requests that name none, and the policy's `tenants:` entry for tenants not listed.
pub const DEFAULT_TENANT: &str = "default";

/// The shared name of unlisted tenants past `limits.max_tenants`.
pub const OVERFLOW_TENANT: &str = "other";

/// The unlisted tenant names given their own label so far.
#[derive(Debug, Default)]
pub struct TenantLabels {
    named: Mutex<HashSet<String>>,
}

impl TenantLabels {
    /// The name `claimed`'s metrics, ledger, budget and runs are kept under.
    pub fn label(&self, policy: &Policy, claimed: &str) -> String {
        if claimed == DEFAULT_TENANT || policy.lists_tenant(claimed) {
            return claimed.to_string();
        }
        // A panic elsewhere cannot leave the set half-changed (one insert), so a poisoned lock
        // is safe to keep using; refusing it would turn every unlisted tenant into `other`.
        let mut named = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        if claimed == OVERFLOW_TENANT || named.contains(claimed) {
            return claimed.to_string();
        }
        if named.len() < policy.limits.max_tenants {
            named.insert(claimed.to_string());
            return claimed.to_string();
        }
        drop(named);
        metrics::record_tenant_overflow();
        OVERFLOW_TENANT.to_string()
    }

    /// How many unlisted tenants have their own name.
    pub fn named(&self) -> usize {
        self.named
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "providers: {{ p: {{ base_url: 'http://127.0.0.1:1/v1' }} }}\n\
             models: {{ m: {{ provider: p, price: {{ input_per_mtok: 1, output_per_mtok: 1 }} }} }}\n{extra}"
        );
        crate::policy::parse(&text, "test.yaml").expect("valid policy")
    }

    #[test]
    fn unlisted_tenants_past_the_bound_share_other() {
        let policy = policy("limits: { max_tenants: 2 }\n");
        let labels = TenantLabels::default();
        assert_eq!(labels.label(&policy, "a"), "a");
        assert_eq!(labels.label(&policy, "b"), "b");
        assert_eq!(labels.label(&policy, "c"), OVERFLOW_TENANT);
        assert_eq!(labels.label(&policy, "a"), "a", "a name keeps its label");
        assert_eq!(labels.named(), 2);
    }

    #[test]
    fn listed_and_default_tenants_keep_their_names_past_the_bound() {
        let policy = policy(
            "limits: { max_tenants: 0 }\n\
             tenants: { acme: { max_tier: cheap } }\n",
        );
        let labels = TenantLabels::default();
        assert_eq!(labels.label(&policy, "acme"), "acme");
        assert_eq!(labels.label(&policy, DEFAULT_TENANT), DEFAULT_TENANT);
        assert_eq!(labels.label(&policy, "stranger"), OVERFLOW_TENANT);
        assert_eq!(labels.named(), 0, "listed names take no slot");
    }
}
