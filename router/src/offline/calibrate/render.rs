//! `frugal calibrate`'s tables: each frontier (the picked point marked), what changed and why,
//! and a line diff of the policy text.

use std::fmt::Write as _;

use super::{CalibrateArgs, Calibration};

/// A share as a percentage (the offline tools' one format).
fn pct(x: f64) -> String {
    super::super::pct(Some(x))
}

/// Marks the picked row.
fn mark(picked: Option<usize>, index: usize) -> &'static str {
    if picked == Some(index) {
        "  ← picked"
    } else {
        ""
    }
}

/// Every frontier, then the changes and what was left as it is.
pub fn report(calibration: &Calibration, args: &CalibrateArgs) -> String {
    let mut out = String::new();
    if let Some(route) = &calibration.route {
        let _ = writeln!(
            out,
            "routing: start_strong_above → quality and cost vs always-strong ({})",
            route.note
        );
        let _ = writeln!(
            out,
            "  {:>10} {:>12} {:>9} {:>9}",
            "above", "strong share", "quality", "cost"
        );
        // Thousands of distinct scores: print about 25 of them, the pick always among them.
        let step = (route.points.len() / 25).max(1);
        for (i, p) in route.points.iter().enumerate() {
            if i % step != 0 && route.pick != Some(i) && i + 1 != route.points.len() {
                continue;
            }
            let _ = writeln!(
                out,
                "  {:>10.4} {:>12} {:>9} {:>9}{}",
                p.start_strong_above,
                pct(p.strong_share),
                pct(p.quality),
                pct(p.cost),
                mark(route.pick, i)
            );
        }
        out.push('\n');
    }
    if let Some(cache) = &calibration.cache {
        let _ = writeln!(out, "semantic cache: similarity_threshold ({})", cache.note);
        let _ = writeln!(
            out,
            "  {:>9} {:>8} {:>11}",
            "threshold", "recall", "false hits"
        );
        for (i, p) in cache.points.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>9.3} {:>8} {:>11}{}",
                p.similarity_threshold,
                pct(p.recall),
                format!("{:.2}%", 100.0 * p.false_hit_rate),
                mark(cache.pick, i)
            );
        }
        out.push('\n');
    }
    if let Some(shadow) = &calibration.shadow {
        let _ = writeln!(
            out,
            "semantic cache on your traffic: similarity_threshold ({})",
            shadow.note
        );
        let _ = writeln!(
            out,
            "  {:>9} {:>12} {:>9} {:>13}",
            "threshold", "would serve", "compared", "disagreement"
        );
        for (i, p) in shadow.points.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>9.3} {:>12} {:>9} {:>13}{}",
                p.similarity_threshold,
                pct(p.would_serve),
                p.compared,
                pct(p.disagreement),
                mark(shadow.pick, i)
            );
        }
        out.push('\n');
    }
    if let Some(trim) = &calibration.trim {
        let _ = writeln!(out, "trimming: max_context_tokens ({})", trim.note);
        let _ = writeln!(
            out,
            "  {:>6} {:>10} {:>14}",
            "cap", "reduction", "evidence kept"
        );
        for (i, p) in trim.points.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>6} {:>10} {:>14}{}",
                p.max_context_tokens,
                pct(p.token_reduction),
                pct(p.evidence_kept),
                mark(trim.pick, i)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "targets: keep {} of always-strong's quality and {} of the gold evidence, at most {:.2}% false cache hits",
        pct(args.target_quality),
        pct(args.target_evidence.unwrap_or(args.target_quality)),
        100.0 * args.max_false_hit_rate
    );
    if calibration.changes.is_empty() {
        out.push_str("  nothing to change\n");
    }
    for change in &calibration.changes {
        let before = if change.before.is_empty() {
            "(default)"
        } else {
            &change.before
        };
        let _ = writeln!(
            out,
            "  {}: {before} → {}  ({})",
            change.key, change.after, change.why
        );
    }
    for note in &calibration.notes {
        let _ = writeln!(out, "  left as it is: {note}");
    }
    out
}

/// The lines that differ between `before` and `after`, with line numbers, in unified style
/// (a longest-common-subsequence diff; policies are short).
pub fn diff(before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // lcs[i][j]: common lines of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "-{:>4} | {}", i + 1, a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+{:>4} | {}", j + 1, b[j]);
            j += 1;
        }
    }
    if out.is_empty() {
        return String::new();
    }
    format!("\nthe policy, changed lines (- before, + after, with line numbers):\n{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_shows_changed_and_added_lines_only() {
        let before = "a: 1\nb: 2\nc: 3\n";
        let after = "a: 1\nb: 5\nnew: 0\nc: 3\n";
        let diff = diff(before, after);
        assert!(diff.contains("-   2 | b: 2"), "{diff}");
        assert!(diff.contains("+   2 | b: 5"), "{diff}");
        assert!(diff.contains("+   3 | new: 0"), "{diff}");
        assert!(!diff.contains("a: 1"), "{diff}");
        assert_eq!(super::diff(before, before), "");
    }
}
