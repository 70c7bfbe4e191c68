//! Cost/quality curves of a router over labelled rows, and the figures RouteLLM reports on them
//! (APGR, CPT), plus the strong-call share a router needs to keep 95% of the strong model's
//! quality. Pure arithmetic: the offline tools feed it scores, outcomes and escalation flags.

use crate::data::Outcome;

/// One operating point: route prompts scoring at or above a threshold to the strong model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Prompts scoring at or above this start on the strong model (`+∞`: none do).
    pub threshold: f32,
    /// Share of prompts that reached the strong model (pre-routed or escalated), in [0, 1].
    pub strong_share: f64,
    /// Share of prompts that called the cheap model (every prompt not pre-routed).
    pub cheap_share: f64,
    /// Mean quality of the answers served, in [0, 1].
    pub quality: f64,
}

/// A router's points from 0% to 100% pre-routed, sorted by strong share.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The points, one per distinct score plus both ends.
    pub points: Vec<Point>,
    /// Mean quality of the weak model alone.
    pub weak: f64,
    /// Mean quality of the strong model alone.
    pub strong: f64,
}

impl Curve {
    /// Sweeps the start-strong threshold over every distinct score. A prompt not pre-routed
    /// is answered by the cheap model and escalated to the strong one when `escalate[i]`
    /// (pass all `false` for prompt-only routing); escalations count as strong calls.
    pub fn sweep(scores: &[f32], outcomes: &[Outcome], escalate: &[bool]) -> Self {
        let n = scores.len().min(outcomes.len()).min(escalate.len());
        let weak_q: Vec<f64> = outcomes[..n].iter().map(|o| o.weak_quality()).collect();
        let strong_q: Vec<f64> = outcomes[..n].iter().map(|o| o.strong_quality()).collect();
        let nf = n.max(1) as f64;
        let weak = weak_q.iter().sum::<f64>() / nf;
        let strong = strong_q.iter().sum::<f64>() / nf;

        // Start with nothing pre-routed: cascade answers only.
        let mut quality_sum: f64 = (0..n)
            .map(|i| if escalate[i] { strong_q[i] } else { weak_q[i] })
            .sum();
        let mut strong_calls = escalate[..n].iter().filter(|e| **e).count();
        let mut cheap_calls = n;
        let point = |t: f32, s: usize, c: usize, q: f64| Point {
            threshold: t,
            strong_share: s as f64 / nf,
            cheap_share: c as f64 / nf,
            quality: q / nf,
        };
        let mut points = vec![point(f32::INFINITY, strong_calls, cheap_calls, quality_sum)];

        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        let mut k = 0;
        while k < order.len() {
            // Prompts with equal scores move together: one threshold cannot split them.
            let t = scores[order[k]];
            while k < order.len() && scores[order[k]] == t {
                let i = order[k];
                let served = if escalate[i] { strong_q[i] } else { weak_q[i] };
                quality_sum += strong_q[i] - served;
                strong_calls += usize::from(!escalate[i]);
                cheap_calls -= 1;
                k += 1;
            }
            points.push(point(t, strong_calls, cheap_calls, quality_sum));
        }
        Self {
            points,
            weak,
            strong,
        }
    }

    /// Average performance gap recovered: the area between the curve and the weak model's
    /// quality, over the area between the strong and weak models', across strong shares
    /// (trapezoids, as RouteLLM's `evaluate.py` computes it). 0.5 is a random router.
    pub fn apgr(&self) -> f64 {
        let gap = self.strong - self.weak;
        let (Some(first), Some(last)) = (self.points.first(), self.points.last()) else {
            return 0.0;
        };
        let width = last.strong_share - first.strong_share;
        if gap.abs() < 1e-12 || width <= 0.0 {
            return 0.0;
        }
        let area: f64 = self
            .points
            .windows(2)
            .map(|w| (w[1].strong_share - w[0].strong_share) * (w[0].quality + w[1].quality) / 2.0)
            .sum();
        (area - self.weak * width) / (gap * width)
    }

    /// Call-performance threshold: the least strong share whose quality recovers `fraction`
    /// of the weak-to-strong gap (interpolated between points), e.g. 0.5 for CPT(50%).
    pub fn cpt(&self, fraction: f64) -> Option<f64> {
        self.share_reaching(self.weak + fraction * (self.strong - self.weak))
    }

    /// The least strong share whose quality reaches `share` of the strong model's quality
    /// (e.g. 0.95), interpolated between points.
    pub fn share_at_quality_of_strong(&self, share: f64) -> Option<f64> {
        self.share_reaching(share * self.strong)
    }

