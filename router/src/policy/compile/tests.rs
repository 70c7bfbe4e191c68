//! The compiler's tests: every mistake reported with its line, strict keys, defaults.

use std::time::Duration;

use super::*;

const GOOD: &str = "\
providers:
  mock:
    base_url: http://127.0.0.1:9100/v1
models:
  cheap:
    provider: mock
    upstream: gpt-4o-mini
    price: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
  strong:
    provider: mock
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
default_model: cheap
";

#[test]
fn a_listed_tenant_inherits_what_it_leaves_unset_from_default() {
    let text = format!(
            "{GOOD}trim: {{ max_context_tokens: 900 }}\ntenants:\n  default: {{ max_tier: cheap, trim_max_context_tokens: 500 }}\n  \
             research: {{ cache_namespace: research }}\n  premium: {{ max_tier: strong, cache_namespace: premium }}\n"
        );
    let policy = parse(&text, "good.yaml").unwrap();
    let research = policy.overrides_for("research").unwrap();
    assert_eq!(research.max_tier, Some(frugal_classifier::Tier::Cheap));
    assert_eq!(policy.trim_for("research").max_context_tokens, 500);
    assert_eq!(policy.cache_namespace("research"), "research");
    let premium = policy.overrides_for("premium").unwrap();
    assert_eq!(premium.max_tier, Some(frugal_classifier::Tier::Strong));
    assert_eq!(policy.trim_for("premium").max_context_tokens, 500);
    assert_eq!(policy.cache_namespace("unlisted"), "default");
    assert_eq!(
        policy.overrides_for("unlisted").unwrap().max_tier,
        Some(frugal_classifier::Tier::Cheap)
    );
}

#[test]
fn a_trim_section_with_nothing_to_trim_is_an_error() {
    let text =
        format!("{GOOD}trim:\n  max_context_tokens: 900\n  markers: []\n  tool_messages: false\n");
    let errors = parse(&text, "bad.yaml").unwrap_err().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "trim.markers");
    assert!(errors[0].message.contains("nothing to trim"));
    let off = text.replace("trim:\n", "trim:\n  mode: off\n");
    assert!(parse(&off, "good.yaml").is_ok());
}

#[test]
fn the_semantic_token_cap_defaults_to_128_and_stays_within_what_the_model_reads() {
    let policy = parse(&format!("{GOOD}cache: {{ mode: on }}\n"), "good.yaml").unwrap();
    assert_eq!(policy.cache.semantic.map(|s| s.max_tokens), Some(128));
    let raised = format!("{GOOD}cache: {{ mode: on, semantic_max_tokens: 256 }}\n");
    assert!(parse(&raised, "good.yaml").is_ok());
    for bad in ["4", "257"] {
        let text = format!("{GOOD}cache: {{ mode: on, semantic_max_tokens: {bad} }}\n");
        let errors = parse(&text, "bad.yaml").unwrap_err().errors;
        assert_eq!(errors[0].path, "cache.semantic_max_tokens", "{errors:?}");
    }
}

#[test]
fn the_semantic_prefilter_defaults_to_half_and_zero_turns_it_off() {
    let prefilter = |text: &str| {
        parse(&format!("{GOOD}cache: {{ mode: on{text} }}\n"), "good.yaml")
            .map(|p| p.cache.semantic.and_then(|s| s.prefilter))
    };
    assert_eq!(prefilter("").unwrap(), Some(0.5));
    assert_eq!(prefilter(", semantic_prefilter: 0.6").unwrap(), Some(0.6));
    assert_eq!(prefilter(", semantic_prefilter: 0").unwrap(), None);
    for bad in ["-0.1", "1.5"] {
        let errors = prefilter(&format!(", semantic_prefilter: {bad}"))
            .unwrap_err()
            .errors;
        assert_eq!(errors[0].path, "cache.semantic_prefilter", "{errors:?}");
    }
}

