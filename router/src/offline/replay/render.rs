//! The replay's table: one column per policy, and the difference when there are two.

use std::fmt::Write as _;
use std::path::Path;

use super::super::pct;
use super::tally::Tally;

/// A row's cells: label, one value per tally, the difference (two tallies).
struct Row {
    label: String,
    cells: Vec<String>,
    difference: String,
}

fn usd(x: f64) -> String {
    format!("${x:.4}")
}

fn points(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1} pts", 100.0 * (b - a)),
        _ => String::new(),
    }
}

fn money_row(label: &str, tallies: &[Tally], pick: impl Fn(&Tally) -> f64) -> Row {
    let values: Vec<f64> = tallies.iter().map(&pick).collect();
    Row {
        label: label.to_string(),
        cells: values.iter().map(|v| usd(*v)).collect(),
        difference: match values[..] {
            [a, b] => format!("{:+.4}", b - a)
                .replacen('+', "+$", 1)
                .replacen('-', "-$", 1),
            _ => String::new(),
        },
    }
}

fn share_row(label: &str, tallies: &[Tally], pick: impl Fn(&Tally) -> Option<f64>) -> Row {
    let values: Vec<Option<f64>> = tallies.iter().map(&pick).collect();
    Row {
        label: label.to_string(),
        cells: values.iter().map(|v| pct(*v)).collect(),
        difference: match values[..] {
            [a, b] => points(a, b),
            _ => String::new(),
        },
    }
}

fn count_row(label: &str, tallies: &[Tally], pick: impl Fn(&Tally) -> usize) -> Row {
    let values: Vec<usize> = tallies.iter().map(&pick).collect();
    Row {
        label: label.to_string(),
        cells: values.iter().map(ToString::to_string).collect(),
        difference: match values[..] {
            [a, b] => format!("{:+}", b as i64 - a as i64),
            _ => String::new(),
        },
    }
}

/// Rows of a map-valued figure (cache outcomes, calls, escalations): one per key of any tally.
fn map_rows(
    heading: &str,
    tallies: &[Tally],
    pick: impl Fn(&Tally) -> &std::collections::BTreeMap<String, usize>,
) -> Vec<Row> {
    let mut keys: Vec<&String> = tallies.iter().flat_map(|t| pick(t).keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            count_row(&format!("{heading}: {key}"), tallies, |t| {
                pick(t).get(key).copied().unwrap_or(0)
            })
        })
        .collect()
}

/// The table of one or two replays of `traffic`.
pub fn table(traffic: &Path, tallies: &[Tally]) -> String {
    let mut rows = vec![
        count_row("requests", tallies, |t| t.requests),
        count_row("answered", tallies, |t| t.answered),
        money_row("baseline (without frugal)", tallies, |t| t.baseline_usd),
        money_row("cost", tallies, |t| t.cost_usd),
        share_row("saved", tallies, Tally::saved_share),
        money_row("  saved by trim", tallies, |t| t.saved_usd.trim),
        money_row("  saved by cache", tallies, |t| t.saved_usd.cache),
        money_row("  saved by route", tallies, |t| t.saved_usd.route),
    ];
    // The provider's prompt cache only serves long prompts: no rows for traffic it never served.
    if tallies
        .iter()
        .any(|t| t.prompt_cached_tokens > 0 || t.saved_usd.prompt_cache != 0.0)
    {
        rows.push(money_row("  saved by prompt_cache", tallies, |t| {
            t.saved_usd.prompt_cache
        }));
        rows.push(share_row(
            "input tokens from the provider's cache",
            tallies,
            Tally::prompt_cached_share,
        ));
    }
    if tallies.iter().any(|t| t.quality.is_some()) {
        rows.push(count_row("labelled answers", tallies, |t| {
            t.quality.map_or(0, |q| q.labelled)
        }));
        rows.push(share_row("quality kept (vs always-strong)", tallies, |t| {
            t.quality.and_then(|q| q.kept())
        }));
        rows.push(share_row("  always-weak would keep", tallies, |t| {
            t.quality.and_then(|q| q.weak_kept())
        }));
        rows.push(count_row("  answers to another question", tallies, |t| {
            t.quality.map_or(0, |q| q.wrong_question)
        }));
    }
    if tallies.iter().any(|t| t.pairs.is_some()) {
        rows.push(share_row(
            "false cache hits (different pairs)",
            tallies,
            |t| t.pairs.and_then(|p| p.false_hit_rate()),
        ));
        rows.push(share_row(
            "right cache hits (duplicate pairs)",
            tallies,
            |t| t.pairs.and_then(|p| p.recall()),
        ));
    }
    rows.extend(map_rows("cache", tallies, |t| &t.cache));
    rows.extend(map_rows("calls", tallies, |t| &t.calls));
    rows.extend(map_rows("escalations", tallies, |t| &t.escalations));
    rows.extend(map_rows("refused", tallies, |t| &t.refused));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "replay of {} (requests naming no model ask for {})",
        traffic.display(),
        tallies.first().map_or("", |t| t.model.as_str())
    );
    let mut header: Vec<String> = tallies.iter().map(|t| t.policy.clone()).collect();
    if tallies.len() == 2 {
        header.push("difference".into());
    }
    let label_width = rows.iter().map(|r| r.label.len()).max().unwrap_or(0).max(6);
    let width = header
        .iter()
        .map(String::len)
        .chain(rows.iter().flat_map(|r| r.cells.iter().map(String::len)))
        .max()
        .unwrap_or(8)
        .max(10);
    let _ = write!(out, "{:<label_width$}", "");
    for h in &header {
        let _ = write!(out, "  {h:>width$}");
    }
    out.push('\n');
    for row in rows {
        let _ = write!(out, "{:<label_width$}", row.label);
        for cell in &row.cells {
            let _ = write!(out, "  {cell:>width$}");
        }
        if tallies.len() == 2 {
            let _ = write!(out, "  {:>width$}", row.difference);
        }
        out.push('\n');
    }
    for tally in tallies.iter().filter(|t| !t.wrong_answers.is_empty()) {
        let _ = writeln!(out, "\nanswers to another question under {}:", tally.policy);
        for wrong in &tally.wrong_answers {
            let _ = writeln!(out, "  asked:  {}\n  served: {}", wrong.asked, wrong.served);
        }
    }
    out.push_str(
        "answers are recorded outcomes from the labels (a simulation), not a live model\n",
    );
    out
}
