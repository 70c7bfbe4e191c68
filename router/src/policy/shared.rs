//! The `shared:` section, checked: where the shared tier's Redis is and which levers share it.

use std::time::Duration;

use super::compile::{duration, is_env_var_name, Errors};
use super::raw::RawShared;

/// Default environment variable for the Redis URL (the `shared-cache` overlay sets it).
pub const DEFAULT_URL_ENV: &str = "FRUGAL_SHARED_CACHE_URL";
/// Default prefix of keys and streams.
pub const DEFAULT_KEY_PREFIX: &str = "frugal";
/// Default limit on one Redis operation: a loopback or in-cluster round trip takes well under
/// a millisecond; past this the request goes on without the shared tier.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// Default number of semantic entries a starting replica loads.
pub const DEFAULT_WARM_ENTRIES: usize = 10_000;
/// Default bound on how long the warm-up holds back readiness.
pub const DEFAULT_WARM_TIMEOUT: Duration = Duration::from_secs(5);
/// Default lease of a budget or run hold: a request renews it while it runs, so this only
/// bounds how long a lost hold (a dead replica, a timed-out reply) keeps room.
pub const DEFAULT_HOLD_LEASE: Duration = Duration::from_secs(60);
/// Bounds of a hold lease: renewing more often than every 2 s would load Redis for nothing,
/// and a lost hold should not keep room for more than an hour.
const HOLD_LEASE_RANGE: (Duration, Duration) = (Duration::from_secs(6), Duration::from_secs(3600));
/// Most entries a warm-up may ask for.
const MAX_WARM_ENTRIES: usize = 1_000_000;
/// Longest a key prefix may be.
const MAX_PREFIX_LEN: usize = 64;

/// Checked shared-tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPolicy {
    /// Environment variable holding the Redis URL (read at start; a reload does not reconnect).
    pub url_env: String,
    /// Prefix of every key and stream.
    pub key_prefix: String,
    /// Longest one Redis operation may take.
    pub timeout: Duration,
    /// Most semantic entries a starting replica loads, newest first.
    pub warm_entries: usize,
    /// Longest the warm-up holds back readiness.
    pub warm_timeout: Duration,
    /// How long a budget or run hold lasts in Redis unless renewed.
    pub hold_lease: Duration,
    /// Whether the response cache is shared.
    pub cache: bool,
    /// Whether tenant budget spend is shared.
    pub budgets: bool,
    /// Whether run spend and tokens are shared.
    pub runs: bool,
}

/// Checks the `shared:` section; `None` when the policy has none (every replica on its own).
pub(super) fn compile_shared(raw: Option<&RawShared>, errors: &mut Errors) -> Option<SharedPolicy> {
    let raw = raw?;
    let url_env = raw
        .redis_url_env
        .clone()
        .unwrap_or_else(|| DEFAULT_URL_ENV.to_string());
    if !is_env_var_name(&url_env) {
        errors.push(
            "shared.redis_url_env",
            format!("`{url_env}` is not an environment variable name"),
        );
    }
    let key_prefix = raw
        .key_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
    let prefix_ok = !key_prefix.is_empty()
        && key_prefix.len() <= MAX_PREFIX_LEN
        && key_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !prefix_ok {
        errors.push(
            "shared.key_prefix",
            format!("`{key_prefix}` must be 1 to {MAX_PREFIX_LEN} letters, digits or _ - . :"),
        );
    }
    let timeout = duration(
        raw.timeout.as_deref(),
        "shared.timeout",
        DEFAULT_TIMEOUT,
        errors,
    );
    if timeout > Duration::from_secs(10) {
        errors.push(
            "shared.timeout",
            "must be at most 10s (every request may wait this long on a slow Redis)",
        );
    }
    let warm_entries = raw.warm_entries.unwrap_or(DEFAULT_WARM_ENTRIES);
    if warm_entries > MAX_WARM_ENTRIES {
        errors.push(
            "shared.warm_entries",
            format!("must be at most {MAX_WARM_ENTRIES}"),
        );
    }
    let warm_timeout = duration(
        raw.warm_timeout.as_deref(),
        "shared.warm_timeout",
        DEFAULT_WARM_TIMEOUT,
        errors,
    );
    let hold_lease = duration(
        raw.hold_lease.as_deref(),
        "shared.hold_lease",
        DEFAULT_HOLD_LEASE,
        errors,
    );
    let (shortest, longest) = HOLD_LEASE_RANGE;
    if !(shortest..=longest).contains(&hold_lease) {
        errors.push(
            "shared.hold_lease",
            format!(
                "must be from {}s to {}s",
                shortest.as_secs(),
                longest.as_secs()
            ),
        );
    }
    let (cache, budgets, runs) = (
        raw.cache.unwrap_or(true),
        raw.budgets.unwrap_or(true),
        raw.runs.unwrap_or(true),
    );
    if !(cache || budgets || runs) {
        errors.push(
            "shared",
            "shares nothing: set one of cache, budgets or runs to true, or remove the section",
        );
    }
    Some(SharedPolicy {
        url_env,
        key_prefix,
        timeout,
        warm_entries,
        warm_timeout,
        hold_lease,
        cache,
        budgets,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::compile::parse;
    use super::*;

    const GOOD: &str = "providers:\n  p: { base_url: http://127.0.0.1:9 }\nmodels:\n  m: { provider: p, price: { input_per_mtok: 1, output_per_mtok: 2 } }\ndefault_model: m\n";

    #[test]
    fn no_section_shares_nothing_and_an_empty_one_takes_the_defaults() {
        let policy = parse(GOOD, "test.yaml").unwrap();
        assert_eq!(policy.shared, None);
        let policy = parse(&format!("{GOOD}shared: {{}}\n"), "test.yaml").unwrap();
        let shared = policy.shared.unwrap();
        assert_eq!(shared.url_env, DEFAULT_URL_ENV);
        assert_eq!(shared.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(shared.timeout, DEFAULT_TIMEOUT);
        assert_eq!(shared.warm_entries, DEFAULT_WARM_ENTRIES);
        assert_eq!(shared.hold_lease, DEFAULT_HOLD_LEASE);
        assert!(shared.cache && shared.budgets && shared.runs);
    }

    #[test]
    fn every_mistake_in_the_section_is_reported() {
        let text = format!(
            "{GOOD}shared:\n  redis_url_env: 9-URL\n  key_prefix: 'a b'\n  timeout: 1m\n  warm_entries: 2000000\n  hold_lease: 1s\n  cache: false\n  budgets: false\n  runs: false\n"
        );
        let errors = parse(&text, "test.yaml").unwrap_err().errors;
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "shared",
                "shared.redis_url_env",
                "shared.key_prefix",
                "shared.timeout",
                "shared.warm_entries",
                "shared.hold_lease",
            ],
            "{errors:?}"
        );
        assert!(errors.iter().all(|e| e.position.is_some()), "{errors:?}");
    }
}