#[test]
fn the_embeddings_cache_follows_the_cache_mode_unless_set() {
    let on =
        |text: &str| parse(&format!("{GOOD}{text}\n"), "good.yaml").map(|p| p.cache.embeddings);
    assert!(!on("").unwrap().on, "no cache section: off");
    assert!(on("cache: { mode: on }").unwrap().on);
    assert!(!on("cache: { mode: shadow }").unwrap().on);
    assert!(
        !on("cache: { mode: on, embeddings: { mode: off } }")
            .unwrap()
            .on
    );
    let own =
        on("cache: { mode: off, embeddings: { mode: on, ttl: 2h, max_bytes: 1000 } }").unwrap();
    assert!(own.on);
    assert_eq!(own.ttl, std::time::Duration::from_secs(7200));
    assert_eq!(own.max_bytes, 1000);
    assert_eq!(
        on("cache: { mode: on }").unwrap().ttl,
        std::time::Duration::from_secs(86400)
    );
    let text = format!(
        "{GOOD}cache: {{ embeddings: {{ mode: shadow, ttl: soon, max_bytes: 0, extra: 1 }} }}\n"
    );
    let errors = parse(&text, "bad.yaml").unwrap_err().errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.iter().any(|p| p.contains("extra")), "{errors:?}");
    let text =
        format!("{GOOD}cache: {{ embeddings: {{ mode: shadow, ttl: soon, max_bytes: 0 }} }}\n");
    let errors = parse(&text, "bad.yaml").unwrap_err().errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "cache.embeddings.mode",
            "cache.embeddings.ttl",
            "cache.embeddings.max_bytes"
        ],
        "{errors:?}"
    );
}

#[test]
fn a_middle_threshold_above_the_strong_one_is_an_error() {
    let models = GOOD.replace("default_model: cheap\n", "");
    let text = format!(
            "{models}  mid: {{ provider: mock, price: {{ input_per_mtok: 1, output_per_mtok: 4 }} }}\n\
             default_model: cheap\n\
             route: {{ ladder: [cheap, mid, strong], start_strong_above: 0.6, start_mid_above: 0.7 }}\n"
        );
    let errors = parse(&text, "bad.yaml").unwrap_err().errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "route.start_mid_above");
    let fixed = text.replace("start_mid_above: 0.7", "start_mid_above: 0.4");
    assert!(parse(&fixed, "good.yaml").is_ok());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever an edit does to a policy (a line dropped, duplicated or cut short, a
    /// character replaced), it compiles or is refused with positioned errors: never a panic.
    #[test]
    fn an_edited_policy_compiles_or_lists_its_errors(
        edits in proptest::collection::vec((0usize..400, 0u8..4, proptest::char::any()), 1..4)
    ) {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/examples/rag.yaml");
        let mut lines: Vec<String> = std::fs::read_to_string(shipped)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        for (at, kind, c) in edits {
            let i = at % lines.len();
            match kind {
                0 => {
                    lines.remove(i);
                }
                1 => lines.insert(i, lines[i].clone()),
                2 => {
                    let keep = lines[i].chars().count() / 2;
                    lines[i] = lines[i].chars().take(keep).collect();
                }
                _ => {
                    let n = lines[i].chars().count().max(1);
                    let at = at % n;
                    lines[i] = lines[i]
                        .chars()
                        .enumerate()
                        .map(|(j, old)| if j == at { c } else { old })
                        .collect();
                }
            }
        }
        let text = lines.join("\n");
        let line_count = text.lines().count().max(1);
        if let Err(errors) = parse(&text, "edited.yaml") {
            proptest::prop_assert!(!errors.errors.is_empty());
            for error in &errors.errors {
                proptest::prop_assert!(!error.message.is_empty());
                if let Some(p) = error.position {
                    proptest::prop_assert!(p.line >= 1 && p.line <= line_count + 1, "{error:?}");
                }
            }
        }
    }
}

