//! Which models may answer a request, in order: the rungs of the policy's ladder from the one
//! the classifier picks up to the highest the request may reach (`max_escalations`, the
//! client's `x-frugal-max-tier`). Unrouted requests have one rung: the model they named.

use frugal_classifier::{Complexity, Tier};

use crate::policy::{ModelRoute, Policy, RouteMode};

/// One model a request may be answered by.
#[derive(Debug, Clone, Copy)]
pub struct Rung<'p> {
    /// Its tier, when the request is routed.
    pub tier: Option<Tier>,
    /// The model.
    pub model: &'p ModelRoute,
}

/// The rungs to try, cheapest first; never empty.
#[derive(Debug, Clone)]
pub struct Plan<'p> {
    /// The rungs, in order.
    pub rungs: Vec<Rung<'p>>,
    /// Whether the ladder was used.
    pub routed: bool,
}

/// The tiers of a ladder with `len` rungs.
pub fn tiers(len: usize) -> &'static [Tier] {
    match len {
        3 => &[Tier::Cheap, Tier::Mid, Tier::Strong],
        _ => &[Tier::Cheap, Tier::Strong],
    }
}

/// Plans a request for `requested`, given the classifier's verdict (if it ran) and the
/// client's highest allowed tier.
pub fn plan<'p>(
    policy: &'p Policy,
    requested: &'p ModelRoute,
    complexity: Option<&Complexity>,
    max_tier: Option<Tier>,
) -> Plan<'p> {
    let route = &policy.route;
    let ladder: Vec<&ModelRoute> = route
        .ladder
        .iter()
        .filter_map(|alias| policy.models.get(alias))
        .collect();
    let routed = route.mode == RouteMode::On
        && route.applies_to(&requested.alias)
        && ladder.len() == route.ladder.len()
        && ladder.len() >= 2;
    if !routed {
        return Plan {
            rungs: vec![Rung {
                tier: None,
                model: requested,
            }],
            routed: false,
        };
    }
    let tiers = tiers(ladder.len());
    let index_of = |tier: Tier| tiers.iter().rposition(|t| *t <= tier).unwrap_or(0);
    // Without a verdict (classifier failed), start cheap: the checks still escalate.
    let start_tier = complexity.map_or(Tier::Cheap, |c| c.tier);
    let top = max_tier.map_or(ladder.len() - 1, index_of);
    let start = index_of(start_tier).min(top);
    let last = (start + route.max_escalations as usize).min(top);
    Plan {
        rungs: (start..=last)
            .map(|i| Rung {
                tier: Some(tiers[i]),
                model: ladder[i],
            })
            .collect(),
        routed: true,
    }
}

/// Parses an `x-frugal-max-tier` header value.
pub fn parse_tier(value: &str) -> Option<Tier> {
    match value.trim().to_ascii_lowercase().as_str() {
        "cheap" => Some(Tier::Cheap),
        "mid" => Some(Tier::Mid),
        "strong" => Some(Tier::Strong),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "\
providers:
  mock: { base_url: http://127.0.0.1:9/v1 }
models:
  cheap: { provider: mock, price: { input_per_mtok: 0.15, output_per_mtok: 0.6 } }
  mid: { provider: mock, price: { input_per_mtok: 0.8, output_per_mtok: 4 } }
  strong: { provider: mock, price: { input_per_mtok: 2.5, output_per_mtok: 10 } }
default_model: strong
route:
  ladder: [cheap, mid, strong]
";

    fn verdict(tier: Tier) -> Complexity {
        Complexity {
            score: 0.5,
            tier,
            reasons: vec![],
        }
    }

    fn aliases(plan: &Plan) -> Vec<String> {
        plan.rungs.iter().map(|r| r.model.alias.clone()).collect()
    }

    #[test]
    fn the_classifier_picks_the_start_and_the_ladder_the_rest() {
        let policy = crate::policy::parse(POLICY, "p.yaml").unwrap();
        let strong = &policy.models["strong"];
        let plan = plan(&policy, strong, Some(&verdict(Tier::Cheap)), None);
        assert!(plan.routed);
        assert_eq!(aliases(&plan), ["cheap", "mid", "strong"]);
        let plan2 = super::plan(&policy, strong, Some(&verdict(Tier::Mid)), None);
        assert_eq!(aliases(&plan2), ["mid", "strong"]);
        let plan3 = super::plan(&policy, strong, Some(&verdict(Tier::Strong)), None);
        assert_eq!(aliases(&plan3), ["strong"]);
    }

    #[test]
    fn max_tier_caps_the_ladder_and_unrouted_models_go_direct() {
        let policy = crate::policy::parse(POLICY, "p.yaml").unwrap();
        let strong = &policy.models["strong"];
        let capped = plan(
            &policy,
            strong,
            Some(&verdict(Tier::Strong)),
            Some(Tier::Mid),
        );
        assert_eq!(aliases(&capped), ["mid"]);
        let cheap_only = plan(
            &policy,
            strong,
            Some(&verdict(Tier::Cheap)),
            Some(Tier::Cheap),
        );
        assert_eq!(aliases(&cheap_only), ["cheap"]);
        let direct = plan(
            &policy,
            &policy.models["mid"],
            Some(&verdict(Tier::Cheap)),
            None,
        );
        assert!(!direct.routed);
        assert_eq!(aliases(&direct), ["mid"]);
    }

    #[test]
    fn max_escalations_limits_the_climb() {
        let text = format!("{POLICY}  max_escalations: 1\n");
        let policy = crate::policy::parse(&text, "p.yaml").unwrap();
        let plan = plan(
            &policy,
            &policy.models["strong"],
            Some(&verdict(Tier::Cheap)),
            None,
        );
        assert_eq!(aliases(&plan), ["cheap", "mid"]);
    }

    #[test]
    fn a_two_rung_ladder_maps_mid_to_cheap() {
        let text = POLICY.replace("[cheap, mid, strong]", "[cheap, strong]");
        let policy = crate::policy::parse(&text, "p.yaml").unwrap();
        let plan = plan(
            &policy,
            &policy.models["strong"],
            Some(&verdict(Tier::Mid)),
            None,
        );
        assert_eq!(aliases(&plan), ["cheap", "strong"]);
    }
}
