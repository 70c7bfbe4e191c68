//! The one-line summary `frugal policy check` prints for a policy that compiles: what it
//! routes, caches, trims and budgets, so a reviewer sees the effect of an edit at a glance.

use super::{CacheMode, Policy, RouteMode, TrimMode};

/// The summary, e.g. "2 providers, 3 models, default `gpt-4o`; routing a → b (start strong
/// above 0.5651); cache on (semantic ≥ 0.94); trim on (cap 2000 tokens); 2 budgeted tenants;
/// hash …".
pub fn summary(policy: &Policy) -> String {
    let mut parts = vec![format!(
        "{}, {}, default `{}`",
        counted(policy.providers.len(), "provider"),
        counted(policy.models.len(), "model"),
        policy.default_model
    )];
    let route = &policy.route;
    parts.push(match route.mode {
        RouteMode::Off => "routing off".into(),
        mode => {
            let mid = if route.ladder.len() == 3 {
                format!(", mid above {:.4}", route.start_mid_above)
            } else {
                String::new()
            };
            format!(
                "routing{} {} (start strong above {:.4}{mid})",
                shadow_note(mode == RouteMode::Shadow),
                route.ladder.join(" → "),
                route.start_strong_above
            )
        }
    });
    let cache = &policy.cache;
    parts.push(match (cache.mode, cache.semantic) {
        (CacheMode::Off, _) => "cache off".into(),
        (mode, None) => format!("cache {} (exact only)", mode.as_str()),
        (mode, Some(semantic)) => format!(
            "cache {} (semantic ≥ {:.2})",
            mode.as_str(),
            semantic.threshold
        ),
    });
    let trim = &policy.trim;
    parts.push(match trim.mode {
        TrimMode::Off => "trim off".into(),
        mode => format!(
            "trim {} (cap {} tokens)",
            mode.as_str(),
            trim.max_context_tokens
        ),
    });
    let prompt_cache = &policy.prompt_cache;
    let shaping: Vec<&str> = [
        (prompt_cache.stable_tool_order, "tools sorted"),
        (prompt_cache.breakpoints, "Anthropic breakpoints"),
        (prompt_cache.watch, "prefix watched"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !shaping.is_empty() {
        parts.push(format!("prompt cache: {}", shaping.join(", ")));
    }
    if !policy.budgets.is_empty() {
        parts.push(counted(policy.budgets.len(), "budgeted tenant"));
    }
    if let Some(shared) = &policy.shared {
        let levers: Vec<&str> = [
            (shared.cache, "cache"),
            (shared.budgets, "budgets"),
            (shared.runs, "runs"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        parts.push(format!(
            "shared {} through ${}",
            levers.join(", "),
            shared.url_env
        ));
    }
    parts.push(format!("hash {}", policy.hash));
    parts.join("; ")
}

fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn shadow_note(shadow: bool) -> &'static str {
    if shadow {
        " (shadow)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_every_lever_and_its_setting() {
        let policy = crate::policy::parse(
            "providers: { p: { base_url: 'http://127.0.0.1:1/v1' } }\n\
             models:\n  cheap: { provider: p, price: { input_per_mtok: 0.15, output_per_mtok: 0.6 } }\n  \
             strong: { provider: p, price: { input_per_mtok: 2.5, output_per_mtok: 10 } }\n\
             default_model: strong\n\
             route: { ladder: [cheap, strong], start_strong_above: 0.7 }\n\
             cache: { mode: shadow, semantic: true }\n\
             trim: { max_context_tokens: 900 }\n\
             tenants: { default: { budget: { window: day, hard_cap_usd: 1 } } }\n",
            "summary.yaml",
        )
        .unwrap();
        let line = summary(&policy);
        for part in [
            "1 provider, 2 models, default `strong`",
            "routing cheap → strong (start strong above 0.7000)",
            "cache shadow (semantic ≥ 0.94)",
            "trim on (cap 900 tokens)",
            "prompt cache: prefix watched",
            "1 budgeted tenant;",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
    }
}