#[test]
fn good_policy_compiles_with_defaults() {
    let policy = parse(GOOD, "good.yaml").unwrap();
    assert_eq!(policy.default_model, "cheap");
    assert_eq!(policy.models["strong"].upstream, "strong");
    assert_eq!(policy.models["cheap"].upstream, "gpt-4o-mini");
    assert_eq!(policy.limits.max_body_bytes, defaults::MAX_BODY_BYTES);
    assert_eq!(policy.providers["mock"].timeouts.connect, defaults::CONNECT);
}

#[test]
fn a_batch_window_may_be_zero_but_a_deadline_may_not() {
    let zero_window = format!("{GOOD}embeddings: {{ batch_window: 0s }}\n");
    let policy = parse(&zero_window, "good.yaml").unwrap();
    assert_eq!(policy.embeddings.config.batch.window, Duration::ZERO);
    assert_eq!(
        parse(GOOD, "good.yaml")
            .unwrap()
            .embeddings
            .config
            .batch
            .window,
        Duration::ZERO,
        "no wait by default"
    );
    let zero_deadline = format!("{GOOD}embeddings: {{ deadline: 0s }}\n");
    let errors = parse(&zero_deadline, "bad.yaml").unwrap_err().errors;
    assert_eq!(errors[0].path, "embeddings.deadline");
}

#[test]
fn every_mistake_is_reported_with_its_line() {
    let text = "\
listen: not-an-address
providers:
  mock:
    base_url: ftp://x
    timeouts: { connect: soon }
models:
  cheap:
    provider: mokc
    price: { input_per_mtok: -1, output_per_mtok: 0.6 }
default_model: strong
";
    let errors = parse(text, "bad.yaml").unwrap_err().errors;
    let lines: Vec<(usize, &str)> = errors
        .iter()
        .map(|e| (e.position.unwrap().line, e.path.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (1, "listen"),
            (4, "providers.mock.base_url"),
            (5, "providers.mock.timeouts.connect"),
            (8, "models.cheap.provider"),
            (9, "models.cheap.price.input_per_mtok"),
            (10, "default_model"),
        ]
    );
    assert!(
        errors[3].message.contains("did you mean `mock`"),
        "{}",
        errors[3].message
    );
}

#[test]
fn structural_mistakes_in_several_sections_are_all_reported() {
    let text = "\
providers:
  mock:
    base_ur: http://x
modles: {}
limits:
  max_body_bytes: lots
";
    let errors = parse(text, "bad.yaml").unwrap_err().errors;
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "providers.mock.base_ur",
            "modles",
            "limits.max_body_bytes",
            "models"
        ],
        "{errors:?}"
    );
    assert!(
        errors[0].message.contains("did you mean `base_url`"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[1].message.contains("did you mean `models`"),
        "{}",
        errors[1].message
    );
}

#[test]
fn structural_and_semantic_mistakes_are_reported_together() {
    let text = "\
providers:
  openai:
    base_url: api.openai.com
  broken:
    base_url: http://x
    retries: 3
models:
  gpt-4o:
    provider: opneai
    price: { input_per_mtok: 2.5, output_per_mtok: 10 }
  uses-broken:
    provider: broken
    price: { input_per_mtok: 1, output_per_mtok: 1 }
default_model: gpt-4o
limts: {}
";
    let errors = parse(text, "bad.yaml").unwrap_err().errors;
    let found: Vec<(usize, &str)> = errors
        .iter()
        .map(|e| (e.position.unwrap().line, e.path.as_str()))
        .collect();
    assert_eq!(
        found,
        vec![
            (3, "providers.openai.base_url"),
            (6, "providers.broken.retries"),
            (9, "models.gpt-4o.provider"),
            (15, "limts"),
        ],
        "a reference to the broken provider is not reported twice: {errors:?}"
    );
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let errors = parse("models: [unclosed\n", "bad.yaml").unwrap_err().errors;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].position.is_some());
}
