//! Providers and models: each checked, every reference between them resolved, the default
//! model and the baseline savings are measured against.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::money::TokenPrice;

use super::super::locate::join;
use super::super::raw::{RawModel, RawPolicy, RawProvider};
use super::errors::{known_names, Errors};
use super::types::{defaults, Baseline, ModelRoute, Price, ProviderConfig, ProviderKind, Timeouts};
use super::values::{duration, is_env_var_name, unknown_reference};

/// Checks every provider; their names (for references) and the compiled ones.
pub(super) fn compile_providers<'r>(
    raw: &'r RawPolicy,
    broken: &'r BTreeSet<String>,
    errors: &mut Errors,
) -> (Vec<&'r str>, BTreeMap<String, Arc<ProviderConfig>>) {
    let provider_names = known_names(&raw.providers, "providers", broken);
    if provider_names.is_empty() && !broken.contains("providers") {
        errors.push("providers", "at least one provider is required");
    }
    let providers: BTreeMap<String, Arc<ProviderConfig>> = raw
        .providers
        .iter()
        .filter_map(|(name, p)| {
            compile_provider(name, p, errors).map(|p| (name.clone(), Arc::new(p)))
        })
        .collect();
    (provider_names, providers)
}

/// Checks every model against the providers; their aliases and the compiled routes.
pub(super) fn compile_models<'r>(
    raw: &'r RawPolicy,
    provider_names: &[&str],
    broken: &'r BTreeSet<String>,
    errors: &mut Errors,
) -> (Vec<&'r str>, BTreeMap<String, ModelRoute>) {
    let model_names = known_names(&raw.models, "models", broken);
    if model_names.is_empty() && !broken.contains("models") {
        errors.push("models", "at least one model is required");
    }
    let models: BTreeMap<String, ModelRoute> = raw
        .models
        .iter()
        .filter_map(|(alias, m)| {
            compile_model(alias, m, provider_names, errors).map(|m| (alias.clone(), m))
        })
        .collect();
    (model_names, models)
}

/// The model used when a request names none.
pub(super) fn compile_default_model(
    raw: &RawPolicy,
    model_names: &[&str],
    errors: &mut Errors,
) -> Option<String> {
    match (&raw.default_model, model_names.len()) {
        (Some(alias), _) if model_names.contains(&alias.as_str()) => Some(alias.clone()),
        (Some(alias), _) => {
            errors.push(
                "default_model",
                unknown_reference("model", alias, model_names),
            );
            None
        }
        (None, 1) => model_names.first().map(|name| name.to_string()),
        (None, 0) => None,
        (None, _) => {
            errors.push(
                "default_model",
                "several models are defined: name the one used when a request names none",
            );
            None
        }
    }
}

/// What savings are measured against.
pub(super) fn compile_baseline(
    raw: &RawPolicy,
    model_names: &[&str],
    errors: &mut Errors,
) -> Baseline {
    match raw.baseline_model.as_deref() {
        None | Some("requested") => Baseline::Requested,
        Some(alias) if model_names.contains(&alias) => Baseline::Model(alias.to_string()),
        Some(alias) => {
            let hint = unknown_reference("model", alias, model_names);
            errors.push("baseline_model", format!("{hint} (or `requested`)"));
            Baseline::Requested
        }
    }
}