    /// The first point reaching `share` of the strong model's quality.
    pub fn point_at_quality_of_strong(&self, share: f64) -> Option<Point> {
        let target = share * self.strong;
        self.points
            .iter()
            .copied()
            .find(|p| p.quality >= target - 1e-12)
    }

    fn share_reaching(&self, target: f64) -> Option<f64> {
        let first = self.points.first()?;
        if first.quality >= target - 1e-12 {
            return Some(first.strong_share);
        }
        self.points.windows(2).find_map(|w| {
            let (a, b) = (w[0], w[1]);
            (b.quality >= target - 1e-12).then(|| {
                let rise = b.quality - a.quality;
                if rise <= 0.0 {
                    b.strong_share
                } else {
                    a.strong_share + (b.strong_share - a.strong_share) * (target - a.quality) / rise
                }
            })
        })
    }
}

/// Strong share a random router needs to keep `share` of the strong model's quality: it moves
/// along the straight line from the weak to the strong model.
pub fn random_share_at_quality_of_strong(weak: f64, strong: f64, share: f64) -> Option<f64> {
    let target = share * strong;
    if weak >= target {
        return Some(0.0);
    }
    (strong > weak).then(|| ((target - weak) / (strong - weak)).clamp(0.0, 1.0))
}

/// Strong share an oracle needs (it sends exactly the prompts where strong beats weak, the
/// biggest gains first).
pub fn oracle_share_at_quality_of_strong(outcomes: &[Outcome], share: f64) -> Option<f64> {
    let gains: Vec<f32> = outcomes
        .iter()
        .map(|o| (o.strong_quality() - o.weak_quality()) as f32)
        .collect();
    let none = vec![false; outcomes.len()];
    Curve::sweep(&gains, outcomes, &none).share_at_quality_of_strong(share)
}

/// Cost of serving the prompts relative to sending all of them to the strong model, when a
/// cheap call costs `cheap_cost` and a strong call `strong_cost` (same units, per prompt).
/// The cheap call of an escalated prompt is paid too.
pub fn relative_cost(point: &Point, cheap_cost: f64, strong_cost: f64) -> f64 {
    if strong_cost <= 0.0 {
        return 0.0;
    }
    (point.cheap_share * cheap_cost + point.strong_share * strong_cost) / strong_cost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn correct(weak: bool, strong: bool) -> Outcome {
        Outcome::Correct { weak, strong }
    }

    #[test]
    fn perfect_scores_route_the_gains_first() {
        let outcomes = [
            correct(false, true),
            correct(true, true),
            correct(false, false),
            correct(true, true),
        ];
        let scores = [0.9, 0.1, 0.2, 0.3];
        let curve = Curve::sweep(&scores, &outcomes, &[false; 4]);
        assert_eq!(curve.points.len(), 5);
        assert!((curve.weak - 0.5).abs() < 1e-12 && (curve.strong - 0.75).abs() < 1e-12);
        // One prompt to strong already reaches the strong model's quality.
        assert_eq!(curve.share_at_quality_of_strong(1.0), Some(0.25));
        assert_eq!(curve.cpt(0.5), Some(0.125));
        assert!(curve.apgr() > 0.8);
    }

    #[test]
    fn random_router_apgr_is_one_half_in_expectation() {
        // Strong share moves linearly with quality when gains are spread evenly over scores.
        let outcomes: Vec<_> = (0..100).map(|i| correct(i % 4 != 0, true)).collect();
        let scores: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let apgr = Curve::sweep(&scores, &outcomes, &[false; 100]).apgr();
        assert!((apgr - 0.5).abs() < 0.03, "{apgr}");
    }

    #[test]
    fn escalations_count_as_strong_calls_and_keep_the_cheap_call() {
        let outcomes = [correct(false, true), correct(true, true)];
        let curve = Curve::sweep(&[0.0, 0.0], &outcomes, &[true, false]);
        let first = curve.points[0];
        assert_eq!(
            (first.strong_share, first.cheap_share, first.quality),
            (0.5, 1.0, 1.0)
        );
        assert_eq!(curve.share_at_quality_of_strong(0.95), Some(0.5));
        let cost = relative_cost(&first, 1.0, 10.0);
        assert!((cost - 0.6).abs() < 1e-12);
    }

    #[test]
    fn random_and_oracle_baselines() {
        let share = random_share_at_quality_of_strong(0.6, 0.8, 0.95).unwrap();
        assert!((share - 0.8).abs() < 1e-9, "{share}");
        assert_eq!(random_share_at_quality_of_strong(0.9, 0.8, 0.95), Some(0.0));
        let outcomes = [
            correct(false, true),
            correct(true, true),
            correct(true, true),
            correct(true, false),
        ];
        assert_eq!(oracle_share_at_quality_of_strong(&outcomes, 1.0), Some(0.0));
    }
}
