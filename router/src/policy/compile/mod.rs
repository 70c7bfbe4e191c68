//! Raw policy → compiled policy: every reference resolved, every value checked, and *all*
//! mistakes reported at once with their path and line. One file per part of the policy; this
//! one reads the text and runs the parts in order.

mod cache;
mod errors;
mod limits;
mod listen;
mod models;
mod runs;
mod tenants;
mod types;
mod values;

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::decisions::compile_decision_log;
use super::embeddings::compile_embeddings;
use super::locate::SourceMap;
use super::prompt_cache::compile_prompt_cache;
use super::raw::RawPolicy;
use super::route::{compile_breaker, compile_retries, compile_route};
use super::shared::compile_shared;
use super::trim::compile_trim;

pub(in crate::policy) use errors::Errors;
pub use errors::{PolicyError, PolicyErrors};
pub use types::{
    defaults, Baseline, BudgetPolicy, BudgetWindow, CacheMode, CachePolicy, EmbeddingCachePolicy,
    Limits, LoopAction, ModelRoute, Policy, Price, ProviderConfig, ProviderKind, RunPolicy,
    SemanticPolicy, TenantOverrides, Timeouts, DEFAULT_ASSUMED_OUTPUT_TOKENS,
};
pub(in crate::policy) use values::{
    duration, duration_or_zero, is_env_var_name, unknown_reference,
};

/// Short SHA-256 of a policy text: what `Policy::hash` and `frugal_policy_info` show.
pub fn text_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest tenant keys are looked up by.
pub fn key_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads and compiles a policy file.
pub fn load(path: &std::path::Path) -> Result<Policy, PolicyErrors> {
    let source_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &source_name),
        Err(e) => Err(PolicyErrors {
            source_name,
            errors: vec![PolicyError {
                path: "(file)".into(),
                position: None,
                message: format!("cannot read: {e}"),
            }],
        }),
    }
}

/// Parses and compiles a policy text; `source_name` names it in error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Policy, PolicyErrors> {
    let fail = |errors: Vec<PolicyError>| PolicyErrors {
        source_name: source_name.to_string(),
        errors,
    };
    let document = match crate::yaml::parse(text) {
        Ok(document) => document,
        Err(e) => {
            return Err(fail(vec![PolicyError {
                path: "(file)".into(),
                position: e.position,
                message: e.message,
            }]));
        }
    };
    let value = match document.value {
        Value::Null => Value::Object(Default::default()),
        value => value,
    };
    let source = SourceMap::new(document.positions);
    let mut errors = Errors {
        source: &source,
        list: Vec::new(),
    };
    let mut broken = BTreeSet::new();
    let raw = errors::diagnose(&value, &mut errors, &mut broken);
    let base_dir = std::path::Path::new(source_name)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let policy = raw.and_then(|raw| compile(raw, text, base_dir, &broken, &mut errors));
    match policy {
        Some(policy) if errors.list.is_empty() => Ok(policy),
        _ => {
            let mut list = errors.list;
            list.sort_by_key(|e| (e.position.is_none(), e.position.map(|p| (p.line, p.column))));
            Err(fail(list))
        }
    }
}

/// Compiles a policy whose sections each parsed, in the file's order of concerns.
fn compile(
    raw: RawPolicy,
    text: &str,
    base_dir: &std::path::Path,
    broken: &BTreeSet<String>,
    errors: &mut Errors,
) -> Option<Policy> {
    let listeners = listen::compile_listeners(&raw, errors);
    let (provider_names, providers) = models::compile_providers(&raw, broken, errors);
    let (model_names, models) = models::compile_models(&raw, &provider_names, broken, errors);
    let default_model = models::compile_default_model(&raw, &model_names, errors);
    let baseline = models::compile_baseline(&raw, &model_names, errors);
    let limits = limits::compile_limits(raw.limits.clone(), errors);
    let tenant_keys = tenants::compile_tenant_keys(&raw, errors);
    let budgets = tenants::compile_budgets(&raw, errors);
    let tenant_overrides = tenants::compile_tenant_overrides(&raw, errors);
    let runs = runs::compile_runs(raw.runs.as_ref(), errors);
    let cache = cache::compile_cache(raw.cache.as_ref(), errors);
    models::check_fallbacks(&models, &model_names, errors);
    let route = compile_route(raw.route.as_ref(), &model_names, base_dir, errors);
    let retries = compile_retries(raw.retries.as_ref(), errors);
    let circuit_breaker = compile_breaker(raw.circuit_breaker.as_ref(), errors);
    let embeddings = compile_embeddings(raw.embeddings.as_ref(), base_dir, errors);
    let trim = compile_trim(raw.trim.as_ref(), errors);
    let shared = compile_shared(raw.shared.as_ref(), errors);
    let decision_log = compile_decision_log(raw.decision_log.as_ref(), errors);
    let prompt_cache = compile_prompt_cache(raw.prompt_cache.as_ref(), errors);
    Some(Policy {
        listen: listeners.listen?,
        admin_listen: listeners.admin_listen,
        shutdown_grace: listeners.shutdown_grace,
        providers,
        models,
        default_model: default_model?,
        baseline,
        budgets,
        tenant_overrides,
        budget_state_file: raw.budget_state_file.map(std::path::PathBuf::from),
        runs,
        cache,
        route: route?,
        retries,
        circuit_breaker,
        embeddings,
        trim,
        shared,
        decision_log,
        prompt_cache,
        limits,
        tenant_keys,
        hash: text_hash(text),
    })
}

#[cfg(test)]
mod tests;
