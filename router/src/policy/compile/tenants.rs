//! The `tenants:` section: sidecar keys, budgets, names and per-tenant overrides.

use std::collections::BTreeMap;

use crate::tenants::DEFAULT_TENANT;

use super::super::locate::join;
use super::super::raw::{RawBudget, RawPolicy};
use super::errors::Errors;
use super::key_digest;
use super::types::{BudgetPolicy, BudgetWindow, TenantOverrides, DEFAULT_ASSUMED_OUTPUT_TOKENS};

/// Tenant by the digest of its sidecar key, each key read from its environment variable.
pub(super) fn compile_tenant_keys(
    raw: &RawPolicy,
    errors: &mut Errors,
) -> BTreeMap<String, String> {
    let mut tenant_keys = BTreeMap::new();
    for (name, tenant) in &raw.tenants {
        let Some(var) = &tenant.api_key_env else {
            continue;
        };
        let path = join(&join("tenants", name), "api_key_env");
        match std::env::var(var) {
            Ok(key) if key.len() >= 16 => {
                if let Some(other) = tenant_keys.insert(key_digest(&key), name.clone()) {
                    errors.push(
                        path,
                        format!("tenants `{other}` and `{name}` have the same key"),
                    );
                }
            }
            Ok(_) => errors.push(
                path,
                format!("the key in `{var}` is shorter than 16 characters"),
            ),
            Err(_) => errors.push(path, format!("environment variable `{var}` is not set")),
        }
    }
    tenant_keys
}

/// Each tenant's budget, and every tenant name checked.
pub(super) fn compile_budgets(
    raw: &RawPolicy,
    errors: &mut Errors,
) -> BTreeMap<String, BudgetPolicy> {
    let budgets: BTreeMap<String, BudgetPolicy> = raw
        .tenants
        .iter()
        .filter_map(|(name, tenant)| {
            let budget = tenant.budget.as_ref()?;
            compile_budget(&join(&join("tenants", name), "budget"), budget, errors)
                .map(|b| (name.clone(), b))
        })
        .collect();
    for name in raw.tenants.keys() {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid {
            errors.push(
                join("tenants", name),
                "tenant names are 1-64 letters, digits, `_`, `.` or `-`",
            );
        }
        if name == crate::tenants::OVERFLOW_TENANT {
            errors.push(
                join("tenants", name),
                "`other` is the shared name of unlisted tenants past `limits.max_tenants`; \
                 give this tenant another name",
            );
        }
    }
    budgets
}

/// Each listed tenant's overrides, with what it leaves unset taken from `tenants.default`.
pub(super) fn compile_tenant_overrides(
    raw: &RawPolicy,
    errors: &mut Errors,
) -> BTreeMap<String, TenantOverrides> {
    let mut tenant_overrides = BTreeMap::new();
    for (name, tenant) in &raw.tenants {
        let path = join("tenants", name);
        let max_tier = tenant.max_tier.as_deref().and_then(|t| {
            let tier = crate::stage::route::parse_tier(t);
            if tier.is_none() {
                errors.push(
                    join(&path, "max_tier"),
                    format!("`{t}` is not a tier: use cheap, mid or strong"),
                );
            }
            tier
        });
        if tenant.cache_namespace.as_deref() == Some("") {
            errors.push(join(&path, "cache_namespace"), "must not be empty");
        }
        if tenant.trim_max_context_tokens == Some(0) {
            errors.push(join(&path, "trim_max_context_tokens"), "must be at least 1");
        }
        let overrides = TenantOverrides {
            max_tier,
            cache_namespace: tenant.cache_namespace.clone(),
            trim_max_context_tokens: tenant.trim_max_context_tokens,
        };
        if overrides != TenantOverrides::default() {
            tenant_overrides.insert(name.clone(), overrides);
        }
    }
    inherit_default_overrides(&mut tenant_overrides);
    inherit_default_overrides(&mut tenant_overrides);
    tenant_overrides
}

/// Fills what a listed tenant leaves unset from `tenants.default`, field by field, so a tenant
/// that sets only its cache namespace keeps the default's tier cap and trim cap.
fn inherit_default_overrides(overrides: &mut BTreeMap<String, TenantOverrides>) {
    let Some(default) = overrides.get(DEFAULT_TENANT).cloned() else {
        return;
    };
    for (name, own) in overrides.iter_mut() {
        if name != DEFAULT_TENANT {
            own.max_tier = own.max_tier.or(default.max_tier);
            own.cache_namespace = own
                .cache_namespace
                .take()
                .or_else(|| default.cache_namespace.clone());
            own.trim_max_context_tokens = own
                .trim_max_context_tokens
                .or(default.trim_max_context_tokens);
        }
    }
}

fn compile_budget(path: &str, raw: &RawBudget, errors: &mut Errors) -> Option<BudgetPolicy> {
    let before = errors.list.len();
    let window = match raw.window.as_str() {
        "hour" => BudgetWindow::Hour,
        "day" => BudgetWindow::Day,
        "month" => BudgetWindow::Month,
        other => {
            errors.push(
                join(path, "window"),
                format!("`{other}` is not a window: use hour, day or month"),
            );
            BudgetWindow::Day
        }
    };
    if !raw.hard_cap_usd.is_finite() || raw.hard_cap_usd <= 0.0 {
        errors.push(
            join(path, "hard_cap_usd"),
            "must be a positive number of dollars",
        );
    }
    let mut thresholds = raw.soft_thresholds.clone();
    for (i, t) in thresholds.iter().enumerate() {
        if !(t.is_finite() && *t > 0.0 && *t < 1.0) {
            errors.push(
                format!("{}[{i}]", join(path, "soft_thresholds")),
                format!("{t} is not a share of the cap in (0, 1)"),
            );
        }
    }
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    if raw.assumed_output_tokens == Some(0) {
        errors.push(join(path, "assumed_output_tokens"), "must be at least 1");
    }
    (errors.list.len() == before).then(|| BudgetPolicy {
        window,
        hard_cap: crate::money::Usd::from_dollars(raw.hard_cap_usd),
        soft_thresholds: thresholds,
        assumed_output_tokens: raw
            .assumed_output_tokens
            .unwrap_or(DEFAULT_ASSUMED_OUTPUT_TOKENS),
    })
}