pub(super) fn compile_provider(
    name: &str,
    raw: &RawProvider,
    errors: &mut Errors,
) -> Option<ProviderConfig> {
    let path = join("providers", name);
    let before = errors.list.len();
    let base_url = raw.base_url.trim_end_matches('/').to_string();
    match reqwest::Url::parse(&base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => errors.push(
            join(&path, "base_url"),
            format!("`{}` is not an http(s) URL", raw.base_url),
        ),
    }
    if let Some(var) = &raw.api_key_env {
        if !is_env_var_name(var) {
            errors.push(
                join(&path, "api_key_env"),
                format!("`{var}` is not an environment variable name"),
            );
        }
    }
    let t = raw.timeouts.clone().unwrap_or_default();
    let tpath = join(&path, "timeouts");
    let timeouts = Timeouts {
        connect: duration(
            t.connect.as_deref(),
            &join(&tpath, "connect"),
            defaults::CONNECT,
            errors,
        ),
        request: duration(
            t.request.as_deref(),
            &join(&tpath, "request"),
            defaults::REQUEST,
            errors,
        ),
        first_byte: duration(
            t.first_byte.as_deref(),
            &join(&tpath, "first_byte"),
            defaults::FIRST_BYTE,
            errors,
        ),
        idle: duration(
            t.idle.as_deref(),
            &join(&tpath, "idle"),
            defaults::IDLE,
            errors,
        ),
    };
    let kind = match raw.kind.as_deref() {
        None | Some("openai") => ProviderKind::OpenAi,
        Some("anthropic") => ProviderKind::Anthropic,
        Some(other) => {
            errors.push(
                join(&path, "kind"),
                format!("`{other}` is not a provider kind: `openai` or `anthropic`"),
            );
            ProviderKind::OpenAi
        }
    };
    (errors.list.len() == before).then(|| ProviderConfig {
        name: name.to_string(),
        base_url,
        kind,
        logprobs: raw.logprobs.unwrap_or(kind != ProviderKind::Anthropic),
        api_key_env: raw.api_key_env.clone(),
        timeouts,
    })
}

/// Every fallback names another existing model.
pub(super) fn check_fallbacks(
    models: &BTreeMap<String, ModelRoute>,
    known: &[&str],
    errors: &mut Errors,
) {
    for (alias, model) in models {
        let path = join(&join("models", alias), "fallbacks");
        for fallback in &model.fallbacks {
            if fallback == alias {
                errors.push(&path, format!("`{alias}` cannot be its own fallback"));
            } else if !known.contains(&fallback.as_str()) {
                errors.push(&path, unknown_reference("model", fallback, known));
            }
        }
    }
}

fn compile_model(
    alias: &str,
    raw: &RawModel,
    providers: &[&str],
    errors: &mut Errors,
) -> Option<ModelRoute> {
    let path = join("models", alias);
    let before = errors.list.len();
    if !providers.contains(&raw.provider.as_str()) {
        errors.push(
            join(&path, "provider"),
            unknown_reference("provider", &raw.provider, providers),
        );
    }
    let upstream = raw.upstream.clone().unwrap_or_else(|| alias.to_string());
    let timeout = raw.timeout.as_deref().map(|text| {
        duration(
            Some(text),
            &join(&path, "timeout"),
            defaults::REQUEST,
            errors,
        )
    });
    if upstream.trim().is_empty() {
        errors.push(join(&path, "upstream"), "must not be empty");
    }
    for (key, value) in [
        ("input_per_mtok", Some(raw.price.input_per_mtok)),
        ("output_per_mtok", Some(raw.price.output_per_mtok)),
        ("cached_input_per_mtok", raw.price.cached_input_per_mtok),
        ("cache_write_per_mtok", raw.price.cache_write_per_mtok),
    ] {
        let Some(value) = value else { continue };
        if !value.is_finite() || value < 0.0 {
            errors.push(
                join(&join(&path, "price"), key),
                format!("{value} is not a price (USD per 1M tokens, ≥ 0)"),
            );
        }
    }
    (errors.list.len() == before).then(|| ModelRoute {
        alias: alias.to_string(),
        provider: raw.provider.clone(),
        upstream,
        price: Price {
            input_per_mtok: raw.price.input_per_mtok,
            output_per_mtok: raw.price.output_per_mtok,
        },
        token_price: TokenPrice::per_million(raw.price.input_per_mtok, raw.price.output_per_mtok)
            .with_prompt_cache(
                raw.price.cached_input_per_mtok,
                raw.price.cache_write_per_mtok,
            ),
        fallbacks: raw.fallbacks.clone(),
        timeout,
    })
}
